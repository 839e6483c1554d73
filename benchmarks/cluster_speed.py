"""Cluster speed: new articles against a full horizon of stored stories.

    .venv/bin/python -m benchmarks.cluster_speed [--known 50000] [--new 2000]

Synthetic reports (``benchmarks.synthetic.Newsroom``: stories of one to four
reports) fill the default seven-day horizon with ``--known`` stored articles,
each with its story id and counted in the document frequencies, as the cluster
stage reads them from DuckDB; then ``--new`` articles, later in time, go
through :func:`pipeline.signal.cluster.cluster` as the plan sends them. Timed apart:

- rebuilding the open stories from the stored articles (every plan does it);
- assigning the new articles (the goal: >= 500 articles/s with 50,000 in the
  horizon), against the same new articles with an empty horizon (the baseline);
- the sentence embedding (:mod:`pipeline.signal.embed`) of one article, as a ratio to
  the extraction call (:func:`pipeline.content.extract.extract`) on its page;
- memory: the clusterer's peak (tracemalloc) per article in the horizon. What is
  read is the horizon's stories only (``pipeline/store/load.py`` selects the members
  of the stories with a report in it), so the archive beyond does not count.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.report import Row, Section, x
from benchmarks.synthetic import Newsroom, page_html
from pipeline.signal.cluster import ClusterDoc, Clusterer, Options, TermStats, cluster, features

COMMAND = ".venv/bin/python -m benchmarks.cluster_speed"
GOAL = 500.0  # articles/s with 50,000 articles in the horizon


def _docs(room: Newsroom, start: int, n: int, *, stored: bool) -> list[ClusterDoc]:
    out = []
    for i in range(start, start + n):
        a = room.article(i)
        out.append(ClusterDoc(id=f"a{i}", time=a.published_at, title=a.title,
                              text=a.text[:3000], source=a.source, countries=a.countries,
                              people=a.people, language="en",
                              story_id=f"s-event-{a.event}" if stored else None))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    known: int
    new: int
    rebuild_s: float
    assign_s: float
    baseline_s: float
    stories: int
    embed_ms: float
    extract_ms: float
    peak_kib_per_article: float


def _stats(docs: Sequence[ClusterDoc]) -> TermStats:
    stats = TermStats()
    for d in docs:
        stats.count(features(d).keys())
    return TermStats(stats.df, stats.n)


def measure(known_n: int, new_n: int, *, embed_n: int = 40) -> Figures:
    # 50,000 articles over seven days: ~300 an hour.
    room = Newsroom(11, articles_per_hour=known_n / (7 * 24) if known_n else 100.0)
    known = _docs(room, 0, known_n, stored=True)
    new = _docs(room, known_n, new_n, stored=False)
    options = Options()
    stats = _stats(known)

    gc.collect()
    started = time.perf_counter()
    clusterer = Clusterer(horizon=options.horizon, half_life=options.half_life,
                          max_span=options.max_span, threshold=options.threshold,
                          stats=TermStats(stats.df, stats.n))
    clusterer.add_known(known)
    rebuild_s = time.perf_counter() - started
    started = time.perf_counter()
    assigned = {d.id: clusterer.assign(d) for d in sorted(new, key=lambda d: (d.time, d.id))}
    assign_s = time.perf_counter() - started

    started = time.perf_counter()
    cluster(new, [], options=options, stats=TermStats(stats.df, stats.n))
    baseline_s = time.perf_counter() - started

    # Memory on a tenth of the horizon (tracemalloc slows Python down ~2x).
    part = known[: max(1, known_n // 10)]
    tracemalloc.start()
    small = Clusterer(stats=TermStats(stats.df, stats.n))
    small.add_known(part)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del small

    from pipeline.content.extract import extract
    from pipeline.signal.embed import Encoder

    sample = [room.article(known_n + new_n + i) for i in range(embed_n)]
    encoder = Encoder()
    encoder.encode(["warm up: the weights are read once a process"])
    started = time.perf_counter()
    for a in sample:
        encoder.encode([f"{a.title}\n{a.text[:1200]}"])
    embed_ms = 1000 * (time.perf_counter() - started) / embed_n
    pages = [page_html(a, url=f"https://outlet.example/{a.n}", related=[]) for a in sample]
    started = time.perf_counter()
    for page in pages:
        extract(page, url="https://outlet.example/a")
    extract_ms = 1000 * (time.perf_counter() - started) / embed_n
    return Figures(known=known_n, new=new_n, rebuild_s=rebuild_s, assign_s=assign_s,
                   baseline_s=baseline_s, stories=len(set(assigned.values())),
                   embed_ms=embed_ms, extract_ms=extract_ms,
                   peak_kib_per_article=peak / 1024 / max(1, len(part)))


def rows(f: Figures) -> list[Row]:
    rate = f.new / f.assign_s
    base = f.new / f.baseline_s
    whole = f.new / (f.rebuild_s + f.assign_s)
    return [
        Row(measure=f"assigning {f.new:,} new articles, {f.known:,} stored in the horizon",
            value=f"{rate:,.0f} articles/s ({f.assign_s:.2f} s)",
            baseline=f"{base:,.0f} articles/s (empty horizon)", ratio=x(rate / base),
            goal=f">= {GOAL:.0f} articles/s", met=rate >= GOAL if f.known >= 50_000 else None),
        Row(measure=f"rebuilding the open stories from {f.known:,} stored articles",
            value=f"{f.rebuild_s:.2f} s ({f.known / max(f.rebuild_s, 1e-9):,.0f} articles/s)"),
        Row(measure="  the plan's clustering, both together",
            value=f"{whole:,.0f} new articles/s"),
        Row(measure="sentence embedding of one article (title + 1,200 characters)",
            value=f"{f.embed_ms:.1f} ms ({1000 / f.embed_ms:.0f} articles/s)",
            baseline=f"{f.extract_ms:.1f} ms (the extraction call on its page)",
            ratio=x(f.embed_ms / f.extract_ms)),
        Row(measure="clusterer memory per article in the horizon",
            value=f"{f.peak_kib_per_article:.1f} KiB"),
        Row(measure="stories the new articles went to", value=f"{f.stories:,}"),
    ]


_SIZES = {"tiny": (500, 100), "quick": (10_000, 1000), "full": (50_000, 2000)}


def section(size: str) -> Section:
    known, new = _SIZES[size]
    started = time.perf_counter()
    f = measure(known, new)
    return Section(
        key="cluster_speed", title=f"Clustering ({known:,} articles in the horizon)",
        command=f"{COMMAND} --known {known} --new {new}", rows=rows(f),
        seconds=time.perf_counter() - started,
        notes=["The clustering is timed without the embedder (synthetic texts); the "
               "embedding is timed on its own, one article at a time as the cluster stage "
               "calls it, and only articles that are not copies of a story's text pay it."])


def main(argv: Sequence[str] | None = None) -> Figures:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--known", type=int, default=50_000)
    parser.add_argument("--new", type=int, default=2000)
    args = parser.parse_args(argv)
    f = measure(args.known, args.new)
    for r in rows(f):
        print(f"{r.measure:70} {r.value:42} {r.baseline:40} {r.ratio:8} {r.goal}")
    return f


if __name__ == "__main__":
    main()
