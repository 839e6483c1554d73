"""What session 23's fixes cost or save, each against a baseline in the same run:

- a poll's parse of a changed 500-item feed (max_entries_per_feed 200, 199
  unchanged items cut out): reading the GUIDs of the 300 items past the limit
  (pipeline.sources.parsing._guids_in) against the same parse without it;
- the stream's fold of DuckDB's log while another process holds the file:
  store.FOLD_RETRY against the load's default LockRetry;
- ``newsmon sql --csv`` of 100,000 rows with a FLOAT column: each column read by
  its type (output.typed_rows: the shortest float32 text) against the rows as
  the client gives them.

    nice -n 5 .venv/bin/python -m benchmarks.fixes_cost
"""

from __future__ import annotations

import io
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from unittest import mock

import duckdb

from pipeline import output, store
from pipeline.config import parse_settings
from pipeline.sources import parsing

_HOLD = ("import sys, duckdb; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
         "sys.stdin.read()")


def _median(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _rss(first: int, n: int = 500) -> bytes:
    items = "".join(f"<item><title>Story {i}</title><link>https://w.example.org/s/{i}</link>"
                    f"<guid isPermaLink='false'>g-{i}</guid>"
                    f"<description>{'text ' * 40}</description></item>"
                    for i in range(first, first + n))
    return ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>W"
            f"</title>{items}</channel></rss>").encode()


def guid_scan(n: int = 400) -> tuple[float, float]:
    url = "https://w.example.org/feed.xml"
    before = parsing.parse_feed(_rss(1), url=url, name="W", max_entries=200)
    known = {d: (e, w) for d, e, w in before.items or () if e}
    body = _rss(0)

    def parse() -> object:
        return parsing.parse_feed(body, url=url, name="W", max_entries=200, known_items=known)

    # Interleaved, so that a burst of other work on the machine hits both alike.
    without: list[float] = []
    with_scan: list[float] = []
    scan = parsing._guids_in
    for _ in range(n):
        for times, fn in ((without, lambda body, spans: frozenset()), (with_scan, scan)):
            with mock.patch.object(parsing, "_guids_in", fn):
                times.append(_median(parse, 1))
    return statistics.median(without), statistics.median(with_scan)


def fold_under_lock() -> tuple[float, float]:
    logging.disable(logging.WARNING)
    try:
        with tempfile.TemporaryDirectory() as folder:
            settings = parse_settings({"database": f"{folder}/news.duckdb"})
            with store.connect(settings.database, checkpoint=False) as con:
                con.execute("INSERT INTO meta VALUES ('k', 'v')")
            with subprocess.Popen([sys.executable, "-c", _HOLD, str(settings.database)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True) as holder:
                assert holder.stdout is not None and holder.stdin is not None
                assert holder.stdout.readline().strip() == "ok"
                times = []
                for retry in (store.LockRetry(), store.FOLD_RETRY):
                    started = time.monotonic()
                    try:
                        with store.connect(settings.database, retry=retry) as con:
                            con.execute("CHECKPOINT")
                    except store.DatabaseLocked:
                        pass
                    times.append(time.monotonic() - started)
                holder.stdin.close()
    finally:
        logging.disable(logging.NOTSET)
    return times[0], times[1]


def float_output(n: int = 5) -> tuple[float, float]:
    con = duckdb.connect()
    cursor = con.execute("SELECT (i / 7)::FLOAT f, i / 7 d, 'x' || i s FROM range(100000) t(i)")
    kinds = [d[1] for d in cursor.description or ()]
    rows = cursor.fetchall()
    columns = ["f", "d", "s"]
    given = _median(lambda: output.write_rows(columns, rows, "csv", io.StringIO()), n)
    typed = _median(lambda: output.write_rows(columns, output.typed_rows(kinds, rows), "csv",
                                              io.StringIO()), n)
    return given, typed


def main() -> None:
    rows = []
    base, new = guid_scan()
    rows.append(("parse, changed 500-item feed, 300 past the limit", "without the GUID scan",
                 f"{base * 1000:.2f} ms", f"{new * 1000:.2f} ms", f"{new / base:.2f}x"))
    base, new = fold_under_lock()
    rows.append(("fold of the log, file held by another writer", "the load's LockRetry",
                 f"{base:.2f} s", f"{new:.2f} s", f"{base / new:.0f}x shorter"))
    base, new = float_output()
    rows.append(("sql --csv, 100,000 rows, FLOAT + DOUBLE + VARCHAR", "rows as given",
                 f"{base:.3f} s", f"{new:.3f} s", f"{new / base:.2f}x"))
    head = ("what", "baseline", "baseline time", "now", "ratio")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
