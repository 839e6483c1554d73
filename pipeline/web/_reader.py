"""Reading the database without ever standing in the pipeline's way.

DuckDB lets one process write a file, and a read-only open takes a shared
lock: while the load holds the file, ``duckdb.connect(path, read_only=True)``
fails at once ("Could not set lock on file ... Conflicting lock is held"),
and while any reader holds it, the load cannot open it (it retries with
backoff, see :mod:`pipeline.store`). A page per request on the live file
would both fail during every load and, with a few busy readers, starve it.

So pages are read from a private copy of the file. The copy is refreshed when
a page is asked for and the file changed since (its size, mtime or inode, or
its write-ahead log's): the live file is opened read-only once, copied while
that shared lock keeps every writer out (so the copy is consistent), and
closed. The pipeline is kept waiting only for the copy, and only once per
change. When the writer holds the file, the last copy is served with its
time; with no copy yet, the page says "updating, retry in a moment".
"""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipeline import store

__all__ = ["Reader", "Updating", "View"]

# One attempt and one quick retry: a page must not wait out a load.
_LIVE_RETRY = store.LockRetry(attempts=2, first_delay=0.05, max_delay=0.05)


class Updating(Exception):
    """The writer holds the database and there is no copy to show yet."""


@dataclass(frozen=True, slots=True, kw_only=True)
class View:
    con: duckdb.DuckDBPyConnection
    as_of: datetime  # when the copy was taken
    stale: bool  # True: the writer held the file at this request; the copy is older


def _signature(path: Path) -> tuple[int, ...]:
    parts: list[int] = []
    for file in (path, path.with_name(path.name + ".wal")):
        try:
            st = file.stat()
        except FileNotFoundError:
            parts += [0, 0, 0]
            continue
        parts += [st.st_ino, st.st_size, st.st_mtime_ns]
    return tuple(parts)


class Reader:
    """Read-only views of ``database`` for the web pages, from a refreshed copy."""

    def __init__(self, database: Path, snapshot_dir: Path, *,
                 min_refresh_seconds: float = 1.0) -> None:
        self.database = database
        self.snapshot_dir = snapshot_dir
        self.min_refresh_seconds = min_refresh_seconds
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._copy: Path | None = None
        self._previous: Path | None = None
        self._copy_signature: tuple[int, ...] | None = None
        self._copy_time: datetime | None = None
        self._last_attempt = float("-inf")
        self._last_ok = True

    def refresh(self) -> bool:
        """Copy the database if it changed since the last copy. False: the writer
        holds it (the old copy stays). Raises StoreError when there is no database."""
        if not self.database.exists():
            raise store.StoreError(
                f"{self.database}: no database here yet; run `newsmon run --once` first")
        with self._lock:
            signature = _signature(self.database)
            if signature == self._copy_signature:
                return True
            now = time.monotonic()
            if self._copy is not None and now - self._last_attempt < self.min_refresh_seconds:
                # Asked again within the second: the last attempt's answer stands
                # (the writer is not knocked on once per page).
                return self._last_ok
            self._last_attempt = now
            try:
                self._take_copy()
            except store.DatabaseLocked:
                self._last_ok = False
                return False
            self._last_ok = True
            return True

    def _take_copy(self) -> None:
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        target = self.snapshot_dir / f"news-{next(self._numbers)}.duckdb"
        # schema_if_empty=False: the page never writes the database, not even an
        # empty file's schema (the first run gives it).
        with store.connect(self.database, read_only=True, retry=_LIVE_RETRY,
                           schema_if_empty=False):
            # The shared lock is held from here to the end of the copy: no writer
            # can change the file (or its WAL) in between.
            signature = _signature(self.database)
            shutil.copyfile(self.database, target)
            wal = self.database.with_name(self.database.name + ".wal")
            if wal.exists():
                shutil.copyfile(wal, target.with_name(target.name + ".wal"))
        # Two copies are kept: a request that picked the last one a moment ago
        # still finds it to open (an open file outlives its unlinking anyway).
        _remove(self._previous)
        self._previous, self._copy = self._copy, target
        self._copy_signature, self._copy_time = signature, datetime.now(UTC)

    @contextmanager
    def view(self) -> Iterator[View]:
        """A read-only connection to the latest copy; raises Updating or StoreError."""
        fresh = self.refresh()
        with self._lock:
            copy, as_of = self._copy, self._copy_time
        if copy is None or as_of is None:
            raise Updating(f"{self.database} is being written")
        con = duckdb.connect(str(copy), read_only=True)
        try:
            con.execute("SET TimeZone = 'UTC'")
            yield View(con=con, as_of=as_of, stale=not fresh)
        finally:
            con.close()

    def close(self) -> None:
        with self._lock:
            _remove(self._previous)
            _remove(self._copy)
            self._copy = self._previous = self._copy_signature = self._copy_time = None


def _remove(copy: Path | None) -> None:
    if copy is not None:
        for file in (copy, copy.with_name(copy.name + ".wal")):
            file.unlink(missing_ok=True)
