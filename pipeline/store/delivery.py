"""Alert delivery state of a lake, in its catalog's PostgreSQL database.

In lake mode the load appends outbox rows to the lake's ``alerts`` table (in
its transaction, as in the file) and nobody writes them again: a lake commit
per "claimed" or "sent" aborts the loader's commits (issue 15 measured 0 of 51
loads committed in 30 s). The sender keeps each row's delivery state here
instead, in ``newsmon_delivery.deliveries``, keyed like the outbox; it copies
new keys from the lake (``ON CONFLICT DO NOTHING``), claims due rows with
``SELECT ... FOR UPDATE SKIP LOCKED`` (two senders never wait for, nor take,
each other's rows), delivers, and marks them, all in PostgreSQL.

Lake connections see both joined: :func:`state_view` makes the temp view
``alert_state`` (and ``alerts`` on read-only connections), the lake's rows with
this table's status, attempts, Message-ID and error.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import duckdb

from pipeline import store

log = logging.getLogger(__name__)

Key = tuple[str, str, str, int]  # rule, story_id, recipient, update_no
T = TypeVar("T")

SCHEMA = "newsmon_delivery"
TABLE = f"{SCHEMA}.deliveries"
# The alias DuckDB attaches the catalog database under, read-only, for the view.
PG_ALIAS = "newsmon_delivery_pg"

# Two senders starting at once would race CREATE TABLE IF NOT EXISTS (a
# unique violation in pg_type): the DDL runs under a transaction-level lock.
_DDL_LOCK = 0x6E6D_616C_6572  # "nmaler"
_DDL = f"""
SELECT pg_advisory_xact_lock({_DDL_LOCK});
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {TABLE} (
    rule             TEXT NOT NULL,
    story_id         TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    update_no        INTEGER NOT NULL,
    article_id       TEXT,
    status           TEXT NOT NULL DEFAULT 'pending',  -- pending | sending | sent | failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ,   -- pending: when due; sending: when the claim ends
    claimed_by       TEXT,
    sent_at          TIMESTAMPTZ,
    message_id       TEXT,
    error            TEXT,
    PRIMARY KEY (rule, story_id, recipient, update_no)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON {TABLE} (status, next_attempt_at);
"""

_WHERE_KEY = "rule = %s AND story_id = %s AND recipient = %s AND update_no = %s"
_STATE_COLUMNS = ("status", "attempts", "next_attempt_at", "claimed_by", "sent_at",
                  "message_id", "error")


@dataclass(frozen=True, slots=True, kw_only=True)
class Claimed:
    """An outbox row a sender's round holds."""

    key: Key
    article_id: str | None
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Reclaimed:
    """Rows a round took over from a sender whose lease ran out."""

    holder: str | None
    count: int


def connect(dsn: str) -> Any:
    """A psycopg2 connection to the catalog database, the delivery table made."""
    import psycopg2

    try:
        pg = psycopg2.connect(dsn, connect_timeout=10)
        pg.autocommit = True
        with pg.cursor() as cur:
            cur.execute("SELECT set_config('application_name', %s, false)",
                        [f"newsmon sender on {socket.gethostname()} (process {os.getpid()})"[:63]])
        pg.autocommit = False
    except psycopg2.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise store.StoreError(
            f"cannot reach the lake's catalog database for alert delivery ({dsn!r}: {first});"
            " check store.catalog and that PostgreSQL is running") from None
    with pg, pg.cursor() as cur:
        cur.execute(_DDL)
    return pg


class PgOutbox:
    """The sender's writes (claim, renew, marks) on the delivery table; every
    method is one PostgreSQL transaction. Given ``dsn``, a method whose
    session PostgreSQL cut off (a restart, a failover, an idle connection
    dropped while an email was on its way) runs once more on a new one: the
    round's marks and releases get through, rather than leave its rows
    ``sending`` until the lease ends and re-send the email just delivered.
    Each method can run twice: a claim whose answer was lost leaves those
    rows to the lease, as a sender that died would."""

    def __init__(self, pg: Any, dsn: str | None = None) -> None:
        self.pg = pg
        self.dsn = dsn

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        import psycopg2

        try:
            with self.pg, self.pg.cursor() as cur:
                yield cur
        except psycopg2.Error as exc:
            raise _unwritable(exc) from None

    def _run(self, work: Callable[[Any], T]) -> T:
        """``work`` in one transaction; once more on a new session when this
        one was cut off."""
        import psycopg2

        try:
            with self.pg, self.pg.cursor() as cur:
                return work(cur)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            if self.dsn is None or not self.pg.closed:
                raise _unwritable(exc) from None
            log.warning("the alert delivery table's session was cut off (%s); going on with "
                        "a new one", _first_line(exc))
        except psycopg2.Error as exc:
            raise _unwritable(exc) from None
        self.pg.close()
        self.pg = connect(self.dsn)
        with self._cursor() as cur:
            return work(cur)

    def now(self) -> datetime:
        """The catalog server's clock: every host's sender reads leases and
        due times against this one, so a host whose clock is off never takes
        a live sender's rows as a dead one's (nor holds its own too long)."""
        def work(cur: Any) -> datetime:
            cur.execute("SELECT clock_timestamp()")
            found: datetime = cur.fetchone()[0]
            return found.astimezone(UTC)  # in the session's TimeZone as it comes
        return self._run(work)

    def add(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Copy outbox rows (key, article_id, due) from the lake; keys already
        here are left alone. Returns how many were new."""
        from psycopg2.extras import execute_values

        if not rows:
            return 0

        def work(cur: Any) -> int:
            added = execute_values(cur, f"""INSERT INTO {TABLE}
                (rule, story_id, recipient, update_no, article_id, next_attempt_at)
                VALUES %s ON CONFLICT DO NOTHING RETURNING 1""", list(rows), page_size=500,
                                   fetch=True)
            return len(added)
        return self._run(work)

    def claim(self, now: datetime, until: datetime, token: str, *, ignore_backoff: bool,
              limit: int | None = None, digests: Sequence[str] = ()
              ) -> tuple[list[Claimed], list[Reclaimed]]:
        """The due rows (at most ``limit`` emails of them, the longest due
        first; a digest's rows for one recipient, one email, whole) for
        ``token`` until ``until``. The due rows are locked for this short
        transaction; those left unclaimed are free again at its commit."""
        def work(cur: Any) -> list[tuple[Any, ...]]:
            cur.execute(f"""
                WITH due AS (
                    SELECT rule, story_id, recipient, update_no, status AS was,
                        claimed_by AS held, next_attempt_at AS due_at,
                        CASE WHEN rule = ANY(%(digests)s) THEN '' ELSE story_id END AS e_story,
                        CASE WHEN rule = ANY(%(digests)s) THEN -1 ELSE update_no END AS e_no
                    FROM {TABLE}
                    WHERE (status = 'pending' AND (next_attempt_at IS NULL
                           OR next_attempt_at <= %(now)s OR (%(ignore)s AND error IS NOT NULL)))
                       OR (status = 'sending' AND next_attempt_at <= %(now)s)
                    FOR UPDATE SKIP LOCKED),
                dated AS (
                    SELECT *, min(due_at) OVER (PARTITION BY rule, recipient, e_story, e_no)
                        AS first_due FROM due),
                picked AS (
                    SELECT * FROM (
                        SELECT *, dense_rank() OVER (ORDER BY first_due NULLS FIRST, rule,
                                                     recipient, e_story, e_no) AS email
                        FROM dated) ranked
                    WHERE email <= %(limit)s)
                UPDATE {TABLE} d SET status = 'sending', claimed_by = %(token)s,
                    next_attempt_at = %(until)s
                FROM picked due WHERE (d.rule, d.story_id, d.recipient, d.update_no)
                             = (due.rule, due.story_id, due.recipient, due.update_no)
                RETURNING d.rule, d.story_id, d.recipient, d.update_no, d.article_id,
                          d.attempts, due.was, due.held""",
                        {"now": now, "until": until, "token": token, "ignore": ignore_backoff,
                         "digests": list(digests),
                         "limit": limit if limit is not None else 2**62})
            return list(cur.fetchall())
        rows = self._run(work)
        claimed = [Claimed(key=(r[0], r[1], r[2], r[3]), article_id=r[4], attempts=r[5])
                   for r in rows]
        stale: dict[str | None, int] = {}
        for r in rows:
            if r[6] == "sending":
                stale[r[7]] = stale.get(r[7], 0) + 1
        return claimed, [Reclaimed(holder=h, count=n) for h, n in stale.items()]

    def renew(self, token: str, until: datetime) -> set[Key]:
        """Extend this round's claim; returns the keys it still holds."""
        def work(cur: Any) -> set[Key]:
            cur.execute(f"UPDATE {TABLE} SET next_attempt_at = %s"
                        " WHERE status = 'sending' AND claimed_by = %s"
                        " RETURNING rule, story_id, recipient, update_no", [until, token])
            return {(r[0], r[1], r[2], r[3]) for r in cur.fetchall()}
        return self._run(work)

    def mark_sent(self, keys: Sequence[Key], message_id: str, sent_at: datetime) -> None:
        """Delivered is delivered, whoever holds the row now; a delivery
        already marked (its sent_at: the mark ran twice) is not counted again."""
        def work(cur: Any) -> None:
            for key in keys:
                cur.execute(f"UPDATE {TABLE} SET status = 'sent', sent_at = %s,"
                            f" message_id = %s, error = NULL, attempts = attempts + 1"
                            f" WHERE {_WHERE_KEY}"
                            " AND (status <> 'sent' OR sent_at IS DISTINCT FROM %s)",
                            [sent_at, message_id, *key, sent_at])
        self._run(work)

    def mark_failed(self, keys: Sequence[Key], token: str, *, status: str, error: str,
                    retry_at: datetime | None) -> None:
        def work(cur: Any) -> None:
            for key in keys:
                cur.execute(f"UPDATE {TABLE} SET status = %s, error = %s, next_attempt_at = %s,"
                            f" attempts = attempts + 1 WHERE {_WHERE_KEY}"
                            " AND status = 'sending' AND claimed_by = %s",
                            [status, error, retry_at, *key, token])
        self._run(work)

    def release(self, keys: Sequence[Key], token: str, *, error: str,
                retry_at: datetime) -> None:
        def work(cur: Any) -> None:
            for key in keys:
                cur.execute(f"UPDATE {TABLE} SET status = 'pending', next_attempt_at = %s,"
                            f" error = %s WHERE {_WHERE_KEY} AND status = 'sending'"
                            " AND claimed_by = %s", [retry_at, error, *key, token])
        self._run(work)

    def stuck(self, token: str) -> tuple[int, datetime] | None:
        def work(cur: Any) -> tuple[int, datetime] | None:
            cur.execute(f"SELECT count(*), max(next_attempt_at) FROM {TABLE}"
                        " WHERE status = 'sending' AND claimed_by = %s", [token])
            row = cur.fetchone()
            return (int(row[0]), row[1]) if row and row[0] else None
        return self._run(work)

    def waiting(self) -> dict[str, tuple[int, datetime | None]]:
        """{'pending' | 'sending': (rows, the earliest next_attempt_at)}."""
        def work(cur: Any) -> dict[str, tuple[int, datetime | None]]:
            cur.execute(f"SELECT status, count(*), min(next_attempt_at) FROM {TABLE}"
                        " WHERE status IN ('pending', 'sending') GROUP BY status")
            return {r[0]: (int(r[1]), r[2]) for r in cur.fetchall()}
        return self._run(work)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _unwritable(exc: BaseException) -> store.StoreError:
    return store.StoreError(
        f"cannot update the lake's alert delivery table {TABLE} ({_first_line(exc)}); check"
        " that the catalog's PostgreSQL is running and run the send again")


def lake_outbox_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """The lake's outbox rows as :meth:`PgOutbox.add` takes them."""
    return con.execute("SELECT rule, story_id, recipient, update_no, article_id,"
                       f" next_attempt_at FROM {_lake_alerts()}").fetchall()


def _lake_alerts() -> str:
    from pipeline.store.backend import LAKE_ALIAS

    return f"{LAKE_ALIAS}.main.alerts"


def state_view(con: duckdb.DuckDBPyConnection, dsn: str, *, as_alerts: bool) -> None:
    """Attach the catalog database read-only and make the temp view
    ``alert_state``: the lake's outbox rows with their delivery state (a row no
    sender has copied yet is pending, as the load wrote it). ``as_alerts``:
    also the temp view ``alerts`` over it, which hides the lake's table of that
    name (for connections that never write it: analysts, the sender)."""
    con.execute(f"ATTACH '{dsn.replace(chr(39), chr(39) * 2)}' AS {PG_ALIAS}"
                " (TYPE postgres, READ_ONLY)")
    picked = ", ".join(f"coalesce(d.{c}, a.{c}) AS {c}" if c in ("status", "attempts")
                       else f"CASE WHEN d.rule IS NULL THEN a.{c} ELSE d.{c} END AS {c}"
                       for c in _STATE_COLUMNS)
    con.execute(f"""CREATE OR REPLACE TEMP VIEW alert_state AS
        SELECT a.* REPLACE ({picked})
        FROM {_lake_alerts()} a LEFT JOIN {PG_ALIAS}.{TABLE} d
        USING (rule, story_id, recipient, update_no)""")
    if as_alerts:
        con.execute("CREATE OR REPLACE TEMP VIEW alerts AS SELECT * FROM alert_state")


def cancel_orphans(con: duckdb.DuckDBPyConnection, dsn: str, *, error: str) -> int:
    """Mark failed every pending or sending alert whose story is no longer in
    the lake (retention deleted it), with ``error``; returns how many. ``con``
    is a lake connection (its ``alert_state`` view); the writes are one
    PostgreSQL transaction. An outbox row no sender has copied yet is copied
    here as failed, so no sender picks it up later. A row a sender marked sent
    meanwhile stays sent. Running it again finds nothing more."""
    rows = con.execute(
        "SELECT DISTINCT ON (rule, story_id, recipient, update_no)"
        " rule, story_id, recipient, update_no, article_id FROM alert_state"
        " WHERE status IN ('pending', 'sending')"
        " AND story_id NOT IN (SELECT id FROM stories)").fetchall()
    if not rows:
        return 0
    from psycopg2.extras import execute_values

    pg = connect(dsn)
    try:
        with PgOutbox(pg)._cursor() as cur:
            done = execute_values(cur, f"""INSERT INTO {TABLE} AS d
                (rule, story_id, recipient, update_no, article_id, status, error)
                VALUES %s
                ON CONFLICT (rule, story_id, recipient, update_no) DO UPDATE
                SET status = 'failed', error = excluded.error, next_attempt_at = NULL
                WHERE d.status IN ('pending', 'sending') RETURNING 1""",
                [(*r, error) for r in rows], template="(%s, %s, %s, %s, %s, 'failed', %s)",
                page_size=500, fetch=True)
    finally:
        pg.close()
    return len(done)
