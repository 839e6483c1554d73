"""Lake mode against the DuckDB file, in the same process: load throughput,
commit latency and query latency (issue 15).

    python -m benchmarks.lake [--articles 2000] [--runs 3]

The same :mod:`benchmarks.load` articles are loaded in ``--runs`` runs (each
its own articles) into a fresh DuckDB file and into a fresh lake: a new
PostgreSQL catalog database at 127.0.0.1:5432 (created and dropped here), data
files in a temporary folder. Each run is planned (cluster stage) and then
loaded under the backend's writer (the lake's: its advisory lock). Commit
latency is a load of a run with one new article into the filled store (the
median of five). Query latency: the README's example queries, best of five.
The file is the baseline of every ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from benchmarks.load import ALERT_RULES, records, stage
from benchmarks.report import Row, Section, x
from pipeline.config import Settings, parse_settings
from pipeline.store import load as load_module
from pipeline.store import plan as plan_module
from pipeline.store.backend import backend, open_store
from pipeline.store.lake import scratch_catalog

COMMAND = ".venv/bin/python -m benchmarks.lake"
QUERIES = {
    "articles per source": "SELECT source, count(*) FROM articles GROUP BY source"
                           " ORDER BY 2 DESC LIMIT 10",
    "largest stories": "SELECT title, n_articles, n_sources FROM stories"
                       " ORDER BY n_articles DESC LIMIT 10",
    "articles by country": "SELECT c, count(*) FROM (SELECT unnest(countries) AS c"
                           " FROM articles) GROUP BY c ORDER BY 2 DESC",
}


def catalog() -> AbstractContextManager[str]:
    return scratch_catalog("dbname=postgres host=127.0.0.1 port=5432 user=postgres",
                           prefix="newsmon_bench")


def _load_run(settings: Settings, run_id: str, rows: list[dict[str, Any]]) -> float:
    stage(settings, run_id, rows)
    with open_store(settings) as con:
        plan_module.plan(con, settings, run_id)
    started = time.perf_counter()
    with backend(settings).writer() as con:
        result = load_module.load(con, settings, run_id)
    elapsed = time.perf_counter() - started
    if result.articles_new != len(rows):
        raise RuntimeError(f"{run_id}: loaded {result.articles_new} of {len(rows)}")
    return elapsed


def measure_one(settings: Settings, n: int, runs: int, commits: int = 5) -> dict[str, float]:
    rows = records(n * runs + commits)
    load_s = sum(_load_run(settings, f"run-{k}", rows[k * n:(k + 1) * n]) for k in range(runs))
    one = [_load_run(settings, f"one-{k}", [rows[n * runs + k]]) for k in range(commits)]
    figures = {"rows_per_s": n * runs / load_s, "commit_s": statistics.median(one)}
    with open_store(settings, read_only=True) as con:
        for name, sql in QUERIES.items():
            times = []
            for _ in range(5):
                started = time.perf_counter()
                con.execute(sql).fetchall()
                times.append(time.perf_counter() - started)
            figures[name] = min(times)
    return figures


def measure(n: int, runs: int, commits: int = 5) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="newsmon-bench-lake-") as tmp, catalog() as dsn:
        root = Path(tmp)

        def settings(mode: str) -> Settings:
            data: dict[str, Any] = {
                "database": str(root / mode / "news.duckdb"),
                "staging_dir": str(root / mode / "staging"), "alerts": ALERT_RULES,
                "cluster": {"embeddings": False}}
            if mode == "lake":
                data["store"] = {"mode": "lake", "catalog": dsn,
                                 "data_path": str(root / "lake-data")}
            return parse_settings(data)

        return {mode: measure_one(settings(mode), n, runs, commits) for mode in ("file", "lake")}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=2000, help="articles a run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    got = measure(args.articles, args.runs)
    file, lake = got["file"], got["lake"]
    print(f"{args.runs} runs of {args.articles} articles; the file is the baseline")
    print(f"{'measure':<34}{'file':>12}{'lake':>12}{'lake/file':>11}")
    print(f"{'load throughput (rows/s)':<34}{file['rows_per_s']:>12,.0f}"
          f"{lake['rows_per_s']:>12,.0f}{lake['rows_per_s'] / file['rows_per_s']:>10.2f}x")
    for key, label in [("commit_s", "commit latency, 1 article (s)"),
                       *((q, f"query: {q} (s)") for q in QUERIES)]:
        print(f"{label:<34}{file[key]:>12.3f}{lake[key]:>12.3f}{lake[key] / file[key]:>10.2f}x")


if __name__ == "__main__":
    main()


# -- the harness (python -m benchmarks) ----------------------------------------------------

# (articles a run, runs, one-article commits: their median is the commit latency;
# a tiny run's figures mean nothing, and each lake commit is seconds of the smoke test)
_SIZES = {"tiny": (50, 1, 1), "quick": (1000, 2, 5), "full": (2000, 3, 5)}


def section(size: str) -> Section:
    n, runs, commits = _SIZES[size]
    started = time.perf_counter()
    got = measure(n, runs, commits)
    file, lake = got["file"], got["lake"]
    rows = [Row(measure=f"load throughput, {runs} runs of {n:,} articles",
                value=f"{lake['rows_per_s']:,.0f} rows/s (lake)",
                baseline=f"{file['rows_per_s']:,.0f} rows/s (file)",
                ratio=x(lake["rows_per_s"] / file["rows_per_s"])),
            Row(measure="commit latency, a run of 1 article", value=f"{lake['commit_s']:.3f} s",
                baseline=f"{file['commit_s']:.3f} s", ratio=x(lake["commit_s"] / file["commit_s"]))]
    rows += [Row(measure=f"query: {q}", value=f"{lake[q]:.3f} s", baseline=f"{file[q]:.3f} s",
                 ratio=x(lake[q] / file[q])) for q in QUERIES]
    return Section(
        key="lake", title="Lake mode against the DuckDB file (issue 15)",
        command=f"{COMMAND} --articles {n} --runs {runs}", rows=rows,
        seconds=time.perf_counter() - started,
        notes=["Each figure is the lake's, its baseline the DuckDB file's in the same process: "
               "the same articles planned and loaded under the backend's writer (the lake's "
               "advisory lock), a fresh PostgreSQL catalog database at 127.0.0.1 made and "
               "dropped by the benchmark, data files in a local folder (no S3 latency). "
               "The times include opening the store for writing. Commit latency: the median "
               f"of {commits} one-article loads; queries: best of five."])
