import dataclasses
import random
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.cluster import NEAR_DUPLICATE, ClusterDoc, Clusterer, _copies, cluster
from pipeline.ids import story_id

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "expected"
T0 = datetime(2019, 2, 27, tzinfo=UTC)


def seed_docs() -> list[ClusterDoc]:
    docs = []
    for i, path in enumerate(sorted(SEEDS.glob("*.txt"))):
        text = path.read_text(encoding="utf-8")
        first = text.splitlines()[0]
        docs.append(ClusterDoc(
            id=path.stem, time=T0 + timedelta(hours=12 * i), title=first[:120], text=text,
            source=f"outlet-{i}", countries=("IL", "RU", "SY"),
            people=("Benjamin Netanyahu", "Vladimir Putin"),
        ))
    return docs


OTHER_SYRIA = ClusterDoc(
    id="idlib", time=T0 + timedelta(hours=30), source="other",
    title="Syrian army shells rebel-held Idlib as ceasefire falters",
    text="Syrian government forces shelled rebel positions in Idlib province on Saturday, "
    "killing at least 12 civilians, according to the Syrian Observatory for Human Rights. "
    "The attacks came despite a ceasefire brokered by Russia and Turkey in September. "
    "Turkish troops manning observation posts in the province were not harmed.",
    countries=("SY", "TR"),
)


def test_five_reports_of_one_event_form_one_story() -> None:
    assignments, _ = cluster(seed_docs(), [])
    assert len(assignments) == 5
    assert len(set(assignments.values())) == 1


def test_a_different_syria_event_in_the_same_week_stays_apart() -> None:
    assignments, _ = cluster([*seed_docs(), OTHER_SYRIA], [])
    assert assignments["idlib"] not in {v for k, v in assignments.items() if k != "idlib"}


def test_new_article_joins_a_stored_story_within_the_window_only() -> None:
    docs = seed_docs()
    stored = [ClusterDoc(**{**_fields(d), "story_id": "s-old"}) for d in docs[:4]]
    late = docs[4]
    joined, _ = cluster([late], stored)
    assert joined[late.id] == "s-old"
    much_later = ClusterDoc(**{**_fields(late), "time": late.time + timedelta(days=10)})
    apart, _ = cluster([much_later], stored)
    assert apart[late.id] != "s-old"


def test_story_ids_are_stable_across_runs() -> None:
    first, _ = cluster(seed_docs(), [])
    second, _ = cluster(list(reversed(seed_docs())), [])
    assert first == second


def _fields(doc: ClusterDoc) -> dict[str, object]:
    return {name: getattr(doc, name) for name in doc.__slots__}


# -- near-duplicates, languages, representative, scale ------------------------------------

WIRE = (
    "The United States plans to keep about 400 troops in Syria after the bulk of American "
    "forces leave, roughly double the number the White House announced last week, a senior "
    "administration official said on Thursday. The troops would be split between a safe zone "
    "in the northeast, along the border with Turkey, and the al-Tanf garrison near the Iraqi "
    "and Jordanian borders, the official said, speaking on condition of anonymity. President "
    "Donald Trump stunned allies in December when he ordered a full pullout of the roughly "
    "2,000 U.S. troops in Syria."
)


def doc(id: str, *, hours: float = 0, title: str = "", text: str = "", language: str = "",
        countries: tuple[str, ...] = (), people: tuple[str, ...] = (),
        story_id: str | None = None) -> ClusterDoc:
    return ClusterDoc(id=id, time=T0 + timedelta(hours=hours), title=title, text=text,
                      source=f"source-{id}", countries=countries, people=people,
                      language=language, story_id=story_id)


def test_a_syndicated_copy_joins_whatever_its_headline_and_tags() -> None:
    original = doc("wire", title="U.S. to keep about 400 troops in Syria", text=WIRE,
                   countries=("US", "SY", "TR"), people=("Donald Trump",), language="en")
    copy = doc("copy", hours=3, title="Pentagon plan: a residual force in the desert",
               text=WIRE.replace("roughly double", "about twice").replace(" last week", ""),
               language="en")
    clusterer = Clusterer()
    assert clusterer.similarity(original, copy).rule == "near-duplicate"
    assignments, _ = cluster([original, copy], [])
    assert assignments["copy"] == assignments["wire"]


def test_without_the_near_duplicate_rule_the_retitled_copy_scores_lower() -> None:
    original = doc("wire", title="U.S. to keep about 400 troops in Syria", text=WIRE)
    copy = doc("copy", title="Pentagon plan: a residual force in the desert", text=WIRE)
    plain = Clusterer(near_duplicates=False).similarity(original, copy)
    assert plain.rule == "text" and plain.score < 1.0


def seed_in(language: str, numbers: str, *, hours: float = 30, countries: tuple[str, ...] = (
        "IL", "RU", "SY"), people: tuple[str, ...] = ("Benjamin Netanyahu", "Vladimir Putin"),
        id: str = "translated") -> ClusterDoc:
    # Words no English report shares: only tags and numbers can join it. At 30 h
    # it comes after seed 002 (24 h), whose numbers it quotes.
    return doc(id, hours=hours, title="Rapport traduit", language=language,
               text=f"Texte sans mots en commun. {numbers}", countries=countries, people=people)


def english_seeds() -> list[ClusterDoc]:
    return [dataclasses.replace(d, language="en") for d in seed_docs()]


def test_a_report_in_another_language_joins_when_tags_and_numbers_agree() -> None:
    seeds = english_seeds()
    # seed 002 has "15 Russian servicemen", "Il-20", "2018", "F-16".
    french = seed_in("fr", "Il-20, 15 militaires, septembre 2018.")
    assignments, _ = cluster([*seeds, french], [])
    assert assignments["translated"] == assignments[seeds[0].id]


@pytest.mark.parametrize("case", [
    {"numbers": "15 militaires."},  # one number in common: not enough
    {"numbers": "Il-20, 15 militaires, 2018.", "countries": ("SY",),
     "people": ()},  # the same numbers, not the same countries and people
    {"numbers": "Il-20, 15 militaires, 2018.", "language": ""},  # language unknown: text only
])
def test_a_report_in_another_language_stays_apart_otherwise(case: dict[str, object]) -> None:
    seeds = english_seeds()
    other = seed_in(str(case.get("language", "fr")), str(case["numbers"]),
                    countries=case.get("countries", ("IL", "RU", "SY")),  # type: ignore[arg-type]
                    people=case.get("people", ("Benjamin Netanyahu",  # type: ignore[arg-type]
                                               "Vladimir Putin")))
    assignments, _ = cluster([*seeds, other], [])
    assert assignments["translated"] not in {assignments[s.id] for s in seeds}


def test_the_cross_language_rule_can_be_turned_off() -> None:
    seeds = english_seeds()
    french = seed_in("fr", "Il-20, 15 militaires, septembre 2018.")
    clusterer = Clusterer(cross_language=False)
    clusterer.observe([*seeds, french])
    stories = {d.id: clusterer.assign(d) for d in sorted([*seeds, french], key=lambda d: d.time)}
    assert stories["translated"] not in {stories[s.id] for s in seeds}


def test_a_cross_language_report_outside_the_window_stays_apart() -> None:
    seeds = english_seeds()
    late = seed_in("fr", "Il-20, 15 militaires, septembre 2018.", hours=24 * 8)
    assignments, _ = cluster([*seeds, late], [])
    assert assignments["translated"] not in {assignments[s.id] for s in seeds}


def test_the_story_title_comes_from_its_main_language() -> None:
    seeds = english_seeds()
    translations = [seed_in(lang, "Il-20, 15, 2018, F-16.", id=f"t-{lang}")
                    for lang in ("fr", "ru", "de")]
    assignments, clusterer = cluster([*seeds, *translations], [])
    story = assignments[seeds[0].id]
    assert {assignments[t.id] for t in translations} == {story}
    lead = clusterer.representative(story)
    assert lead is not None and lead.language == "en"


def test_two_thousand_unrelated_stored_articles_change_nothing() -> None:
    rng = random.Random(3)
    words = [f"word{i}" for i in range(5000)]
    stored = [
        doc(f"stored-{i}", hours=rng.uniform(-60, 60), story_id=f"s-stored-{i}",
            title=" ".join(rng.choices(words, k=8)), text=" ".join(rng.choices(words, k=200)),
            countries=tuple(rng.sample(["IL", "RU", "SY", "US", "TR"], 2)))
        for i in range(2000)
    ]
    alone, _ = cluster(seed_docs(), [])
    crowded, _ = cluster(seed_docs(), stored)
    assert crowded == alone


class _CompareEveryCandidate(Clusterer):
    """The reference for assign(): every candidate compared in full, no bound."""

    def assign(self, doc: ClusterDoc, features: Any = None) -> str:
        features = features if features is not None else self._features(doc)
        if doc.id not in self._observed:
            self._observed.add(doc.id)
            self._count(features)
        vector = self._vector(features)
        found, cross, _ = self._candidates(features, vector)
        best_story, best = None, 0.0
        for index in sorted(found | cross):
            member = self._members[index]
            if abs(member.doc.time - doc.time) > self.window or member.doc.id == doc.id:
                continue
            score = self.compare(features, member.features, vector,
                                 self.vector_of(member)).score
            if score > best:
                best_story, best = member.story, score
        if best_story is None or best < self.threshold:
            best_story = story_id(doc.id)
        self._add(doc, features, best_story, vector)
        return best_story


def _newsroom_docs(n: int, *, seed: int) -> list[ClusterDoc]:
    from benchmarks.synthetic import Newsroom

    languages = ("en", "en", "en", "fr")  # some pairs go through the cross-language rule
    return [
        ClusterDoc(id=f"a{a.n}", time=a.published_at, title=a.title, text=a.text,
                   source=a.source, countries=a.countries, people=a.people,
                   language=languages[a.n % len(languages)])
        for a in Newsroom(seed).articles(n)
    ]


@pytest.mark.parametrize("seed", [3, 11])
def test_pruned_assignment_matches_comparing_every_candidate(seed: int) -> None:
    docs = sorted(_newsroom_docs(600, seed=seed), key=lambda d: (d.time, d.id))
    known, new = docs[:200], docs[200:]
    stored = [dataclasses.replace(d, story_id=f"old-{i // 3}") for i, d in enumerate(known)]
    pruned, reference = Clusterer(), _CompareEveryCandidate()
    for clusterer in (pruned, reference):
        clusterer.observe(new)
        clusterer.add_known(stored)
    got = [pruned.assign(d) for d in new]
    want = [reference.assign(d) for d in new]
    assert got == want
    # The comparison is about real choices: articles joined new and stored stories.
    assert len(set(got)) < len(new) * 0.8
    assert any(g.startswith("old-") for g in got)


def test_pruned_assignment_matches_when_streaming_without_observing_first() -> None:
    """Each article counted as it comes: document frequencies, so which words are
    common, change between calls, and the bound must follow."""
    docs = sorted(_newsroom_docs(300, seed=5), key=lambda d: (d.time, d.id))
    pruned, reference = Clusterer(), _CompareEveryCandidate()
    got = [pruned.assign(d) for d in docs]
    want = [reference.assign(d) for d in docs]
    assert got == want
    assert len(set(got)) < len(docs) * 0.8


def test_naive_times_cluster_as_aware_ones_do() -> None:
    aware = seed_docs()
    naive = [dataclasses.replace(d, time=d.time.replace(tzinfo=None)) for d in aware]
    assert cluster(naive, [])[0] == cluster(aware, [])[0]


def test_a_pass_spanning_many_windows_forgets_old_members_and_assigns_the_same() -> None:
    """cluster() drops members that went out of the window from its indexes as
    the pass moves on in time; the stories are those of keeping them all."""
    docs = sorted(_newsroom_docs(600, seed=7), key=lambda d: (d.time, d.id))
    window = timedelta(hours=6)  # the 600 reports span a day: four windows
    got, clusterer = cluster(docs, [], window=window)
    reference = _CompareEveryCandidate(window=window)
    reference.observe(docs)  # as cluster() does: the IDF of the whole pass
    assert [got[d.id] for d in docs] == [reference.assign(d) for d in docs]
    assert len(set(got.values())) < len(docs) * 0.9  # reports joined stories
    indexed = sum(len(rows) for rows in clusterer._by_term.values())
    assert indexed < 0.5 * sum(len(clusterer.vector_of(m)) for m in clusterer._members)


@given(st.sets(st.integers(0, 60)), st.sets(st.integers(0, 60)))
def test_copies_is_the_shingle_jaccard_rule(a: set[int], b: set[int]) -> None:
    mine, theirs = frozenset(a), frozenset(b)
    union = len(mine | theirs)
    jaccard = len(mine & theirs) / union if union else 0.0
    assert _copies(mine, array("q", sorted(b))) == (jaccard >= NEAR_DUPLICATE)


def test_dates_at_the_ends_of_the_calendar_cluster_without_overflow() -> None:
    """A feed's bad date (year 1 or 9999) is an article's time like any other:
    forgetting old members must not step past the ends of the calendar."""
    first = datetime.min.replace(tzinfo=UTC) + timedelta(minutes=1)
    last = datetime.max.replace(tzinfo=UTC) - timedelta(minutes=1)
    docs = [dataclasses.replace(d, time=when)
            for d, when in zip(seed_docs(), [first, first, last, last, last], strict=True)]
    assignments, _ = cluster(docs, [])
    names = [d.id for d in docs]
    assert assignments[names[0]] == assignments[names[1]]
    assert assignments[names[2]] == assignments[names[3]] == assignments[names[4]]
    assert assignments[names[0]] != assignments[names[2]]
