"""A stream's micro-batch: plan and load on one writer, against a reader then a writer.

    .venv/bin/python -m benchmarks.stream_batch [--known 50000] [--new 2000] [--keep DIR]

Each micro-batch of a continuous run is planned (the cluster stage) and loaded.
Until session 26 the stream opened the file three times a batch: a probe for the
writer (so that a file held elsewhere cost no plan), a read-only connection for
the plan, the writer for the load; each open reads what the burst's loads left
in the write-ahead log. It now plans and loads on one writer's connection
(:func:`pipeline.stages.plan_and_load_stage`). This runs ``--new`` synthetic
articles in batches of 50 against ``--known`` stored ones (the horizon
``benchmarks.cluster_speed`` builds, kept in ``--keep``), both ways, each with
its own warm clusterer on its own copy of the file, in the order A B B A, and
prints the wall and CPU time a batch (plan and load together) and their ratio;
the two ways must store the same stories.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import duckdb

from benchmarks.cluster_speed import BATCH, _kept, _record, _stage
from benchmarks.synthetic import Newsroom

COMMAND = ".venv/bin/python -m benchmarks.stream_batch --keep DIR"


def _horizon(known_n: int, keep: Path | None, base: Path) -> Path:
    """The stored horizon's file (built as cluster_speed builds it, or kept)."""
    from pipeline import store
    from pipeline.config import parse_settings
    from pipeline.store.load import load
    from pipeline.store.plan import plan

    kept = _kept(keep, known_n) if keep is not None else None
    if kept is not None and kept.exists():
        return kept
    room = Newsroom(11, articles_per_hour=known_n / (7 * 24) if known_n else 100.0)
    settings = parse_settings({"database": str(base / "horizon" / "news.duckdb"),
                               "staging_dir": str(base / "horizon" / "staging"),
                               "cluster": {"embeddings": False}})
    _stage(settings, "stored", [_record(room, i) for i in range(known_n)])
    with store.connect(settings.database) as con:
        plan(con, settings, "stored")
        load(con, settings, "stored")
    if kept is None:
        return settings.database
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(settings.database, kept)
    return kept


def _one_pass(horizon: Path, where: Path, parts: list[list[dict[str, object]]], *,
              shared: bool) -> tuple[float, float, list[tuple[object, ...]]]:
    """Every batch of ``parts`` planned and loaded as the stream does (``shared``:
    on one writer; else a reader for the plan, then the writer), the last one
    folding the log: (wall s, CPU s, the stories stored)."""
    from pipeline import store
    from pipeline.config import parse_settings
    from pipeline.stages import plan_and_load_stage
    from pipeline.store.load import load
    from pipeline.store.plan import plan
    from pipeline.store.warm import WarmClusterer

    where.mkdir()
    shutil.copy(horizon, where / "news.duckdb")
    settings = parse_settings({"database": str(where / "news.duckdb"),
                               "staging_dir": str(where / "staging"),
                               "cluster": {"embeddings": False}})
    warm = WarmClusterer()
    wall = cpu = 0.0
    for k, part in enumerate(parts):
        run_id = f"batch-{k:04d}"
        _stage(settings, run_id, part)
        gc.collect()
        last = k == len(parts) - 1
        started, started_cpu = time.perf_counter(), time.process_time()
        if shared:
            plan_and_load_stage(settings, run_id, warm=warm, checkpoint=last, brief=True)
        else:
            # The probe the stream opened before a load (store.probe_writer,
            # removed): the writer opened and closed, nothing folded.
            probe = duckdb.connect(str(settings.database))
            probe.execute("PRAGMA disable_checkpoint_on_shutdown")
            probe.close()
            with store.connect(settings.database, read_only=True) as con:
                plan(con, settings, run_id, warm=warm)
            with store.connect(settings.database, checkpoint=last) as con:
                load(con, settings, run_id, warm=warm)
        wall += time.perf_counter() - started
        cpu += time.process_time() - started_cpu
    ids = [r["id"] for part in parts for r in part]
    with duckdb.connect(str(settings.database), read_only=True) as con:
        stories = sorted(con.execute("SELECT id, story_id FROM articles WHERE id IN"
                                     " (SELECT unnest(?::VARCHAR[]))", [ids]).fetchall())
    shutil.rmtree(where)
    return wall, cpu, stories


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--known", type=int, default=50_000)
    parser.add_argument("--new", type=int, default=2000)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="where benchmarks.cluster_speed --keep keeps the stored horizon")
    args = parser.parse_args(argv)
    room = Newsroom(11, articles_per_hour=args.known / (7 * 24) if args.known else 100.0)
    new = [_record(room, args.known + i) for i in range(args.new)]
    parts = [new[k:k + BATCH] for k in range(0, len(new), BATCH)]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        horizon = _horizon(args.known, args.keep, base)
        runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        stories: dict[bool, list[tuple[object, ...]]] = {}
        for i, shared in enumerate((False, True, True, False)):
            wall, cpu, stored = _one_pass(horizon, base / f"run{i}", parts, shared=shared)
            runs[shared].append((wall, cpu))
            stories.setdefault(shared, stored)
            print(f"{'one writer' if shared else 'reader, then writer':20}"
                  f" {len(parts) * BATCH / wall:7.1f} articles/s wall,"
                  f" {cpu / len(parts) * 1000:6.1f} ms CPU a batch", flush=True)
    same = stories[False] == stories[True]
    print(f"same stories both ways: {same}")
    for what, at in (("wall", 0), ("CPU", 1)):
        old = sum(r[at] for r in runs[False])
        ours = sum(r[at] for r in runs[True])
        print(f"plan and load of {len(parts)} batches of {BATCH}, {args.known:,} stored, {what}:"
              f" {old / (2 * len(parts)) * 1000:.1f} -> {ours / (2 * len(parts)) * 1000:.1f} ms"
              f" a batch ({ours / old:.2f}x)")
    if not same:
        raise SystemExit("the two ways stored different stories")


if __name__ == "__main__":
    main()
