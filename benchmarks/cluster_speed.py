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
import os
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
from pipeline.signal.cluster import (
    ClusterDoc,
    Clusterer,
    Options,
    TermStats,
    cluster,
    features,
    staged_features,
)
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
        clusterer.restore_saved(story_state.read_open(con, bounds, options))
        restore_s = time.perf_counter() - started
        started = time.perf_counter()
        assigned = {d.id: clusterer.assign(d) for d in ordered}
        assign_s = time.perf_counter() - started
        del clusterer
        # Memory on a tenth of the horizon (tracemalloc slows Python down ~2x).
        part = known[: max(1, known_n // 10)]
        kept = sorted({str(d.story_id) for d in part})
        con.execute("CREATE TEMP TABLE kept AS SELECT unnest(string_split(?, ' ')) AS story_id",
                    [" ".join(kept)])
        con.execute("DELETE FROM story_state WHERE story_id NOT IN (SELECT story_id FROM kept)")
        gc.collect()
        tracemalloc.start()
        small = _clusterer(options, stats)
        small.restore_saved(story_state.read_open(con, bounds, options))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del small
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
                     rare_reach=options.rare_reach, stats=TermStats(stats.df, stats.n))


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


def main(argv: Sequence[str] | None = None) -> Figures | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--known", type=int, default=50_000)
    parser.add_argument("--new", type=int, default=2000)
    parser.add_argument("--cold-batches", type=int, default=8,
                        help="micro-batches timed restoring (each pays the restore)")
    parser.add_argument("--stream-only", action="store_true")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the pipelined pass's stored horizon (a DuckDB file of"
                             " --known articles, minutes to build) in DIR and start from it"
                             " when it is there; delete it after changing what the load"
                             " stores")
    args = parser.parse_args(argv)
    table = []
    f = None
    if not args.stream_only:
        f = measure(args.known, args.new)
        table += rows(f)
    table += stream_rows(measure_stream(args.known, args.new, cold_batches=args.cold_batches,
                                        keep=args.keep))
    for r in table:
        print(f"{r.measure:70} {r.value:42} {r.baseline:40} {r.ratio:8} {r.goal}")
    return f



# -- the pipelined pass: micro-batches through the real plan and load ---------------------

BATCH = 50  # the pipelined pass's default micro-batch (stream.batch_articles)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamFigures:
    known: int
    batches: int
    warm_plan_s: float  # the plans (cluster stage) of every batch, warm
    warm_plan_cpu_s: float  # their CPU time (time.process_time: DuckDB's threads too)
    warm_open_s: float  # opening the writer both share, a batch each
    warm_load_s: float
    warm_reused: int
    cold_batches: int
    cold_plan_s: float  # the plans of the first cold_batches batches, each restoring
    cold_load_s: float
    same: bool  # the cold batches stored the stories the warm ones did
    # Warm, each load folding its commit into the file (what every load did
    # before a burst left that to its last load), over the first cold_batches.
    folding_plan_s: float  # the warm ones (folding_reused), as warm_plan_s
    folding_load_s: float
    folding_reused: int
    # An article's features, computed by the process stage's workers and staged
    # (not in the plan), against the extraction call on its page, each a mean.
    features_ms: float
    extract_ms: float


def _record(room: Newsroom, i: int) -> dict[str, object]:
    from pipeline import ids

    a = room.article(i)
    link = f"https://outlet{i}.example.org/story-{i}"
    canonical = ids.canonical_url(link)
    return {"id": ids.article_id(canonical), "entry_id": link,
            "feed_url": f"https://feed{i % 50}.example", "url": link,
            "canonical_url": canonical, "source": a.source, "title": a.title, "text": a.text,
            "author": None, "published_at": a.published_at,
            "fetched_at": a.published_at, "language": "en", "topics": [],
            "countries": list(a.countries), "people": list(a.people), "evidence": [],
            "removed": []}


def _stage(settings: object, run_id: str, records: list[dict[str, object]], *,
           features: bool = True) -> None:
    """Stage ``records`` as the process stage does: each article, and its
    clustering features (computed there, in the workers, beside the extraction:
    :func:`features_cost` times them)."""
    from pipeline.store import staging

    directory = staging.run_dir(settings.staging, run_id)  # type: ignore[attr-defined]
    with staging.StagingWriter(directory, "p000") as writer:
        for record in records:
            writer.write("articles", record)
            if features:
                writer.write("features", _features(record))


def _features_cost(room: Newsroom, first: int, n: int = 40) -> tuple[float, float]:
    """Ms an article: its features (as the process stage stages them), and
    the extraction call on its page."""
    from pipeline.content.extract import extract

    records = [_record(room, first + i) for i in range(n)]
    started = time.process_time()
    for record in records:
        _features(record)
    features_ms = 1000 * (time.process_time() - started) / n
    pages = [page_html(room.article(first + i), url=f"https://outlet.example/{i}", related=[])
             for i in range(n)]
    started = time.process_time()
    for page in pages:
        extract(page, url="https://outlet.example/a")
    return features_ms, 1000 * (time.process_time() - started) / n


def _features(record: dict[str, object]) -> dict[str, object]:
    return staged_features(str(record["id"]), str(record["title"]), str(record["text"]),
                           record["countries"], record["people"],  # type: ignore[arg-type]
                           str(record["language"]))


def _kept(keep: Path, known_n: int) -> Path:
    """The stored horizon's file in ``keep``: named for what made it (the number
    of articles, the schema and newsmon's version), so another is not used."""
    from pipeline import __version__

    return keep / f"cluster-speed-{known_n}-schema{store.SCHEMA_VERSION}-{__version__}.duckdb"


def measure_stream(known_n: int, new_n: int, *, cold_batches: int,
                   keep: Path | None = None) -> StreamFigures:
    """``new_n`` articles in micro-batches of BATCH through plan() and load()
    against ``known_n`` stored ones, with a warm clusterer and restoring each time.
    ``keep``: a directory where the stored horizon is kept between runs."""
    import shutil

    from pipeline.config import parse_settings
    from pipeline.store.load import load
    from pipeline.store.plan import plan
    from pipeline.store.warm import WarmClusterer

    room = Newsroom(11, articles_per_hour=known_n / (7 * 24) if known_n else 100.0)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)

        def settings_in(name: str) -> object:
            return parse_settings({"database": str(base / name / "news.duckdb"),
                                   "staging_dir": str(base / name / "staging"),
                                   "outbox_dir": str(base / name / "outbox"),
                                   "cluster": {"embeddings": False}})

        # The stored horizon, loaded as the real load does, in one run (or
        # copied from where an earlier run kept it).
        warm_settings = settings_in("warm")
        kept = _kept(keep, known_n) if keep is not None else None
        if kept is not None and kept.exists():
            (base / "warm").mkdir()
            shutil.copy(kept, base / "warm" / "news.duckdb")
        else:
            _stage(warm_settings, "stored", [_record(room, i) for i in range(known_n)])
            with store.connect(warm_settings.database) as con:  # type: ignore[attr-defined]
                plan(con, warm_settings, "stored")  # type: ignore[arg-type]
                load(con, warm_settings, "stored")  # type: ignore[arg-type]
            if kept is not None:
                kept.parent.mkdir(parents=True, exist_ok=True)
                partial = kept.with_name(f".{kept.name}.{os.getpid()}.tmp")
                shutil.copy(base / "warm" / "news.duckdb", partial)
                os.replace(partial, kept)
        cold_settings, folding_settings = settings_in("cold"), settings_in("folding")
        for name in ("cold", "folding"):
            (base / name).mkdir()
            shutil.copy(base / "warm" / "news.duckdb", base / name / "news.duckdb")
        new = [_record(room, known_n + i) for i in range(new_n)]
        parts = [new[k:k + BATCH] for k in range(0, len(new), BATCH)]

        def run(settings: object, warm: WarmClusterer | None, count: int, *,
                fold_each: bool = False) -> tuple[float, float, float, float]:
            """As the stream does: the loads of a burst leave their commits in
            the write-ahead log, the last one folds them in (``fold_each``: each).
            With a warm clusterer the plan and the load share one writer
            (``stages.plan_and_load_stage``); restoring (a warm run's first
            plan too), the plan runs on a reader and the load opens the writer,
            and that plan is not counted: (plan, plan CPU, open, load) s of the
            warm ones."""
            plan_s = plan_cpu_s = open_s = load_s = 0.0
            for k, part in enumerate(parts[:count]):
                run_id = f"batch-{k:04d}"
                _stage(settings, run_id, part)
                gc.collect()
                checkpoint = fold_each or k == count - 1
                if warm is not None and warm.holds_any():
                    started = time.perf_counter()
                    with store.connect(settings.database,  # type: ignore[attr-defined]
                                       checkpoint=checkpoint) as con:
                        opened, cpu = time.perf_counter(), time.process_time()
                        plan(con, settings, run_id, warm=warm)  # type: ignore[arg-type]
                        planned = time.perf_counter()
                        plan_cpu_s += time.process_time() - cpu
                        load(con, settings, run_id, warm=warm)  # type: ignore[arg-type]
                    open_s += opened - started
                    plan_s += planned - opened
                    load_s += time.perf_counter() - planned
                    continue
                started = time.perf_counter()
                with store.connect(settings.database,  # type: ignore[attr-defined]
                                   read_only=True) as con:
                    plan(con, settings, run_id, warm=warm)  # type: ignore[arg-type]
                planned = time.perf_counter()
                with store.connect(settings.database,  # type: ignore[attr-defined]
                                   checkpoint=checkpoint) as con:
                    load(con, settings, run_id, warm=warm)  # type: ignore[arg-type]
                if warm is None:
                    plan_s += planned - started
                    load_s += time.perf_counter() - planned
            return plan_s, plan_cpu_s, open_s, load_s

        warm = WarmClusterer()
        warm_plan_s, warm_plan_cpu_s, warm_open_s, warm_load_s = run(warm_settings, warm,
                                                                     len(parts))
        count = min(cold_batches, len(parts))
        cold_plan_s, _, _, cold_load_s = run(cold_settings, None, count)
        folding = WarmClusterer()
        folding_plan_s, _, folding_open_s, folding_load_s = run(
            folding_settings, folding, count, fold_each=True)
        ids = [r["id"] for part in parts[:count] for r in part]

        def stories(settings: object) -> list[tuple[object, ...]]:
            with duckdb.connect(str(settings.database), read_only=True) as con:  # type: ignore[attr-defined]
                return sorted(con.execute("SELECT id, story_id FROM articles WHERE id IN"
                                          " (SELECT unnest(?::VARCHAR[]))", [ids]).fetchall())

        same = stories(warm_settings) == stories(cold_settings)
    features_ms, extract_ms = _features_cost(room, known_n + new_n)
    return StreamFigures(features_ms=features_ms, extract_ms=extract_ms,
                         known=known_n, batches=len(parts), warm_plan_s=warm_plan_s,
                         warm_plan_cpu_s=warm_plan_cpu_s, warm_open_s=warm_open_s,
                         warm_load_s=warm_load_s, warm_reused=warm.reused, cold_batches=count,
                         cold_plan_s=cold_plan_s, cold_load_s=cold_load_s, same=same,
                         folding_plan_s=folding_plan_s, folding_reused=folding.reused,
                         folding_load_s=folding_open_s + folding_load_s)


def stream_rows(f: StreamFigures) -> list[Row]:
    if not f.warm_reused:
        raise SystemExit("no warm plan to time: --new must give two batches of 50 or more")
    warm = f.warm_reused * BATCH / f.warm_plan_s
    warm_cpu = f.warm_reused * BATCH / f.warm_plan_cpu_s
    cold = f.cold_batches * BATCH / f.cold_plan_s
    warm_all = f.warm_reused * BATCH / (f.warm_open_s + f.warm_plan_s + f.warm_load_s)
    cold_all = f.cold_batches * BATCH / (f.cold_plan_s + f.cold_load_s)
    folding_all = (f.folding_reused * BATCH / (f.folding_plan_s + f.folding_load_s)
                   if f.folding_reused else 0.0)
    return [
        Row(measure=f"pipelined pass: the cluster stage, batches of {BATCH}, "
                    f"{f.known:,} stored",
            value=f"{warm:,.0f} articles/s warm ({f.warm_reused}/{f.batches} plans)",
            baseline=f"{cold:,.0f} articles/s restoring ({f.cold_batches} batches)",
            ratio=x(warm / cold), goal=f">= {GOAL:.0f} articles/s",
            met=warm >= GOAL if f.known >= 50_000 else None),
        Row(measure="  the same plans' CPU time (DuckDB's threads too)",
            value=f"{warm_cpu:,.0f} articles/s warm"),
        Row(measure="  opening the writer the plan and load share, a batch",
            value=f"{1000 * f.warm_open_s / f.warm_reused:,.1f} ms"
                  " (its write-ahead log read again)"),
        Row(measure="  plan and load together", value=f"{warm_all:,.0f} articles/s warm",
            baseline=f"{cold_all:,.0f} articles/s restoring", ratio=x(warm_all / cold_all)),
        Row(measure="  plan and load together, the burst's last load folding the log",
            value=f"{warm_all:,.0f} articles/s warm",
            baseline=f"{folding_all:,.0f} articles/s, each load folding",
            ratio=x(warm_all / folding_all)),
        Row(measure="  the warm batches store the restoring ones' stories",
            value="yes" if f.same else "NO"),
        Row(measure="an article's features, staged by the process stage (not in the plan)",
            value=f"{f.features_ms:.2f} ms CPU",
            baseline=f"{f.extract_ms:.1f} ms (the extraction call on its page)",
            ratio=x(f.features_ms / f.extract_ms)),
    ]


if __name__ == "__main__":
    main()
