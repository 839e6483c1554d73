"""``newsmon serve`` beside a loading pipeline: what the pages cost, and what the
server costs the writer.

    python -m benchmarks.web                     # 5,000 articles
    python -m benchmarks.web --articles 20000 --seconds 5

Three figures, each beside a baseline measured in the same run:

- the **load stage** of a new batch while a client asks for pages as fast as
  it can, against the same load with nobody reading (the goal: the web page
  does not slow the pipeline), and against the same load while the client
  reads the live file read-only per request, the design the server avoids;
- the **copy** the server takes once per change, the only time it holds the
  file (the writer waits at most this long), against that load stage;
- **page times** (median and 95th percentile, sequential requests to a real
  uvicorn on 127.0.0.1), against the same reads on a connection opened per
  request without the web layer.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from benchmarks.load import ALERT_RULES, records, stage
from benchmarks.report import Row, Section, x
from pipeline import browse, store
from pipeline.config import Settings, parse_settings
from pipeline.store.load import load
from pipeline.web import Reader

COMMAND = "python -m benchmarks.web"
_SIZES = {"tiny": (200, 1.0), "quick": (2000, 2.0), "full": (5000, 3.0)}
PAGES = ("/", "/?q=%22working+group%22+OR+minister", "/?topic=diplomacy", "/feeds", "/alerts",
         "/chart?by=hour")
WAIT_GOAL_MS = 1000  # the load's wait for the file beside a busy web page


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    articles: int
    size_mib: float
    load_alone: LoadTime
    load_beside_server: LoadTime
    load_beside_live_reads: LoadTime | None  # None: the load gave up (the file stayed locked)
    live_reads_error: str | None
    pages_during_load: int
    copy_s: float
    page_ms: dict[str, tuple[float, float]]  # path -> (median, p95)
    direct_ms: tuple[float, float]  # the Stories reads on a fresh connection, no web layer


def _settings(root: Path) -> Settings:
    return parse_settings({"database": str(root / "news.duckdb"),
                           "staging_dir": str(root / "staging"),
                           "outbox_dir": str(root / "outbox"), "alerts": ALERT_RULES})


def _fresh(root: Path, first: list[dict[str, object]], name: str) -> Settings:
    """A database loaded with ``first``, its own folder under root."""
    settings = _settings(root / name)
    stage(settings, "run-1", first)
    with store.connect(settings.database) as con:
        load(con, settings, "run-1")
    return settings


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadTime:
    wait_s: float  # opening the file for writing: waiting out readers' locks
    total_s: float  # the whole load stage, the wait included


def _timed_load(settings: Settings, batch: list[dict[str, object]]) -> LoadTime:
    stage(settings, "run-2", batch)
    started = time.perf_counter()
    # The same lock retry as the pipeline's load stage (pipeline.run.load_stage).
    with store.connect(settings.database) as con:
        opened = time.perf_counter()
        load(con, settings, "run-2")
    return LoadTime(wait_s=opened - started, total_s=time.perf_counter() - started)


@contextmanager
def _serving(settings: Settings, root: Path) -> Iterator[str]:
    """``newsmon serve`` in its own process, as in production (DuckDB's file lock is
    per process: a reader in the writer's own process would not meet it)."""
    config = root / "newsmon.yaml"
    config.write_text(yaml.safe_dump({
        "database": str(settings.database), "staging_dir": str(settings.staging),
        "outbox_dir": str(settings.outbox), "alerts": ALERT_RULES}), encoding="utf-8")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", "--config",
                           str(config), "--port", str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(base + "/", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("newsmon serve did not start")
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=10)


# The design the server avoids: every request opens the live file read-only.
_LIVE_READER = """
import sys, time, duckdb
from pipeline import browse
while True:
    try:
        with duckdb.connect(sys.argv[1], read_only=True) as con:
            con.execute("SET TimeZone = 'UTC'")
            browse.list_stories(con, browse.StoryFilter())
    except duckdb.IOException:
        time.sleep(0.001)  # the writer has it: ask again
"""


@contextmanager
def _live_reader(database: Path) -> Iterator[None]:
    with subprocess.Popen([sys.executable, "-c", _LIVE_READER, str(database)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        time.sleep(1.0)  # imports done, reading
        try:
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=10)


# A reader asking for pages non-stop, in its own process (in the loader's process it
# would take the loader's CPU and GIL), until the stop file appears.
_CLIENT = """
import sys, pathlib, httpx
base, stop, out = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
n = 0
with httpx.Client(base_url=base, timeout=30) as client:
    while not stop.exists():
        assert client.get("/").status_code in (200, 503)
        n += 1
out.write_text(str(n))
"""


@contextmanager
def _client(base: str, root: Path) -> Iterator[list[int]]:
    """Pages asked non-stop while inside; the list holds their number afterwards."""
    stop, out, count = root / "stop", root / "count", [0]
    with subprocess.Popen([sys.executable, "-c", _CLIENT, base, str(stop), str(out)]) as proc:
        time.sleep(1.0)  # started and asking
        try:
            yield count
        finally:
            stop.touch()
            proc.wait(timeout=60)
            count[0] = int(out.read_text())


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000


def measure(n: int, seconds: float) -> Figures:
    rows = records(2 * n)
    first, batch = rows[:n], rows[n:]
    with tempfile.TemporaryDirectory(prefix="newsmon-bench-web-") as tmp:
        root = Path(tmp)
        # 1. the load alone
        alone = _fresh(root, first, "alone")
        load_alone = _timed_load(alone, batch)

        # 2. the load beside newsmon serve answering pages as fast as it can
        served = _fresh(root, first, "served")
        size = served.database.stat().st_size / 2**20
        with _serving(served, root / "served") as base, \
                httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/").status_code == 200  # the first copy is taken

            with _client(base, root) as pages:
                load_served = _timed_load(served, batch)

            # 3. page times, sequential, after the load (its copy is taken by the first)
            page_ms = {}
            for path in PAGES:
                client.get(path)
                samples: list[float] = []
                deadline = time.perf_counter() + seconds / len(PAGES)
                while time.perf_counter() < deadline or len(samples) < 5:
                    started = time.perf_counter()
                    assert client.get(path).status_code == 200, path
                    samples.append(time.perf_counter() - started)
                page_ms[path] = _percentiles(samples)

        # 4. the copy the server takes per change (the writer waits at most this)
        reader = Reader(served.database, root / "copy-timing")
        started = time.perf_counter()
        reader.refresh()
        copy_s = time.perf_counter() - started
        reader.close()

        # 5. the Stories reads on a fresh connection per request, no web layer
        def direct() -> None:
            with store.connect(served.database, read_only=True) as con:
                browse.list_stories(con, browse.StoryFilter())
                browse.facets(con)
                browse.report_counts(con, browse.StoryFilter(), "day")

        samples = []
        for _ in range(max(5, int(seconds * 10))):
            started = time.perf_counter()
            direct()
            samples.append(time.perf_counter() - started)
        direct_ms = _percentiles(samples)

        # 6. the naive design: a process reading the live file per request
        live = _fresh(root, first, "live")
        live_error = None
        with _live_reader(live.database):
            try:
                load_beside_live: LoadTime | None = _timed_load(live, batch)
            except store.DatabaseLocked as exc:
                load_beside_live, live_error = None, str(exc)

    return Figures(articles=n, size_mib=size, load_alone=load_alone,
                   load_beside_server=load_served,
                   load_beside_live_reads=load_beside_live, live_reads_error=live_error,
                   pages_during_load=pages[0], copy_s=copy_s, page_ms=page_ms, direct_ms=direct_ms)


def rows(f: Figures) -> list[Row]:
    alone, served, live = f.load_alone, f.load_beside_server, f.load_beside_live_reads
    slowdown = served.total_s / alone.total_s
    out = [
        Row(measure=f"load stage, {f.articles:,} new articles, waiting for the file while "
                    f"newsmon serve answers pages non-stop ({f.pages_during_load:,} pages)",
            value=f"{served.wait_s * 1000:.0f} ms", baseline=f"{alone.wait_s * 1000:.0f} ms alone",
            goal=f"<= {WAIT_GOAL_MS} ms", met=served.wait_s * 1000 <= WAIT_GOAL_MS),
        Row(measure="  the same beside a process reading the live file per request (avoided)",
            value=(f"{live.wait_s * 1000:.0f} ms" if live is not None
                   else f"gave up: {f.live_reads_error}"),
            baseline=f"{alone.wait_s * 1000:.0f} ms alone"),
        Row(measure="  the whole load stage beside newsmon serve (2 cores: the pages take CPU)",
            value=f"{served.total_s:.2f} s", baseline=f"{alone.total_s:.2f} s alone",
            ratio=x(slowdown)),
        Row(measure=f"the server's copy of the database ({f.size_mib:.1f} MiB, "
                    f"{2 * f.articles:,} articles): the writer waits at most this per change",
            value=f"{f.copy_s * 1000:.0f} ms", baseline=f"{alone.total_s:.2f} s load stage",
            ratio=x(f.copy_s / alone.total_s)),
    ]
    for path, (median, p95) in f.page_ms.items():
        out.append(Row(measure=f"page {path}", value=f"{median:.1f} ms median, {p95:.1f} ms p95"))
    stories = f.page_ms["/"][0]
    out.append(Row(measure="  Stories page against its reads on a connection opened per request",
                   value=f"{stories:.1f} ms", baseline=f"{f.direct_ms[0]:.1f} ms (no web layer)",
                   ratio=x(stories / f.direct_ms[0])))
    return out


def section(size: str) -> Section:
    n, seconds = _SIZES[size]
    started = time.perf_counter()
    f = measure(n, seconds)
    return Section(key="web", title=f"The web page beside the pipeline ({n:,} + {n:,} articles)",
                   command=f"{COMMAND} --articles {n} --seconds {seconds:g}", rows=rows(f),
                   seconds=time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> Figures:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=5000,
                        help="articles in the database, and as many in the batch loaded")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="how long to time the pages, all together")
    args = parser.parse_args(argv)
    f = measure(args.articles, args.seconds)
    for row in rows(f):
        print(f"{row.measure}\n    {row.value}"
              + (f"  | baseline {row.baseline}" if row.baseline else "")
              + (f"  | {row.ratio}" if row.ratio else "")
              + (f"  | goal {row.goal}: {'met' if row.met else 'MISSED'}" if row.goal else ""))
    return f


if __name__ == "__main__":
    main()
