"""The state of a newsmon database at a glance (``newsmon status``, the web
page's header figures) and the alert outbox as the Alerts page lists it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from pipeline import store
from pipeline.config import Settings
from pipeline.sources.feeds import FeedHealth, health

__all__ = ["OutboxRow", "RunFigures", "Status", "outbox", "status"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFigures:
    """The last loaded pass and what it did (a row of ``runs``)."""

    id: str
    started_at: datetime | None
    loaded_at: datetime | None
    feeds_polled: int
    entries_new: int
    articles_new: int
    rejected: int
    stories_new: int
    alerts_queued: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxRow:
    rule: str
    recipient: str
    update_no: int
    status: str  # pending | sending | sent | failed
    story_id: str
    story_title: str
    created_at: datetime | None
    sent_at: datetime | None
    attempts: int
    error: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    database: Path
    size_bytes: int  # the file and its write-ahead log
    articles: int
    stories: int
    stories_24h: int  # stories with a report in the 24 hours before the last one
    last_report_at: datetime | None
    last_run: RunFigures | None
    runs: int
    feeds: tuple[FeedHealth, ...]
    alerts: dict[str, int]  # status -> rows
    failed_alerts: tuple[OutboxRow, ...]
    rejected: int

    @property
    def failing_feeds(self) -> tuple[FeedHealth, ...]:
        return tuple(f for f in self.feeds if f.status in ("failing", "retired")
                     or f.error_count > 0)


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    row = con.execute(sql).fetchone()
    return row[0] if row else None


def _int(value: object) -> int:
    return int(value) if isinstance(value, int) else 0


def status(con: duckdb.DuckDBPyConnection, settings: Settings, database: Path) -> Status:
    """What is in the database (``con``, open read-only on ``database`` or a copy of it)."""
    last = con.execute(
        "SELECT id, started_at, loaded_at, feeds_polled, entries_new, articles_new, rejected,"
        " stories_new, alerts_queued FROM runs WHERE loaded_at IS NOT NULL"
        " ORDER BY loaded_at DESC LIMIT 1").fetchone()
    last_run = None if last is None else RunFigures(
        id=last[0], started_at=last[1], loaded_at=last[2], feeds_polled=_int(last[3]),
        entries_new=_int(last[4]), articles_new=_int(last[5]), rejected=_int(last[6]),
        stories_new=_int(last[7]), alerts_queued=_int(last[8]))
    last_report = _one(con, "SELECT max(last_seen) FROM stories")
    stories_24h = _one(con, "SELECT count(*) FROM stories"
                       " WHERE last_seen > (SELECT max(last_seen) FROM stories) - INTERVAL 24 HOUR")
    wal = database.with_name(database.name + ".wal")
    size = sum(p.stat().st_size for p in (database, wal) if p.exists())
    counts = dict(con.execute("SELECT status, count(*) FROM alerts GROUP BY status").fetchall())
    return Status(
        database=database, size_bytes=size,
        articles=_int(_one(con, "SELECT count(*) FROM articles")),
        stories=_int(_one(con, "SELECT count(*) FROM stories")),
        stories_24h=_int(stories_24h),
        last_report_at=last_report if isinstance(last_report, datetime) else None,
        last_run=last_run, runs=_int(_one(con, "SELECT count(*) FROM runs")),
        feeds=tuple(health(settings, store.feed_rows(con))),
        alerts={s: int(counts.get(s, 0)) for s in ("pending", "sending", "sent", "failed")},
        # Read apart from the Alerts page's newest rows: a failure older than
        # them is still one to show.
        failed_alerts=tuple(outbox(con, status="failed")),
        rejected=_int(_one(con, "SELECT count(*) FROM rejected")),
    )


def outbox(con: duckdb.DuckDBPyConnection, *, limit: int = 500,
           status: str | None = None) -> list[OutboxRow]:
    """The outbox, newest first: pending, sent and failed rows with their errors
    (``status``: only the rows in it)."""
    rows = con.execute(
        "SELECT a.rule, a.recipient, a.update_no, a.status, a.story_id,"
        " coalesce(s.title, ''), a.created_at, a.sent_at, a.attempts, a.error,"
        " a.next_attempt_at FROM alerts a LEFT JOIN stories s ON s.id = a.story_id"
        " WHERE ? IS NULL OR a.status = ?"
        " ORDER BY a.created_at DESC, a.rule, a.recipient LIMIT ?",
        [status, status, limit]).fetchall()
    return [OutboxRow(rule=r[0], recipient=r[1], update_no=r[2], status=r[3], story_id=r[4],
                      story_title=r[5], created_at=r[6], sent_at=r[7], attempts=r[8],
                      error=r[9], next_attempt_at=r[10]) for r in rows]
