"""Maintenance: feed health, retention, checkpoint, stale staging folders.

Small functions over an open connection (or the staging folder), run daily by
``dags/news_maintenance.py`` and usable from a Python shell. Each is safe to
run twice: a second run finds nothing more to report or delete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from pipeline.store.backend import fence

if TYPE_CHECKING:
    from pipeline.store.lake import LakeBackend

log = logging.getLogger(__name__)


# -- feed health ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedProblem:
    url: str
    name: str | None
    status: str
    error_count: int
    last_error: str | None
    last_success_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedHealthSummary:
    """All feeds counted by status (one feed's line of ``newsmon feeds`` is
    :class:`pipeline.sources.feeds.FeedHealth`): ``dead`` are retired (the server
    said 410 Gone), ``failing`` have failed repeatedly and are polled less and
    less often (see pipeline.sources.poll)."""

    total: int
    active: int
    failing: tuple[FeedProblem, ...]
    dead: tuple[FeedProblem, ...]

    def counts(self) -> dict[str, int]:
        return {
            "total": self.total,
            "active": self.active,
            "failing": len(self.failing),
            "dead": len(self.dead),
        }


def feed_health(con: duckdb.DuckDBPyConnection) -> FeedHealthSummary:
    """Summarise the ``feeds`` table and log every feed that needs a look."""
    rows = con.execute(
        "SELECT url, name, status, error_count, last_error, last_success_at FROM feeds"
        " ORDER BY status, url"
    ).fetchall()
    problems = [
        FeedProblem(
            url=r[0],
            name=r[1],
            status=r[2],
            error_count=int(r[3]),
            last_error=r[4],
            last_success_at=r[5],
        )
        for r in rows
        if r[2] != "active"
    ]
    health = FeedHealthSummary(
        total=len(rows),
        active=sum(1 for r in rows if r[2] == "active"),
        failing=tuple(p for p in problems if p.status == "failing"),
        dead=tuple(p for p in problems if p.status == "retired"),
    )
    for p in problems:
        log.warning(
            "feed %s is %s: %s (%d errors, last success %s)",
            p.url,
            p.status,
            p.last_error or "no error recorded",
            p.error_count,
            p.last_success_at.isoformat() if p.last_success_at else "never",
        )
    log.info("feed health: %s", health.counts())
    return health


# -- retention -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionResult:
    cutoff: datetime
    articles: int
    article_tags: int
    removed_lines: int
    stories_deleted: int
    stories_updated: int
    alerts_cancelled: int

    def counts(self) -> dict[str, int]:
        """Every count by field name (the task's XCom): all but the cutoff."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "cutoff"}


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> int:
    row = con.execute(sql, params or []).fetchone()
    return int(row[0]) if row else 0


def _cancelled_because(days: int) -> str:
    return f"story removed by retention (articles older than {days} days)"


def apply_retention(con: duckdb.DuckDBPyConnection, days: int, *, now: datetime,
                    cancel_alerts: bool = True) -> RetentionResult:
    """Delete articles fetched more than ``days`` before ``now``, in one transaction.

    Age is when we fetched the page, not the date the page claims: a feed that
    (re)publishes an old article should not see it deleted the day it arrives.
    With the article go its tags and removed lines; a story left with no
    article goes too, and one that lost some is recounted. Outbox rows still
    waiting for a deleted story are marked failed (there is nothing left to
    send). Feed entries stay: they are how a poll knows an item was seen, so
    an expired article is not fetched again while its feed still lists it.

    ``cancel_alerts=False``: leave the ``alerts`` table alone (a lake's
    delivery state is in PostgreSQL: :func:`apply_lake_retention`).
    """
    if days < 1:
        raise ValueError(f"retention must be at least 1 day, got {days}")
    cutoff = now - timedelta(days=days)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DROP TABLE IF EXISTS expired")
        con.execute(
            "CREATE TEMP TABLE expired AS SELECT id, story_id FROM articles"
            " WHERE coalesce(fetched_at, loaded_at) < ?",
            [cutoff],
        )
        articles = _count(con, "SELECT count(*) FROM expired")
        if articles == 0:
            con.execute("ROLLBACK")
            return RetentionResult(
                cutoff=cutoff,
                articles=0,
                article_tags=0,
                removed_lines=0,
                stories_deleted=0,
                stories_updated=0,
                alerts_cancelled=0,
            )
        fence(con)  # a lake's loads cannot commit beside this (their lock cut off)
        tags = _count(
            con, "SELECT count(*) FROM article_tags WHERE article_id IN (SELECT id FROM expired)"
        )
        lines = _count(
            con, "SELECT count(*) FROM removed_lines WHERE article_id IN (SELECT id FROM expired)"
        )
        con.execute("DELETE FROM article_tags WHERE article_id IN (SELECT id FROM expired)")
        con.execute("DELETE FROM removed_lines WHERE article_id IN (SELECT id FROM expired)")
        con.execute("DELETE FROM articles WHERE id IN (SELECT id FROM expired)")
        touched = "SELECT DISTINCT story_id FROM expired WHERE story_id IS NOT NULL"
        emptied = _count(
            con,
            f"""SELECT count(*) FROM stories WHERE id IN ({touched})
            AND NOT EXISTS (SELECT 1 FROM articles a WHERE a.story_id = stories.id)""",
        )
        con.execute(f"""DELETE FROM stories WHERE id IN ({touched})
            AND NOT EXISTS (SELECT 1 FROM articles a WHERE a.story_id = stories.id)""")
        # The clusterer's saved state of a story gone, and the expired members'
        # signatures (a story that keeps members is long past any horizon).
        con.execute(f"""DELETE FROM story_state WHERE story_id IN ({touched})
            AND story_id NOT IN (SELECT id FROM stories)""")
        con.execute("DELETE FROM story_signatures WHERE article_id IN (SELECT id FROM expired)")
        updated = _count(con, f"SELECT count(*) FROM stories WHERE id IN ({touched})")
        con.execute(f"""UPDATE stories SET
                n_articles = s.n_articles, n_sources = s.n_sources,
                first_seen = s.first_seen, last_seen = s.last_seen
            FROM (SELECT story_id, count(*) AS n_articles, count(DISTINCT source) AS n_sources,
                         min(coalesce(published_at, fetched_at)) AS first_seen,
                         max(coalesce(published_at, fetched_at)) AS last_seen
                  FROM articles WHERE story_id IN ({touched}) GROUP BY story_id) s
            WHERE stories.id = s.story_id""")
        # A story whose lead article expired takes its earliest remaining one.
        con.execute(f"""UPDATE stories SET lead_article_id = l.id, title = l.title
            FROM (SELECT story_id, arg_min(id, coalesce(published_at, fetched_at)) AS id,
                         arg_min(title, coalesce(published_at, fetched_at)) AS title
                  FROM articles WHERE story_id IN ({touched}) GROUP BY story_id) l
            WHERE stories.id = l.story_id
              AND stories.lead_article_id IN (SELECT id FROM expired)""")
        cancelled = 0
        if cancel_alerts:
            cancelled = _count(
                con,
                """SELECT count(*) FROM alerts
                WHERE status IN ('pending', 'sending')
                  AND story_id NOT IN (SELECT id FROM stories)""",
            )
            con.execute(
                """UPDATE alerts SET status = 'failed', error = ?
                WHERE status IN ('pending', 'sending')
                  AND story_id NOT IN (SELECT id FROM stories)""",
                [_cancelled_because(days)],
            )
        con.execute("DROP TABLE expired")
        con.execute("COMMIT")
    except BaseException:
        # A commit that failed, or a lake's catalog session cut off, has ended
        # the transaction already: the first error is the one to say.
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    result = RetentionResult(
        cutoff=cutoff,
        articles=articles,
        article_tags=tags,
        removed_lines=lines,
        stories_deleted=emptied,
        stories_updated=updated,
        alerts_cancelled=cancelled,
    )
    if cancel_alerts:
        log.info("retention (%d days, before %s): %s", days, cutoff.isoformat(),
                 result.counts())
    return result


def apply_lake_retention(lake: LakeBackend, days: int, *, now: datetime) -> RetentionResult:
    """:func:`apply_retention` on a lake, under its writer lock: the same
    deletes in one lake transaction, then the pending alerts of every story no
    longer in the lake cancelled in the delivery table (PostgreSQL, one
    transaction of its own: :func:`pipeline.store.delivery.cancel_orphans`).

    The two cannot share a transaction, so the order makes a retry safe: the
    deletes commit first, and the cancelling looks for every alert whose story
    is gone, not only this run's. A task that fails between the two finds no
    expired article on its retry and cancels what the first try left
    pending; until then a sender that picks such an alert fails it for good
    ("the story has no articles any more"). A run with nothing to do cancels
    nothing and commits nothing to the lake.
    """
    from dataclasses import replace

    from pipeline.store import delivery

    if days < 1:
        raise ValueError(f"retention must be at least 1 day, got {days}")
    with lake.writer() as con:
        result = apply_retention(con, days, now=now, cancel_alerts=False)
        cancelled = delivery.cancel_orphans(con, lake.catalog, error=_cancelled_because(days))
    result = replace(result, alerts_cancelled=cancelled)
    log.info("retention of the lake (%d days, before %s): %s", days,
             result.cutoff.isoformat(), result.counts())
    return result


# -- checkpoint and staging ------------------------------------------------------------------


def checkpoint(con: duckdb.DuckDBPyConnection) -> None:
    """Write the WAL into the database file.

    DuckDB checkpoints on its own when the WAL grows past a threshold; a daily
    one after retention also returns the deleted rows' blocks to the free list.
    Plain CHECKPOINT (not FORCE): it never aborts someone else's transaction,
    and the maintenance DAG holds the one-slot DuckDB pool while it runs.
    """
    con.execute("CHECKPOINT")


def prune_staging(staging_dir: Path, *, now: datetime, max_age: timedelta) -> int:
    """Remove run folders untouched for ``max_age``; return how many went.

    A loaded run removes its own folder; what stays behind is a run that
    failed for good, or a poll re-run after its run was loaded. Neither will
    be loaded later, and a folder is only ever written within one run.
    """
    if not staging_dir.is_dir():
        return 0
    limit = (now - max_age).timestamp()
    removed = 0
    for folder in sorted(staging_dir.iterdir()):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        newest = max(
            (os.stat(p).st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime
        )
        if newest < limit:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
            log.info("removed stale staging folder %s", folder)
    return removed
