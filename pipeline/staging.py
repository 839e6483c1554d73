"""Staging files: how parallel stages hand results to the single DuckDB writer.

Each run has a folder ``<staging>/<run_id>/``; each producer (a poll task, a
process shard) writes JSON Lines files named ``<kind>-<shard>.jsonl``. A file is
written under a temporary name and renamed when complete, so a crashed
producer leaves no half file behind and a re-run of the same shard replaces
its own output (idempotent). Only whole files are ever read.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

Kind = Literal["feeds", "polled", "entries", "articles", "rejected"]
KINDS: tuple[Kind, ...] = ("feeds", "polled", "entries", "articles", "rejected")


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (tuple, frozenset, set)):
        return list(value)
    raise TypeError(f"cannot stage a {type(value).__name__}")


def run_dir(staging: Path, run_id: str) -> Path:
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise ValueError(f"bad run id {run_id!r}")
    return staging / run_id


@dataclass(slots=True)
class StagingWriter:
    """Writes one shard's files for one run; use as a context manager."""

    directory: Path
    shard: str
    _files: dict[str, IO[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def write(self, kind: Kind, record: dict[str, Any]) -> None:
        handle = self._files.get(kind)
        if handle is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = open(self._tmp(kind), "w", encoding="utf-8")  # noqa: SIM115
            self._files[kind] = handle
        handle.write(json.dumps(record, default=_default, ensure_ascii=False))
        handle.write("\n")
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def _final(self, kind: str) -> Path:
        return self.directory / f"{kind}-{self.shard}.jsonl"

    def _tmp(self, kind: str) -> Path:
        return self.directory / f".{kind}-{self.shard}.jsonl.tmp"

    def commit(self) -> None:
        for kind, handle in self._files.items():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            os.replace(self._tmp(kind), self._final(kind))
        self._files.clear()

    def abort(self) -> None:
        for kind, handle in self._files.items():
            handle.close()
            self._tmp(kind).unlink(missing_ok=True)
        self._files.clear()

    def __enter__(self) -> StagingWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def files(directory: Path, kind: Kind) -> list[Path]:
    """The complete files of one kind in a run folder, in shard order."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob(f"{kind}-*.jsonl"))


def read(directory: Path, kind: Kind) -> Iterator[dict[str, Any]]:
    for path in files(directory, kind):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
