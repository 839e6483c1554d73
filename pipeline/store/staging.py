"""Staging files: how parallel stages hand results to the single DuckDB writer.

Each run has a folder ``<staging>/<run_id>/``; each producer (the poll, a
process shard) writes JSON Lines files named ``<kind>-<shard>.jsonl``. A file
is written under a temporary name and renamed when complete, so a crashed
producer leaves no half file behind and a re-run of the same shard replaces
its own output (idempotent).

Every file proves it is complete: when a producer commits, it writes its
*completion record* ``<shard>.done.json`` last, listing each of its files with
its line count, size and SHA-256. A file that is not listed, or no longer
matches what is listed (a copy cut short, a disk that lost a block), is an
error, never fewer rows. A missing run folder is an error too, never an empty
run: the load would otherwise record the run as loaded and save the feeds'
ETags, and those articles would never come back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import types
import typing
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Protocol

# "features": each article's clustering features (pipeline.signal.cluster.staged_features).
Kind = Literal["feeds", "polled", "entries", "articles", "features", "rejected"]
KINDS: tuple[Kind, ...] = ("feeds", "polled", "entries", "articles", "features", "rejected")

POLL_SHARD = "poll"
_DONE = ".done.json"


# -- one definition per staged record -----------------------------------------------------
#
# A staged record is a dataclass (FeedUpdate, EntryOutcome, ArticleRecord, the
# plan's rows): the staging writer writes its fields by name (record), and the
# load reads the file with DuckDB columns derived from its field types
# (columns). Neither spells the fields again.

_SQL_TYPES: dict[object, str] = {str: "VARCHAR", int: "BIGINT", float: "DOUBLE",
                                 bool: "BOOLEAN", datetime: "TIMESTAMPTZ"}


def _sql_type(hint: object) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:  # Annotated[X, "FLOAT[]"]: the type named
        return next(m for m in getattr(hint, "__metadata__", ()) if isinstance(m, str))
    if origin in (types.UnionType, typing.Union) and len(args) == 1:
        return _sql_type(args[0])  # X | None: NULL is any column's
    if origin in (tuple, list) and args:
        return f"{_sql_type(args[0])}[]"  # tuple[X, ...], list[X]
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        inner = ", ".join(f"{name} {kind}" for name, kind in columns(hint).items())
        return f"STRUCT({inner})"
    if hint in _SQL_TYPES:
        return _SQL_TYPES[hint]
    raise TypeError(f"no DuckDB type for a staged field of type {hint!r}")


def columns(cls: type) -> dict[str, str]:
    """The DuckDB columns of a staged record: its fields, typed from their hints."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: _sql_type(hints[f.name]) for f in dataclasses.fields(cls)}


def record(obj: Any) -> dict[str, Any]:
    """A staged record's fields by name, nested records as mappings (JSON objects)."""
    return {f.name: _value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return record(value)
    if isinstance(value, (tuple, list)):
        return [_value(v) for v in value]
    return value


class Sink(Protocol):
    """Where a stage puts its records: a :class:`StagingWriter`, or a batch
    held in memory until it is written by one."""

    def write(self, kind: Kind, record: dict[str, Any]) -> None: ...


class StagingError(Exception):
    """A run's staging cannot be trusted (missing, incomplete, damaged); the
    message names the path and what to do."""


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


def process_shard(shard: int) -> str:
    return f"p{shard:03d}"


def fsync_dir(directory: Path) -> None:
    """Make a folder's entries (a file made or renamed in it) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class _Open:
    handle: IO[bytes]
    digest: Any  # hashlib's object has no public type
    lines: int = 0
    size: int = 0


@dataclass(slots=True)
class StagingWriter:
    """Writes one shard's files for one run; use as a context manager.

    ``of``: for a process shard, how many shards the run was split into (the
    load checks that every one of them finished)."""

    directory: Path
    shard: str
    of: int | None = None
    _files: dict[str, _Open] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def write(self, kind: Kind, record: dict[str, Any]) -> None:
        out = self._files.get(kind)
        if out is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            out = _Open(open(self._tmp(kind), "wb"), hashlib.sha256())  # noqa: SIM115
            self._files[kind] = out
        line = (json.dumps(record, default=_default, ensure_ascii=False) + "\n").encode()
        out.handle.write(line)
        out.digest.update(line)
        out.lines += 1
        out.size += len(line)
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def _final(self, kind: str) -> Path:
        return self.directory / f"{kind}-{self.shard}.jsonl"

    def _tmp(self, kind: str) -> Path:
        return self.directory / f".{kind}-{self.shard}.jsonl.tmp"

    def commit(self) -> None:
        """Rename the files into place, then write the completion record (last:
        until it is there, the shard did not finish)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        done = self.directory / f"{self.shard}{_DONE}"
        done.unlink(missing_ok=True)  # a re-run: the old record must not vouch for new files
        listed: dict[str, dict[str, Any]] = {}
        try:
            for kind, out in self._files.items():
                out.handle.flush()
                os.fsync(out.handle.fileno())
                out.handle.close()
                os.replace(self._tmp(kind), self._final(kind))
                listed[self._final(kind).name] = {"lines": out.lines, "bytes": out.size,
                                                  "sha256": out.digest.hexdigest()}
        except BaseException:
            self.abort()  # a full disk while flushing: no handle left open, no half file
            raise
        self._files.clear()
        for kind in KINDS:  # a re-run that wrote no file of a kind leaves none of the old
            name = self._final(kind).name
            if name not in listed:
                self._final(kind).unlink(missing_ok=True)
        record = {"shard": self.shard, "of": self.of, "files": listed}
        tmp = self.directory / f".{self.shard}{_DONE}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, done)
        fsync_dir(self.directory)

    def abort(self) -> None:
        for kind, out in self._files.items():
            # A full disk fails the close's flush too; the file goes anyway.
            with contextlib.suppress(OSError):
                out.handle.close()
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


def _records(directory: Path) -> dict[str, dict[str, Any]]:
    """The completion records of a run folder, by shard."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob(f"*{_DONE}")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            found[str(record["shard"])] = record
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StagingError(f"{path}: unreadable completion record ({exc}); "
                               "run the stage that wrote it again") from None
    return found


def _listed(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The files completion ``records`` list, by name."""
    return {name: entry for record in records.values()
            for name, entry in record.get("files", {}).items()}


def _require_dir(directory: Path) -> None:
    if not directory.is_dir():
        raise StagingError(
            f"{directory}: no staging folder for this run (was it written on another host, "
            "or removed?); nothing was loaded; run the pass again, with the staging folder "
            "on storage every task can reach")


def files(directory: Path, kind: Kind, shards: Collection[str] | None = None) -> list[Path]:
    """The complete files of one kind in a run folder, in shard order; of
    ``shards`` only, when given (a run's shards not loaded yet).

    Raises :class:`StagingError` when the folder is missing, or a file is not
    listed in a completion record or its size differs from the one listed
    (the cheap check; :func:`verify` also counts lines and checksums)."""
    _require_dir(directory)
    paths = sorted(directory.glob(f"{kind}-*.jsonl"))
    if not paths:
        return []
    records = _records(directory)  # read once: listed, and which shard lists each file
    listed = _listed(records)
    if shards is not None:
        wanted = _listed({shard: r for shard, r in records.items() if shard in shards})
        paths = [path for path in paths if path.name in wanted]
    for path in paths:
        entry = listed.get(path.name)
        if entry is None:
            raise StagingError(f"{path}: staged file with no completion record (the stage "
                               "that wrote it did not finish); run that stage again")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise StagingError(f"{path}: incomplete staged file ({size:,} of "
                               f"{entry['bytes']:,} bytes); run the stage that wrote it again")
    return paths


def _check(path: Path, entry: dict[str, Any]) -> None:
    digest = hashlib.sha256()
    lines = size = 0
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                lines += chunk.count(b"\n")
                size += len(chunk)
    except FileNotFoundError:
        raise StagingError(f"{path}: staged file missing (its completion record lists it); "
                           "run the stage that wrote it again") from None
    if size != entry["bytes"] or lines != entry["lines"]:
        raise StagingError(f"{path}: incomplete staged file ({lines:,} of {entry['lines']:,} "
                           "lines); run the stage that wrote it again")
    if digest.hexdigest() != entry["sha256"]:
        raise StagingError(f"{path}: staged file damaged (checksum differs from its "
                           "completion record); run the stage that wrote it again")


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    shards: tuple[str, ...]
    polled: int | None  # entries the poll staged (None: no poll record in this folder)


def verify(directory: Path) -> Verified:
    """Check a whole run folder before anything is loaded from it: the folder
    exists, at least one producer finished, every listed file is whole
    (lines, size, SHA-256), no unlisted file, and when the poll staged entries
    every process shard it was split into finished."""
    _require_dir(directory)
    records = _records(directory)
    if not records:
        raise StagingError(f"{directory}: no stage of this run finished (no completion "
                           "record); run the pass again")
    listed = _listed(records)
    for kind in KINDS:
        for path in directory.glob(f"{kind}-*.jsonl"):
            if path.name not in listed:
                raise StagingError(f"{path}: staged file with no completion record (the "
                                   "stage that wrote it did not finish); run that stage again")
    for name, entry in listed.items():
        _check(directory / name, entry)
    polled: int | None = None
    poll_record = records.get(POLL_SHARD)
    if poll_record is not None:
        polled = int(poll_record["files"].get(f"polled-{POLL_SHARD}.jsonl", {}).get("lines", 0))
    if polled:
        process = {name: r for name, r in records.items() if name != POLL_SHARD}
        if not process:
            raise StagingError(f"{directory}: the poll staged {polled} entries but no process "
                               "shard finished; run the process stage again")
        of = {r.get("of") for r in process.values()}
        if len(of) == 1 and isinstance(n := next(iter(of)), int):
            missing = [process_shard(i) for i in range(n) if process_shard(i) not in process]
            if missing:
                raise StagingError(f"{directory}: process shard(s) {', '.join(missing)} of "
                                   f"{n} did not finish; run them again")
    return Verified(shards=tuple(sorted(records)), polled=polled)


def finished(directory: Path) -> tuple[str, ...]:
    """The shards of a run folder whose completion record is there (none: no
    folder); nothing checked beyond that (:func:`verify` does)."""
    if not directory.is_dir():
        return ()
    return tuple(sorted(_records(directory)))


def read(directory: Path, kind: Kind) -> Iterator[dict[str, Any]]:
    for path in files(directory, kind):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


def size(directory: Path) -> int:
    """The bytes a run's staged files take (0: no such folder)."""
    if not directory.is_dir():
        return 0
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
