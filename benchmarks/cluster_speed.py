"""Cluster speed: new articles against a full horizon of stored stories.

    .venv/bin/python -m benchmarks.cluster_speed [--known 50000] [--new 2000]

Synthetic reports (``benchmarks.synthetic.Newsroom``: stories of one to four
reports) fill the default seven-day horizon with ``--known`` stored articles,
each with its story id and counted in the document frequencies, as the cluster
stage reads them from DuckDB; then ``--new`` articles, later in time, go
through :func:`pipeline.signal.cluster.cluster` as the plan sends them. Timed apart:

- restoring the open stories from their saved state (``story_state`` and
  ``story_signatures`` in DuckDB, read as the plan reads them: what every plan
  pays before its first article), against rebuilding them from their stored
  articles (what a plan paid before the state was saved);
- assigning the new articles to the restored stories (the goal: >= 500
  articles/s with 50,000 in the horizon), against the same new articles with an
  empty horizon (the baseline); the stories must be the rebuilt ones';
- the sentence embedding (:mod:`pipeline.signal.embed`) of one article, as a ratio to
  the extraction call (:func:`pipeline.content.extract.extract`) on its page;
- memory: the clusterer's peak (tracemalloc) per article in the horizon. What is
  read is the horizon's stories only (``pipeline/store/load.py`` selects the members
  of the stories with a report in it), so the archive beyond does not count.
- memory: the restored clusterer's peak (tracemalloc) per article in the
  horizon. What is read is the horizon's stories only (one row a story), so the
  archive beyond does not count.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from benchmarks.report import Row, Section, x
from benchmarks.synthetic import Newsroom, page_html
from pipeline import store
from pipeline.signal.cluster import ClusterDoc, Clusterer, Options, TermStats, cluster, features
from pipeline.store import story_state

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
    restore_s: float
    same: bool  # the restored stories assign as the rebuilt ones
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
    rebuilt = _clusterer(options, stats)
    rebuilt.add_known(known)
    rebuild_s = time.perf_counter() - started
    ordered = sorted(new, key=lambda d: (d.time, d.id))

    with tempfile.TemporaryDirectory() as tmp, duckdb.connect() as con:
        _save(con, rebuilt, Path(tmp))
        del rebuilt
        gc.collect()
        bounds = (ordered[0].time, ordered[-1].time)
        started = time.perf_counter()
        clusterer = _clusterer(options, stats)
        clusterer.restore(*story_state.read_open(con, bounds, options))
        restore_s = time.perf_counter() - started
        started = time.perf_counter()
        assigned = {d.id: clusterer.assign(d) for d in ordered}
        assign_s = time.perf_counter() - started
        del clusterer
        # Memory on a tenth of the horizon (tracemalloc slows Python down ~2x).
        part = known[: max(1, known_n // 10)]
        states, signatures = story_state.read_open(con, bounds, options)
        kept = {d.story_id for d in part}
        states = [x for x in states if x.story_id in kept]
        signatures = [x for x in signatures if x.story_id in kept]
        gc.collect()
        tracemalloc.start()
        small = _clusterer(options, stats)
        small.restore(states, signatures)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del small, states, signatures
    check = _clusterer(options, stats)
    check.add_known(known)
    same = assigned == {d.id: check.assign(d) for d in ordered}
    del check

    started = time.perf_counter()
    cluster(new, [], options=options, stats=TermStats(stats.df, stats.n))
    baseline_s = time.perf_counter() - started


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
    return Figures(known=known_n, new=new_n, rebuild_s=rebuild_s, restore_s=restore_s,
                   same=same, assign_s=assign_s,
                   baseline_s=baseline_s, stories=len(set(assigned.values())),
                   embed_ms=embed_ms, extract_ms=extract_ms,
                   peak_kib_per_article=peak / 1024 / max(1, len(part)))


def _clusterer(options: Options, stats: TermStats) -> Clusterer:
    return Clusterer(horizon=options.horizon, half_life=options.half_life,
                     max_span=options.max_span, threshold=options.threshold,
                     stats=TermStats(stats.df, stats.n))


def _save(con: duckdb.DuckDBPyConnection, clusterer: Clusterer, tmp: Path) -> None:
    """The stories' state into ``story_state`` as the load writes it (the plan's
    JSON Lines, then :func:`pipeline.store.story_state.save`)."""
    store.ensure_schema(con)
    states, signatures = clusterer.saved()
    for table, records, columns in (("states", states, story_state.STATE_COLUMNS),
                                    ("signatures", signatures, story_state.SIGNATURE_COLUMNS)):
        path = tmp / f"{table}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for row in story_state.plan_rows(records):
                handle.write(json.dumps(dict(zip(columns, row, strict=True))) + "\n")
        spec = ", ".join(f"'{c}': '{t}'" for c, t in columns.items())
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM read_json('{path}',"
                    f" format='newline_delimited', columns={{{spec}}})")
    story_state.save(con)


def rows(f: Figures) -> list[Row]:
    rate = f.new / f.assign_s
    base = f.new / f.baseline_s
    whole = f.new / (f.restore_s + f.assign_s)
    return [
        Row(measure=f"assigning {f.new:,} new articles, {f.known:,} stored in the horizon",
            value=f"{rate:,.0f} articles/s ({f.assign_s:.2f} s)",
            baseline=f"{base:,.0f} articles/s (empty horizon)", ratio=x(rate / base),
            goal=f">= {GOAL:.0f} articles/s", met=rate >= GOAL if f.known >= 50_000 else None),
        Row(measure=f"restoring the open stories of {f.known:,} stored articles (saved state)",
            value=f"{f.restore_s:.2f} s",
            baseline=f"{f.rebuild_s:.2f} s (rebuilt from the articles)",
            ratio=x(f.rebuild_s / max(f.restore_s, 1e-9))),
        Row(measure="  the restored stories assign as the rebuilt ones",
            value="yes" if f.same else "NO"),
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
