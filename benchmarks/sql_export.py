"""What ``newsmon sql --csv`` holds in memory for a large result (session 24):
the rows written as DuckDB streams them (:func:`pipeline.output.fetched_rows`,
2,048 at a time) against the rows read whole first (``cursor.fetchall()``, as
before), each in a child process of its own, peak resident memory above the
same child printing one row; and the time of each, as a ratio.

    nice -n 5 .venv/bin/python -m benchmarks.sql_export [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline import store

_CHILD = """
import sys
import duckdb
from pipeline import output
con = duckdb.connect(sys.argv[1], read_only=True)
cursor = con.execute(sys.argv[3])
rows = output.fetched_rows(cursor)
if sys.argv[2] == "whole":
    rows = list(rows)
output.write_rows([d[0] for d in cursor.description], rows, "csv", sys.stdout)
"""


def _peak(database: Path, how: str, sql: str) -> tuple[int, float]:
    """(peak resident MiB, seconds) of the child writing ``sql``'s rows ``how``."""
    started = time.perf_counter()
    with open(os.devnull, "w") as sink:
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(database), how, sql],
                                 stdout=sink)
        _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the {how} child failed")
    return usage.ru_maxrss // 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    big = f"SELECT range AS n, repeat('x', 100) AS pad, now() AS at FROM range({args.rows})"
    one = "SELECT range AS n, repeat('x', 100) AS pad, now() AS at FROM range(1)"
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "news.duckdb"
        with store.connect(database):
            pass
        base = {how: _peak(database, how, one)[0] for how in ("stream", "whole")}
        figures = {how: _peak(database, how, big) for how in ("stream", "whole")}
    print(f"newsmon sql --csv of {args.rows:,} rows (int, 100 characters, timestamp)")
    for how, (peak, seconds) in figures.items():
        print(f"  {how:7} peak {peak - base[how]:5} MiB above one row, {seconds:6.2f} s")
    stream, whole = figures["stream"], figures["whole"]
    grown = (stream[0] - base["stream"]) / max(1, whole[0] - base["whole"])
    print(f"  memory: stream / whole = {grown:.3f}; time: stream / whole ="
          f" {stream[1] / whole[1]:.2f}x")


if __name__ == "__main__":
    main()
