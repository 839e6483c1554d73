"""The stages as whole-run steps, one Airflow task each.

    poll -> (fetch -> extract -> clean -> tag) -> cluster (stories, outbox plan)
         -> load (one transaction) -> send

The DAG calls :func:`poll_stage`, ``process_stage`` per shard (with the
worker pool, in :mod:`pipeline.process`), :func:`cluster_stage`,
:func:`load_stage` and :func:`send_stage`; stages hand over through staging
files named by run id, so every stage can be retried on its own. The CLI's
pipelined pass (:mod:`pipeline.stream`) runs the same cluster, load and send
steps on each micro-batch, and stages its records with the same helpers
(:func:`record_outcome`, :func:`deferred_record`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import alert, store
from pipeline.config import Settings
from pipeline.http import Fetcher, FetchLimits
from pipeline.models import (
    ArticleRecord,
    EntryOutcome,
    FeedEntry,
    FeedUpdate,
    Rejection,
    TaggedArticle,
)
from pipeline.sources import feeds, poll
from pipeline.store import delivery, shared_staging, staging
from pipeline.store.backend import backend, open_store
from pipeline.store.load import LoadResult, load, loaded_run
from pipeline.store.plan import PlanResult, plan
from pipeline.store.warm import WarmClusterer

log = logging.getLogger(__name__)

# A page that failed for a transient reason (timeout, 503) is tried on this
# many passes before it is recorded as rejected for good.
MAX_PAGE_ATTEMPTS = 3

Progress = Callable[[str, int, int], None]


def quiet(stage: str, done: int, total: int) -> None:
    return None


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def fetch_limits(settings: Settings) -> FetchLimits:
    return settings.fetch.limits()


def rejection_record(r: Rejection, now: datetime) -> dict[str, Any]:
    return {"url": r.url, "feed_url": r.feed_url, "stage": r.stage, "reason": r.reason,
            "seen_at": now}


# -- poll ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PollSummary:
    run_id: str
    feeds_polled: int
    feeds_failed: int
    entries_new: int
    entries_retry: int
    feeds_deferred: int = 0  # not done within fetch.pass_budget_seconds: next pass


def deadline_of(settings: Settings, deadline: float | None) -> float:
    """A time.monotonic() value: the pass's, or this stage's own budget."""
    if deadline is not None:
        return deadline
    return time.monotonic() + settings.fetch.pass_budget_seconds


def poll_options(settings: Settings) -> poll.PollOptions:
    f = settings.fetch
    return poll.PollOptions(
        schedule=settings.poll, max_entries=f.max_entries_per_feed,
        max_url_length=f.max_url_length, parse_timeout=f.parse_timeout,
    )


def poll_stage(
    settings: Settings, run_id: str, *, now: datetime | None = None, force: bool = False,
    progress: Progress = quiet, deadline: float | None = None,
) -> PollSummary:
    """:func:`_poll`; with staging on S3 (lake mode), its folder replaces the run's there."""
    with shared_staging.workspace(settings, run_id, pull=False) as local:
        summary = _poll(local, run_id, now=now, force=force, progress=progress,
                        deadline=deadline)
        shared_staging.replace(local, run_id, staging.POLL_SHARD)
    return summary


def _poll(
    settings: Settings, run_id: str, *, now: datetime | None = None, force: bool = False,
    progress: Progress = quiet, deadline: float | None = None,
) -> PollSummary:
    """Poll the due feeds (the config's and the added ones); stage their new
    entries and new feed state. Feeds not done by ``deadline`` (a
    ``time.monotonic()`` value; default: ``fetch.pass_budget_seconds`` from
    now) stay due for the next pass."""
    now = now or datetime.now(UTC)
    until = deadline_of(settings, deadline)
    directory = staging.run_dir(settings.staging, run_id)
    # Polling only reads the database: read-only (once it exists), so an
    # analyst's read-only session does not hold it up.
    with open_store(settings) as con:
        states = store.feed_states(con)
        due = poll.due_feeds(feeds.all_feeds(settings, con), states, now, force=force,
                             options=settings.poll)
        retry = store.entries_to_retry(con, MAX_PAGE_ATTEMPTS)

        async def go() -> poll.PollResult:
            async with Fetcher(fetch_limits(settings)) as fetcher:
                return await poll.poll(
                    due, states=states, fetcher=fetcher,
                    known=lambda pairs: store.seen_entries(con, pairs), now=now,
                    options=poll_options(settings), deadline=until,
                    progress=lambda d, t: progress("poll", d, t),
                )

        result = asyncio.run(go())
    staging.remove(directory)  # a re-run of the poll replaces the whole run's staging
    with staging.StagingWriter(directory, "poll") as writer:
        for update in result.updates:
            writer.write("feeds", feed_record(update))
        for entry in result.entries:
            writer.write("polled", {**_entry_record(entry), "attempts": 0})
        for row in retry:
            writer.write("polled", {**row, "summary": "", "attempts": row["attempts"]})
        for rejection in result.rejections:
            writer.write("rejected", rejection_record(rejection, now))
    return PollSummary(
        run_id=run_id, feeds_polled=len(result.updates),
        feeds_failed=sum(1 for u in result.updates if u.last_error),
        entries_new=len(result.entries), entries_retry=len(retry),
        feeds_deferred=len(result.deferred),
    )


def feed_record(update: FeedUpdate) -> dict[str, Any]:
    return staging.record(update)


def _entry_record(entry: FeedEntry) -> dict[str, Any]:
    return {"id": entry.id, "feed_url": entry.feed_url, "feed_name": entry.feed_name,
            "url": entry.url, "title": entry.title, "summary": entry.summary,
            "published_at": entry.published_at}


def entry_from(record: dict[str, Any]) -> FeedEntry:
    published = record.get("published_at")
    if isinstance(published, str):
        published = datetime.fromisoformat(published)
    return FeedEntry(
        id=record["id"], feed_url=record["feed_url"], feed_name=record.get("feed_name") or "",
        url=record["url"], title=record.get("title") or "", summary=record.get("summary") or "",
        published_at=published,
    )


# -- records of the process stage --------------------------------------------------------


def _entry_status(entry: FeedEntry, *, status: str, attempts: int,
                  article_id: str | None = None) -> dict[str, Any]:
    return staging.record(EntryOutcome(
        feed_url=entry.feed_url, id=entry.id, url=entry.url, title=entry.title,
        published_at=entry.published_at, status=status, attempts=attempts,
        article_id=article_id))


def deferred_record(entry: FeedEntry, attempts: int) -> dict[str, Any]:
    """An entry not reached within the time budget: tried again next pass,
    with no attempt counted."""
    return _entry_status(entry, status="retry", attempts=attempts)


def record_outcome(
    sink: staging.Sink, entry: FeedEntry, outcome: TaggedArticle | Rejection,
    tries: int, counts: dict[str, int], now: datetime,
) -> str:
    """Stage what became of one entry's page (``tries``: attempts so far, this
    one included) and count it in ``counts``; the entry's status (``stored``,
    ``retry``: tried again later, or ``rejected``)."""
    counts["entries"] += 1
    if isinstance(outcome, TaggedArticle):
        a = outcome.article
        sink.write("articles", staging.record(ArticleRecord.of(outcome)))
        if outcome.cluster_features is not None:
            sink.write("features", outcome.cluster_features)
        sink.write("entries", _entry_status(entry, status="stored", attempts=tries,
                                            article_id=a.id))
        counts["articles"] += 1
        return "stored"
    status = "retry" if outcome.transient and tries < MAX_PAGE_ATTEMPTS else "rejected"
    sink.write("entries", _entry_status(entry, status=status, attempts=tries))
    counts[status] += 1
    reason = outcome.reason
    if outcome.transient:
        reason = f"{reason} (attempt {tries} of {MAX_PAGE_ATTEMPTS})"
    sink.write("rejected", {**rejection_record(outcome, now), "reason": reason})
    return status


# -- load and send -------------------------------------------------------------------------


def cluster_stage(settings: Settings, run_id: str, *,
                  warm: WarmClusterer | None = None) -> PlanResult:
    """Story ids and outbox candidates for the run, planned beside its staging
    (reads the database, writes nothing to it; see :mod:`pipeline.store.plan`).
    ``warm``: a process's clusterer kept between its plans and loads
    (:mod:`pipeline.store.warm`), given to :func:`load_stage` too."""
    # Read-only (once the database exists): analysts' read-only sessions can stay
    # open while it clusters; only the load's transaction needs the file alone.
    with shared_staging.workspace(settings, run_id) as local, open_store(local) as con:
        result = plan(con, local, run_id, warm=warm)
    if result.already_loaded:
        # What a stage re-run after the load staged is never loaded (each shard
        # of a run is loaded once): it goes now rather than wait to be pruned.
        staging.remove(staging.run_dir(settings.staging, run_id))
        shared_staging.discard(settings, run_id)
    return result


def load_stage(settings: Settings, run_id: str, *, started_at: datetime | None = None,
               keep_staging: bool = False, warm: WarmClusterer | None = None,
               checkpoint: bool = True, brief: bool = False) -> LoadResult:
    """``checkpoint=False``: another load follows soon (a stream's burst); the
    commit stays in the file's write-ahead log for it or :func:`checkpoint_stage`
    to fold in (see :func:`pipeline.store.connect`). ``brief``: wait for the
    writer's lock briefly (a stream's load tried again between two polls)."""
    return _on_writer(settings, run_id, planning=False, started_at=started_at,
                      keep_staging=keep_staging, warm=warm, checkpoint=checkpoint,
                      brief=brief)[1]


def plan_and_load_stage(settings: Settings, run_id: str, *, started_at: datetime | None = None,
                        warm: WarmClusterer | None = None, checkpoint: bool = True,
                        brief: bool = False, waited: float = 0.0
                        ) -> tuple[PlanResult, LoadResult]:
    """:func:`cluster_stage` then :func:`load_stage`, on one writer's
    connection: a stream's micro-batch. The plan is the same read-only
    planning before the load's one transaction, but the file is opened once,
    not three times (a probe for the writer, the plan's reader, the load's
    writer: each open reads the write-ahead log the burst's loads left, ~100
    ms at 50,000 articles), and no other writer can come between the plan and
    its load. The writer is held through the plan (~0.1 s warm), so the
    stream uses it only with a warm clusterer: a plan that restores the open
    stories (seconds) runs on a reader (:func:`cluster_stage`). ``brief`` and
    ``waited``: as :func:`load_stage`'s (the lock is asked for before the
    plan, so a file held elsewhere costs no plan)."""
    planned, loaded = _on_writer(settings, run_id, planning=True, started_at=started_at,
                                 warm=warm, checkpoint=checkpoint, brief=brief, waited=waited)
    assert planned is not None
    return planned, loaded


def _on_writer(settings: Settings, run_id: str, *, planning: bool,
               started_at: datetime | None, warm: WarmClusterer | None, checkpoint: bool,
               brief: bool, waited: float = 0.0, keep_staging: bool = False
               ) -> tuple[PlanResult | None, LoadResult]:
    """The load of ``run_id`` on the writer (``planning``: its plan first, on
    the same connection); its staging removed unless ``keep_staging``. An
    error before the load began (the lock, the plan: nothing written) is
    raised; one after is read back (:func:`_committed_anyway`)."""
    # Pulled under the writer lock: a poll re-run on another host meanwhile
    # (an Airflow retry) cannot change the folder between pull and load.
    planned: PlanResult | None = None
    loaded: LoadResult | None = None
    began = False
    shards: tuple[str, ...] = ()
    try:
        with backend(settings).writer(checkpoint=checkpoint, brief=brief,
                                      waited=waited) as con, \
                shared_staging.workspace(settings, run_id) as local:
            shards = staging.finished(staging.run_dir(local.staging, run_id))
            if planning:
                planned = plan(con, local, run_id, warm=warm)
            began = True
            loaded = load(con, local, run_id, started_at=started_at, warm=warm)
    except Exception as exc:
        if not began:
            raise
        loaded = _committed_anyway(settings, run_id, exc, loaded, shards)
    if not keep_staging:
        staging.remove(staging.run_dir(settings.staging, run_id))
        shared_staging.discard(settings, run_id)
    return planned, loaded


def _committed_anyway(settings: Settings, run_id: str, exc: Exception,
                      loaded: LoadResult | None = None, shards: Iterable[str] = ()
                      ) -> LoadResult:
    """The result of a load of ``run_id`` that raised ``exc`` once under way,
    when the run is loaded all the same, with each of ``shards`` (the ones its
    staging folder held; DuckDB can say the disk is full after the commit
    reached its write-ahead log, a lake's catalog can drop the session after
    it committed); else ``exc`` is raised. ``loaded``: what ``load()``
    returned, when it returned before the error (the connection's close
    raised).

    The read-back asks for the file about 0.3 s, without a warning (a
    stream's database thread, which the polls share, must not wait the
    writer's ~18 s here): when another process holds the file read-write at
    that moment the run counts as failed. Nothing is lost then either: the
    run is kept and tried again, and the shards staged beside it meanwhile
    (a stream's later batches) are loaded then, the ones its first load took
    not again (``run_shards``)."""
    if loaded is None:
        try:
            if settings.store.mode == "lake":
                reading = open_store(settings, read_only=True)
            else:
                reading = store.connect(settings.database, read_only=True,
                                        retry=store.SHORT_RETRY)
            with reading as con:
                loaded = loaded_run(con, run_id, shards)
        except Exception:  # noqa: BLE001 - the load's own error is what to say
            loaded = None
        if loaded is None:
            raise exc
        loaded = replace(loaded, already_loaded=False)  # by this load: read back as loaded
    log.warning("batch %s: the load said %s, but the run is loaded: stored once, going on",
                run_id, exc, extra={"run_id": run_id})
    return loaded


def checkpoint_stage(settings: Settings) -> None:
    """Fold the loads' write-ahead log into the database file (a no-op in a lake)."""
    backend(settings).checkpoint()


def claim_stage(settings: Settings, *, ignore_backoff: bool = False, checkpoint: bool = True,
                brief: bool = False) -> alert.SendRound:
    """A file's send round, its first writer session: the journals rounds
    left applied, the due rows claimed and what their emails say read; the
    file is closed before any is rendered and delivered
    (:meth:`alert.SendRound.deliver`)."""
    with backend(settings).writer(checkpoint=checkpoint, brief=brief) as con:
        return alert.claim(con, settings, ignore_backoff=ignore_backoff)


def record_stage(settings: Settings, round_: alert.SendRound, *, checkpoint: bool = True,
                 brief: bool = False) -> alert.SendResult:
    """A file's send round, its second writer session: the outcomes its
    journal holds marked in the outbox, the journal removed. When the writer
    cannot be written, the journal is left (unlocked) for the next round,
    which applies it before it claims; when it cannot be had (a
    :class:`store.DatabaseLocked`) the journal stays this round's, to try
    again (a stream does) or give up (:meth:`alert.SendRound.abandon`)."""
    with backend(settings).writer(checkpoint=checkpoint, brief=brief) as con:
        return alert.record(con, round_)


def send_stage(settings: Settings, mailer: alert.Mailer | None = None, *,
               ignore_backoff: bool = False, checkpoint: bool = True,
               brief: bool = False, one_round: bool = False) -> alert.SendResult:
    """Send rounds until none is left due now, for at most half a claim's
    lease: a round claims at most ``smtp.max_per_round`` emails, and a
    backlog goes in rounds one after the other (each short beside its lease).
    ``one_round``: one only (a stream schedules the next itself). The result
    counts every round's emails and the outbox after the last.

    ``checkpoint=False``: as :func:`load_stage`'s (its marks are small, but
    a writer's close folds in everything the loads left in the log).
    ``brief``: as :func:`load_stage`'s (a stream's round, which tries again
    between its polls while the file is held).

    On the file, the round holds the writer only to claim and read
    (:func:`claim_stage`) and to mark (:func:`record_stage`), not while it
    talks to the mail server: an analyst's read-only session opened
    meanwhile is not refused, whatever the server does."""
    mailer = mailer or alert.mailer_for(settings)
    started = time.monotonic()
    result = last = _send_round(settings, mailer, ignore_backoff=ignore_backoff,
                                checkpoint=checkpoint, brief=brief)
    # A round goes on to the next only when it took its most and sent or
    # failed one email at least (SendResult.more): each such round ends an
    # email for good, so this ends. A row refused for now is due again once
    # its backoff is over (at once with --now): rounds that met only such
    # refusals would take the same rows again and again. And no round starts
    # once half a claim's lease has gone since the first did (what one round
    # may last): a backlog of thousands does not hold the run, the Airflow
    # task (and the DuckDB pool's one slot the loads wait for) or a stop for
    # hours; the rest is due at the next send.
    budget = alert.lease_for(settings).total_seconds() / 2
    while last.more and not one_round and time.monotonic() - started < budget:
        last = _send_round(settings, mailer, ignore_backoff=ignore_backoff,
                           checkpoint=checkpoint, brief=brief)
        # An email refused for now in one round may go out in a later one
        # (taken again with --now): the emails left pending after a refusal
        # are at most the rows pending at the end.
        result = replace(last, sent=result.sent + last.sent, failed=result.failed + last.failed,
                         retry=min(result.retry + last.retry, last.pending))
    return result


def _send_round(settings: Settings, mailer: alert.Mailer, *, ignore_backoff: bool,
                checkpoint: bool, brief: bool) -> alert.SendResult:
    """One send round (the mailer is closed after it; it connects again when used)."""
    if settings.store.mode != "lake":
        round_ = claim_stage(settings, ignore_backoff=ignore_backoff, checkpoint=checkpoint,
                             brief=brief)
        if round_.result is not None:
            mailer.close()
            return round_.result
        round_.deliver(mailer)
        try:
            return record_stage(settings, round_, checkpoint=checkpoint, brief=brief)
        finally:
            round_.abandon()  # the file held past the wait: the next round applies it
    # A lake's sender never writes the lake (a lake commit per mark aborts the
    # loads): it reads the outbox rows and stories read-only and keeps the
    # delivery state in the catalog's PostgreSQL (pipeline.store.delivery).
    assert settings.store.catalog is not None  # validated
    outbox = delivery.PgOutbox(delivery.connect(settings.store.catalog), settings.store.catalog)
    try:
        with open_store(settings) as con:
            outbox.add(delivery.lake_outbox_rows(con))
            # Leases are compared across hosts: one clock, PostgreSQL's.
            return alert.send_pending(con, settings, mailer, ignore_backoff=ignore_backoff,
                                      outbox=outbox, now=outbox.now())
    finally:
        outbox.pg.close()  # the session it went on with, if the first was cut off


@contextmanager
def explained(where: Path) -> Iterator[None]:
    """A full disk or a damaged database file as its sentence (exit 2 in the
    CLI), naming ``where`` when the error names no file; any other error as
    it is."""
    try:
        yield
    except Exception as exc:
        sentence = store.explain(exc, where)
        if sentence is None or sentence is exc:
            raise
        raise sentence from exc
