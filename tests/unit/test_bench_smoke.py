"""The benchmark harness still runs: every benchmark at its tiny size, the table and
the markdown have the rows they should. The figures of a tiny run mean nothing;
this only keeps `make bench` from rotting (it is not part of the tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import __main__ as harness
from benchmarks.extraction_quality import DEFAULT_DATA

# Per benchmark: the start of each row its tiny run must report.
EXPECTED = {
    "extraction_quality": ["trafilatura alone (defaults)", "newsmon extract:",
                           "newsmon extract+clean", "extract+clean F1",
                           "the cleaner's precision gain", "the cleaner's recall cost"],
    "extraction_compare": [
        *(f"{name}: {system}" for name in ("article-extraction", "dragnet-dev")
          for system in ("newsmon", "trafilatura defaults", "trafilatura comments off",
                         "readability", "jusText")),
    ],
    "processing": ["trafilatura defaults (baseline)", "decode", "extract", "clean", "language",
                   "tag", "tag: countries", "tag: people", "tag: topics and the rest",
                   "process_page (whole, one process)", "goal 1: our additions",
                   "our additions over trafilatura defaults", "goal 3: whole stage",
                   "peak memory per worker process",
                   "Processor, 1 worker process", "goal 2: Processor, 2 worker processes"],
    "polling": ["20 feeds: first pass", "20 feeds: changed", "20 feeds: unchanged (304)",
                "local server's CPU (busiest pass)", "20 feeds, 50 ms latency: first pass",
                "20 feeds, 50 ms latency: changed", "20 feeds, 50 ms latency: unchanged",
                "local server's CPU, 50 ms latency"],
    "load": ["load stage, 200 new articles", "  of which the alert outbox",
             "cluster stage, 200 new articles", "  of which clustering", "  of which matching",
             "cluster + load stages together", "load stage without a plan",
             "the same batch loaded again", "stories formed"],
    "cluster_speed": ["assigning 100 new articles, 500 stored", "rebuilding the open stories",
                      "  the plan's clustering, both together", "sentence embedding of one",
                      "clusterer memory per article", "stories the new articles went to"],
    "query_matching": ["50 saved queries against 50 articles", "  of which building",
                       "RuleSet against every rule"],
    "alert_outage": ["10 alerts, SMTP server that never answers: one round",
                     "  left pending for the next round", "recovery round: delivered, each once"],
    "latency": ["page arrival to email, healthy feeds only: pipelined",
                "page arrival to email, 1 slow feeds (1 s delays): pipelined"],
    "end_to_end": ["2 feeds x 5 entries: whole pass", "2 feeds x 5 entries: poll / process",
                   "2 feeds x 5 entries: fetch + extract", "2 feeds x 5 entries: peak memory,",
                   "2 feeds x 5 entries: peak memory by stage", "4 feeds x 5 entries: whole pass",
                   "peak memory with children", "  process stage (fetch + extract)",
                   "peak memory of the main process", "local server's CPU"],
    "lake": ["load throughput, 1 runs of 50 articles", "commit latency, a run of 1 article",
             "query: articles per source", "query: largest stories",
             "query: articles by country"],
}


def test_every_benchmark_runs_at_its_tiny_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert set(EXPECTED) == set(harness.BENCHMARKS)
    names = [n for n in harness.BENCHMARKS
             if n not in ("extraction_quality", "extraction_compare", "processing")
             or (DEFAULT_DATA / "ground-truth.json").is_file()]
    out = tmp_path / "BENCHMARKS.md"
    assert harness.main(["--tiny", "--only", *names, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    markdown = out.read_text(encoding="utf-8")

    for name in names:
        table = [line for line in markdown.splitlines() if line.startswith("| ")]
        for start in EXPECTED[name]:
            assert any(line.startswith(f"| {start}") for line in table), (name, start)
            assert any(line.startswith(start[:40]) for line in printed.splitlines()), (
                name, start)
    for heading in ("## Machine", "## Goals", "## What issue 7 changed for speed"):
        assert heading in markdown
    assert "python -m benchmarks --tiny" in markdown
    assert "| Python | 3." in markdown


def test_the_stream_batch_benchmark_runs_at_a_tiny_size(
    capsys: pytest.CaptureFixture[str]
) -> None:
    """`benchmarks.stream_batch` (not in `make bench`: it reuses the horizon
    `cluster_speed --keep` builds) still runs, both ways, and compares them."""
    from benchmarks import stream_batch

    stream_batch.main(["--known", "200", "--new", "100"])
    printed = capsys.readouterr().out
    assert printed.count("reader, then writer") == 2 and printed.count("one writer") == 2
    assert "same stories both ways: True" in printed
    assert "plan and load of 2 batches of 50, 200 stored, CPU:" in printed
