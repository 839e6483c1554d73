"""Polling speed: thousands of local feeds through the real poll and load stages,
against a sequential ``feedparser.parse(url)`` loop measured in the same run.

    python -m benchmarks.polling [--feeds 1000 10000] [--baseline-feeds 200]

The feeds are served by :class:`benchmarks.localsite.LocalSite` (one process,
32 loopback addresses, 20 items a feed). For each size:

1. a first pass over an empty database (generation 1), whose entries are then
   marked as seen, as the process stage would have stored them;
2. **changed**: generation 2, every feed has 5 new items among its 20 (the
   other 15 are known): ``poll_stage`` (conditional GET with the stored
   ETag, 200, parse, look up which entries are known, stage) and
   ``load_stage`` (feed state into DuckDB);
3. **unchanged**: the same again without a new generation: every feed
   answers ``304 Not Modified`` (the stage still computes and loads every
   feed's new state: next poll time, last success).

The baseline is feedparser's own urllib fetch, one feed after the other, on
the first ``--baseline-feeds`` feeds: ``feedparser.parse(url)`` for changed
feeds and ``feedparser.parse(url, etag=...)`` for unchanged ones (it sends
If-None-Match and gets the 304). Rates are per feed, so the two sizes compare
with the same baseline rate.

The server's share of the wall time is printed: it must stay well below one
core, or the benchmark would measure the server.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import feedparser

from benchmarks.localsite import CpuMeter, LocalSite
from benchmarks.report import Row, Section, x
from pipeline import run as pipeline_run
from pipeline import store
from pipeline.config import Settings, parse_settings
from pipeline.store import staging

COMMAND = ".venv/bin/python -m benchmarks.polling"
SPEEDUP_GOAL = 20.0
UNCHANGED_GOAL_SECONDS = 30.0  # 10,000 unchanged feeds, poll + load
UNCHANGED_GOAL_FEEDS = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Baseline:
    feeds: int
    changed_per_s: float
    unchanged_per_s: float
    server_busy: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Pass:
    name: str
    feeds: int
    poll_s: float
    load_s: float
    failed: int
    entries_new: int
    server_busy: float

    @property
    def seconds(self) -> float:
        return self.poll_s + self.load_s

    @property
    def per_s(self) -> float:
        return self.feeds / self.seconds


def baseline(site: LocalSite, n: int) -> Baseline:
    """Sequential feedparser over the first ``n`` feeds; generation 1 is served."""
    urls = site.feed_urls()[:n]
    meter = CpuMeter(site)
    meter.start()
    etags = []
    started = time.perf_counter()
    for url in urls:
        parsed = feedparser.parse(url)
        if len(parsed.entries) != site.config.entries:
            raise RuntimeError(f"baseline: {url} gave {len(parsed.entries)} entries")
        etags.append(parsed.get("etag"))
    changed = time.perf_counter() - started
    meter.stop()
    started = time.perf_counter()
    for url, etag in zip(urls, etags, strict=True):
        parsed = feedparser.parse(url, etag=etag)
        if parsed.get("status") != 304:
            raise RuntimeError(f"baseline: {url} did not answer 304")
    unchanged = time.perf_counter() - started
    return Baseline(feeds=n, changed_per_s=n / changed, unchanged_per_s=n / unchanged,
                    server_busy=meter.busy)


def settings_for(site: LocalSite, root: Path, feeds: int | None = None) -> Settings:
    urls = site.feed_urls()[:feeds]
    return parse_settings({
        "database": str(root / "news.duckdb"),
        "feeds": [{"url": u} for u in urls],
        "fetch": {"allow_private": site.allow_private},
    })


def _mark_seen(settings: Settings, run_id: str) -> None:
    """Store the polled entries as the process stage would have (status stored)."""
    paths = staging.files(staging.run_dir(settings.staging, run_id), "polled")
    files = ", ".join(f"'{p}'" for p in paths)
    with store.connect(settings.database) as con:
        con.execute(
            f"""INSERT INTO entries (feed_url, id, url, title, published_at, first_seen, status)
            SELECT feed_url, id, url, title, published_at::TIMESTAMPTZ, now(), 'stored'
            FROM read_json([{files}], format='newline_delimited')
            ON CONFLICT DO NOTHING"""
        )


def one_pass(settings: Settings, site: LocalSite, name: str, *, mark_seen: bool = False) -> Pass:
    run_id = pipeline_run.new_run_id()
    meter = CpuMeter(site)
    meter.start()
    started = time.perf_counter()
    polled = pipeline_run.poll_stage(settings, run_id, force=True)
    middle = time.perf_counter()
    # Polling alone is measured: the process stage is recorded as finished
    # with nothing (the load refuses polled entries no process stage finished).
    staging.StagingWriter(staging.run_dir(settings.staging, run_id),
                          staging.process_shard(0), of=1).commit()
    pipeline_run.load_stage(settings, run_id, keep_staging=mark_seen)
    ended = time.perf_counter()
    meter.stop()
    if mark_seen:
        _mark_seen(settings, run_id)
        staging.remove(staging.run_dir(settings.staging, run_id))
    return Pass(name=name, feeds=polled.feeds_polled, poll_s=middle - started,
                load_s=ended - middle, failed=polled.feeds_failed,
                entries_new=polled.entries_new, server_busy=meter.busy)


def run_size(site: LocalSite, feeds: int) -> list[Pass]:
    with tempfile.TemporaryDirectory(prefix="newsmon-bench-poll-") as tmp:
        settings = settings_for(site, Path(tmp), feeds)
        site.set_generation(1)
        first = one_pass(settings, site, "first pass (empty database)", mark_seen=True)
        site.set_generation(2)
        changed = one_pass(settings, site, "changed (5 of 20 entries new)")
        unchanged = one_pass(settings, site, "unchanged (304)")
        with duckdb.connect(str(settings.database), read_only=True) as con:
            row = con.execute("SELECT count(*) FROM feeds WHERE last_error IS NULL").fetchone()
        if not row or row[0] != feeds:
            raise RuntimeError(f"only {row} of {feeds} feeds are healthy after the passes")
    for p in (first, changed, unchanged):
        if p.failed or p.feeds != feeds:
            raise RuntimeError(f"{p.name}: {p.failed} feeds failed, {p.feeds} polled")
    expected = feeds * site.config.new_per_generation
    if changed.entries_new != expected:
        raise RuntimeError(f"changed pass found {changed.entries_new} new entries, not {expected}")
    return [first, changed, unchanged]


@dataclass(frozen=True, slots=True, kw_only=True)
class Results:
    baseline: Baseline
    sizes: dict[int, list[Pass]]
    latency: float = 0.0  # seconds added to every reply in the runs below
    latency_baseline: Baseline | None = None
    latency_sizes: dict[int, list[Pass]] | None = None


def measure(sizes: Sequence[int], baseline_feeds: int, *, latency: float = 0.0,
            latency_feeds: int = 0, latency_baseline_feeds: int = 0) -> Results:
    """Everything on one site: without latency, then (if asked) with ``latency``."""
    with LocalSite(max(sizes)) as site:
        site.set_generation(1)
        base = baseline(site, min(baseline_feeds, max(sizes)))
        results = {n: run_size(site, n) for n in sizes}
        if not (latency and latency_feeds):
            return Results(baseline=base, sizes=results)
        site.set_latency(latency)
        site.set_generation(1)
        slow_base = baseline(site, latency_baseline_feeds)
        slow = {latency_feeds: run_size(site, latency_feeds)}
        site.set_latency(0)
    return Results(baseline=base, sizes=results, latency=latency, latency_baseline=slow_base,
                   latency_sizes=slow)


def print_table(base: Baseline, results: dict[int, list[Pass]], latency: float = 0.0) -> None:
    print(f"latency {latency * 1000:.0f} ms; baseline: sequential feedparser.parse(url) on "
          f"{base.feeds} feeds: {base.changed_per_s:,.1f} changed feeds/s, "
          f"{base.unchanged_per_s:,.1f} unchanged (304) feeds/s "
          f"(server busy {base.server_busy:.0%} of one core)")
    header = (f"{'feeds':>6} {'pass':<30} {'poll s':>7} {'load s':>7} {'feeds/s':>8} "
              f"{'x base':>7} {'server':>7}")
    print(header)
    print("-" * len(header))
    for n, passes in results.items():
        for p in passes:
            rate = base.unchanged_per_s if "unchanged" in p.name else base.changed_per_s
            print(f"{n:>6} {p.name:<30} {p.poll_s:>7.2f} {p.load_s:>7.2f} {p.per_s:>8,.0f} "
                  f"{p.per_s / rate:>6.1f}x {p.server_busy:>6.0%}")


def main(argv: Sequence[str] | None = None) -> Results:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--baseline-feeds", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50.0,
                        help="then the same with this delay on every reply (0: skip)")
    parser.add_argument("--latency-feeds", type=int, default=1000)
    parser.add_argument("--latency-baseline-feeds", type=int, default=100)
    args = parser.parse_args(argv)
    r = measure(args.feeds, args.baseline_feeds, latency=args.latency_ms / 1000,
                latency_feeds=args.latency_feeds,
                latency_baseline_feeds=args.latency_baseline_feeds)
    print_table(r.baseline, r.sizes)
    if r.latency_baseline is not None and r.latency_sizes is not None:
        print()
        print_table(r.latency_baseline, r.latency_sizes, r.latency)
    return r


if __name__ == "__main__":
    main()


# -- the harness (python -m benchmarks) ----------------------------------------------------

# (sizes, baseline feeds, latency feeds, latency baseline feeds)
_SIZES = {"tiny": ([20], 10, 20, 5), "quick": ([1000], 100, 1000, 50),
          "full": ([1000, 10_000], 200, 1000, 100)}
LATENCY = 0.050


def _rows(r: Results, latency: bool) -> list[Row]:
    base = r.latency_baseline if latency else r.baseline
    sizes = r.latency_sizes if latency else r.sizes
    assert base is not None and sizes is not None
    where = f", {r.latency * 1000:.0f} ms latency" if latency else ""
    rows = []
    for n, (first, changed, unchanged) in sizes.items():
        rows.append(Row(measure=f"{n:,} feeds{where}: first pass, empty database (20 new each)",
                        value=f"{first.per_s:,.0f} feeds/s ({first.seconds:.1f} s)",
                        baseline=f"{base.changed_per_s:,.1f} feeds/s",
                        ratio=x(first.per_s / base.changed_per_s)))
        ratio = changed.per_s / base.changed_per_s
        rows.append(Row(measure=f"{n:,} feeds{where}: changed (5 of 20 entries new)",
                        value=f"{changed.per_s:,.0f} feeds/s ({changed.seconds:.1f} s)",
                        baseline=f"{base.changed_per_s:,.1f} feeds/s", ratio=x(ratio),
                        goal=f">= {SPEEDUP_GOAL:.0f}x", met=ratio >= SPEEDUP_GOAL))
        ratio = unchanged.per_s / base.unchanged_per_s
        rows.append(Row(measure=f"{n:,} feeds{where}: unchanged (304)",
                        value=f"{unchanged.per_s:,.0f} feeds/s ({unchanged.seconds:.1f} s: "
                              f"poll {unchanged.poll_s:.1f}, load {unchanged.load_s:.2f})",
                        baseline=f"{base.unchanged_per_s:,.1f} feeds/s", ratio=x(ratio),
                        goal=f">= {SPEEDUP_GOAL:.0f}x", met=ratio >= SPEEDUP_GOAL))
        if n == UNCHANGED_GOAL_FEEDS and not latency:
            rows.append(Row(measure=f"{n:,} unchanged feeds: poll_stage + load_stage",
                            value=f"{unchanged.seconds:.1f} s",
                            goal=f"< {UNCHANGED_GOAL_SECONDS:.0f} s",
                            met=unchanged.seconds < UNCHANGED_GOAL_SECONDS))
    busy = max([base.server_busy] + [p.server_busy for ps in sizes.values() for p in ps])
    rows.append(Row(measure=f"local server's CPU{where} (busiest pass)",
                    value=f"{busy:.0%} of one core"))
    return rows


def section(size: str) -> Section:
    sizes, base_feeds, latency_feeds, latency_base = _SIZES[size]
    started = time.perf_counter()
    r = measure(sizes, base_feeds, latency=LATENCY, latency_feeds=latency_feeds,
                latency_baseline_feeds=latency_base)
    rows = _rows(r, latency=False) + _rows(r, latency=True)
    command = (f"{COMMAND} --feeds {' '.join(map(str, sizes))} --baseline-feeds {base_feeds} "
               f"--latency-ms {LATENCY * 1000:.0f} --latency-feeds {latency_feeds} "
               f"--latency-baseline-feeds {latency_base}")
    return Section(
        key="polling", title="Polling (local feeds: poll_stage + load_stage of feed state)",
        command=command, rows=rows, seconds=time.perf_counter() - started,
        notes=[
            f"Baseline: `feedparser.parse(url)` one feed after the other (feedparser's own "
            f"urllib fetch, its default parsing), on the first {base_feeds} feeds "
            f"({latency_base} with latency); rates are per feed. Ours: the real "
            "`poll_stage` (conditional GET with the stored ETag, parse in worker processes "
            "under a time limit, one query for the known entries, staging) and `load_stage` "
            "(feed state into DuckDB), default settings: 64 requests in flight, 2 per host; "
            "the feeds are spread over 32 loopback addresses (127.0.0.1-32).",
            "Why the 20x goal is missed without latency: on loopback the baseline waits for "
            "no network, so the comparison is CPU against CPU on 2 cores. The baseline "
            "parses all 20 entries of a changed feed with feedparser (~9 ms); we parse only "
            "the 5 whose bytes are new (~3.3 ms: the items unchanged since the last poll, "
            "whose entries are stored, are cut out of the document first; see "
            "`pipeline/sources/parsing.py` `_items`), which gives ~2x on the changed pass. An "
            "unchanged feed costs more CPU in our process (httpx, httpcore and anyio are "
            "Python, and each feed's new state is computed, staged and loaded) than "
            "urllib's bare request in the baseline, and the second core does not make up "
            "for it. With a network's latency (the 50 ms rows) the baseline waits 50 ms a "
            "feed and we wait for 64 at once: that is the speed-up concurrency buys, and "
            "the case the goal is about.",
            "Why changed feeds miss it even with latency: CPU is the bound. The baseline "
            "spends ~60-65 ms a feed (50 ms waiting, the parse); 20x is ~320 feeds a "
            "second, ~6 ms of CPU a feed on 2 cores, and a changed feed costs us ~3.5 ms of "
            "parsing (5 new items of 20) plus ~3 ms in the main process (the request in "
            "Python's HTTP stack, its new state, five entries staged, the known-entry "
            "lookups). A feed with one new item parses in ~1.2 ms, so a real pass, where "
            "most changed feeds add one or two items, is closer; parsing faster than "
            "feedparser would have to give the same entries exactly (ids, dates, titles), "
            "or the stored entry ids would change: not done.",
        ],
    )
