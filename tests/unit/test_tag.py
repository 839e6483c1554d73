"""The tag stage: the topic rule (about, not a passing mention), evidence, the default topics."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.config import Settings, parse_settings
from pipeline.content.sentences import split_sentences
from pipeline.datafile import load
from pipeline.models import Article, TaggedArticle
from pipeline.signal import people, places
from pipeline.signal import tag as tag_module
from pipeline.signal.tag import Tagger, TopicRule, build_tagger, tag

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "expected"
T0 = datetime(2019, 2, 27, tzinfo=UTC)
FILLER = [
    "The statement was released in the afternoon.",
    "Officials gave no further details on the timing.",
    "Markets were little changed by the news.",
    "Analysts said more information was expected next week.",
]


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return build_tagger(Settings())


def article(title: str, *paragraphs: str, language: str = "en") -> Article:
    url = f"https://example.org/{abs(hash((title, paragraphs)))}"
    return Article(
        id=url, entry_id=url, feed_url="https://example.org/feed", url=url, canonical_url=url,
        source="Example", title=title, text="\n".join(paragraphs), author=None,
        published_at=T0, fetched_at=T0, language=language,
    )


def evidence(result: TaggedArticle, topic: str) -> str:
    return next(e.evidence for e in result.evidence if e.kind == "topic" and e.tag == topic)


# -- the rule -----------------------------------------------------------------------------


def test_one_passing_mention_outside_the_lead_does_not_tag(tagger: Tagger) -> None:
    result = tag(article(
        "Central bank holds interest rates",
        "The central bank kept its main rate unchanged on Thursday.",
        "It said inflation would fall in the coming months.",
        *FILLER,
        "Some ministers wanted lower rates before the election campaign.",
    ), tagger)
    assert "elections" not in result.topics


def test_a_match_in_the_title_tags_with_the_title_as_evidence(tagger: Tagger) -> None:
    result = tag(article("Thousands of protesters march in the capital", *FILLER), tagger)
    assert "protests" in result.topics
    assert evidence(result, "protests") == "Thousands of protesters march in the capital"


def test_a_match_in_the_lead_tags(tagger: Tagger) -> None:
    result = tag(article(
        "A tense day in the capital",
        "Police fired tear gas at thousands of demonstrators on Friday.",
        *FILLER,
    ), tagger)
    assert "protests" in result.topics
    assert evidence(result, "protests").startswith("Police fired tear gas")


def test_the_lead_is_the_first_two_sentences_of_five_words_or_more(tagger: Tagger) -> None:
    # A three-word heading does not count as a lead sentence: the lead is the
    # next two, and a match in the fourth sentence is outside it.
    late = article("A day in the capital", "Live updates here.", *FILLER[:2],
                   "Later, demonstrators gathered outside parliament.", *FILLER[2:])
    assert "protests" not in tag(late, tagger).topics
    early = article("A day in the capital", "Live updates here.", FILLER[0],
                    "Later, demonstrators gathered outside parliament.", *FILLER[1:])
    assert "protests" in tag(early, tagger).topics


def test_matches_in_two_body_sentences_tag(tagger: Tagger) -> None:
    result = tag(article(
        "A tense day in the capital",
        *FILLER,
        "By evening, demonstrators had gathered outside parliament.",
        "Riot police later cleared the square.",
    ), tagger)
    assert "protests" in result.topics
    assert evidence(result, "protests").startswith("By evening, demonstrators")


def test_a_query_satisfied_by_the_tags_alone_tags(tagger: Tagger) -> None:
    # syria is country:SY OR title:(...): the country rule already decided
    # "substantially about" (here: Damascus twice in the body).
    result = tag(article(
        "Officials meet to discuss trade",
        *FILLER,
        "A delegation later travelled to Damascus.",
        "Talks in Damascus are expected to last two days.",
    ), tagger)
    assert "SY" in result.countries
    assert "syria" in result.topics
    assert "Damascus" in evidence(result, "syria")


def test_rule_off_tags_any_match_as_before(tagger: Tagger) -> None:
    text = ("Central bank holds interest rates", "The bank kept its rate unchanged.", *FILLER,
            "Some ministers wanted lower rates before the election campaign.")
    any_match = dataclasses.replace(tagger, topic_rule=TopicRule(min_sentences=0))
    assert "elections" in tag(article(*text), any_match).topics
    assert "elections" not in tag(article(*text), tagger).topics


def test_user_topics_follow_the_same_rule() -> None:
    tagger = build_tagger(parse_settings({"default_topics": False,
                                          "topics": {"rates": '"interest rate"'}}))
    passing = article("Central bank meeting", *FILLER, "Its interest rate was unchanged.")
    assert tag(passing, tagger).topics == ()
    in_title = article("Central bank holds interest rate", *FILLER)
    assert tag(in_title, tagger).topics == ("rates",)


# -- foreign-forces and its false friends -------------------------------------------------


@pytest.mark.parametrize("title, lead", [
    ("Lira steadies as central bank rebuilds reserves",
     "The central bank said its foreign exchange reserves had risen to $28 billion, "
     "and foreign investors returned to the bond market."),
    ("Japan to admit more foreign workers",
     "A shrinking labour force and workforce have pushed the government to set up a task force "
     "on foreign workers."),
    ("May offers vote on delaying Brexit",
     "Prime Minister Theresa May offered lawmakers a vote on delaying Brexit if they reject "
     "her withdrawal agreement, and the withdrawal of Article 50 was debated."),
    ("Kettle maker withdraws product from 14 countries",
     "The company will withdraw its kettle from sale and pull out of the U.S. market, "
     "its sales force was told."),
    ("Army is 8,000 soldiers short",
     "The British Army is 8,000 soldiers short of its target, and more soldiers ask to "
     "withdraw from service early."),
])
def test_foreign_exchange_labour_force_and_other_withdrawals_are_not_foreign_forces(
    tagger: Tagger, title: str, lead: str
) -> None:
    assert "foreign-forces" not in tag(article(title, lead, *FILLER), tagger).topics


@pytest.mark.parametrize("title, lead", [
    ("U.S. to keep about 400 troops in Syria",
     "The United States will keep about 400 troops in Syria after the bulk of its forces leave."),
    ("Russia and Israel to discuss foreign forces",
     "Russia and Israel agreed to work on the withdrawal of foreign forces from Syria."),
    ("Pullout completed",
     "The last contingent of foreign soldiers left the country on Monday."),
])
def test_foreign_troops_present_or_leaving_are_foreign_forces(
    tagger: Tagger, title: str, lead: str
) -> None:
    assert "foreign-forces" in tag(article(title, lead, *FILLER), tagger).topics


def test_topics_in_other_languages(tagger: Tagger) -> None:
    fr = tag(article(
        "Algérie : des milliers de manifestants contre un cinquième mandat",
        "Des dizaines de milliers d'Algériens ont manifesté vendredi contre un cinquième mandat "
        "du président, avant l'élection présidentielle du 18 avril.",
        language="fr"), tagger)
    assert {"protests", "elections"} <= set(fr.topics)
    ru = tag(article(
        "Россия и Израиль создадут рабочую группу",
        "Россия и Израиль договорились создать рабочую группу по выводу иностранных сил из "
        "Сирии.", language="ru"), tagger)
    assert {"syria", "foreign-forces", "diplomacy"} <= set(ru.topics)


# -- the seeds ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SEEDS.glob("*.txt")), ids=lambda p: p.stem)
def test_every_seed_is_about_syria_and_foreign_forces_and_not_elections(
    tagger: Tagger, path: Path
) -> None:
    text = path.read_text(encoding="utf-8")
    result = tag(article("Report", text), tagger)
    assert {"syria", "foreign-forces"} <= set(result.topics)
    # 004 ends "... raised the issue of the election campaign in Israel": one clause.
    assert "elections" not in result.topics
    # The evidence is a sentence of the text that has the words of the topic.
    sentence = evidence(result, "foreign-forces")
    assert sentence in " ".join(text.split())
    assert "forces" in sentence or "troops" in sentence


def test_the_body_is_split_into_sentences_once(tagger: Tagger, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    # Countries, people and the topic rule share one split (it is a tenth of
    # the tagging time).
    calls: list[str] = []

    def counting(text: str) -> list[tuple[int, int]]:
        calls.append(text)
        return split_sentences(text)

    for module in (tag_module, places, people):
        monkeypatch.setattr(module, "split_sentences", counting)
    text = (SEEDS / "004_9d3568ec65f61390.txt").read_text(encoding="utf-8")
    result = tag(article("Report", text), tagger)
    assert {"syria", "foreign-forces"} <= set(result.topics)
    assert result.countries and result.people
    assert calls == [text]


def test_the_topics_file_is_checked_like_the_configs_topics() -> None:
    raw = b"syria: country:SY\n'bad name': x\nbroken: 'a AND (b'\n"
    with pytest.raises(tag_module.TopicsFileError) as info:
        load(raw, tag_module.TopicsFile, origin="topics.yaml", error=tag_module.TopicsFileError)
    lines = str(info.value).splitlines()
    assert ("topics.yaml: line 2: bad name: topic name 'bad name' may use letters, digits, "
            "'-' and '_'") in lines
    assert any(line.startswith("topics.yaml: line 3: broken: unexpected end of query")
               for line in lines)
