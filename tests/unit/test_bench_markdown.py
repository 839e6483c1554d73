"""`make bench` rewrites BENCHMARKS.md's figures and keeps the sessions' own
sections (between the machine table and "## Goals") as they are."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from benchmarks import __main__ as harness
from benchmarks.report import Section

ROOT = Path(__file__).resolve().parents[2]

OLD = """# Benchmarks

Written by `python -m benchmarks` on 2026-01-01 00:00 UTC in 15.0 minutes.

## Machine

| | |
|---|---|
| CPU | 1 core |

## Session 2: a change that shipped (2026-01-02)

```sh
nice -n 5 .venv/bin/python -m benchmarks.load --articles 5000
```

| | before | after |
|---|---|---|
| load | 1.0 s | 0.5 s |

## Session 1: what did not ship

Tried and rejected, with figures.

## Goals

| benchmark | goal | figure | |
|---|---|---|---|
| Loading | old goal | old figure | met |

## Loading (old)

an old figure of record
"""


def _write(path: Path) -> str:
    section = Section(key="load", title="Loading (new)", command="python -m benchmarks.load",
                      seconds=1.0, notes=["a new figure of record"])
    harness.write_markdown(path, [section], size="full", command="python -m benchmarks",
                           started=datetime(2026, 2, 1, tzinfo=UTC), seconds=60.0,
                           loads=(0.1, 0.2))
    return path.read_text(encoding="utf-8")


def test_a_run_keeps_the_sessions_and_replaces_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    out.write_text(OLD, encoding="utf-8")
    text = _write(out)
    session = OLD[OLD.index("## Session 2"):OLD.index("## Goals")].rstrip()
    assert session in text
    # Below the new machine table, above the new goals, in their order.
    assert text.index("## Machine") < text.index("## Session 2") < text.index(
        "## Session 1") < text.index("## Goals")
    assert "on 2026-02-01 00:00 UTC" in text and "2026-01-01" not in text
    assert "old figure" not in text and "## Loading (old)" not in text
    assert "## Loading (new)" in text and "a new figure of record" in text
    # Twice: the sessions are there once, unchanged.
    again = _write(out)
    assert again.count("## Session 2") == 1 and session in again


def test_a_new_file_has_no_sessions(tmp_path: Path) -> None:
    text = _write(tmp_path / "BENCHMARKS.md")
    assert "## Session" not in text
    assert text.index("## Machine") < text.index("## Goals")


def test_the_repos_file_keeps_every_session_section() -> None:
    lines = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8").splitlines()
    kept = harness.kept_sections("\n".join(lines))
    goals = lines.index("## Goals")
    written = [line for line in lines[:goals] if line.startswith("## ")
               and line != "## Machine"]
    assert written and [line for line in kept if line.startswith("## ")] == written
