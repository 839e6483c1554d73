"""A real ``newsmon demo`` into a folder: the seed site on 127.0.0.1 and one pass."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoRun:
    """What ``newsmon demo`` made: its config, its database and what it printed."""

    config: Path
    database: Path
    stdout: str


def run_demo(directory: Path) -> DemoRun:
    database = directory / "news.duckdb"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "demo", "--database", str(database), "--quiet"],
        capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    return DemoRun(config=directory / "newsmon.yaml", database=database, stdout=done.stdout)
