"""The sender: claim due outbox rows, deliver, mark them sent.

Claiming is one ``UPDATE`` (status pending -> sending, with this round's token
in ``claimed_by`` and a lease in ``next_attempt_at``), on an :class:`Outbox`:
the DuckDB file's ``alerts`` table, where DuckDB runs concurrent transactions
optimistically, so when two senders race for the same rows one of them gets a
conflict and claims nothing; or, in lake mode, the delivery table in the
catalog's PostgreSQL (:mod:`pipeline.store.delivery`), where claims skip the
rows another sender has locked (``FOR UPDATE SKIP LOCKED``). The round renews its lease before
half of it has run out, so nobody takes a row it still holds: a row is
delivered at most once per claim. A row left in ``sending`` by a sender that
died is claimed again once its lease is over and re-sent with the same
Message-ID: at least once overall, never lost.

A 4xx reply leaves the row pending with a backoff, a 5xx reply marks it
failed (RFC 5321, 4.2.1). When the server itself fails (no connection, no
answer within ``smtp.timeout``, 421) the round stops at once and the rest goes
back to pending with the same backoff: one timeout per round, not one per alert.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Protocol

import duckdb

from pipeline.alert import _journal as journal
from pipeline.alert._deliver import DeliveryError, Mailer
from pipeline.alert._journal import ERROR_CHARS, Journal, Outcome
from pipeline.alert._queue import StoryArticle, period_bounds, story_articles
from pipeline.alert._render import DigestStory, Outgoing, render, render_digest
from pipeline.config import AlertRule, Settings
from pipeline.store import StoreError
from pipeline.store.delivery import Claimed, Key, Reclaimed

log = logging.getLogger(__name__)

# The shortest claim lease. The round renews it once half of it has run out,
# checked before each message, so it has to outlast two deliveries: a
# connection and a handful of SMTP commands each, every one bounded by
# smtp.timeout (hence at least LEASE_TIMEOUTS timeouts).
STALE_CLAIM = timedelta(minutes=10)
LEASE_TIMEOUTS = 16
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=6)
DEFAULT_SENDER = "newsmon <newsmon@localhost>"
# Emails a round claims at most without smtp (the .eml outbox): smtp.max_per_round's default.
MAX_PER_ROUND = 100

# DuckDB's words (1.5) for two transactions writing the same rows: the only
# TransactionException that means "another sender got there first". A failed
# commit (disk full) is a TransactionException too, with other words.
_CONFLICT = re.compile(r"^TransactionContext Error: Conflict on (tuple deletion|update)!")
_NO_SPACE = "No space left on device"  # strerror(ENOSPC), as DuckDB quotes it
_WRITING = re.compile(r'Could not write file "([^"]+)"')


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    """One round of the sender, and the outbox after it.

    ``sent``, ``failed`` and ``retry`` are this round's emails (a digest is one
    email however many stories it holds), each counted once: delivered, refused
    for good, or to be tried again. ``pending`` and ``sending`` are the outbox
    rows left in those states afterwards (``pending`` includes the rows of
    ``retry``; ``sending`` rows are another sender's, or a dead one's until
    ``reclaim_at``).
    """

    sent: int
    failed: int
    pending: int
    retry: int = 0
    sending: int = 0
    next_attempt_at: datetime | None = None  # when the first pending row is due
    reclaim_at: datetime | None = None  # when the first 'sending' row's lease ends
    stopped: str | None = None  # why the round ended early (the server failed)
    # The round claimed its most (smtp.max_per_round) and sent or failed one at
    # least: more may be due now, the next round goes at once.
    more: bool = False

    @property
    def undelivered(self) -> int:
        """Emails this round did not deliver (refused for good or to retry)."""
        return self.failed + self.retry


@dataclass(frozen=True, slots=True, kw_only=True)
class _Job:
    """One email: an instant alert's row, or a digest's rows for one recipient."""

    rule: str
    recipient: str
    keys: tuple[Key, ...]
    article_id: str | None  # instant alerts: the article that fired the rule
    digest: bool
    attempts: int  # delivery attempts so far (the most of its rows')


def _backoff(attempts: int) -> timedelta:
    delay: timedelta = RETRY_BASE * 2 ** min(max(attempts - 1, 0), 16)
    return min(delay, RETRY_MAX)


def max_per_round(settings: Settings) -> int:
    """Emails one round claims at most (smtp.max_per_round)."""
    return settings.smtp.max_per_round if settings.smtp is not None else MAX_PER_ROUND


def lease_for(settings: Settings) -> timedelta:
    """How long a claim holds a row: STALE_CLAIM, or longer for a slow smtp.timeout."""
    if settings.smtp is None:
        return STALE_CLAIM
    return max(STALE_CLAIM, timedelta(seconds=settings.smtp.timeout * LEASE_TIMEOUTS))


class Outbox(Protocol):
    """Where the sender keeps delivery state: the DuckDB outbox (the file), or
    the lake's delivery table in PostgreSQL (:class:`pipeline.store.delivery.PgOutbox`).
    Each method is one write (or read) of its own."""

    def claim(self, now: datetime, until: datetime, token: str, *, ignore_backoff: bool,
              limit: int | None = None, digests: Sequence[str] = ()
              ) -> tuple[list[Claimed], list[Reclaimed]]: ...
    def renew(self, token: str, until: datetime) -> set[Key]: ...
    def mark_sent(self, keys: Sequence[Key], message_id: str, sent_at: datetime) -> None: ...
    def mark_failed(self, keys: Sequence[Key], token: str, *, status: str, error: str,
                    retry_at: datetime | None) -> None: ...
    def release(self, keys: Sequence[Key], token: str, *, error: str,
                retry_at: datetime) -> None: ...
    def stuck(self, token: str) -> tuple[int, datetime] | None: ...
    def waiting(self) -> dict[str, tuple[int, datetime | None]]: ...


def _store_error(exc: duckdb.Error, database: Path, doing: str) -> StoreError:
    """One sentence for a failed write to the outbox: disk full says where."""
    message = str(exc)
    if _NO_SPACE in message:
        match = _WRITING.search(message)
        path = Path(match.group(1)) if match else database
        return StoreError(f"disk full at {path.parent} (writing {path.name}) while {doing}: "
                          "free some space and run again")
    first = message.splitlines()[0] if message else type(exc).__name__
    return StoreError(f"{database}: cannot update the alert outbox while {doing}: {first}")


_WHERE_KEY = "rule = ? AND story_id = ? AND recipient = ? AND update_no = ?"

# The rows a claim takes: the due ones, at most ``$limit`` emails of them, the
# longest due first. A digest's rows for one recipient are one email, taken
# whole: a cap that split them would send two digests.
_DUE_FILE = """SELECT rule, story_id, recipient, update_no, status, claimed_by, next_attempt_at,
        list_contains($digests::VARCHAR[], rule) AS digest
    FROM alerts
    WHERE (status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= $now
                                   OR ($ignore AND error IS NOT NULL)))
       OR (status = 'sending' AND next_attempt_at <= $now)"""
_PICK = """SELECT rule, story_id, recipient, update_no, status AS was, claimed_by AS held
    FROM (SELECT *, dense_rank() OVER (ORDER BY first_due NULLS FIRST, rule, recipient,
                                       email_story, email_no) AS email
          FROM (SELECT *, min(next_attempt_at) OVER (
                    PARTITION BY rule, recipient, email_story, email_no) AS first_due
                FROM (SELECT *,
                        CASE WHEN digest THEN '' ELSE story_id END AS email_story,
                        CASE WHEN digest THEN -1 ELSE update_no END AS email_no
                      FROM ({due}) due) emails) dated) ranked
    WHERE email <= $limit"""


class _FileOutbox:
    """The ``alerts`` table of the DuckDB file. DuckDB runs concurrent
    transactions optimistically: of two senders racing for the same rows, one
    gets a conflict and claims nothing."""

    def __init__(self, con: duckdb.DuckDBPyConnection, database: Path) -> None:
        self.con, self.database = con, database

    def claim(self, now: datetime, until: datetime, token: str, *, ignore_backoff: bool,
              limit: int | None = None, digests: Sequence[str] = ()
              ) -> tuple[list[Claimed], list[Reclaimed]]:
        # No UPDATE ... RETURNING on the outbox: with DuckDB 1.5 a failed commit of
        # one (disk full) aborts the whole process ("Failed to append to
        # PRIMARY_alerts": FatalException while reverting); a plain UPDATE raises a
        # TransactionException. The round's token finds the claimed rows instead.
        picking: dict[str, object] = {
            "now": now, "ignore": ignore_backoff, "digests": list(digests),
            "limit": limit if limit is not None else 2**62}
        pick = _PICK.format(due=_DUE_FILE)
        stale = self.con.execute(f"SELECT held, count(*) FROM ({pick}) WHERE was = 'sending'"
                                 " GROUP BY ALL", picking).fetchall()
        try:
            self.con.execute(
                f"""UPDATE alerts SET status = 'sending', claimed_by = $token,
                    next_attempt_at = $until
                FROM ({pick}) picked
                WHERE alerts.rule = picked.rule AND alerts.story_id = picked.story_id
                  AND alerts.recipient = picked.recipient
                  AND alerts.update_no = picked.update_no""",
                {"token": token, "until": until, **picking},
            )
        except duckdb.TransactionException as exc:
            if not _CONFLICT.match(str(exc)):
                raise _store_error(exc, self.database, "claiming alerts") from None
            log.info("another sender is claiming alerts right now; leaving them to it")
            return [], []
        except duckdb.Error as exc:
            raise _store_error(exc, self.database, "claiming alerts") from None
        rows = self.con.execute(
            "SELECT rule, story_id, recipient, update_no, article_id, attempts FROM alerts"
            " WHERE status = 'sending' AND claimed_by = ?", [token]).fetchall()
        return ([Claimed(key=(r[0], r[1], r[2], r[3]), article_id=r[4], attempts=r[5])
                 for r in rows],
                [Reclaimed(holder=holder, count=n) for holder, n in stale])

    def renew(self, token: str, until: datetime) -> set[Key]:
        try:
            self.con.execute("UPDATE alerts SET next_attempt_at = ?"
                             " WHERE status = 'sending' AND claimed_by = ?", [until, token])
        except duckdb.TransactionException as exc:
            if not _CONFLICT.match(str(exc)):
                raise _store_error(exc, self.database, "renewing a claim") from None
            # Another sender is taking rows over right now: hold none of them
            # any more (they stay 'sending' under this round's token until the
            # lease ends, then go out again: late, never twice).
            return set()
        except duckdb.Error as exc:
            raise _store_error(exc, self.database, "renewing a claim") from None
        return {(r[0], r[1], r[2], r[3]) for r in self.con.execute(
            "SELECT rule, story_id, recipient, update_no FROM alerts"
            " WHERE status = 'sending' AND claimed_by = ?", [token]).fetchall()}

    def _write(self, doing: str, sql: str, params: list[object]) -> None:
        try:
            self.con.execute(sql, params)
        except duckdb.Error as exc:
            raise _store_error(exc, self.database, doing) from None

    def mark_sent(self, keys: Sequence[Key], message_id: str, sent_at: datetime) -> None:
        # Delivered is delivered, whoever holds the row now; but a delivery
        # already marked (its sent_at) is not counted again: a journal applied
        # twice (a backup restored beside it, a crash before its removal).
        for key in keys:
            self._write("marking an alert sent",
                        "UPDATE alerts SET status = 'sent', sent_at = ?, message_id = ?,"
                        f" error = NULL, attempts = attempts + 1 WHERE {_WHERE_KEY}"
                        " AND (status <> 'sent' OR sent_at IS DISTINCT FROM ?)",
                        [sent_at, message_id, *key, sent_at])

    def mark_failed(self, keys: Sequence[Key], token: str, *, status: str, error: str,
                    retry_at: datetime | None) -> None:
        for key in keys:
            self._write("recording a delivery error",
                        "UPDATE alerts SET status = ?, error = ?, next_attempt_at = ?,"
                        f" attempts = attempts + 1 WHERE {_WHERE_KEY} AND status = 'sending'"
                        " AND claimed_by = ?", [status, error, retry_at, *key, token])

    def release(self, keys: Sequence[Key], token: str, *, error: str,
                retry_at: datetime) -> None:
        for key in keys:
            self._write("releasing unsent alerts",
                        "UPDATE alerts SET status = 'pending', next_attempt_at = ?, error = ?"
                        f" WHERE {_WHERE_KEY} AND status = 'sending' AND claimed_by = ?",
                        [retry_at, error, *key, token])

    def stuck(self, token: str) -> tuple[int, datetime] | None:
        row = self.con.execute("SELECT count(*), max(next_attempt_at) FROM alerts"
                               " WHERE status = 'sending' AND claimed_by = ?", [token]).fetchone()
        return (int(row[0]), row[1]) if row and row[0] else None

    def waiting(self) -> dict[str, tuple[int, datetime | None]]:
        return {status: (int(n), first) for status, n, first in self.con.execute(
            "SELECT status, count(*), min(next_attempt_at) FROM alerts"
            " WHERE status IN ('pending', 'sending') GROUP BY ALL").fetchall()}


def _jobs(claimed: list[Claimed], rules: dict[str, AlertRule]) -> list[_Job]:
    instant: list[_Job] = []
    digests: dict[tuple[str, str], list[Claimed]] = defaultdict(list)
    for c in sorted(claimed, key=lambda c: c.key):
        rule = rules.get(c.key[0])
        if rule is not None and rule.mode == "digest":
            digests[(rule.name, c.key[2])].append(c)
        else:
            instant.append(_Job(rule=c.key[0], recipient=c.key[2], keys=(c.key,),
                                article_id=c.article_id, digest=False, attempts=c.attempts))
    return instant + [
        _Job(rule=r, recipient=to, keys=tuple(c.key for c in rows), article_id=None,
             digest=True, attempts=max(c.attempts for c in rows))
        for (r, to), rows in sorted(digests.items())]


class _Lease:
    """This round's hold on the rows it claimed, renewed before it runs out."""

    def __init__(self, outbox: Outbox, token: str, lease: timedelta, until: datetime,
                 keys: set[Key]) -> None:
        self.outbox, self.token, self.lease = outbox, token, lease
        self.until = until
        self.keys = keys  # the rows this round holds
        self.lost: set[Key] = set()

    def holds(self, job: _Job, at: datetime) -> bool:
        """Whether the round may deliver ``job`` now, renewing the lease once
        half of it is gone. False for a row another sender took over, which
        only happens if this round's lease ran out (a delivery that took longer
        than LEASE_TIMEOUTS timeouts)."""
        if at >= self.until - self.lease / 2:
            self._renew(at)
        lost = [k for k in job.keys if k in self.lost]
        for key in lost:
            log.warning("alert %r (story %s) to %s: this sender's claim ran out and another"
                        " sender took it; leaving it to that sender", key[0], key[1], key[2])
        return not lost

    def _renew(self, at: datetime) -> None:
        # Rows already marked are no longer held, and no longer asked about.
        self.lost |= self.keys - self.outbox.renew(self.token, at + self.lease)
        self.until = at + self.lease


def _apply(outbox: Outbox, outcome: Outcome) -> None:
    if outcome.status == "sent":
        assert outcome.message_id is not None
        outbox.mark_sent(outcome.keys, outcome.message_id, outcome.at)
    elif outcome.status == "released":
        outbox.release(outcome.keys, outcome.token, error=outcome.error or "",
                       retry_at=outcome.at)
    else:
        outbox.mark_failed(outcome.keys, outcome.token, status=outcome.status,
                           error=outcome.error or "",
                           retry_at=outcome.at if outcome.status == "pending" else None)


def _stuck(outbox: Outbox, token: str, exc: StoreError) -> StoreError:
    """``exc``, saying which rows this round claimed stay 'sending', and till when."""
    stuck = outbox.stuck(token)
    if stuck is None:
        return exc
    return StoreError(f"{exc}; {stuck[0]} alert(s) this round claimed stay 'sending' until"
                      f" {stuck[1]:%Y-%m-%d %H:%M:%S} UTC, then go out again")


class _Recorder(Protocol):
    """Where a round's outcomes go as each delivery ends."""

    def stop(self, at: datetime) -> str | None:
        """Why the round may deliver no more (None: it may)."""
        ...

    def holds(self, job: _Job, at: datetime) -> bool: ...
    def record(self, outcome: Outcome) -> None: ...


class _Marks:
    """The lake's: each outcome written to the delivery table (PostgreSQL, not
    the lake) at once, the lease renewed there."""

    def __init__(self, outbox: Outbox, lease: _Lease) -> None:
        self.outbox, self.lease = outbox, lease

    def stop(self, at: datetime) -> str | None:
        return None

    def holds(self, job: _Job, at: datetime) -> bool:
        try:
            return self.lease.holds(job, at)
        except StoreError as exc:
            raise _stuck(self.outbox, self.lease.token, exc) from None

    def record(self, outcome: Outcome) -> None:
        try:
            _apply(self.outbox, outcome)
        except StoreError as exc:
            raise _stuck(self.outbox, self.lease.token, exc) from None


class _Journaled:
    """The file's: each outcome a line of the round's journal (fsynced before
    the next email), applied to the file after the round. Nothing renews the
    lease (that takes the writer): the round stops once half of it is gone,
    which leaves the email under way at least LEASE_TIMEOUTS / 2 timeouts."""

    def __init__(self, journal: Journal | None, until: datetime, lease: timedelta) -> None:
        self.journal, self.until, self.lease = journal, until, lease
        self.outcomes: list[Outcome] = []
        self.broken: str | None = None  # why the journal cannot be written

    def stop(self, at: datetime) -> str | None:
        if self.broken is not None:
            return self.broken
        if at >= self.until - self.lease / 2:
            return f"half of its claim's lease ({self.lease.total_seconds():.0f} s) had run out"
        return None

    def holds(self, job: _Job, at: datetime) -> bool:
        return True  # the round stops before another sender may take its rows

    def record(self, outcome: Outcome) -> None:
        if outcome.error is not None and len(outcome.error) > ERROR_CHARS:
            outcome = replace(outcome, error=outcome.error[:ERROR_CHARS - 1] + "…")
        self.outcomes.append(outcome)
        if self.journal is None or self.broken is not None:
            return
        try:
            self.journal.write(outcome)
        except OSError as exc:
            self.broken = f"cannot write the delivery journal {self.journal.path}: " + (
                exc.strerror or str(exc))
            log.error("%s; the round stops, and what it delivered is marked from memory"
                      " (a crash before that would send it again)", self.broken)

    @property
    def kept(self) -> bool:
        """Every outcome so far is in the journal."""
        return self.journal is not None and self.broken is None


@dataclass(slots=True, kw_only=True)
class SendRound:
    """A send round between its claim and its marks: what the claimed rows'
    emails say, read (:func:`claim`), to render and deliver with no database
    open (:meth:`deliver`), then to mark (:func:`record`)."""

    token: str
    now: datetime
    started: float  # time.monotonic() at the claim
    lease: timedelta
    letters: list[tuple[_Job, _Draft]]
    recorder: _Recorder
    database: Path | None = None  # file mode: the file, whose outbox record() marks
    journal: Journal | None = None
    sent: int = 0
    failed: int = 0
    retry: int = 0
    stopped: str | None = None
    more: bool = False  # it claimed its most: more may be due now
    result: SendResult | None = None  # nothing to deliver: the round's result at its claim

    def clock(self) -> datetime:
        """``now`` moved on by the time this round has taken."""
        return self.now + timedelta(seconds=time.monotonic() - self.started)

    def deliver(self, mailer: Mailer) -> None:
        """Render and deliver each email, recording each outcome as it comes.
        Needs no database connection in file mode."""
        try:
            self._deliver(mailer)
        except BaseException:
            self.abandon()
            raise
        finally:
            mailer.close()

    def _deliver(self, mailer: Mailer) -> None:
        for i, (job, draft) in enumerate(self.letters):
            at = self.clock()
            if (why := self.recorder.stop(at)) is not None:
                self.stopped = why
                self._release(self.letters[i:], at, why)
                break
            if not self.recorder.holds(job, at):
                continue
            attempt = job.attempts + 1
            message = draft()
            try:
                mailer.send(message)
            except DeliveryError as problem:
                retry_at = self.clock() + _backoff(attempt)
                self._failed(job, problem, retry_at, attempt)
                if problem.permanent:
                    self.failed += 1
                    continue
                self.retry += 1
                if problem.server:
                    self.stopped = problem.reason
                    self._release(self.letters[i + 1:], retry_at, problem.reason)
                    break
                continue
            # Unconditional: delivered is delivered, even if the claim ran
            # out meanwhile (a sender that took the row over then finds it
            # sent and skips it).
            self.recorder.record(Outcome(status="sent", keys=job.keys, token=self.token,
                                         at=self.clock(),
                                         message_id=str(message["Message-ID"])))
            self.sent += 1

    def _failed(self, job: _Job, exc: DeliveryError, retry_at: datetime, attempt: int) -> None:
        self.recorder.record(Outcome(
            status="failed" if exc.permanent else "pending", keys=job.keys, token=self.token,
            at=self.clock() if exc.permanent else retry_at, error=exc.reason))
        _log_failed(job, exc, retry_at, attempt)

    def _release(self, rest: Sequence[tuple[_Job, _Draft]], retry_at: datetime,
                 reason: str) -> None:
        """Put rows this round claimed but never tried back to pending, due at ``retry_at``."""
        if not rest:
            return
        self.recorder.record(Outcome(
            status="released", keys=tuple(k for job, _ in rest for k in job.keys),
            token=self.token, at=retry_at, error=f"not tried: the round stopped after {reason}"))
        self.retry += len(rest)
        log.warning("stopped this round after: %s; %d more email(s) not tried, left"
                    " pending until %s UTC", reason, len(rest),
                    f"{retry_at:%Y-%m-%d %H:%M:%S}")

    def abandon(self) -> None:
        """Give the journal up unapplied (kept, unlocked): the next round applies it."""
        if self.journal is not None:
            self.journal.close(remove=False)


def _log_failed(job: _Job, exc: DeliveryError, retry_at: datetime, attempt: int) -> None:
    what = ("digest" if job.digest else "alert") + f" {job.rule!r}"
    stories = ", ".join(k[1] for k in job.keys)
    outcome = ("failed for good (a permanent refusal; not retried)" if exc.permanent
               else f"attempt {attempt}; next attempt at {retry_at:%Y-%m-%d %H:%M:%S} UTC")
    log.warning("%s to %s (story %s) not delivered: %s; %s", what, job.recipient, stories,
                exc.reason, outcome)


def _mark_failed(outbox: Outbox, job: _Job, token: str, exc: DeliveryError,
                 retry_at: datetime, attempt: int) -> None:
    outbox.mark_failed(job.keys, token, status="failed" if exc.permanent else "pending",
                       error=exc.reason, retry_at=None if exc.permanent else retry_at)
    _log_failed(job, exc, retry_at, attempt)


_TRIES = 3  # a commit of the marks that meets another sender's: tried again (they are idempotent)


def _apply_all(con: duckdb.DuckDBPyConnection, outbox: Outbox, outcomes: Sequence[Outcome],
               database: Path) -> None:
    """``outcomes`` applied to the file's outbox in one transaction."""
    for tries in range(1, _TRIES + 1):
        con.execute("BEGIN TRANSACTION")
        try:
            for outcome in outcomes:
                _apply(outbox, outcome)
            con.execute("COMMIT")
            return
        except duckdb.TransactionException as exc:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            if not _CONFLICT.match(str(exc)) or tries == _TRIES:
                raise _store_error(exc, database, "marking the alerts delivered") from None
            time.sleep(0.05 * tries)
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise _store_error(exc, database, "marking the alerts delivered") from None
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise


def _apply_left_behind(con: duckdb.DuckDBPyConnection, outbox: Outbox, database: Path) -> None:
    """Apply the journals of rounds that ended before their marks (killed,
    or the file could not be written), then remove them."""
    for held in journal.left_behind(database):
        try:
            if held.outcomes:
                _apply_all(con, outbox, held.outcomes, database)
        except BaseException:
            held.close(remove=False)
            raise
        held.close(remove=True)
        if held.outcomes:
            sent = sum(1 for o in held.outcomes if o.status == "sent")
            log.warning("applied %d delivery outcome(s) (%d email(s) sent) that a send round"
                        " recorded in %s and did not mark (it died, or could not write the"
                        " database): not sent again", len(held.outcomes), sent, held.path.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Journaled:
    """The outcomes the delivery journals beside a database hold (the rounds
    that left them, and live ones, so far): what a copy of the file lacks."""

    journals: int
    outcomes: tuple[Outcome, ...]

    @property
    def sent(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "sent")

    def mark(self, con: duckdb.DuckDBPyConnection, database: Path) -> None:
        """Mark them in the outbox of ``con`` (``database``, a copy: the
        journals are left beside the original, for its next round), in one
        transaction."""
        if self.outcomes:
            _apply_all(con, _FileOutbox(con, database), self.outcomes, database)


def journaled(database: Path) -> Journaled:
    """What the delivery journals beside ``database`` hold. To be read while
    no round can mark (under the file's lock, shared or not): a round applies
    and removes its journal in one writer session."""
    try:
        found = journal.every(database)
    except OSError as exc:
        raise StoreError(f"cannot read the delivery journal {exc.filename or database}: "
                         f"{exc.strerror or exc}") from None
    return Journaled(journals=len(found),
                     outcomes=tuple(o for _, outcomes in found for o in outcomes))


def claim(con: duckdb.DuckDBPyConnection, settings: Settings, *, now: datetime | None = None,
          ignore_backoff: bool = False, lease: timedelta | None = None,
          outbox: Outbox | None = None) -> SendRound:
    """A round's first part: claim every due outbox row and read what its email says
    (with ``ignore_backoff``, also the rows waiting out a retry backoff; never
    a digest before its period ends). ``con`` is read for the stories;
    ``outbox`` keeps the delivery state (default: the ``alerts`` table of
    ``con``, the DuckDB file, whose round first applies the journals rounds
    left unapplied, then journals its own outcomes: see :mod:`._journal`).
    """
    now = now or datetime.now(UTC)
    started = time.monotonic()

    def clock() -> datetime:
        return now + timedelta(seconds=time.monotonic() - started)

    in_file = outbox is None
    outbox = outbox or _FileOutbox(con, settings.database)
    if in_file:
        _apply_left_behind(con, outbox, settings.database)
    lease = lease or lease_for(settings)
    rules = {r.name: r for r in settings.alerts}
    sender = settings.smtp.sender if settings.smtp else DEFAULT_SENDER
    pid, nonce = os.getpid(), secrets.token_hex(3)
    token = f"{socket.gethostname()}:{pid}:{nonce}"
    cap = max_per_round(settings)
    claimed, reclaimed = outbox.claim(
        now, now + lease, token, ignore_backoff=ignore_backoff, limit=cap,
        digests=[r.name for r in settings.alerts if r.mode == "digest"])
    for r in reclaimed:
        log.warning("reclaimed %d alert(s) left in 'sending' by sender %s, whose lease ran"
                    " out (it died mid-round?); sending them again with the same Message-ID",
                    r.count, r.holder or "(unknown)")
    letters: list[tuple[_Job, _Draft]] = []
    reads = _Reads(con)
    failed = 0
    jobs = _jobs(claimed, rules)
    try:
        for job in jobs:
            attempt = job.attempts + 1
            if job.digest and (gone := _gone(con, job)) is not None:
                # Its story's articles were deleted (lake retention between
                # its two commits): failed, not listed without its reports.
                _mark_failed(outbox, gone, token, DeliveryError(_GONE, permanent=True), clock(),
                             attempt)
                failed += 1
                job = replace(job, keys=tuple(k for k in job.keys if k not in gone.keys))
                if not job.keys:
                    continue
            message, problem = _message(reads, rules, job, now, sender)
            if message is None:
                assert problem is not None
                _mark_failed(outbox, job, token, problem, clock(), attempt)
                failed += 1
                continue
            letters.append((job, message))
    except StoreError as exc:
        raise _stuck(outbox, token, exc) from None
    round_ = SendRound(token=token, now=now, started=started, lease=lease, letters=letters,
                       recorder=_Marks(outbox, _Lease(outbox, token, lease, now + lease,
                                                      {c.key for c in claimed})),
                       failed=failed, more=len(jobs) >= cap)
    if in_file:
        round_.database = settings.database
        round_.journal = _journal_for(con, outbox, settings.database, round_, f"{pid}-{nonce}")
        round_.recorder = _Journaled(round_.journal, now + lease, lease)
        if not letters:
            round_.result = _result(outbox, round_)
    return round_


def _journal_for(con: duckdb.DuckDBPyConnection, outbox: Outbox, database: Path,
                 round_: SendRound, name: str) -> Journal | None:
    """The round's journal, with room for an outcome per email. When it cannot
    be made the claimed rows go back to pending, and the round says why."""
    if not round_.letters:
        return None
    room = sum(journal.room_for(job.keys, round_.token, round_.now) for job, _ in round_.letters)
    try:
        return Journal.create(database, name, room)
    except OSError as exc:
        keys = [k for job, _ in round_.letters for k in job.keys]
        why = (f"disk full at {database.parent} (reserving the delivery journal)"
               if exc.errno in (errno.ENOSPC, errno.EDQUOT)
               else f"cannot write the delivery journal beside {database}: "
                    f"{exc.strerror or exc}")
        with contextlib.suppress(StoreError):
            outbox.release(keys, round_.token, error=f"not tried: {why}", retry_at=round_.now)
        raise StoreError(f"{why}; the alerts stay pending: free some space (or fix the"
                         " folder) and send again") from None


def record(con: duckdb.DuckDBPyConnection, round_: SendRound, *,
           outbox: Outbox | None = None) -> SendResult:
    """A round's last part: apply its journal to the file's outbox in one
    transaction and remove the journal (a lake's outcomes are marked as they
    come: nothing to apply); the round's result, and the outbox after it.

    Raises StoreError when the outbox cannot be written (disk full, say): the
    journal stays for the next round to apply before it claims."""
    if round_.result is not None:
        return round_.result
    if outbox is None:
        assert isinstance(round_.recorder, _Journaled) and round_.database is not None
        outbox = _FileOutbox(con, round_.database)
        recorder = round_.recorder
        try:
            _apply_all(con, outbox, recorder.outcomes, outbox.database)
        except StoreError as exc:
            round_.abandon()
            if recorder.kept:
                assert round_.journal is not None
                raise StoreError(
                    f"{exc}; this round's {len(recorder.outcomes)} delivery outcome(s)"
                    f" ({round_.sent} sent) are kept in {round_.journal.path} and marked by the"
                    " next send round, before it claims") from None
            raise _stuck(outbox, round_.token, exc) from None
        except BaseException:
            round_.abandon()
            raise
        if round_.journal is not None:
            round_.journal.close(remove=True)
    return _result(outbox, round_)


def _result(outbox: Outbox, round_: SendRound) -> SendResult:
    counts = outbox.waiting()
    (pending, next_at), (sending, reclaim_at) = (counts.get(s, (0, None))
                                                 for s in ("pending", "sending"))
    return SendResult(sent=round_.sent, failed=round_.failed, retry=round_.retry,
                      pending=pending, sending=sending, next_attempt_at=next_at,
                      reclaim_at=reclaim_at, stopped=round_.stopped,
                      more=_more(round_))


def _more(round_: SendRound) -> bool:
    """Whether another round is due at once: this one took its most, was
    not stopped, and got somewhere (an email sent or failed for good). A
    round whose every email was refused for now goes on with none: the
    next would take the following ones, and, once the backlog took longer
    to go through than their backoff (or with ``--now``), the same ones
    again, round after round, for as long as the server refused them."""
    return round_.more and round_.stopped is None and bool(round_.sent or round_.failed)


def send_pending(
    con: duckdb.DuckDBPyConnection, settings: Settings, mailer: Mailer, *,
    now: datetime | None = None, ignore_backoff: bool = False, lease: timedelta | None = None,
    outbox: Outbox | None = None,
) -> SendResult:
    """A whole round on one connection: :func:`claim`, deliver, :func:`record`
    (the file's :func:`pipeline.stages.send_stage` closes the file for the
    delivery instead).

    Raises StoreError when the outbox cannot be written (disk full, say): rows
    it claimed stay ``sending`` until their lease ends, then go out again (in
    file mode, what the round delivered is in its journal, marked by the next
    round).
    """
    round_ = claim(con, settings, now=now, ignore_backoff=ignore_backoff, lease=lease,
                   outbox=outbox)
    if round_.result is not None:
        mailer.close()
        return round_.result
    round_.deliver(mailer)
    return record(con, round_, outbox=outbox)


# An email ready to render: what it says, read from the database at the claim;
# rendered (pure Python, ~5 ms each) with the file closed, when its turn comes.
_Draft = Callable[[], EmailMessage]


class _Reads:
    """The claim session's reads for the emails, each story read once
    (a story's alert to 50 recipients read its articles 50 times)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.articles: dict[str, list[StoryArticle]] = {}
        self.titles: dict[str, tuple[str, datetime | None]] = {}

    def story_articles(self, story: str) -> list[StoryArticle]:
        if story not in self.articles:
            self.articles[story] = story_articles(self.con, story)
        return self.articles[story]

    def story_title(self, story: str) -> tuple[str, datetime | None]:
        if story not in self.titles:
            row = self.con.execute("SELECT title, first_seen FROM stories WHERE id = ?",
                                   [story]).fetchone()
            self.titles[story] = (str(row[0] or ""), row[1]) if row else ("", None)
        return self.titles[story]

    def previous_sent(self, key: Key) -> datetime | None:
        row = self.con.execute(
            "SELECT max(sent_at) FROM alerts WHERE rule = ? AND story_id = ? AND recipient = ?"
            " AND update_no < ?", list(key)).fetchone()
        return row[0] if row else None


def _instant(reads: _Reads, rule: AlertRule, key: Key, article_id: str,
             sender: str) -> _Draft | None:
    _, story, recipient, update_no = key
    articles = reads.story_articles(story)
    if not articles:
        return None
    trigger = next((a for a in articles if a.id == article_id), articles[0])
    since = reads.previous_sent(key) if update_no else None
    new_ids = frozenset(a.id for a in articles
                        if since is not None and a.loaded_at is not None and a.loaded_at > since)
    title, _ = reads.story_title(story)
    return partial(render, Outgoing(rule=rule, story_id=story,
                                    story_title=title or trigger.title, recipient=recipient,
                                    articles=tuple(articles), trigger=trigger,
                                    update_no=update_no, new_ids=new_ids), sender=sender)


def _digest(reads: _Reads, rule: AlertRule, recipient: str, keys: Sequence[Key],
            now: datetime, sender: str) -> _Draft:
    stories = []
    for _, story, _, _ in keys:
        title, first_seen = reads.story_title(story)
        stories.append(DigestStory(story_id=story, title=title, first_seen=first_seen,
                                   articles=tuple(reads.story_articles(story))))
    assert rule.period is not None
    # The rows are due at the end of their period: the digest covers the one just ended.
    start, end = period_bounds(now, rule.period)
    return partial(render_digest, rule, recipient, stories, period_start=start - (end - start),
                   sender=sender)


_GONE = "the story has no articles any more"


def _gone(con: duckdb.DuckDBPyConnection, job: _Job) -> _Job | None:
    """The rows of a digest whose stories have no articles any more, as a
    job of their own (None: every story has its articles)."""
    stories = sorted({k[1] for k in job.keys})
    kept = {r[0] for r in con.execute(
        "SELECT DISTINCT story_id FROM articles WHERE list_contains(?, story_id)",
        [stories]).fetchall()}
    gone = tuple(k for k in job.keys if k[1] not in kept)
    return replace(job, keys=gone) if gone else None


def _message(reads: _Reads, rules: dict[str, AlertRule], job: _Job,
             now: datetime, sender: str) -> tuple[_Draft | None, DeliveryError | None]:
    rule = rules.get(job.rule)
    if rule is None:
        return None, DeliveryError(f"rule {job.rule!r} is no longer in the config",
                                   permanent=True)
    if job.digest:
        return _digest(reads, rule, job.recipient, job.keys, now, sender), None
    message = _instant(reads, rule, job.keys[0], job.article_id or "", sender)
    if message is None:
        return None, DeliveryError(_GONE, permanent=True)
    return message, None
