"""The lake: DuckLake with its catalog in PostgreSQL and its data files on S3
(or a folder every host mounts), for when one machine is not enough.

Every connection is an in-memory DuckDB that attaches the lake as
``newsmon_lake`` and makes it the default database, so the documented tables
keep their names; temp tables (the load's staging) stay in the process.

The extensions come from the pip wheels ``duckdb-extension-ducklake``,
``-postgres-scanner`` and ``-httpfs`` and are loaded from their files: loading
them by name would try to download them.

The writer is single across hosts: :meth:`LakeBackend.writer` holds a
PostgreSQL advisory lock on the catalog database for as long as the
connection is open. DuckLake's optimistic commits would otherwise let two
loads both insert an article neither saw stored (DuckLake has no primary keys).

Secrets come from the environment: the catalog's password from ``PGPASSWORD``
(or ``~/.pgpass``), as libpq reads it; the S3 keys from ``AWS_ACCESS_KEY_ID``
and ``AWS_SECRET_ACCESS_KEY``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from pipeline import store
from pipeline.store import delivery
from pipeline.store.backend import FENCE_KEY, LAKE_ALIAS, fence, upsert

if TYPE_CHECKING:
    from pipeline.config import S3Config, Settings

log = logging.getLogger(__name__)

_EXTENSIONS = ("ducklake", "postgres_scanner", "httpfs")

# pg_advisory_lock's key: the lake's single writer ("newsmon" in ASCII).
WRITER_LOCK = 0x6E6577736D6F6E
# How long a writer waits for another host's load before it says so.
LOCK_WAIT_SECONDS = 600.0
BRIEF_LOCK_WAIT_SECONDS = 1.0
# TCP keepalive of the lock's session, asked of the server (seconds: idle,
# between probes, probes): a host that vanishes (power, kernel panic, a
# network partition) sends no FIN, and with the kernel's defaults (7200, 75, 9)
# PostgreSQL kept its lock for 2 h 11 min, every load waiting and failing.
LOCK_KEEPALIVE = (30, 10, 3)


def extension_file(name: str) -> Path:
    """The extension file inside the pip wheel ``duckdb-extension-<name>``."""
    module = f"duckdb_extension_{name}"
    spec = importlib.util.find_spec(module)
    folders = list(spec.submodule_search_locations or ()) if spec else []
    for folder in folders:
        for found in sorted(Path(folder).glob(f"extensions/*/{name}.duckdb_extension")):
            return found
    raise store.StoreError(
        f"the DuckDB extension {name} is not installed: lake mode needs the lake extra "
        "(pip install 'newsmon[lake]')")


def _quoted(value: str) -> str:
    return value.replace("'", "''")


def lake_schema() -> str:
    """The documented tables for a lake: the file's schema without its primary
    keys (DuckLake has none; :func:`pipeline.store.backend.upsert` keeps keys
    unique by merging)."""
    # ",  -- a comment\n    PRIMARY KEY (a, b)": the comma goes, the comment stays
    sql = re.sub(r",([ \t]*(?:--[^\n]*)?\n)\s*PRIMARY KEY \([^)]*\)", r"\1", store.SCHEMA)
    return sql.replace(" PRIMARY KEY", "")


def s3_secret(con: duckdb.DuckDBPyConnection, s3: S3Config) -> None:
    """DuckDB's S3 secret from the environment's keys and the config's endpoint."""
    options = [f"REGION '{_quoted(s3.region)}'", f"URL_STYLE '{s3.url_style}'",
               f"USE_SSL {'true' if s3.use_ssl else 'false'}"]
    if s3.endpoint:
        options.append(f"ENDPOINT '{_quoted(s3.endpoint)}'")
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        options += [f"KEY_ID '{_quoted(key)}'", f"SECRET '{_quoted(secret)}'"]
    else:
        options.append("PROVIDER credential_chain")
    con.execute(f"CREATE OR REPLACE SECRET newsmon_s3 (TYPE s3, {', '.join(options)})")


class LakeBackend:
    def __init__(self, settings: Settings) -> None:
        config = settings.store
        assert config.catalog is not None and config.data_path is not None  # validated
        self.catalog = config.catalog
        self.data_path = config.data_path
        self.s3 = config.s3
        self._delivery_ready = False  # the delivery table is known to exist
        self._lock_held: Any = None  # the writer lock's session while held (writer_lock)

    def describe(self) -> str:
        return f"the lake (catalog {self.catalog!r})"

    # -- the catalog database itself (psycopg2) ------------------------------------------

    def _pg(self) -> Any:
        import psycopg2

        try:
            return psycopg2.connect(self.catalog, connect_timeout=10)
        except psycopg2.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise store.StoreError(
                f"cannot reach the lake's catalog database ({self.catalog!r}: {first}); "
                "check store.catalog and that PostgreSQL is running (password: PGPASSWORD)"
            ) from None

    def exists(self) -> bool:
        pg = self._pg()
        try:
            with pg.cursor() as cur:
                cur.execute("SELECT to_regclass('ducklake_table') IS NOT NULL")
                if not cur.fetchone()[0]:
                    return False
                cur.execute("SELECT count(*) FROM ducklake_table"
                            " WHERE table_name = 'runs' AND end_snapshot IS NULL")
                return bool(cur.fetchone()[0])
        finally:
            pg.close()

    @contextmanager
    def writer_lock(self, wait: float = LOCK_WAIT_SECONDS, *, announce: bool = True,
                    said: float | None = None) -> Iterator[None]:
        """Hold the lake's writer lock (a PostgreSQL advisory lock of this
        session: released when the session ends, even if the process dies).
        ``announce`` False: no "waiting for it" warning (the caller says what
        failed, once). ``said``: the wait the error names (a caller's probes
        over that long), ``wait`` by default."""
        import psycopg2

        pg = self.lock_session()
        held = self._lock_held
        try:
            with pg.cursor() as cur:
                cur.execute(f"SET lock_timeout = '{int(wait * 1000)}ms'")
                cur.execute("SELECT pg_try_advisory_lock(%s)", [WRITER_LOCK])
                if not cur.fetchone()[0]:
                    if announce:
                        log.warning("another host holds the lake's writer lock (a load, a "
                                    "feeds change or maintenance); waiting for it (up to %.0f s)",
                                    wait)
                    try:
                        cur.execute("SELECT pg_advisory_lock(%s)", [WRITER_LOCK])
                    except psycopg2.errors.LockNotAvailable:
                        raise store.DatabaseLocked(
                            "another host has held the lake's writer lock for over "
                            f"{wait if said is None else said:.0f}"
                            f" s (a load, a feeds change or maintenance){_holder(cur)}; let it "
                            "finish, or end the stuck process, and run again") from None
            self._lock_held = pg
            yield
        finally:
            self._lock_held = held
            pg.close()  # ends the session: the lock goes with it

    def holds_lock(self) -> bool:
        """Whether this backend's writer lock is still held: its session still
        answers and holds the lock (PostgreSQL may have ended it meanwhile: a
        restart, a failover, a firewall, ``pg_terminate_backend``)."""
        import psycopg2

        pg = self._lock_held
        if pg is None:
            return False
        try:
            with pg.cursor() as cur:
                cur.execute("""SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
                    AND granted AND pid = pg_backend_pid() AND objsubid = 1
                    AND classid = %s AND objid = %s""",
                            [WRITER_LOCK >> 32, WRITER_LOCK & 0xFFFFFFFF])
                return bool(cur.fetchone()[0])
        except psycopg2.Error:
            return False

    def lock_session(self) -> Any:
        """A session for the writer lock (autocommit): named after this host
        and process in ``pg_stat_activity``, and probed by the server every
        few seconds once idle, so the lock of a host that vanished goes within
        about a minute (:data:`LOCK_KEEPALIVE`; a process that dies closes its
        connection, and the lock goes at once)."""
        pg = self._pg()
        pg.autocommit = True
        idle, interval, count = LOCK_KEEPALIVE
        with pg.cursor() as cur:
            cur.execute("SELECT set_config('application_name', %s, false)",
                        [f"newsmon writer on {socket.gethostname()} (process {os.getpid()})"[:63]])
            cur.execute(f"SET tcp_keepalives_idle = {idle}; SET tcp_keepalives_interval"
                        f" = {interval}; SET tcp_keepalives_count = {count}")
        return pg

    def lock(self) -> AbstractContextManager[object]:
        return self.writer_lock()

    # -- DuckDB connections ----------------------------------------------------------------

    def _open(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            for name in _EXTENSIONS:
                con.execute(f"LOAD '{_quoted(str(extension_file(name)))}'")
            if self.data_path.startswith("s3://"):
                s3_secret(con, self.s3)
            options = [f"DATA_PATH '{_quoted(self.data_path)}'"]
            if read_only:
                options.append("READ_ONLY")
            con.execute(f"ATTACH 'ducklake:postgres:{_quoted(self.catalog)}' AS {LAKE_ALIAS}"
                        f" ({', '.join(options)})")
            con.execute(f"USE {LAKE_ALIAS}")
        except duckdb.Error as exc:
            con.close()
            raise store.StoreError(
                f"cannot open the lake ({str(exc).splitlines()[0]}); check store.catalog, "
                "store.data_path and the S3 settings and keys") from None
        except BaseException:
            con.close()
            raise
        return con

    @contextmanager
    def _connection(self, *, read_only: bool, writer: bool = False
                    ) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self._open(read_only=read_only)
        try:
            if writer:
                try:
                    ensure_schema(con, self.describe())
                except duckdb.Error as exc:  # one sentence (a lost catalog session, ...)
                    explained = store.explain(exc, self.describe())
                    if explained is None:
                        raise
                    raise explained from exc
            # Delivery state lives in PostgreSQL (pipeline.store.delivery): a
            # connection that never writes the lake's outbox reads ``alerts``
            # with it; the writer's load reads it as ``alert_state``.
            if not self._delivery_ready:
                delivery.connect(self.catalog).close()
                self._delivery_ready = True
            delivery.state_view(con, self.catalog, as_alerts=not writer)
            yield con
        finally:
            con.close()

    def connect(self, *, read_only: bool = False, schema_if_empty: bool = True,
                brief: bool = False) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        # schema_if_empty: a lake has no empty-file case (no lake yet is refused below).
        # brief: a lake's readers take no lock.
        if read_only:
            if not self.exists():
                raise store.StoreError(
                    f"{self.describe()}: no lake here yet; run `newsmon run --once` first")
            return self._connection(read_only=True)
        # The schema under the lock, then a connection without it: a stage that
        # only reads (the poll on a first run) must not hold the loads up.
        # Writes go through writer().
        if not self.exists():
            with self.writer():
                pass
        return self._connection(read_only=False)

    @contextmanager
    def writer(self, *, checkpoint: bool = True, brief: bool = False, waited: float = 0.0
               ) -> Iterator[duckdb.DuckDBPyConnection]:
        # checkpoint: a lake commits its data files and catalog rows at each
        # commit; there is no write-ahead log to leave. brief: a load tried
        # again between two polls waits for the lock a second, not 10 minutes.
        del checkpoint
        lock = (self.writer_lock(BRIEF_LOCK_WAIT_SECONDS, announce=False,
                                 said=max(waited, BRIEF_LOCK_WAIT_SECONDS)) if brief
                else self.writer_lock())
        with lock, self._connection(read_only=False, writer=True) as con:
            yield con

    def writer_wait(self) -> float:
        return LOCK_WAIT_SECONDS

    def probe_room(self, need: int) -> None:
        pass  # the lake's files go to object storage, its catalog to PostgreSQL

    def checkpoint(self) -> None:
        pass  # nothing is left in a log (writer)


def _holder(cur: Any) -> str:
    """Who holds the writer lock, as PostgreSQL sees it: ", held by newsmon
    writer on HOST (process N) since ..., catalog session P (...)"; empty when
    it cannot say (it went meanwhile, or this role may not see it)."""
    cur.execute("""SELECT a.pid, a.application_name, a.client_addr, a.backend_start
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = %s AND l.objid = %s""", [WRITER_LOCK >> 32, WRITER_LOCK & 0xFFFFFFFF])
    row = cur.fetchone()
    if row is None:
        return ""
    pid, name, address, since = row
    who = name or "a session"
    if address:
        who += f" from {address}"
    when = f" since {since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if since else ""
    return (f", held by {who}{when}, catalog session {pid} (if that host is gone, end it: "
            f"SELECT pg_terminate_backend({pid}))")


def ensure_schema(con: duckdb.DuckDBPyConnection, where: str = "the lake") -> None:
    """Create the documented tables in the lake, or add the columns added since
    (no-ops on a lake that has them, which commit nothing); StoreError, and
    nothing written, when a newer newsmon wrote it (its schema version was
    written back over, before).

    One DuckLake transaction, all or nothing: a creator cut off midway leaves
    no half-made lake (each table was a commit of its own, and a lake with
    ``runs`` but no ``meta`` rows counted as made). Of two creators at once
    (the writer lock keeps them apart, unless its session was cut off), the
    second one's commit conflicts with the first's tables (or its fence row):
    it commits nothing, finds the lake made, and goes on with it."""
    for attempt in range(2):
        if _schema_current(con, where):
            return
        try:
            _create_schema(con)
            return
        except duckdb.TransactionException as exc:
            # DatabaseLocked: DuckLake's "Transaction conflict" (store.explain)
            if attempt or not isinstance(store.explain(exc, where), store.DatabaseLocked):
                raise
            log.info("another writer made the lake's schema meanwhile; using it")


def _schema_current(con: duckdb.DuckDBPyConnection, where: str) -> bool:
    """Whether the lake has this newsmon's schema whole (StoreError when a
    newer newsmon wrote it)."""
    row = con.execute(
        "SELECT count(DISTINCT table_name) FROM duckdb_columns()"
        " WHERE database_name = current_database()"
        " AND (table_name, column_name) IN (('articles', 'embedding'), ('run_shards', 'shard'))"
    ).fetchone()
    if not (row and row[0] == 2):
        return False
    version = _version(con)
    if version == str(store.SCHEMA_VERSION) and _fenced(con):
        return True  # the last column and table added and the fence row: nothing to do
    store.refuse_a_newer_schema(version, where, "point store.catalog at another lake")
    return False


def _create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """The tables, the added columns and the ``meta`` rows in one transaction,
    fenced when the lake has its fence row already (an upgrade)."""
    con.execute("BEGIN TRANSACTION")
    try:
        if _has_meta(con) and _fenced(con):
            fence(con)
        con.execute(lake_schema())
        for statement in store.ADDED_COLUMNS:
            con.execute(statement)
        upsert(con, "meta", ("key", "value"), "SELECT 'schema_version', ?", key=("key",),
               params=[str(store.SCHEMA_VERSION)])
        # The row every write transaction updates (backend.fence): made here,
        # with the tables, so there is one.
        upsert(con, "meta", ("key", "value"), "SELECT ?, ''", key=("key",), params=[FENCE_KEY])
        con.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):  # a COMMIT that failed has ended it already
            con.execute("ROLLBACK")
        raise


def _has_meta(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name ="
                      " current_database() AND table_name = 'meta'").fetchone()
    return bool(row and row[0])


def _fenced(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT count(*) FROM meta WHERE key = ?", [FENCE_KEY]).fetchone()
    return bool(row and row[0])


def _version(con: duckdb.DuckDBPyConnection) -> str | None:
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return str(row[0]) if row else None


# -- maintenance ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Compaction:
    files_before: int  # live data files before
    files_after: int
    snapshots_expired: int
    files_deleted: int  # files of expired snapshots removed from the data path
    orphans_deleted: int = 0  # files no snapshot references (a load that failed) removed


def _live_files(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(f"SELECT count(*) FROM __ducklake_metadata_{LAKE_ALIAS}.ducklake_data_file"
                      " WHERE end_snapshot IS NULL").fetchone()
    return int(row[0]) if row else 0


# A data file no snapshot references is an orphan once it is this old: a
# load that failed after writing its Parquet files (its catalog session cut
# off, the process killed) left it. A load in flight, whose files are not
# committed yet, takes minutes, not a day (even one whose lock was cut off).
ORPHAN_AGE = timedelta(days=1)


def _delete_orphans(con: duckdb.DuckDBPyConnection, before: datetime) -> int:
    """Delete the files under the data path that no snapshot references and
    that were last written before ``before`` (``ducklake_delete_orphaned_files``);
    how many. DuckLake compares paths as strings: should one of them name a
    file the catalog lists (the data path spelled otherwise than the lake
    recorded it), it deletes nothing and says so."""
    listed = con.execute(f"CALL ducklake_delete_orphaned_files('{LAKE_ALIAS}', older_than => ?,"
                         " dry_run => true)", [before]).fetchall()
    if not listed:
        return 0
    metadata = f"__ducklake_metadata_{LAKE_ALIAS}"
    known = {name for (name,) in con.execute(
        f"SELECT path FROM {metadata}.ducklake_data_file UNION ALL"
        f" SELECT path FROM {metadata}.ducklake_delete_file").fetchall()}
    used = sorted(path for (path,) in listed if path.rsplit("/", 1)[-1] in
                  {name.rsplit("/", 1)[-1] for name in known})
    if used:
        raise store.StoreError(
            f"the lake's data files were not cleaned: DuckLake took {used[0]}, a file the "
            "catalog lists, for an orphan (is store.data_path spelled otherwise than when the "
            "lake was made?); nothing was deleted")
    deleted = con.execute(f"CALL ducklake_delete_orphaned_files('{LAKE_ALIAS}', older_than => ?)",
                          [before]).fetchall()
    return len(deleted)


def compact(con: duckdb.DuckDBPyConnection, *, now: datetime, keep: timedelta,
            before_step: Callable[[str], None] | None = None) -> Compaction:
    """Merge each table's small data files (every load adds a few), expire the
    snapshots older than ``keep`` (time travel reaches back that far), delete
    the files only they used, and the files no snapshot references that are
    older than :data:`ORPHAN_AGE` (a failed load's). Each step is a DuckLake
    commit of its own (DuckLake refuses a compaction and a change in one
    transaction, so the fence row cannot share one): ``before_step`` is
    called with the step's name before each, and stops the compaction by
    raising. Run it through :func:`compact_lake`, which holds the writer lock
    and checks it before each step."""
    def step(name: str) -> None:
        if before_step is not None:
            before_step(name)

    before = _live_files(con)
    step("merging the small data files")
    con.execute(f"CALL ducklake_merge_adjacent_files('{LAKE_ALIAS}')").fetchall()
    step("expiring the old snapshots")
    expired = con.execute(f"CALL ducklake_expire_snapshots('{LAKE_ALIAS}', older_than => ?)",
                          [now - keep]).fetchall()
    step("deleting the files of expired snapshots")
    deleted = con.execute(f"CALL ducklake_cleanup_old_files('{LAKE_ALIAS}', older_than => ?)",
                          [now]).fetchall()
    step("deleting the orphaned files")
    orphans = _delete_orphans(con, now - ORPHAN_AGE)
    result = Compaction(files_before=before, files_after=_live_files(con),
                        snapshots_expired=len(expired), files_deleted=len(deleted),
                        orphans_deleted=orphans)
    log.info("compacted the lake", extra={"files_before": result.files_before,
                                          "files_after": result.files_after,
                                          "snapshots_expired": result.snapshots_expired,
                                          "files_deleted": result.files_deleted,
                                          "orphans_deleted": result.orphans_deleted})
    return result


def compact_lake(lake: LakeBackend, *, now: datetime, keep: timedelta) -> Compaction:
    """:func:`compact` as a writer, fenced like a load: what `newsmon compact`
    and the maintenance DAG's ``checkpoint`` task run. Under the writer lock,
    it first commits a fence value of its own (:func:`pipeline.store.backend.fenced`:
    a writer whose transaction overlaps that commit, its lock cut off, commits
    nothing and says so); before each step it checks that the lock's session
    still holds the lock and that the fence row still holds its value (no
    writer committed since), and stops with one sentence when not. Every step
    is one DuckLake commit, so what stopped is whole: the steps done, none
    begun after; run again, it finishes."""
    from pipeline.store.backend import fenced

    with lake.writer() as con:
        token = uuid.uuid4().hex
        with fenced(con, lake.describe()):
            con.execute("UPDATE meta SET value = ? WHERE key = ?", [token, FENCE_KEY])

        def still_the_writer(step: str) -> None:
            if not lake.holds_lock():
                raise store.DatabaseLocked(
                    "the PostgreSQL session that held this host's writer lock was cut off "
                    f"while the lake was compacted; compaction stopped before {step}, each "
                    "step before it whole (nothing is lost): run it again")
            rows = con.execute("SELECT value FROM meta WHERE key = ?", [FENCE_KEY]).fetchall()
            if rows != [(token,)]:
                raise store.DatabaseLocked(
                    "another writer committed to the lake while it was compacted (the "
                    "PostgreSQL session that held this host's writer lock was cut off "
                    "meanwhile, or a program other than newsmon wrote the lake); compaction "
                    f"stopped before {step}, each step before it whole (nothing is lost): "
                    "run it again")

        try:
            return compact(con, now=now, keep=keep, before_step=still_the_writer)
        except duckdb.Error as exc:
            explained = store.explain(exc, lake.describe())
            if explained is None:
                raise
            raise explained from exc


@contextmanager
def scratch_catalog(server: str, prefix: str = "newsmon_scratch") -> Iterator[str]:
    """A new, empty catalog database on the PostgreSQL server that ``server``
    (a libpq DSN of a database there, e.g. ``dbname=postgres host=...``)
    reaches, named uniquely; yields its DSN and drops it after. For tests,
    benchmarks and trying lake mode out."""
    import psycopg2

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(server, connect_timeout=10)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        dsn = " ".join(part for part in server.split() if not part.startswith("dbname="))
        yield f"dbname={name} {dsn}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
