"""Where the tables live: one interface, two implementations.

``file`` (the default) is the DuckDB file at ``settings.database``, exactly as
:mod:`pipeline.store` opens it. ``lake`` (:mod:`pipeline.store.lake`) is a
DuckLake: its catalog in PostgreSQL, its data files on S3 or a shared path, so
any task can run on any host. Both hand out a plain DuckDB connection whose
unqualified table names are the documented tables; the stages do not know
which one they got, except for writes, which go through :func:`upsert`:
DuckLake has no primary keys, so no ``ON CONFLICT``, and a lake is written
with ``MERGE INTO`` instead (serialized across hosts by the lake's writer lock).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from typing import TYPE_CHECKING, Protocol

import duckdb

from pipeline import store

if TYPE_CHECKING:
    from pipeline.config import Settings


class Backend(Protocol):
    """What the stages need from the place the tables live."""

    def exists(self) -> bool:
        """Whether there is a database yet (a read-only connection needs one)."""
        ...

    def connect(self, *, read_only: bool = False, schema_if_empty: bool = True,
                brief: bool = False) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A connection; a writing one creates the schema if needed (a reading
        one too, on an empty file, unless ``schema_if_empty`` is False: the
        user's read-only commands never write). ``brief``: as :meth:`writer`'s
        (a file held read-write blocks readers too; a lake's readers never wait)."""
        ...

    def writer(self, *, checkpoint: bool = True, brief: bool = False, waited: float = 0.0
               ) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A connection for the single writer: held by one process on any host
        at a time (the load, feeds changes, maintenance). ``checkpoint=False``:
        a load with another behind it leaves its commit in the file's
        write-ahead log (:func:`pipeline.store.connect`). ``brief``: wait for
        the lock about 0.3 s (:data:`pipeline.store.SHORT_RETRY`), not ~18 s:
        a load tried again between two polls; ``waited``: the seconds its
        caller has asked so far, for the message."""
        ...

    def writer_wait(self) -> float:
        """How long ``writer()`` waits for the lock before it gives up."""
        ...

    def probe_room(self, need: int) -> None:
        """:class:`pipeline.store.DiskFull` unless a load writing about
        ``need`` bytes has room now; a load tried again after a full disk
        asks before it plans."""
        ...

    def checkpoint(self) -> None:
        """Fold what writers left in a write-ahead log into the store."""
        ...

    def lock(self) -> AbstractContextManager[object]:
        """The writer lock alone, without a connection."""
        ...

    def describe(self) -> str:
        """Where the tables are, for messages."""
        ...


class FileBackend:
    """The DuckDB file: DuckDB's own file lock makes its writer single."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.database

    def exists(self) -> bool:
        store.refuse_an_odd_path(self.path)  # not "no database here yet"
        return self.path.exists()

    def connect(self, *, read_only: bool = False, schema_if_empty: bool = True,
                brief: bool = False) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return store.connect(self.path, read_only=read_only, schema_if_empty=schema_if_empty,
                             retry=store.SHORT_RETRY if brief else None)

    def writer(self, *, checkpoint: bool = True, brief: bool = False, waited: float = 0.0
               ) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        del waited  # the file's message names the holder, not the wait
        return store.connect(self.path, checkpoint=checkpoint,
                             retry=store.SHORT_RETRY if brief else None)

    def writer_wait(self) -> float:
        return store.LockRetry().patience

    def probe_room(self, need: int) -> None:
        store.probe_room(self.path.parent, need + store.ROOM_MARGIN)

    def checkpoint(self) -> None:
        # No log, or an empty one: nothing to fold, and no writer to open (a
        # continuous run's send rounds ask after each round, mostly for nothing).
        try:
            logged = self.path.with_name(self.path.name + ".wal").stat().st_size > 0
        except FileNotFoundError:
            logged = False
        if logged and self.path.exists():
            store.checkpoint(self.path)

    def lock(self) -> AbstractContextManager[object]:
        return nullcontext()  # the connection holds DuckDB's lock on the file

    def describe(self) -> str:
        return str(self.path)


def backend(settings: Settings) -> Backend:
    """The backend ``settings.store.mode`` names."""
    if settings.store.mode == "lake":
        from pipeline.store.lake import LakeBackend  # the extensions load only when used

        return LakeBackend(settings)
    return FileBackend(settings)


@contextmanager
def open_store(settings: Settings, *, read_only: bool | None = None,
               schema_if_empty: bool = True, brief: bool = False
               ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the configured store. ``read_only=None``: read-only when
    the store exists, else a writing connection that creates it (the poll and
    cluster stages on a first run)."""
    chosen = backend(settings)
    if read_only is None:
        read_only = chosen.exists()
    with chosen.connect(read_only=read_only, schema_if_empty=schema_if_empty,
                        brief=brief) as con:
        yield con


# The alias a lake is attached under (pipeline.store.lake); a name no DuckDB
# file gets by accident, so the dialect is known from the connection itself.
LAKE_ALIAS = "newsmon_lake"


def is_lake(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT current_database()").fetchone()
    return bool(row and row[0] == LAKE_ALIAS)


# The row of ``meta`` every write transaction of a lake updates (:func:`fence`).
FENCE_KEY = "writer_fence"


def fence(con: duckdb.DuckDBPyConnection) -> None:
    """In a lake, make this write transaction conflict with any other that
    overlaps it: both update one row, and DuckLake refuses the second commit
    ("Transaction conflict", :func:`pipeline.store.explain`). The writer lock
    keeps writers apart, but it is a PostgreSQL session of its own: when that
    session is cut off mid-load, another host takes the lock, and two
    ``MERGE INTO``s that each saw no article would both insert it (DuckLake
    commits two inserts into one table side by side). Nothing in a file."""
    if is_lake(con):
        con.execute("UPDATE meta SET value = uuid()::VARCHAR WHERE key = ?", [FENCE_KEY])


@contextmanager
def fenced(con: duckdb.DuckDBPyConnection, where: str) -> Iterator[None]:
    """One write transaction around the block, with :func:`fence`: in a lake, of
    two overlapping writers the second to commit commits nothing and says so
    in one sentence (``where``: the store, for the sentence). Every write to
    a lake's tables goes through one (a load, retention, every feeds change)."""
    con.execute("BEGIN TRANSACTION")
    try:
        fence(con)
        yield
        con.execute("COMMIT")
    except BaseException as exc:
        # A COMMIT that failed has ended the transaction already.
        with suppress(duckdb.Error):
            con.execute("ROLLBACK")
        sentence = store.explain(exc, where) if isinstance(exc, Exception) else None
        if sentence is None or sentence is exc:
            raise
        raise sentence from exc


def upsert(
    con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str], select: str, *,
    key: Sequence[str], update: str | None = None, where: str | None = None,
    params: Sequence[object] = (), count: bool = False,
) -> int:
    """Insert the rows of ``select`` (its columns in the order of ``columns``)
    into ``table``; a row whose ``key`` is stored already is updated with
    ``update`` (a SET list that names the new row ``excluded`` and the stored
    one by the table's name), when ``where`` holds, or left alone when there is
    no ``update``. Returns how many rows were written when ``count`` is set.

    The file: ``INSERT ... ON CONFLICT``. A lake: ``MERGE INTO``, the source
    first made one row per key (``ON CONFLICT`` refuses a key twice in one
    statement; a merge would insert both)."""
    names = ", ".join(columns)
    if not is_lake(con):
        action = (f"DO UPDATE SET {update}" + (f" WHERE {where}" if where else "")
                  if update else "DO NOTHING")
        sql = (f"INSERT INTO {table} ({names}) {select} ON CONFLICT ({', '.join(key)}) {action}"
               + (" RETURNING 1" if count else ""))
        rows = con.execute(sql, list(params)).fetchall()
        return len(rows) if count else 0
    match = " AND ".join(f"{table}.{k} = excluded.{k}" for k in key)
    when_matched = (f" WHEN MATCHED{f' AND ({where})' if where else ''} THEN UPDATE SET {update}"
                    if update else "")
    sql = (f"MERGE INTO {table} USING (SELECT DISTINCT ON ({', '.join(key)}) * FROM ({select})"
           f" AS s({names})) AS excluded ON {match}{when_matched}"
           f" WHEN NOT MATCHED THEN INSERT ({names})"
           f" VALUES ({', '.join(f'excluded.{c}' for c in columns)})")
    row = con.execute(sql, list(params)).fetchone()
    return int(row[0]) if count and row else 0
