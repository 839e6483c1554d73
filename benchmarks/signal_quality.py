"""Signal quality: topic, country and people tags, and story clustering, against gold labels.

    .venv/bin/python -m benchmarks.signal_quality [--gold FILE] [--out FILE] [--no-write]

Runs the real tag stage (:func:`pipeline.signal.tag.build_tagger` with the default
settings, then :func:`pipeline.signal.tag.tag` on each :class:`~pipeline.models.Article`,
language detected as the process stage detects it) and the real clusterer
(:func:`pipeline.signal.cluster.cluster`, default window and threshold, articles in
publication order) over the labelled set in ``benchmarks/signal/`` and prints:

- micro precision, recall and F1 per tag kind (topics, countries, people) and
  per topic: every (article, tag) pair is one decision;
- pairwise clustering precision, recall and F1: a pair of articles is a
  positive when the gold labels put them in one story, a prediction when the
  clusterer does;
- the same figures for a baseline measured in the same run: topics given for
  any match anywhere in the article (the rule before issue 5), and clustering
  without the cross-language and near-duplicate rules;
- every wrong decision, so a change can be judged case by case.

It writes ``benchmarks/results/signal_quality.md`` (the tables, the command and
the date) unless ``--no-write``. ``tests/unit/test_signal_quality.py`` runs
:func:`evaluate` and holds the figures above floors.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import itertools
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from pipeline.config import Settings
from pipeline.content.language import load_detector
from pipeline.models import Article, TaggedArticle
from pipeline.signal.cluster import ClusterDoc, Clusterer
from pipeline.signal.embed import Encoder
from pipeline.signal.tag import Tagger, build_tagger, tag

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "benchmarks" / "signal" / "gold.yaml"
RESULTS = ROOT / "benchmarks" / "results" / "signal_quality.md"
COMMAND = ".venv/bin/python -m benchmarks.signal_quality"
KINDS = ("topics", "countries", "people")


# -- the labelled set ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """One labelled article."""

    article: Article
    story: str
    split: str  # "tune" or "holdout"
    topics: frozenset[str]
    countries: frozenset[str]
    people: frozenset[str]

    def gold(self, kind: str) -> frozenset[str]:
        value: frozenset[str] = getattr(self, kind)
        return value


_META = re.compile(r'<meta\s+(?:property|name)="([^"]+)"\s+content="([^"]*)"', re.IGNORECASE)


def _page_meta(path: Path) -> dict[str, str]:
    found = {k: html.unescape(v) for k, v in _META.findall(path.read_text(encoding="utf-8"))}
    return {"title": found["og:title"], "source": found["og:site_name"],
            "published": found["article:published_time"]}


def load_set(path: Path = GOLD) -> list[Item]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    items = []
    for entry in data["articles"]:
        meta = dict(entry)
        if "html" in entry:
            meta.update(_page_meta(ROOT / entry["html"]))
        published = meta["published"]
        if not isinstance(published, datetime):
            published = datetime.fromisoformat(str(published))
        published = published.astimezone(UTC)
        text = (ROOT / entry["text"]).read_text(encoding="utf-8")
        url = f"https://signal.example/{entry['id']}"
        article = Article(
            id=entry["id"], entry_id=url, feed_url="https://signal.example/feed.xml", url=url,
            canonical_url=url, source=meta["source"], title=meta["title"], text=text,
            author=None, published_at=published, fetched_at=published,
            language=entry.get("language"),
        )
        items.append(Item(
            article=article, story=entry["story"], split=entry.get("split", "tune"),
            topics=frozenset(entry.get("topics") or ()),
            countries=frozenset(entry.get("countries") or ()),
            people=frozenset(entry.get("people") or ()),
        ))
    ids = [i.article.id for i in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate article ids")
    return items


# -- scoring ---------------------------------------------------------------------------


@dataclass(slots=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def add(self, predicted: Iterable[str], gold: Iterable[str]) -> None:
        p, g = set(predicted), set(gold)
        self.tp += len(p & g)
        self.fp += len(p - g)
        self.fn += len(g - p)


@dataclass(frozen=True, slots=True, kw_only=True)
class Mistake:
    article: str
    kind: str
    tag: str
    wrong: str  # "extra" (false positive) or "missing" (false negative)
    evidence: str = ""


@dataclass(slots=True, kw_only=True)
class Report:
    kinds: dict[str, Counts]
    per_topic: dict[str, Counts]
    pairs: Counts
    stories: dict[str, str]  # article id -> predicted story id
    story_titles: dict[str, str]  # predicted story id -> its title
    tagged: dict[str, TaggedArticle]
    mistakes: list[Mistake] = field(default_factory=list)
    split_pairs: list[tuple[str, str]] = field(default_factory=list)  # same gold story, apart
    merged_pairs: list[tuple[str, str]] = field(default_factory=list)  # joined, different
    tag_ms: float = 0.0  # mean tag time per article
    cluster_ms: float = 0.0  # mean assign time per article
    holdout: Report | None = None  # the same scores on the holdout articles only

    def same_story(self, *ids: str) -> bool:
        return len({self.stories[i] for i in ids}) == 1


def score_tags(items: Sequence[Item], tagged: dict[str, TaggedArticle],
               topic_names: Iterable[str]) -> tuple[dict[str, Counts], dict[str, Counts],
                                                     list[Mistake]]:
    kinds = {k: Counts() for k in KINDS}
    per_topic = {name: Counts() for name in sorted(topic_names)}
    mistakes = []
    for item in items:
        result = tagged[item.article.id]
        evidence = {(e.kind, e.tag): e.evidence for e in result.evidence}
        for kind, singular in zip(KINDS, ("topic", "country", "person"), strict=True):
            predicted = set(getattr(result, kind))
            gold = item.gold(kind)
            kinds[kind].add(predicted, gold)
            for t in sorted(predicted - gold):
                mistakes.append(Mistake(article=item.article.id, kind=singular, tag=t,
                                        wrong="extra", evidence=evidence.get((singular, t), "")))
            for t in sorted(gold - predicted):
                mistakes.append(Mistake(article=item.article.id, kind=singular, tag=t,
                                        wrong="missing"))
        for name, counts in per_topic.items():
            counts.add({name} & set(result.topics), {name} & item.topics)
    return kinds, per_topic, mistakes


def score_pairs(items: Sequence[Item], stories: dict[str, str], *,
                only: frozenset[str] | None = None) -> tuple[
        Counts, list[tuple[str, str]], list[tuple[str, str]]]:
    """Pairwise scores; with ``only``, the pairs with at least one article in it."""
    counts = Counts()
    split, merged = [], []
    for a, b in itertools.combinations(items, 2):
        if only is not None and a.article.id not in only and b.article.id not in only:
            continue
        same_gold = a.story == b.story
        same_pred = stories[a.article.id] == stories[b.article.id]
        pair = (a.article.id, b.article.id)
        if same_gold and same_pred:
            counts.tp += 1
        elif same_pred:
            counts.fp += 1
            merged.append(pair)
        elif same_gold:
            counts.fn += 1
            split.append(pair)
    return counts, split, merged


# -- running the pipeline --------------------------------------------------------------


def cluster_doc(tagged: TaggedArticle) -> ClusterDoc:
    """A ClusterDoc as load.py builds it from a stored row (text cut at 3,000 characters)."""
    a = tagged.article
    fields: dict[str, object] = {
        "id": a.id, "time": a.published_at or a.fetched_at, "title": a.title,
        "text": a.text[:3000], "source": a.source, "countries": tagged.countries,
        "people": tagged.people,
    }
    if "language" in {f.name for f in dataclasses.fields(ClusterDoc)}:
        fields["language"] = a.language or ""
    return ClusterDoc(**fields)  # type: ignore[arg-type]


def run_clusterer(docs: Sequence[ClusterDoc], make: Callable[[], Clusterer]) -> tuple[
        dict[str, str], dict[str, str], float]:
    """Stream the docs in publication order through one clusterer, as
    :func:`pipeline.signal.cluster.cluster` does for a load with nothing stored;
    mean ms per article."""
    clusterer = make()
    started = time.perf_counter()
    observe = getattr(clusterer, "observe", None)
    if observe is not None:
        observe(docs)
    stories = {doc.id: clusterer.assign(doc) for doc in sorted(docs, key=lambda d: (d.time, d.id))}
    elapsed = time.perf_counter() - started
    titles = {}
    for story in set(stories.values()):
        lead = clusterer.representative(story)
        titles[story] = lead.title if lead is not None else ""
    return stories, titles, 1000 * elapsed / max(1, len(docs))


def tag_all(items: Sequence[Item], tagger: Tagger) -> tuple[dict[str, TaggedArticle], float]:
    detector = load_detector()
    tagged = {}
    elapsed = 0.0
    for item in items:
        a = item.article
        # As the process stage does: detect from title + text, the page's declaration
        # as the fallback.
        language = detector.detect(f"{a.title}\n{a.text}", declared=a.language)
        article = dataclasses.replace(a, language=language)
        started = time.perf_counter()
        tagged[a.id] = tag(article, tagger)
        elapsed += time.perf_counter() - started
    return tagged, 1000 * elapsed / max(1, len(items))


def default_clusterer(settings: Settings) -> Callable[[], Clusterer]:
    options = settings.cluster.options()
    encoder = Encoder() if settings.cluster.embeddings else None
    return lambda: Clusterer(horizon=options.horizon, half_life=options.half_life,
                             max_span=options.max_span, threshold=options.threshold,
                             rare_reach=options.rare_reach, embedder=encoder)


def evaluate(items: Sequence[Item] | None = None, *, tagger: Tagger | None = None,
             clusterer: Callable[[], Clusterer] | None = None,
             settings: Settings | None = None) -> Report:
    """Tag and cluster the set; score against the gold labels."""
    items = load_set() if items is None else items
    settings = settings or Settings()
    tagger = tagger or build_tagger(settings)
    tagged, tag_ms = tag_all(items, tagger)
    docs = [cluster_doc(tagged[i.article.id]) for i in items]
    stories, titles, cluster_ms = run_clusterer(docs, clusterer or default_clusterer(settings))
    kinds, per_topic, mistakes = score_tags(items, tagged, tagger.matchers)
    pairs, split, merged = score_pairs(items, stories)
    held = [i for i in items if i.split == "holdout"]
    holdout = None
    if held:
        h_kinds, h_topics, h_mistakes = score_tags(held, tagged, tagger.matchers)
        h_pairs, h_split, h_merged = score_pairs(
            items, stories, only=frozenset(i.article.id for i in held))
        holdout = Report(kinds=h_kinds, per_topic=h_topics, pairs=h_pairs, stories=stories,
                         story_titles=titles, tagged=tagged, mistakes=h_mistakes,
                         split_pairs=h_split, merged_pairs=h_merged)
    return Report(kinds=kinds, per_topic=per_topic, pairs=pairs, stories=stories,
                  story_titles=titles, tagged=tagged, mistakes=mistakes, split_pairs=split,
                  merged_pairs=merged, tag_ms=tag_ms, cluster_ms=cluster_ms, holdout=holdout)


def baseline_tagger(settings: Settings) -> Tagger | None:
    """The same queries with the old rule (any match anywhere), if tag.py has the option."""
    tagger = build_tagger(settings)
    rule = getattr(tagger, "topic_rule", None)
    if rule is None:
        return None
    return dataclasses.replace(tagger, topic_rule=dataclasses.replace(rule, min_sentences=0))


def baseline_clusterer(settings: Settings) -> Callable[[], Clusterer] | None:
    """The clusterer without its cross-language and near-duplicate rules, if it has them."""
    names = {f.name for f in dataclasses.fields(Clusterer)}
    if not {"cross_language", "near_duplicates"} <= names:
        return None
    base = default_clusterer(settings)

    def make() -> Clusterer:
        c = base()
        c.cross_language = False
        c.near_duplicates = False
        return c

    return make


# -- speed with a full window -----------------------------------------------------------


def _letters(k: int) -> str:
    """A made-up word for a number: 0 -> "zb", 27 -> "zbb"."""
    word = "z"
    while True:
        word += "bcdfghjklmnpqrstvwxyz"[k % 21]
        k //= 21
        if not k:
            return word


def synthetic_window(items: Sequence[Item], n: int, *, seed: int = 5) -> list[ClusterDoc]:
    """``n`` stored articles spread over 72 hours, each in a story of its own. Deterministic.

    Words follow Zipf's law over a 30,000-word vocabulary (the set's own words
    by frequency first, then made-up ones), as news text does; each article
    also has a dozen words of its own event (names, places), some numbers, and
    countries and people drawn from the set's labels.
    """
    import random
    from collections import Counter

    rng = random.Random(seed)
    counts = Counter(w.lower() for i in items
                     for w in re.findall(r"[^\W\d_]{3,}", i.article.text))
    vocabulary = [w for w, _ in counts.most_common()]
    vocabulary += [_letters(k) for k in range(30_000 - len(vocabulary))]
    weights = list(itertools.accumulate(1 / (r + 1) ** 1.05 for r in range(len(vocabulary))))
    countries = sorted({c for i in items for c in i.countries})
    people = sorted({p for i in items for p in i.people})
    start = min(i.article.published_at or i.article.fetched_at for i in items)
    docs = []
    for k in range(n):
        event = [f"event{_letters(k)}q{_letters(j)}" for j in range(12)]
        body = rng.choices(vocabulary, cum_weights=weights, k=rng.randint(150, 450))
        for word in [*event, *(str(rng.randint(2, 5000)) for _ in range(rng.randint(1, 6)))]:
            body.insert(rng.randrange(len(body)), word)
        title = rng.choices(vocabulary, cum_weights=weights, k=rng.randint(5, 12)) + event[:3]
        docs.append(ClusterDoc(
            id=f"synthetic-{k}", time=start + timedelta(minutes=rng.randrange(72 * 60)),
            title=" ".join(title), text=" ".join(body)[:3000],  # as load.py cuts it
            source=f"outlet-{k % 50}",
            countries=tuple(rng.sample(countries, rng.randint(0, 3))),
            people=tuple(rng.sample(people, rng.randint(0, 2))), story_id=f"s-synthetic-{k}",
        ))
    return docs


def time_window(items: Sequence[Item], docs: Sequence[ClusterDoc], settings: Settings, *,
                known: int = 2000, repeat: int = 3) -> tuple[float, float]:
    """Best of ``repeat``: ms to load ``known`` stored articles into a clusterer (with the
    new batch observed, as :func:`pipeline.signal.cluster.cluster` does), and mean ms per
    :meth:`~pipeline.signal.cluster.Clusterer.assign` of the set's articles after them."""
    stored = synthetic_window(items, known)
    ordered = sorted(docs, key=lambda d: (d.time, d.id))
    setup, per_article = math.inf, math.inf
    for _ in range(repeat):
        started = time.perf_counter()
        clusterer = default_clusterer(settings)()
        observe = getattr(clusterer, "observe", None)
        if observe is not None:
            observe(ordered)
        clusterer.add_known(stored)
        loaded = time.perf_counter()
        for doc in ordered:
            clusterer.assign(doc)
        done = time.perf_counter()
        setup = min(setup, 1000 * (loaded - started))
        per_article = min(per_article, 1000 * (done - loaded) / max(1, len(ordered)))
    return per_article, setup


# -- output ----------------------------------------------------------------------------


def _row(name: str, c: Counts) -> str:
    return (f"| {name} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} "
            f"| {c.tp} | {c.fp} | {c.fn} |")


_HEAD = "| | precision | recall | F1 | TP | FP | FN |\n|---|---:|---:|---:|---:|---:|---:|"


def tables(report: Report, baseline: Report | None = None) -> str:
    lines = ["### Tags (micro, every article x tag decision)", "", _HEAD]
    for kind in KINDS:
        lines.append(_row(kind, report.kinds[kind]))
        if baseline is not None and kind == "topics":
            lines.append(_row("topics, baseline: any match", baseline.kinds[kind]))
    if report.holdout is not None:
        for kind in KINDS:
            lines.append(_row(f"{kind}, holdout only", report.holdout.kinds[kind]))
    lines += ["", "### Per topic", "", _HEAD]
    for name, counts in report.per_topic.items():
        lines.append(_row(name, counts))
    lines += ["", "### Stories (pairs of articles in one story)", "", _HEAD]
    lines.append(_row("pairwise", report.pairs))
    if baseline is not None:
        lines.append(_row("pairwise, baseline: no cross-language/near-duplicate rules",
                          baseline.pairs))
    if report.holdout is not None:
        lines.append(_row("pairwise, pairs with a holdout article", report.holdout.pairs))
    n_predicted = len(set(report.stories.values()))
    lines += ["", f"Predicted stories: {n_predicted}. Mean time per article: tag "
              f"{report.tag_ms:.2f} ms, cluster assign {report.cluster_ms:.2f} ms."]
    return "\n".join(lines)


def mistakes_text(report: Report) -> str:
    lines = []
    for m in report.mistakes:
        why = f" ({m.evidence[:110]!r})" if m.evidence else ""
        lines.append(f"- {m.article}: {m.wrong} {m.kind} {m.tag}{why}")
    for a, b in report.split_pairs:
        lines.append(f"- split: {a} / {b} (one gold story)")
    for a, b in report.merged_pairs:
        lines.append(f"- merged: {a} / {b} (different gold stories)")
    return "\n".join(lines) or "(none)"


def stories_text(report: Report) -> str:
    members: dict[str, list[str]] = {}
    for article, story in report.stories.items():
        members.setdefault(story, []).append(article)
    lines = []
    for story, ids in sorted(members.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        if len(ids) > 1:
            lines.append(f"- {report.story_titles[story]!r}: {', '.join(sorted(ids))}")
    return "\n".join(lines)


def timing_text(timing: tuple[float, float] | None) -> str:
    if timing is None:
        return ""
    per_article, setup = timing
    return (f"With 2,000 stored articles in the window (synthetic, Zipf-distributed words): "
            f"{setup:.0f} ms to load them into the clusterer, then {per_article:.2f} ms per "
            "new article (best of 3).")


def markdown(report: Report, baseline: Report | None, items: Sequence[Item],
             timing: tuple[float, float] | None = None) -> str:
    n_stories = len({i.story for i in items})
    n_holdout = sum(1 for i in items if i.split == "holdout")
    n_pairs = sum(1 for a, b in itertools.combinations(items, 2) if a.story == b.story)
    languages = sorted({i.article.language or "?" for i in items})
    return "\n".join([
        "# Signal quality",
        "",
        f"Command: `{COMMAND}`  ",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  ",
        f"Set: `benchmarks/signal/gold.yaml`: {len(items)} articles, {n_stories} gold stories, "
        f"{n_pairs} same-story pairs, languages {', '.join(languages)}; {n_holdout} articles "
        "are a holdout, written after tuning (rows marked holdout).",
        "",
        tables(report, baseline),
        "",
        timing_text(timing),
        "",
        "### Predicted stories with more than one article",
        "",
        stories_text(report),
        "",
        "### Wrong decisions",
        "",
        mistakes_text(report),
        "",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.signal_quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gold", type=Path, default=GOLD)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--no-timing", action="store_true",
                        help="skip the 2,000-article clustering timing")
    args = parser.parse_args(argv)
    settings = Settings()
    items = load_set(args.gold)
    report = evaluate(items, settings=settings)
    base_tagger = baseline_tagger(settings)
    base_cluster = baseline_clusterer(settings)
    baseline = None
    if base_tagger is not None or base_cluster is not None:
        baseline = evaluate(items, settings=settings, tagger=base_tagger,
                            clusterer=base_cluster)
    timing = None
    if not args.no_timing:
        docs = [cluster_doc(report.tagged[i.article.id]) for i in items]
        timing = time_window(items, docs, settings)
    print(tables(report, baseline))
    print()
    print(timing_text(timing))
    print()
    print("Stories:")
    print(stories_text(report))
    print()
    print("Wrong decisions:")
    print(mistakes_text(report))
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown(report, baseline, items, timing), encoding="utf-8")
        print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
