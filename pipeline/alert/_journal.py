"""The delivery journal: each email's outcome, on disk outside the database.

A send round on the DuckDB file claims its rows and renders their emails in
one short writer session, closes the file, delivers with no connection open
and marks the rows in a second short session (:mod:`pipeline.alert._send`).
Between the two, each outcome (delivered, refused, to retry, not tried) is
one line here, fsynced before the next email: a round that dies after the
server's 250 and before its marks leaves the line, and the next round, in
any process, applies it before it claims, so the email is not sent again.

One file per round beside the database (``news.duckdb.deliveries.<pid>-<hex>``),
made under a temporary name and locked (``flock``) by its round before it
gets its name: a round applies only the journals of rounds that are gone (a
live round holds its lock; the kernel drops it with the process). Its room is
reserved when it is made (``posix_fallocate``), and each line is written at
its offset into that room: a line written after a delivery needs no new
block, so a disk that fills meanwhile does not lose it. The first NUL byte
(room not written yet) or a line cut short ends the journal.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.store.delivery import Key
from pipeline.store.staging import fsync_dir

_SUFFIX = ".deliveries."
# A reason is kept this long (characters) in the journal and the outbox: an
# SMTP reply with its host, as the outbox's error column holds it.
ERROR_CHARS = 300
_STATUSES = ("sent", "failed", "pending", "released")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One email's end in a round: ``sent`` (``at``: when the server took it),
    ``failed`` for good, ``pending`` (to retry at ``at``) or ``released``
    (not tried; due again at ``at``). ``token``: the round's claim."""

    status: str
    keys: tuple[Key, ...]
    token: str
    at: datetime
    message_id: str | None = None
    error: str | None = None

    def line(self) -> bytes:
        return json.dumps({
            "status": self.status, "keys": [list(k) for k in self.keys], "token": self.token,
            "at": self.at.isoformat(), "message_id": self.message_id, "error": self.error,
        }, ensure_ascii=False).encode() + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> Outcome:
        fields = json.loads(line)
        if fields["status"] not in _STATUSES:
            raise ValueError(f"unknown status {fields['status']!r}")
        return cls(status=fields["status"], token=fields["token"],
                   keys=tuple((str(r), str(s), str(to), int(n)) for r, s, to, n in fields["keys"]),
                   at=datetime.fromisoformat(fields["at"]), message_id=fields["message_id"],
                   error=fields["error"])


def room_for(keys: tuple[Key, ...], token: str, at: datetime) -> int:
    """Bytes an outcome of ``keys`` can take at most (its reason cut to ERROR_CHARS)."""
    longest = Outcome(status="released", keys=keys, token=token, at=at,
                      message_id="<" + "0" * 32 + "@newsmon>", error="")
    return len(longest.line()) + 4 * ERROR_CHARS + 64  # UTF-8: up to 4 bytes a character


def pattern(database: Path) -> str:
    return database.name + _SUFFIX + "*"


class Journal:
    """This round's journal, locked while the round lives."""

    def __init__(self, path: Path, fd: int, room: int) -> None:
        self.path, self.fd, self.room = path, fd, room
        self.offset = 0
        # A stream's round gives its journal up (close) from the event loop
        # while its delivery thread may still write: never to a closed (or
        # reused) descriptor.
        self.lock = threading.Lock()

    @classmethod
    def create(cls, database: Path, name: str, room: int) -> Journal:
        """A locked journal beside ``database`` with ``room`` bytes reserved.
        Raises OSError (a full disk: ``ENOSPC``) with nothing left behind."""
        path = database.with_name(database.name + _SUFFIX + name)
        tmp = path.with_name("." + path.name + ".tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.posix_fallocate(fd, 0, room)
            os.fsync(fd)
            os.rename(tmp, path)
            fsync_dir(path.parent)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        return cls(path, fd, room)

    def write(self, outcome: Outcome) -> None:
        """Append ``outcome`` and fsync it. OSError when it cannot."""
        line = outcome.line()
        with self.lock:
            if self.fd < 0:
                raise OSError(errno.EBADF, "the round gave its journal up", str(self.path))
            os.pwrite(self.fd, line, self.offset)
            os.fsync(self.fd)
            self.offset += len(line)

    def close(self, *, remove: bool) -> None:
        """Release the lock; ``remove``: the journal was applied, delete it."""
        with self.lock:
            if self.fd < 0:
                return
            if remove:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            os.close(self.fd)
            self.fd = -1


@dataclass(slots=True)
class LeftBehind:
    """A journal whose round is gone, locked by the round applying it."""

    path: Path
    fd: int
    outcomes: list[Outcome]

    def close(self, *, remove: bool) -> None:
        if remove:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self.fd)


def read(fd: int) -> list[Outcome]:
    """The outcomes in a journal: up to the first NUL byte or a line cut short."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0).split(b"\0", 1)[0]
    outcomes = []
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            outcomes.append(Outcome.parse(line))
        except (ValueError, KeyError, TypeError):
            break  # a line cut short by the crash: nothing after it was written
    return outcomes


def every(database: Path) -> list[tuple[Path, list[Outcome]]]:
    """Each journal beside ``database`` and its outcomes so far, a live
    round's too, read without its lock and left as it is (a backup's copy).
    Raises OSError when one cannot be read."""
    found = []
    for path in sorted(database.parent.glob(pattern(database))):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # applied and removed by a round meanwhile
        try:
            found.append((path, read(fd)))
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        finally:
            os.close(fd)
    return found


def left_behind(database: Path) -> Iterator[LeftBehind]:
    """The journals beside ``database`` whose rounds are gone, each locked
    (skipped: the journals of live rounds, which hold their lock)."""
    for path in sorted(database.parent.glob(pattern(database))):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue  # applied by another round meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino != path.stat().st_ino:
                raise FileNotFoundError(path)  # applied and removed while we opened it
            outcomes = read(fd)
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        yield LeftBehind(path, fd, outcomes)
