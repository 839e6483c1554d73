"""The DuckDB file: schema, connections, and the reads other stages need.

DuckDB allows one writing process at a time. Parallel stages write staging
files; only :mod:`pipeline.store.load` (and the alert sender, marking rows sent)
open the file for writing. A lock held by someone else, say an analyst's open
``duckdb`` shell, is retried with backoff and then reported in one sentence.

The tables are an interface: users query them with SQL, so names and types
here are a contract documented in the README.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from pipeline.batches import batched
from pipeline.models import Seen

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);

CREATE TABLE IF NOT EXISTS feeds (
    url              VARCHAR PRIMARY KEY,     -- as configured or added: the feed's identity
    name             VARCHAR,
    status           VARCHAR NOT NULL DEFAULT 'active',   -- active | failing | retired
    last_polled_at   TIMESTAMPTZ,
    last_success_at  TIMESTAMPTZ,
    next_poll_at     TIMESTAMPTZ,
    etag             VARCHAR,
    last_modified    VARCHAR,
    content_hash     VARCHAR,
    error_count      INTEGER NOT NULL DEFAULT 0,
    last_error       VARCHAR,
    entries_seen     BIGINT NOT NULL DEFAULT 0,
    fetch_url        VARCHAR,                 -- where a 301/308 moved it; polled from then on
    origin           VARCHAR NOT NULL DEFAULT 'config',   -- config | added (feeds add / import)
    poll_interval_minutes DOUBLE,             -- its natural interval (sources.schedule)
    item_hashes      VARCHAR                  -- JSON: the items parsed last (pipeline.sources.poll)
);

CREATE TABLE IF NOT EXISTS entries (
    feed_url      VARCHAR NOT NULL,
    id            VARCHAR NOT NULL,
    url           VARCHAR,
    title         VARCHAR,
    published_at  TIMESTAMPTZ,
    first_seen    TIMESTAMPTZ NOT NULL,
    status        VARCHAR NOT NULL,      -- stored | rejected | retry
    attempts      INTEGER NOT NULL DEFAULT 1,
    article_id    VARCHAR,
    PRIMARY KEY (feed_url, id)
);

CREATE TABLE IF NOT EXISTS stories (
    id                 VARCHAR PRIMARY KEY,
    title              VARCHAR,
    first_seen         TIMESTAMPTZ,
    last_seen          TIMESTAMPTZ,
    n_articles         INTEGER,
    n_sources          INTEGER,
    lead_article_id    VARCHAR
);

CREATE TABLE IF NOT EXISTS articles (
    id             VARCHAR PRIMARY KEY,
    url            VARCHAR NOT NULL,
    canonical_url  VARCHAR NOT NULL,
    source         VARCHAR,
    feed_url       VARCHAR,
    entry_id       VARCHAR,
    title          VARCHAR,
    text           VARCHAR,
    author         VARCHAR,
    published_at   TIMESTAMPTZ,
    fetched_at     TIMESTAMPTZ,
    language       VARCHAR,
    topics         VARCHAR[],
    countries      VARCHAR[],
    people         VARCHAR[],
    story_id       VARCHAR,
    run_id         VARCHAR,
    loaded_at      TIMESTAMPTZ
);

-- Document frequencies of the clusterer's terms and names ("c:SY", "p:Vladimir
-- Putin") over every loaded article, updated in the load's transaction; the row
-- of term '' holds how many articles were counted (pipeline/signal/cluster.py).
CREATE TABLE IF NOT EXISTS term_stats (
    term  VARCHAR PRIMARY KEY,
    df    BIGINT NOT NULL
);

-- An article that scored with a second story: the stories are related (story
-- ids never change once given, so stories are linked, never merged).
CREATE TABLE IF NOT EXISTS story_links (
    story_id        VARCHAR NOT NULL,   -- the story the article joined
    other_story_id  VARCHAR NOT NULL,
    article_id      VARCHAR NOT NULL,
    score           DOUBLE,
    PRIMARY KEY (story_id, other_story_id, article_id)
);

-- Each story as the clusterer keeps it between passes (pipeline/signal/cluster.py
-- StoryState): its centroid, names, languages and embedding, updated in the load's
-- transaction, so a plan restores the open stories without reading their articles.
CREATE TABLE IF NOT EXISTS story_state (
    story_id         VARCHAR PRIMARY KEY,
    first            DOUBLE NOT NULL,    -- seconds since the epoch, as the clusterer counts
    last             DOUBLE NOT NULL,
    size             INTEGER NOT NULL,
    terms            VARCHAR NOT NULL,   -- space-separated, in the centroid's order
    weights          BLOB NOT NULL,      -- float64, one per term
    names            VARCHAR[] NOT NULL,
    name_counts      INTEGER[] NOT NULL,
    languages        VARCHAR[] NOT NULL,
    language_counts  INTEGER[] NOT NULL,
    main_language    VARCHAR NOT NULL,
    embedding        BLOB,               -- float64 sum of the embedded members'
    embedded         INTEGER NOT NULL,
    founder_text     VARCHAR             -- what the encoder would see, "" once embedded
);

-- The MinHash signature of each member: copies of any member find its story.
CREATE TABLE IF NOT EXISTS story_signatures (
    article_id  VARCHAR PRIMARY KEY,
    story_id    VARCHAR NOT NULL,
    seconds     DOUBLE NOT NULL,
    signature   BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS article_tags (
    article_id  VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,   -- topic | country | person
    tag         VARCHAR NOT NULL,
    evidence    VARCHAR,
    PRIMARY KEY (article_id, kind, tag)
);

CREATE TABLE IF NOT EXISTS removed_lines (
    article_id  VARCHAR NOT NULL,
    position    INTEGER NOT NULL,
    line        VARCHAR NOT NULL,
    rule        VARCHAR NOT NULL,
    PRIMARY KEY (article_id, position)
);

CREATE TABLE IF NOT EXISTS rejected (
    url        VARCHAR NOT NULL,
    feed_url   VARCHAR,
    stage      VARCHAR NOT NULL,
    reason     VARCHAR NOT NULL,
    seen_at    TIMESTAMPTZ NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (url, stage)
);

CREATE TABLE IF NOT EXISTS alerts (
    rule             VARCHAR NOT NULL,
    story_id         VARCHAR NOT NULL,
    recipient        VARCHAR NOT NULL,
    update_no        INTEGER NOT NULL DEFAULT 0,   -- 0: the alert; 1, 2, ...: updates
    article_id       VARCHAR,
    status           VARCHAR NOT NULL DEFAULT 'pending',   -- pending | sending | sent | failed
    created_at       TIMESTAMPTZ NOT NULL,
    sent_at          TIMESTAMPTZ,
    message_id       VARCHAR,
    error            VARCHAR,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ,             -- pending: when due; sending: when the claim ends
    claimed_by       VARCHAR,                 -- the sender that claimed it last (host:pid:token)
    PRIMARY KEY (rule, story_id, recipient, update_no)
);

CREATE TABLE IF NOT EXISTS runs (
    id               VARCHAR PRIMARY KEY,
    started_at       TIMESTAMPTZ,
    loaded_at        TIMESTAMPTZ,
    feeds_polled     INTEGER,
    entries_new      INTEGER,
    articles_new     INTEGER,
    rejected         INTEGER,
    stories_new      INTEGER,
    alerts_queued    INTEGER
);

-- The staging shards each load of a run took (poll, p000, p001, ...): a run
-- loaded again loads only those not here. A run loaded before this table has
-- no rows, and counts as loaded whole.
CREATE TABLE IF NOT EXISTS run_shards (
    run_id           VARCHAR NOT NULL,        -- runs.id
    shard            VARCHAR NOT NULL,
    loaded_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, shard)
);
"""


class StoreError(Exception):
    """The database cannot be used; the message says why and what to do."""


class DatabaseLocked(StoreError):
    pass


class DatabaseDamaged(StoreError):
    pass


class DiskFull(StoreError):
    pass


_PID = re.compile(r"PID (\d+)")
# DuckDB's own words (duckdb 1.x, src/common/file_system / storage): matched
# whole, so "block" in a checksum error is never taken for a lock.
_LOCK_CONFLICT = "Could not set lock on file"
_DAMAGED = ("Corrupt database file", "is not a valid DuckDB database file",
            "The file is not a valid DuckDB database",
            # A file shorter than its own blocks say: a copy cut short, a disk
            # that filled while it was written (duckdb 1.5, LocalFileSystem::Read).
            "Could not read enough bytes from file")
_NO_SPACE = ("No space left on device", "Could not write all bytes")
# DuckDB's parquet reader on a file cut short or overwritten (duckdb 1.5,
# extension/parquet); DuckLake passes the footer size its catalog recorded.
_DAMAGED_PARQUET = ("No magic bytes found at end of file", "too small to be a Parquet file",
                    "Invalid footer length provided for file")
# httpfs's words for a request that got no answer (duckdb 1.5, extension/httpfs:
# "Could not connect to server error for HTTP GET to '...'"); an answer that is
# an error status is an HTTPException.
_NO_ANSWER = " error for HTTP "
# DuckLake's words for a commit that met another writer's (ducklake 1.5,
# ducklake_transaction.cpp: "Failed to commit DuckLake transaction." then
# "Transaction conflict - ..."): both must be there.
_LAKE_CONFLICT = ("Failed to commit DuckLake transaction", "Transaction conflict - ")
# libpq's words for a session PostgreSQL ended or that stopped answering
# (libpq 15, fe-misc.c, fe-protocol3.c; the server's FATAL 57P01 and 57P02),
# as postgres_scanner passes them on for the lake's catalog.
_CATALOG_LOST = ("server closed the connection unexpectedly",
                 "terminating connection due to administrator command",
                 "terminating connection due to unexpected postmaster exit",
                 "no connection to the server", "could not receive data from server",
                 "SSL connection has been closed unexpectedly")

# DuckLake's words for a commit to the catalog whose rollback failed too
# (ducklake 1.5: 'Failed to commit: Failed to execute query "ROLLBACK": ',
# the cause left out): its session was gone, as when PostgreSQL ends it
# between a transaction's last statement and its COMMIT.
_COMMIT_LOST = 'Failed to execute query "ROLLBACK"'


class DataUnreachable(StoreError):
    pass


def disk_full(path: Path | str) -> DiskFull:
    return DiskFull(f"disk full at {path}: free some space (or move the database, staging "
                    "or outbox folder to a bigger disk) and run again; nothing was lost")


def explain(exc: BaseException, path: Path | str) -> StoreError | None:
    """A sentence for a DuckDB or OS error that has one (damaged file, full
    disk); None for the rest, which stay errors of their own."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return disk_full(exc.filename or path)
    if isinstance(exc, duckdb.Error):
        message = str(exc)
        if any(words in message for words in _NO_SPACE):
            return disk_full(path)
        if isinstance(exc, duckdb.TransactionException) and all(
                words in message for words in _LAKE_CONFLICT):
            # Every lake writer updates one fence row (backend.fence): only a
            # writer that went on without the lock gets here.
            return DatabaseLocked(
                "another writer committed to the lake while this one ran (the PostgreSQL "
                "session that held this host's writer lock was cut off meanwhile, or a "
                "program other than newsmon wrote the lake); nothing of it was committed: "
                "run it again")
        lost = next((words for words in _CATALOG_LOST if words in message), None)
        if lost is None and _COMMIT_LOST in message:
            lost = "the commit failed, and its rollback too"
        if lost is not None:
            return StoreError(
                f"lost the connection to the lake's catalog database ({lost}); check that "
                "PostgreSQL is running and run it again: a load that did not commit stored "
                "nothing, and one that did is skipped")
        if isinstance(exc, duckdb.HTTPException) or (
                isinstance(exc, duckdb.IOException) and _NO_ANSWER in message):
            # Only the lake's data files are read over HTTP (the DuckDB file and
            # the staging are local, `newsmon sql` has external access off).
            return DataUnreachable(
                f"cannot reach the lake's data files ({message.splitlines()[0]}); check "
                "store.data_path and store.s3, and that the object store is running, then "
                "run again; nothing was lost (staged runs wait for the next pass)")
        if isinstance(exc, duckdb.InvalidInputException) and any(
                words in message for words in _DAMAGED_PARQUET):
            # The database file is DuckDB's own format: a Parquet file that is
            # read is one of the lake's (a plan's is checked before it is read).
            return DatabaseDamaged(
                f"a data file of the lake is damaged ({message.splitlines()[0]}); restore it "
                "from a backup of store.data_path, or start a new lake (the feeds will be "
                "read again)")
        if any(words in message for words in _DAMAGED):
            # DuckDB replays a log it finds beside a file onto that file,
            # whichever it is: left beside a restored backup, its commits land
            # on rows they were not made for (or a new file takes them in).
            wal = Path(path).with_name(Path(path).name + ".wal")
            aside = f"it and {wal.name}" if wal.exists() else "it"
            return DatabaseDamaged(
                f"{path} is damaged ({message.splitlines()[0]}); move {aside} aside and "
                "restore a backup, or start a new database (the feeds will be read again)")
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class LockHolder:
    pid: int | None
    mode: str  # "read-only" or "read-write" (or "unknown")
    program: str | None

    def describe(self) -> str:
        who = f"process {self.pid}" if self.pid else "another process"
        if self.program:
            who += f" ({self.program})"
        return f"{who}, open {self.mode}" if self.mode != "unknown" else who


def lock_holder(path: Path, message: str = "") -> LockHolder:
    """Who holds the lock on ``path``: DuckDB names the process; the kernel's
    table of POSIX locks (/proc/locks) says READ (a read-only session) or
    WRITE (a writer)."""
    found = _PID.search(message)
    pid = int(found.group(1)) if found else None
    mode = "unknown"
    try:
        inode = path.stat().st_ino
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                # "1: POSIX  ADVISORY  READ 17114 fe:00:2146393 0 EOF"
                if (len(fields) >= 6 and fields[1] == "POSIX"
                        and fields[5].rsplit(":", 1)[-1] == str(inode)
                        and (pid is None or fields[4] == str(pid))):
                    pid = pid or int(fields[4])
                    mode = "read-only" if fields[3] == "READ" else "read-write"
                    break
    except (OSError, ValueError):
        pass
    program = None
    if pid:
        try:
            program = Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip() or None
        except OSError:
            program = None
    return LockHolder(pid=pid, mode=mode, program=program)


@dataclass(frozen=True, slots=True, kw_only=True)
class LockRetry:
    attempts: int = 8
    first_delay: float = 0.25
    max_delay: float = 5.0
    # False: no "waiting for it" warning; the caller says what failed, once
    # (a short try repeated between polls would say it every time).
    announce: bool = True

    @property
    def patience(self) -> float:
        """Seconds slept between the first try and the last (about 18 s by default)."""
        delay, total = self.first_delay, 0.0
        for _ in range(self.attempts - 1):
            total += delay
            delay = min(delay * 2, self.max_delay)
        return total


def _connect(path: Path, *, read_only: bool, retry: LockRetry) -> duckdb.DuckDBPyConnection:
    delay = retry.first_delay
    for attempt in range(1, retry.attempts + 1):
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            message = str(exc)
            if _LOCK_CONFLICT not in message:
                raise explain(exc, path) or _unopenable(path, message, read_only=read_only
                                                        ) from None
            holder = lock_holder(path, message)
            if attempt == retry.attempts:
                note = (" (a read-only session blocks writers too)"
                        if holder.mode == "read-only" else "")
                raise DatabaseLocked(
                    f"{path} is locked by {holder.describe()}{note}: DuckDB allows one "
                    "writer, or readers only; close that session (an open duckdb shell or "
                    "notebook?) or let it finish, and run again"
                ) from None
            if attempt == 1 and retry.announce:
                log.warning("%s is locked by %s; waiting for it (up to %d tries)", path,
                            holder.describe(), retry.attempts)
            time.sleep(delay)
            delay = min(delay * 2, retry.max_delay)
        except duckdb.Error as exc:
            raise explain(exc, path) or StoreError(
                f"{path}: cannot open the database: {exc}") from None
    raise AssertionError("unreachable")


# The operating system's words as DuckDB passes them on (strerror): matched whole.
_NOT_A_FILE = ": Is a directory"
_NOT_WRITABLE = (": Read-only file system", ": Permission denied")


def _unopenable(path: Path, message: str, *, read_only: bool) -> StoreError:
    """The sentence for a file DuckDB could not open: what to do where there is
    something to do (``database:`` naming a folder, ``''`` among them; a file
    newsmon may not write), else DuckDB's words."""
    if message.rstrip().endswith(_NOT_A_FILE):
        return StoreError(f"{path} is a folder, not a database file: set `database:` to a "
                          "file's path (newsmon creates the file)")
    reason = next((words[2:] for words in _NOT_WRITABLE if message.rstrip().endswith(words)),
                  None)
    if reason is not None:
        if read_only:
            return StoreError(f"{path}: cannot open the database to read: {reason}; give "
                              "newsmon a file it may read")
        return StoreError(f"{path}: cannot open the database to write: {reason}; give newsmon "
                          "a file and folder it may write (or copy it to one and set "
                          "`database:` to the copy); `status`, `stories` and `sql` still read it")
    return StoreError(f"{path}: cannot open the database: {message}")


def refuse_an_odd_path(path: Path) -> None:
    """:class:`StoreError` when ``path`` can be no database file: a loop of
    symbolic links (DuckDB said "Too many levels of symbolic links", and a
    reader "no database here yet"), or a device, pipe or socket (``/dev/null``
    read as a damaged database, to move aside)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(f"{path} is a loop of symbolic links, not a database file: set "
                             "`database:` to a file's path (newsmon creates the file)") from None
        return  # no file yet (or a link to none): a writer creates it
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise StoreError(f"{path} is a device, pipe or socket, not a database file: set "
                         "`database:` to a file's path (newsmon creates the file)")


@contextmanager
def connect(
    path: Path, *, read_only: bool = False, retry: LockRetry | None = None,
    schema_if_empty: bool = True, checkpoint: bool = True,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database (creating it and its schema unless read-only).

    An empty DuckDB file opened read-only is given the schema first, as the
    first run would; ``schema_if_empty=False`` (a reader that promises never to
    write, as ``newsmon serve``) refuses it as no database yet instead.

    ``checkpoint=False`` (a writer): what it committed stays in the write-ahead
    log (``news.duckdb.wal``) when it closes, not folded into the file. DuckDB
    folds it in at each writer's close otherwise, and that rewrites the last row
    group of every table written: about 3 s a load at 50,000 articles, for 50
    new ones. A stream's loads and sends skip it, and the stream folds the log
    in (:func:`checkpoint`) once nothing is on its way and when it ends; DuckDB
    still folds it in by itself past ``checkpoint_threshold`` (16 MiB), and
    every connection reads it, so nothing committed waits on it or is lost
    with the process."""
    retry = retry or LockRetry()
    refuse_an_odd_path(path)
    if read_only and not path.exists():
        raise StoreError(f"{path}: no database here yet; run `newsmon run --once` first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path, read_only=read_only, retry=retry)
    try:
        con.execute("SET TimeZone = 'UTC'")
        holds_schema = _holds_our_schema(con, path)
        if holds_schema:
            _refuse_a_newer_schema(con, path)
        if not holds_schema and read_only:
            if not schema_if_empty:
                raise StoreError(f"{path}: no newsmon tables here yet (an empty DuckDB file);"
                                 " run `newsmon run --once` first")
            # An empty DuckDB file (made by `duckdb news.duckdb`, or a first
            # run that died before its schema): give it the schema, as the
            # first run would, then read it; nothing in it to protect.
            con.close()
            with connect(path, retry=retry):
                pass
            con = _connect(path, read_only=True, retry=retry)
            con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            ensure_schema(con)
        yield con
    except duckdb.Error as exc:
        # A damaged block or a full disk found by any statement: its sentence.
        sentence = explain(exc, path)
        if sentence is None:
            raise
        raise sentence from exc
    finally:
        if not checkpoint and not read_only:
            with contextlib.suppress(duckdb.Error):
                con.execute("PRAGMA disable_checkpoint_on_shutdown")
        con.close()


# A fold is optional (every connection reads the log, and the next fold takes
# it): it tries for about 0.3 s, not the ~18 s a load waits for the lock. A
# stream folds after a load that failed on the lock too, and would otherwise
# hold the end of its pass (or its next poll) that long again. A stream's
# load tried again after failing on the lock tries as briefly (it backs off
# between polls instead). Both say their failure once, themselves.
SHORT_RETRY = LockRetry(attempts=3, first_delay=0.1, announce=False)
FOLD_RETRY = SHORT_RETRY


# A load needs room for at least the staged run's records again in the
# write-ahead log, and a fresh DuckDB block (256 KiB). Only what it surely
# needs: a probe asking for more would keep refusing, on a disk nearly full,
# a load that fits (it refused one for good on a 16 MiB disk with 4 MiB more).
ROOM_MARGIN = 256 * 1024


def probe_room(directory: Path, need: int) -> None:
    """:class:`DiskFull` unless ``need`` bytes can be had in ``directory`` now:
    reserved in a scratch file (``posix_fallocate``: the file system's own
    answer, quotas and reserved blocks included), removed at once; where it
    cannot reserve, the free space says. A stream asks before it plans a
    load tried again after a full disk, so that a disk still full costs no
    plan (seconds at 50,000 articles) at each try. Anything else (no folder,
    no right to write there) is left for the load to say."""
    probe = directory / f".newsmon-room-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(directory) from None
        return
    try:
        os.posix_fallocate(fd, 0, max(need, 1))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(directory) from None
        if shutil.disk_usage(directory).free < need:
            raise disk_full(directory) from None
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


def checkpoint(path: Path) -> None:
    """Fold the write-ahead log into the database file (after writers that
    closed with ``checkpoint=False``): the file alone then holds everything, to
    copy or to open with any DuckDB. :class:`DatabaseLocked` when another
    process holds the file for longer than :data:`FOLD_RETRY` allows."""
    with connect(path, retry=FOLD_RETRY) as con:
        con.execute("CHECKPOINT")


# What ``backup`` writes into the copy, before its fold, of what is kept
# beside the database (``into(con, copy)``).
Into = Callable[[duckdb.DuckDBPyConnection, Path], object]


def backup(path: Path, dest: Path, *, beside: Callable[[], Into] | None = None) -> int:
    """Copy the database to ``dest`` as one file, with what the write-ahead
    log beside it holds folded into the copy; the size of the copy.

    The file and its log are copied under DuckDB's shared lock (a read-only
    open, as ``newsmon serve`` copies them): no writer appends to the log or
    folds it between the two copies, so they belong together. Copied one by
    one while a pass loads, the log may be of a later fold than the file,
    and DuckDB replays it onto that file all the same.

    ``beside``, called under that lock once the files are copied, reads what
    is kept beside the database and belongs in the copy (the send rounds'
    delivery journals: the emails they sent and have not marked yet), and
    returns what writes it into the copy, before the fold."""
    def log_of(file: Path) -> Path:
        return file.with_name(file.name + ".wal")

    if dest.exists() or log_of(dest).exists():
        raise StoreError(f"{dest} exists already; name a new file for the backup")
    if not dest.parent.is_dir():
        raise StoreError(f"{dest.parent}: no such folder for the backup")
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        with connect(path, read_only=True, schema_if_empty=False):
            shutil.copyfile(path, partial)
            if log_of(path).exists():
                shutil.copyfile(log_of(path), log_of(partial))
            into = beside() if beside is not None else None
        con = duckdb.connect(str(partial))  # replays the copied log ...
        try:
            if into is not None:
                into(con, dest)
            con.execute("CHECKPOINT")  # ... and folds it into the copy
        finally:
            con.close()
        partial.replace(dest)
    except (OSError, duckdb.Error) as exc:
        _discard(partial, log_of(partial))
        if isinstance(exc, OSError):
            # Named by the copy: shutil names the file it was reading from.
            raise (disk_full(dest) if exc.errno == errno.ENOSPC else StoreError(
                f"cannot write the backup {dest}: {exc.strerror or exc}")) from None
        raise explain(exc, dest) or StoreError(f"cannot write the backup {dest}: {exc}") from None
    except BaseException:
        _discard(partial, log_of(partial))
        raise
    return dest.stat().st_size


def _discard(*files: Path) -> None:
    """Remove what a failed write left, as far as it can be: on a read-only
    file system even removing a file that is not there fails (EROFS), and
    that must not replace the error that says why the write failed."""
    for file in files:
        with contextlib.suppress(OSError):
            file.unlink(missing_ok=True)


def _holds_our_schema(con: duckdb.DuckDBPyConnection, path: Path) -> bool:
    """True when the database has newsmon's tables, False when it has no table
    at all; a database of another program (tables, but no ``meta``) is refused
    before anything is written to it."""
    tables = {row[0] for row in con.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_catalog = current_database() AND table_schema = 'main'").fetchall()}
    if "meta" in tables or not tables:
        return bool(tables)
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    raise StoreError(f"{path} is not a newsmon database: it holds other tables ({shown}) "
                     "and not newsmon's; set `database:` to a new file, which newsmon creates")


def _refuse_a_newer_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """StoreError when a newer newsmon wrote the database: this one would read
    its tables as they were and write rows without what the newer one keeps
    in them (the schema is only ever brought forward, never back)."""
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    refuse_a_newer_schema(row[0] if row else None, str(path), "set `database:` to another file")


def refuse_a_newer_schema(version: object, where: str, instead: str) -> None:
    """StoreError when ``version`` (``meta.schema_version`` of ``where``) is
    newer than this newsmon's; ``instead``: what else the user may do."""
    try:
        newer = int(str(version)) > SCHEMA_VERSION
    except ValueError:
        newer = False
    if newer:
        raise StoreError(
            f"{where} was written by a newer newsmon (schema version {version}; this one "
            f"knows up to {SCHEMA_VERSION}): upgrade newsmon to use it, or {instead}; nothing"
            " was changed")


# Columns added to tables after their first release: a database created
# before them gets them here (CREATE TABLE IF NOT EXISTS leaves it as it was).
ADDED_COLUMNS = (
    "ALTER TABLE feeds ADD COLUMN IF NOT EXISTS fetch_url VARCHAR",
    "ALTER TABLE feeds ADD COLUMN IF NOT EXISTS origin VARCHAR DEFAULT 'config'",
    "ALTER TABLE feeds ADD COLUMN IF NOT EXISTS poll_interval_minutes DOUBLE",
    "ALTER TABLE feeds ADD COLUMN IF NOT EXISTS item_hashes VARCHAR",
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS claimed_by VARCHAR",
    "ALTER TABLE feeds ADD COLUMN IF NOT EXISTS paused_at TIMESTAMPTZ",  # newsmon feeds pause
    # The multilingual sentence embedding (pipeline/signal/embed.py); NULL for copies.
    "ALTER TABLE articles ADD COLUMN IF NOT EXISTS embedding FLOAT[]",
)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA)
    for statement in ADDED_COLUMNS:
        con.execute(statement)
    con.execute(
        "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
        [str(SCHEMA_VERSION)],
    )


# -- reads used by the poll stage ---------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedState:
    url: str
    status: str
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    error_count: int
    next_poll_at: datetime | None
    last_success_at: datetime | None
    name: str | None = None
    fetch_url: str | None = None
    poll_interval_minutes: float | None = None
    item_hashes: str | None = None


def feed_states(con: duckdb.DuckDBPyConnection) -> dict[str, FeedState]:
    rows = con.execute(
        "SELECT url, status, etag, last_modified, content_hash, error_count, next_poll_at,"
        " last_success_at, name, fetch_url, poll_interval_minutes, item_hashes FROM feeds"
    ).fetchall() if _has_table(con, "feeds") else []
    return {
        r[0]: FeedState(
            url=r[0], status=r[1], etag=r[2], last_modified=r[3], content_hash=r[4],
            error_count=r[5], next_poll_at=r[6], last_success_at=r[7], name=r[8],
            fetch_url=r[9], poll_interval_minutes=r[10], item_hashes=r[11],
        )
        for r in rows
    }


def feed_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, object]]:
    """Every row of ``feeds`` as a dict. ``SELECT *``: a read-only connection
    to a database made before a column was added still reads."""
    if not _has_table(con, "feeds"):
        return []
    cursor = con.execute("SELECT * FROM feeds ORDER BY url")
    columns = [d[0] for d in cursor.description or ()]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def added_feeds(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str | None]]:
    """(url, name) of the feeds added with ``newsmon feeds add`` / ``import``."""
    if not _has_table(con, "feeds"):
        return []
    rows = con.execute(
        "SELECT url, name FROM feeds WHERE origin = 'added' ORDER BY url"
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def seen_entries(
    con: duckdb.DuckDBPyConnection, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Seen]:
    """The (feed_url, id) pairs among ``pairs`` already delivered (any status),
    each with the link, title and date it was delivered with: a GUID a feed
    reuses names one article (:mod:`pipeline.sources.guids`).

    The pairs travel as one JSON string: DuckDB's Python binding costs about
    0.3 ms per bound value (it tries to import pandas for each one), so a
    list parameter of 200,000 ids would take a minute; the JSON string is
    parsed by DuckDB in a fraction of a second.
    """
    if not pairs or not _has_table(con, "entries"):
        return {}
    payload = json.dumps({"f": [f for f, _ in pairs], "i": [i for _, i in pairs]})
    rows = con.execute(
        """WITH c AS (
            SELECT DISTINCT unnest(j.f) AS feed_url, unnest(j.i) AS id
            FROM (SELECT from_json(?, '{"f": ["VARCHAR"], "i": ["VARCHAR"]}') AS j))
        SELECT e.feed_url, e.id, e.url, e.title, e.published_at
        FROM entries e JOIN c USING (feed_url, id)""",
        [payload],
    ).fetchall()
    return {(r[0], r[1]): Seen(r[2], r[3], r[4]) for r in rows}


def entries_to_retry(con: duckdb.DuckDBPyConnection, max_attempts: int) -> list[dict[str, object]]:
    """Entries whose page failed transiently and may be tried again."""
    if not _has_table(con, "entries"):
        return []
    rows = con.execute(
        "SELECT e.feed_url, e.id, e.url, e.title, e.published_at, e.attempts, f.name"
        " FROM entries e LEFT JOIN feeds f ON f.url = e.feed_url"
        " WHERE e.status = 'retry' AND e.attempts < ?",
        [max_attempts],
    ).fetchall()
    keys = ("feed_url", "id", "url", "title", "published_at", "attempts", "feed_name")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def has_story_statistics(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the database has what the clusterer stores (``term_stats``,
    ``story_state``, ``story_signatures`` and ``articles.embedding``): a database
    made before them and opened read-only
    (the cluster stage) does not, until the next load adds them."""
    # One statement (a catalog read costs a fresh connection ~10 ms, each).
    row = con.execute(
        "SELECT count(DISTINCT table_name) FROM information_schema.columns"
        " WHERE (table_name, column_name) IN (('articles', 'embedding'),"
        " ('term_stats', 'term'), ('story_state', 'story_id'),"
        " ('story_signatures', 'article_id'))").fetchone()
    return bool(row and row[0] == 4)


def has_run_shards(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the database records the shards of each load (``run_shards``):
    one made before it and opened read-only does not, until the next writer."""
    return _has_table(con, "run_shards")


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])


def insert_values(
    con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str],
    rows: Iterable[tuple[object, ...]], *, suffix: str = "",
) -> int:
    """Multi-row INSERT in chunks of 500 rows: DuckDB's ``executemany`` runs one
    statement per row (see benchmarks/load.py for the measured difference).

    Every value is still bound from Python, ~0.2 ms each (DuckDB's binding tries
    to import pandas per value): for more than a few hundred values, stage a
    JSON Lines file and let DuckDB read it (``pipeline.store.load``)."""
    n = 0
    placeholders = "(" + ", ".join("?" for _ in columns) + ")"
    for batch in batched(rows, 500):
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
            + ", ".join(placeholders for _ in batch)
            + (" " + suffix if suffix else "")
        )
        con.execute(sql, [v for row in batch for v in row])
        n += len(batch)
    return n
