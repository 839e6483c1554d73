"""The sender: claim due outbox rows, deliver, mark them sent.

Claiming is one ``UPDATE ... RETURNING`` (status pending -> sending). DuckDB
runs concurrent transactions optimistically, so when two senders race for
the same rows one of them gets a conflict and claims nothing: a row is
delivered by one sender only. A row left in ``sending`` by a sender that died
is claimed again after :data:`STALE_CLAIM` and re-sent with the same
Message-ID.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import duckdb

from pipeline.alert._deliver import DeliveryError, Mailer
from pipeline.alert._queue import period_bounds, story_articles
from pipeline.alert._render import DigestStory, Outgoing, render, render_digest
from pipeline.config import AlertRule, Settings

log = logging.getLogger(__name__)

# A row left in 'sending' this long was claimed by a sender that died.
STALE_CLAIM = timedelta(minutes=10)
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=6)
DEFAULT_SENDER = "newsmon <newsmon@localhost>"

Key = tuple[str, str, str, int]  # rule, story_id, recipient, update_no


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    sent: int
    failed: int
    pending: int


def _backoff(attempts: int) -> timedelta:
    delay: timedelta = RETRY_BASE * 2 ** min(max(attempts - 1, 0), 16)
    return min(delay, RETRY_MAX)


def _claim(con: duckdb.DuckDBPyConnection, now: datetime) -> list[tuple[Key, str, int]]:
    try:
        rows = con.execute(
            """UPDATE alerts SET status = 'sending', attempts = attempts + 1,
                next_attempt_at = ?
            WHERE (status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?))
               OR (status = 'sending' AND next_attempt_at <= ?)
            RETURNING rule, story_id, recipient, update_no, article_id, attempts""",
            [now + STALE_CLAIM, now, now],
        ).fetchall()
    except duckdb.TransactionException:
        log.info("another sender is claiming alerts right now; leaving them to it")
        return []
    return [((r[0], r[1], r[2], r[3]), r[4], r[5]) for r in rows]


def _mark_sent(con: duckdb.DuckDBPyConnection, keys: list[Key], message_id: str) -> None:
    sent_at = datetime.now(UTC)
    for key in keys:
        con.execute(
            "UPDATE alerts SET status = 'sent', sent_at = ?, message_id = ?, error = NULL"
            " WHERE rule = ? AND story_id = ? AND recipient = ? AND update_no = ?",
            [sent_at, message_id, *key])


def _mark_failed(con: duckdb.DuckDBPyConnection, keys: list[Key], exc: DeliveryError,
                 retry_at: datetime) -> None:
    status = "failed" if exc.permanent else "pending"
    for key in keys:
        con.execute(
            "UPDATE alerts SET status = ?, error = ?, next_attempt_at = ?"
            " WHERE rule = ? AND story_id = ? AND recipient = ? AND update_no = ?",
            [status, exc.reason, retry_at, *key])
    log.warning("alert not delivered", extra={"rule": keys[0][0], "reason": exc.reason})


def _story_title(con: duckdb.DuckDBPyConnection, story: str) -> tuple[str, datetime | None]:
    row = con.execute("SELECT title, first_seen FROM stories WHERE id = ?", [story]).fetchone()
    return (str(row[0] or ""), row[1]) if row else ("", None)


def _previous_sent(con: duckdb.DuckDBPyConnection, key: Key) -> datetime | None:
    row = con.execute(
        "SELECT max(sent_at) FROM alerts WHERE rule = ? AND story_id = ? AND recipient = ?"
        " AND update_no < ?", list(key)).fetchone()
    return row[0] if row else None


def _instant(con: duckdb.DuckDBPyConnection, rule: AlertRule, key: Key, article_id: str,
             sender: str) -> EmailMessage | None:
    _, story, recipient, update_no = key
    articles = story_articles(con, story)
    if not articles:
        return None
    trigger = next((a for a in articles if a.id == article_id), articles[0])
    since = _previous_sent(con, key) if update_no else None
    new_ids = frozenset(a.id for a in articles
                        if since is not None and a.loaded_at is not None and a.loaded_at > since)
    title, _ = _story_title(con, story)
    return render(Outgoing(rule=rule, story_id=story, story_title=title or trigger.title,
                           recipient=recipient, articles=tuple(articles), trigger=trigger,
                           update_no=update_no, new_ids=new_ids), sender=sender)


def _digest(con: duckdb.DuckDBPyConnection, rule: AlertRule, recipient: str,
            keys: list[Key], now: datetime, sender: str) -> EmailMessage:
    stories = []
    for _, story, _, _ in keys:
        title, first_seen = _story_title(con, story)
        stories.append(DigestStory(story_id=story, title=title, first_seen=first_seen,
                                   articles=tuple(story_articles(con, story))))
    assert rule.period is not None
    # The rows are due at the end of their period: the digest covers the one just ended.
    start, end = period_bounds(now, rule.period)
    return render_digest(rule, recipient, stories, period_start=start - (end - start),
                         sender=sender)


def send_pending(
    con: duckdb.DuckDBPyConnection, settings: Settings, mailer: Mailer, *,
    now: datetime | None = None,
) -> SendResult:
    """Deliver every due outbox row; failures stay pending with their error."""
    now = now or datetime.now(UTC)
    rules = {r.name: r for r in settings.alerts}
    sender = settings.smtp.sender if settings.smtp else DEFAULT_SENDER
    claimed = _claim(con, now)
    sent = failed = 0
    digests: dict[tuple[str, str], list[Key]] = defaultdict(list)
    try:
        for key, article_id, attempts in sorted(claimed):
            rule = rules.get(key[0])
            if rule is None:
                _mark_failed(con, [key], DeliveryError(
                    f"rule {key[0]!r} is no longer in the config", permanent=True), now)
                failed += 1
                continue
            if rule.mode == "digest":
                digests[(rule.name, key[2])].append(key)
                continue
            message = _instant(con, rule, key, article_id, sender)
            if message is None:
                _mark_failed(con, [key], DeliveryError("the story has no articles any more",
                                                       permanent=True), now)
                failed += 1
                continue
            try:
                mailer.send(message)
            except DeliveryError as exc:
                _mark_failed(con, [key], exc, now + _backoff(attempts))
                failed += 1
                continue
            _mark_sent(con, [key], str(message["Message-ID"]))
            sent += 1
        for (rule_name, recipient), keys in sorted(digests.items()):
            message = _digest(con, rules[rule_name], recipient, keys, now, sender)
            try:
                mailer.send(message)
            except DeliveryError as exc:
                _mark_failed(con, keys, exc, now + _backoff(1))
                failed += len(keys)
                continue
            _mark_sent(con, keys, str(message["Message-ID"]))
            sent += 1
    finally:
        mailer.close()
    row = con.execute("SELECT count(*) FROM alerts WHERE status = 'pending'").fetchone()
    return SendResult(sent=sent, failed=failed, pending=int(row[0]) if row else 0)
