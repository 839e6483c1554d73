"""Story quality: the real clusterer over public labelled news, pairwise and B-cubed.

    .venv/bin/python -m benchmarks.story_quality [--split dev|train|all] [--no-embeddings]
        [--batch N] [--cache DIR]

Reads ``../shared/clustering-data`` (ECB+, GVC, ITN multilingual; see its
README for sources and licences; it is never copied into the repository),
tags each article with the real tag stage (default settings: countries and the
default people), embeds it as the cluster stage does (title + the first 1,200
characters, :mod:`pipeline.signal.embed`) and feeds the articles through
:func:`pipeline.signal.cluster.cluster` in timestamp order, as the load would: the
stored articles of the open stories and the document frequencies of what was
loaded before each batch. ECB+ has no dates: file order, one minute apart.

ITN has no splits: ``--split train`` and ``--split dev`` are halves by a hash of
the story label (tune on one, report the other). Its labels are the Wikidata
items a blurb links, so one blurb can stand under two labels; a second row
counts its pairs with the labels that share a blurb joined.

Prints pairwise and B-cubed precision, recall and F1 per data set and language
and across languages (pairs of two languages, ITN), and the batching
agreement: the pairwise F1 between the stories of one pass and those of
batches of ``--batch`` (10) articles, which the design makes exactly 1.0.
Goal: pairwise F1 >= 0.92 with precision >= 0.97 in every language.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from benchmarks.signal_quality import Counts
from pipeline.batches import batched
from pipeline.config import Settings
from pipeline.models import Article
from pipeline.signal.cluster import ClusterDoc, Options, TermStats, cluster, embedding_text
from pipeline.signal.tag import build_tagger, tag

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "clustering-data"
COMMAND = ".venv/bin/python -m benchmarks.story_quality"
SETS = {"ecbplus": "ecbplus/ecbplus.jsonl", "gvc": "gvc/gvc.jsonl",
        "itn": "itn-multilingual/itn.jsonl"}
_ECB_START = datetime(2020, 1, 6, tzinfo=UTC)
ENCODER_LANGUAGES = frozenset(
    "ar zh nl en de fr it pt es ja ko ru pl th tr".split())  # noqa: SIM905


@dataclass(frozen=True, slots=True, kw_only=True)
class Labelled:
    doc: ClusterDoc
    story: str
    language: str  # the gold language (the doc's is the detected one, as stored)
    split: str


def read_set(name: str, data: Path = DATA) -> list[dict[str, object]]:
    path = data / SETS[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (see ../shared/clustering-data/README.md)")
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def half(story: str) -> str:
    """A set without splits (ITN) is cut in two by a hash of the story label:
    "train" to tune on, "dev" to report."""
    return "train" if hashlib.sha256(story.encode()).digest()[0] % 2 == 0 else "dev"


def labelled(name: str, rows: Sequence[dict[str, object]], settings: Settings
             ) -> list[Labelled]:
    """The rows as the cluster stage sees stored articles: tagged, text cut at 3,000."""
    tagger = build_tagger(settings)
    out = []
    for i, row in enumerate(rows):
        when = row.get("published")
        time_ = (datetime.fromisoformat(str(when)).astimezone(UTC) if when
                 else _ECB_START + timedelta(minutes=i))
        title, text = str(row.get("title") or ""), str(row.get("text") or "")
        language = str(row.get("language") or "")
        article = Article(id=str(row["id"]), entry_id=str(row["id"]), feed_url="", url="",
                          canonical_url="", source=name, title=title, text=text, author=None,
                          published_at=time_, fetched_at=time_, language=language)
        tagged = tag(article, tagger)
        doc = ClusterDoc(id=article.id, time=time_, title=title, text=text[:3000],
                         source=name, countries=tagged.countries, people=tagged.people,
                         language=language)
        story = str(row["story"])
        out.append(Labelled(doc=doc, story=story, language=language,
                            split=str(row.get("split") or half(story))))
    return out


def embed_all(items: list[Labelled], cache: Path | None) -> tuple[list[Labelled], float]:
    """Each doc with its embedding; seconds spent embedding (0 from the cache)."""
    from pipeline.signal.embed import Encoder

    texts = [embedding_text(i.doc.title, i.doc.text) for i in items]
    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = cache / f"story-quality-{key}.npy" if cache else None
    elapsed = 0.0
    if path is not None and path.is_file():
        vectors = np.load(path)
    else:
        encoder = Encoder()
        started = time.perf_counter()
        vectors = encoder.encode(texts)
        elapsed = time.perf_counter() - started
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, vectors)
    return [replace(i, doc=replace(i.doc, embedding=v)) for i, v in zip(items, vectors,
                                                                       strict=True)], elapsed


def run(docs: Sequence[ClusterDoc], options: Options, batch: int = 0) -> dict[str, str]:
    """Stories as the pipeline makes them: one pass, or loads of ``batch`` articles
    each (stored articles and document frequencies carried between them)."""
    ordered = sorted(docs, key=lambda d: (d.time, d.id))
    if batch <= 0:
        return cluster(ordered, [], options=options)[0]
    stored: list[ClusterDoc] = []
    df: Counter[str] = Counter()
    n = 0
    out: dict[str, str] = {}
    for chunk in batched(ordered, batch):
        stats = TermStats(dict(df), n)
        low = chunk[0].time - options.reach
        open_stories = {d.story_id for d in stored if d.time >= low}
        known = [d for d in stored if d.story_id in open_stories]
        assigned, clusterer = cluster(chunk, known, options=options, stats=stats)
        df.update(clusterer.stats.added)
        n += clusterer.stats.added_n
        out.update(assigned)
        # As the load stores them: a copy's embedding is not kept (it joined by its text).
        stored.extend(replace(d, story_id=assigned[d.id],
                              embedding=clusterer.embeddings.get(d.id)) for d in chunk)
    return out


def pairwise(items: Sequence[Labelled], predicted: dict[str, str],
             keep: Iterable[str] | None = None, *, cross: bool = False) -> Counts:
    """Pairwise counts over the pairs whose two articles are in ``keep`` languages
    (all when None), of one language (``cross`` False) or of two (True)."""
    languages = set(keep) if keep is not None else None
    s = Counts()
    for a, b in itertools.combinations(items, 2):
        if (a.language != b.language) != cross:
            continue
        if languages is not None and not {a.language, b.language} <= languages:
            continue
        gold, pred = a.story == b.story, predicted[a.doc.id] == predicted[b.doc.id]
        s.tp += gold and pred
        s.fp += pred and not gold
        s.fn += gold and not pred
    return s


def bcubed(items: Sequence[Labelled], predicted: dict[str, str]) -> tuple[float, float, float]:
    gold_of = defaultdict(set)
    pred_of = defaultdict(set)
    for i in items:
        gold_of[i.story].add(i.doc.id)
        pred_of[predicted[i.doc.id]].add(i.doc.id)
    p = r = 0.0
    for i in items:
        g, q = gold_of[i.story], pred_of[predicted[i.doc.id]]
        both = len(g & q)
        p += both / len(q)
        r += both / len(g)
    p, r = p / len(items), r / len(items)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def agreement(a: dict[str, str], b: dict[str, str]) -> float:
    """Pairwise F1 of partition ``b`` against partition ``a`` (1.0: the same stories)."""
    ids = sorted(a)
    s = Counts()
    for x, y in itertools.combinations(ids, 2):
        sa, sb = a[x] == a[y], b[x] == b[y]
        s.tp += sa and sb
        s.fp += sb and not sa
        s.fn += sa and not sb
    return s.f1


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    data: str
    languages: str
    articles: int
    stories: int
    pairs: int
    pairwise: Counts
    b3: tuple[float, float, float]


def evaluate(name: str, items: list[Labelled], options: Options, split: str
             ) -> tuple[list[Row], dict[str, str]]:
    predicted = run([i.doc for i in items], options)
    chosen = [i for i in items if split == "all" or i.split == split]
    label = name if split == "all" else f"{name} {split}"
    if not chosen:  # a set with no such split: all of it, and the row says so
        chosen, label = list(items), f"{name} (no {split} split: all)"
    rows = []
    by_language = Counter(i.language for i in chosen)
    if name != "itn":
        for language in sorted(by_language):
            part = [i for i in chosen if i.language == language]
            pw = pairwise(part, predicted)
            rows.append(Row(data=label, languages=language, articles=len(part),
                            stories=len({i.story for i in part}), pairs=pw.tp + pw.fn,
                            pairwise=pw, b3=bcubed(part, predicted)))
    else:
        pw = pairwise(chosen, predicted, cross=True)
        rows.append(Row(data=label, languages=f"across {len(by_language)} languages",
                        articles=len(chosen), stories=len({i.story for i in chosen}),
                        pairs=pw.tp + pw.fn, pairwise=pw, b3=bcubed(chosen, predicted)))
        # The 16 languages USE multilingual v3 was trained on (zh-cn and zh-tw as zh).
        trained = sorted(ENCODER_LANGUAGES & by_language.keys())
        pw = pairwise(chosen, predicted, trained, cross=True)
        part = [i for i in chosen if i.language in ENCODER_LANGUAGES]
        rows.append(Row(data=label, languages=f"across the encoder's {len(trained)} languages",
                        articles=len(part), stories=len({i.story for i in part}),
                        pairs=pw.tp + pw.fn, pairwise=pw, b3=bcubed(part, predicted)))
        # ITN labels a blurb by the Wikidata item it links: one blurb in one
        # language can stand under two labels (a person and their election), so
        # reports of one event count as wrong pairs. The same pairs with the
        # labels that share a blurb joined, as the data itself ties them:
        joined = joined_labels(items)
        same = [replace(i, story=joined[i.story]) for i in part]
        pw = pairwise(same, predicted, trained, cross=True)
        rows.append(Row(data=label, languages="the same, labels sharing a blurb joined",
                        articles=len(same), stories=len({i.story for i in same}),
                        pairs=pw.tp + pw.fn, pairwise=pw, b3=bcubed(same, predicted)))
        english = [i for i in chosen if i.language == "en"]
        for language in ("fr", "ru", "zh", "pt"):  # English with each of four languages
            other = [i for i in chosen if i.language == language]
            pw = Counts()
            for a, b in itertools.product(english, other):
                gold, pred = a.story == b.story, predicted[a.doc.id] == predicted[b.doc.id]
                pw.tp += gold and pred
                pw.fp += pred and not gold
                pw.fn += gold and not pred
            rows.append(Row(data=label, languages=f"en-{language}", articles=0, stories=0,
                            pairs=pw.tp + pw.fn, pairwise=pw, b3=(0.0, 0.0, 0.0)))
    return rows, predicted


def joined_labels(items: Sequence[Labelled]) -> dict[str, str]:
    """Each story label to one label of its group: labels are grouped when one
    text (same language, same title) stands under both."""
    parent: dict[str, str] = {}

    def root(label: str) -> str:
        while parent.get(label, label) != label:
            label = parent[label]
        return label

    first: dict[tuple[str, str], str] = {}
    for i in items:
        key = (i.language, i.doc.title)
        if key in first:
            a, b = root(first[key]), root(i.story)
            if a != b:
                parent[max(a, b)] = min(a, b)
        else:
            first[key] = i.story
    return {i.story: root(i.story) for i in items}


def table(rows: Sequence[Row]) -> str:
    lines = ["| data | languages | articles | stories | gold pairs | pairwise P | R | F1 "
             "| B-cubed P | R | F1 |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        b3 = " | ".join(f"{x:.3f}" for x in r.b3) if r.articles else "- | - | -"
        lines.append(f"| {r.data} | {r.languages} | {r.articles or '-'} | {r.stories or '-'} "
                     f"| {r.pairs} | {r.pairwise.precision:.3f} | {r.pairwise.recall:.3f} "
                     f"| {r.pairwise.f1:.3f} | {b3} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "train", "all"), default="all")
    parser.add_argument("--sets", nargs="*", default=list(SETS), choices=list(SETS))
    parser.add_argument("--no-embeddings", action="store_true")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep the embeddings here between runs (not in the repository)")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"error: {args.data}: no clustering data", file=sys.stderr)
        return 2
    settings = Settings()
    options = settings.cluster.options()
    all_rows: list[Row] = []
    agreements = []
    for name in args.sets:
        items = labelled(name, read_set(name, args.data), settings)
        embed_s = 0.0
        if not args.no_embeddings:
            items, embed_s = embed_all(items, args.cache)
        started = time.perf_counter()
        rows, one_pass = evaluate(name, items, options, args.split)
        cluster_s = time.perf_counter() - started
        all_rows.extend(rows)
        batched = run([i.doc for i in items], options, batch=args.batch)
        agreements.append((name, agreement(one_pass, batched), len(items), cluster_s, embed_s))
    print(table(all_rows))
    print()
    print(f"| data | articles | batching agreement (pairwise F1, one pass vs batches of "
          f"{args.batch}) | clustering s | embedding s |")
    print("|---|---:|---:|---:|---:|")
    for name, value, n, cs, es in agreements:
        print(f"| {name} | {n} | {value:.4f} | {cs:.2f} | {es:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
