"""The pipelined pass: alerts seconds after a page arrives, whatever the slowest server does.

    poll each feed ─▶ fetch each page ─▶ extract, clean, tag ─▶ micro-batch ─▶ cluster, load, send
    (concurrently)    (as soon as its     (worker processes,    (N articles or   (one thread opens
                       feed is parsed)     as soon as fetched)   T seconds)       the database)

A feed's new entries go to fetching as soon as that feed is parsed, a page to
extraction as soon as it is downloaded, and finished articles collect into a
micro-batch (``stream.batch_articles`` articles, or ``stream.batch_seconds``
after its first record) that is staged as a run of its own, with its
completion record, then clustered, loaded in one transaction and its alerts
sent, while slow feeds and pages are still in flight. A slow server delays
only its own articles.

The single-writer rule holds inside the process too: one thread does all the
database work in order (the seen-entry lookups, and for each batch the plan,
the load and the send). A batch is staged only once the one before it is
loaded, so a slow load merges the batches behind it instead of queueing them.

A feed's new state (ETag, content hash, the items it was parsed to) is staged
with the batch that settles its last new entry, never before: a pass that
dies half way leaves the feed as it was, and its next poll delivers those
entries again. Each batch is idempotent by its run id, as whole passes are.

When a load fails (a full disk, a database locked for too long), the pass
stops loading but not fetching: the rest of its records are staged as further
shards of the failed batch's run, which the next pass loads first (see
:func:`pipeline.run.tidy_staging`), and the error is raised once all of it is
staged. A failure to stage (a full disk under the staging) ends the pass at
once; what was not staged comes back with the next poll. Continuous mode
loads a run that failed for a lock or a full disk again between two polls
(:meth:`_Stream.load_again`) and goes on.

Continuous mode keeps the same pipeline running: feeds are polled when they
are due (:mod:`pipeline.sources.schedule`), not in whole passes, until the
``stop`` event is set (Ctrl-C, SIGTERM); then what is in flight finishes and
is loaded. Given a :class:`~pipeline.reload.ConfigWatch`, it takes an edited
config between two polls (:meth:`_Stream.reconfigure`): ``_Stream.settings``
is replaced on the event loop's thread, and every batch is planned and loaded
with the settings it was staged with, whatever came after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from pipeline import alert, store
from pipeline.config import ConfigError, Settings
from pipeline.http import Fetcher, FetchLimits
from pipeline.models import (
    FeedEntry,
    FeedUpdate,
    FetchedPage,
    Rejection,
    Seen,
    TaggedArticle,
)
from pipeline.process import Processor, ProcessSummary, worker_count
from pipeline.reload import ConfigWatch
from pipeline.signal import background, embed
from pipeline.sources import feeds, poll
from pipeline.sources.feeds import Feed
from pipeline.sources.pages import fetch_page
from pipeline.stages import (
    MAX_PAGE_ATTEMPTS,
    PollSummary,
    Progress,
    checkpoint_stage,
    claim_stage,
    cluster_stage,
    deferred_record,
    entry_from,
    explained,
    feed_record,
    fetch_limits,
    load_stage,
    new_run_id,
    plan_and_load_stage,
    poll_options,
    quiet,
    record_outcome,
    record_stage,
    rejection_record,
    send_stage,
)
from pipeline.store import shared_staging, staging
from pipeline.store.backend import backend, open_store
from pipeline.store.load import LoadResult
from pipeline.store.plan import PlanResult
from pipeline.store.warm import WarmClusterer
from pipeline.workers import stop_fork_server

if TYPE_CHECKING:
    import duckdb
    from _typeshed import DataclassInstance

log = logging.getLogger(__name__)

# How often the batcher looks at the batch being filled: well under the
# batch interval, and nothing next to a page's fetch and extraction.
_TICK = 0.05
# Continuous mode looks for due feeds at least this often (a feed added with
# `newsmon feeds add` is picked up within it), and at its config file.
_MAX_SLEEP = 60.0
# Continuous mode: a load that failed for a lock or a full disk is tried again
# between two polls, first this long after it failed, then twice as long after
# each failed try, up to _LOAD_AGAIN_MAX. A try waits for the lock briefly
# (store.SHORT_RETRY, ~0.3 s), not the writer's ~18 s: it runs on the
# database thread, which the next poll's due-feed lookup waits for.
_LOAD_AGAIN = 5.0
_LOAD_AGAIN_MAX = 30.0
# While the file is held, a feed's entries are known from memory: its latest
# listing's, and as many it listed before (this many at least), the ones it
# stopped listing last. A feed of 50 items keeps at most 100 (~30 KB).
_FORMER_LEAST = 50
# The least nap before a try again is looked at (its time may be past).
_LOAD_AGAIN_LEAST = 1.0
# A load waits for the writer by probes this far apart at first, then twice
# as far after each, up to the second (store.LockRetry's schedule).
_WRITER_PROBE_FIRST = store.LockRetry().first_delay
_WRITER_PROBE_MAX = store.LockRetry().max_delay
# Continuous mode: a send round is tried between two polls only when an alert
# is due (one the stream's loads queued, or a retry whose backoff ended), or
# this long after the last round at most (alerts another process queued, a
# round that failed): each round opens the writer, which an analyst's
# read-only session holds up ~18 s.
_SEND_AT_LEAST = 300.0


def load_again_wait(tries: int) -> float:
    """Seconds from a failed load (``tries`` = 0) or its failed try again
    number ``tries`` to the next try: 5, 10, 20, then 30 s."""
    return min(_LOAD_AGAIN * 2.0 ** min(tries, 16), _LOAD_AGAIN_MAX)


@dataclass(frozen=True, slots=True, kw_only=True)
class Batching:
    """When a micro-batch is staged and loaded: ``articles`` articles, or
    ``seconds`` after its first record, whichever comes first."""

    articles: int = 50
    seconds: float = 2.0

    @classmethod
    def of(cls, settings: Settings) -> Batching:
        return cls(articles=settings.stream.batch_articles, seconds=settings.stream.batch_seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchResult:
    """One micro-batch loaded (and its alerts sent)."""

    plan: PlanResult
    load: LoadResult
    # None: a batch's round (if it queued alerts) goes on beside the next
    # loads and is counted in the run's totals.
    send: alert.SendResult | None
    # False: more articles were on their way, so the load left its commit in the
    # write-ahead log for a later load (or the pass's end) to fold into the file.
    folded: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamResult:
    poll: PollSummary
    process: ProcessSummary
    batches: int  # micro-batches loaded
    plan: PlanResult  # the batches' plans, summed
    load: LoadResult  # the batches' loads, summed
    send: alert.SendResult  # every send round of the run as one


Counted = TypeVar("Counted", bound="DataclassInstance")


def _added(total: Counted, more: Counted) -> Counted:
    """``total`` with each count (int field) of ``more`` added; the rest is ``total``'s."""
    return replace(total, **{f.name: getattr(total, f.name) + getattr(more, f.name)
                             for f in fields(total) if type(getattr(total, f.name)) is int})


def _nothing(kind: type[Counted]) -> Counted:
    """A result with every count 0, for a run that loaded no batch."""
    return kind(**{f.name: "" if f.name == "run_id" else False if f.name == "already_loaded"
                   else 0 for f in fields(kind)})


@dataclass(slots=True)
class RunTotals:
    """The run's batches and send rounds, summed as they come: a continuous run
    of weeks holds these few counts, never a record per batch."""

    batches: int = 0
    plan: PlanResult = field(default_factory=lambda: _nothing(PlanResult))
    load: LoadResult = field(default_factory=lambda: _nothing(LoadResult))
    # This run's emails sent and refused summed; the outbox (pending, sending,
    # when, and the retries among the pending) as the last round left it: an
    # email greylisted in one round and sent in a later one is sent, once.
    send: alert.SendResult = field(
        default_factory=lambda: alert.SendResult(sent=0, failed=0, pending=0))

    def add_batch(self, batch: BatchResult) -> None:
        self.batches += 1
        self.plan = _added(self.plan, batch.plan)
        self.load = _added(self.load, batch.load)

    def add_send(self, round_: alert.SendResult) -> None:
        before = self.send
        self.send = replace(round_, sent=before.sent + round_.sent,
                            failed=before.failed + round_.failed)
        if not (round_.sent or round_.failed or round_.retry) and round_.pending:
            # A round that tried no email (each pending one waits out its
            # backoff) says nothing new of them: the ones an earlier round
            # could not deliver are still not delivered. `run --once` against
            # a mail server that refused the connection ended with such a
            # round (the one after the last load) and said exit 0.
            retry = min(before.retry, round_.pending)
            self.send = replace(self.send, retry=retry,
                                stopped=round_.stopped or (before.stopped if retry else None))
        elif before.more:
            # The next round of a backlog (the last took its most): it took
            # other rows, and those the last left pending after a refusal
            # wait out their backoff. `run --once` whose first round of a
            # backlog met a 451 and whose later rounds delivered the rest
            # said exit 0.
            self.send = replace(self.send,
                                retry=min(before.retry + round_.retry, round_.pending))


@dataclass(slots=True)
class _Batch:
    """The micro-batch being filled: its records, in memory until staged."""

    records: list[tuple[staging.Kind, dict[str, Any]]] = field(default_factory=list)
    articles: int = 0
    opened: float = 0.0  # time.monotonic() of its first record
    feeds: list[str] = field(default_factory=list)  # feeds whose state it carries
    keys: list[tuple[str, str]] = field(default_factory=list)  # entries it settles

    def write(self, kind: staging.Kind, record: dict[str, Any]) -> None:
        if not self.records:
            self.opened = time.monotonic()
        self.records.append((kind, record))
        if kind == "articles":
            self.articles += 1


@dataclass(slots=True)
class _Polled:
    """A polled feed whose new entries are not all settled yet."""

    polled: poll.FeedPolled
    left: int
    now: datetime


@dataclass(frozen=True, slots=True)
class _Work:
    """One entry on its way: its page's attempts before this one, and the feed
    it settles (None: a retry of an earlier pass's entry)."""

    entry: FeedEntry
    attempts: int
    feed: str | None


AnyTask = asyncio.Task[Any]
T = TypeVar("T")


class _Stream:
    """One pipelined run: a pass (``continuous`` False) or continuous mode."""

    def __init__(
        self, settings: Settings, *, fetcher: Fetcher, processor: Processor,
        extractors: ThreadPoolExecutor, parallel: int, database: ThreadPoolExecutor,
        batching: Batching | None, mailer: alert.Mailer | None, progress: Progress,
        deadline: float | None, started: datetime,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self.settings, self.fetcher, self.processor = settings, fetcher, processor
        self.extractors, self.database = extractors, database
        # Given ones are kept through a reload; the others follow the settings.
        self.given_batching, self.given_mailer = batching, mailer
        self.batching = batching or Batching.of(settings)
        self.mailer = mailer or alert.mailer_for(settings)
        self.progress = progress
        self.retiring: set[AnyTask] = set()  # fetchers replaced, closed once unused
        self.deadline, self.started, self.on_batch = deadline, started, on_batch
        self.parallel = parallel
        self.extract_slots = asyncio.Semaphore(parallel)
        self.batch = _Batch()
        self.polled: dict[str, _Polled] = {}
        self.busy_feeds: set[str] = set()  # polled, state not loaded yet
        # Polled and not settled yet (the poll, or pages of its entries, under
        # way): never freed by a load, whose batch may hold an earlier poll's
        # state while a failed load's batches wait.
        self.polling: set[str] = set()
        # Each feed's newest state in a batch not loaded yet, and that batch:
        # polled from it while a failed load's batches wait (not the file's).
        self.settled: dict[str, tuple[store.FeedState, _Batch]] = {}
        self.freed = 0  # counts each time feeds in flight became free to poll again
        self.keys: set[tuple[str, str]] = set()  # entries in flight or staged, not loaded
        self.tasks: set[AnyTask] = set()
        self.wake = asyncio.Event()
        self.fatal: BaseException | None = None
        self.loading: asyncio.Future[None] | None = None
        # A send round between two polls (send_soon), on its own: it may wait
        # for the writer (an analyst's session), and the loop polls meanwhile.
        self.sending: asyncio.Future[alert.SendResult | None] | None = None
        self.failed: BaseException | None = None  # a load failed: stage the rest for later
        self.failed_run: str | None = None
        self.failed_batches: list[_Batch] = []  # staged in failed_run, not loaded
        self.load_again_at = 0.0  # time.monotonic() of the failed run's next try
        self.load_tries = 0  # the failed run's tries again so far
        self.waiting_writer = False  # a load waits for the writer (another holds it)
        self.read_error: str | None = None  # the due feeds' last failed read, said once
        # The feeds and their states as last read from the store, and the
        # entries each feed's lookups found delivered or this run took, those
        # of its latest listing and the ones it stopped listing last
        # (_listed_only): while a session holds the file read-write, not even
        # a read goes through, and the feeds are polled on from these (a feed
        # with no stored state from scratch; the pages to retry wait for the
        # file). A feed's entries are written by the database thread only
        # while the feed is not busy (_read_due), by the loop's only while it
        # is polled (busy): never by both at once.
        self.feeds_read: tuple[list[Feed], dict[str, store.FeedState]] | None = None
        self.remembered: dict[str, dict[str, Seen]] = {}
        self.shard = 0
        self.send_error: BaseException | None = None
        self.lookups: list[tuple[Sequence[tuple[str, str]],
                                 asyncio.Future[dict[tuple[str, str], Seen]]]] = []
        self.lookup_task: AnyTask | None = None
        self.totals = RunTotals()
        self.first_run: str | None = None
        self.counts = {"entries": 0, "articles": 0, "rejected": 0, "retry": 0, "deferred": 0}
        # The pages whose last try failed for a reason that may pass: the
        # summary's "to retry later" is these, not every failed try of a run
        # that retries a page each poll interval.
        self.retrying: set[tuple[str, str]] = set()
        self.feed_counts = {"polled": 0, "failed": 0, "new": 0, "retry": 0, "deferred": 0}
        self.due = 0
        self.entries_total = 0
        self.extracting = 0  # pages waiting for or in extraction
        self.host_deadlines: dict[str, float] = {}  # time.monotonic() values
        self.host_pages: Counter[str] = Counter()  # pages in flight per host
        # The clusterer goes on from one batch's plan to the next (while no other
        # process writes the database): no restore of the open stories a batch.
        self.warm = WarmClusterer()
        # Loads committed to the file's write-ahead log and not folded in yet.
        self.unfolded = False
        self.folded_at_end = False  # finish() tried (a failed fold is not tried twice)
        self.fold_error: str | None = None  # the last failed fold's, said once
        # When the next send round is due (time.monotonic()), None: no alert
        # known to be pending. Due at once when the run starts: earlier runs'
        # alerts may be waiting.
        self.send_due: float | None = time.monotonic()
        # Rounds the loads asked for (alerts queued): one asked while a round
        # is under way is due once that round ends, whatever it found (a
        # lake's round does not see rows loaded after its claim).
        self.send_asked = 0
        self.send_more = False  # the last round took its most: the next is due now
        self.last_send = time.monotonic()
        self.warming: list[asyncio.Future[None]] = []  # warm_up()'s, under way or done

    # -- the database thread ---------------------------------------------------------------

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.database, fn, *args)

    def _seen(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], Seen]:
        # Held read-write a moment ago: asked for briefly (remembered below).
        with explained(self.settings.database), \
                open_store(self.settings, read_only=True,
                           brief=self.read_error is not None) as con:
            return store.seen_entries(con, pairs)

    def _remember(self, feed: str, entry_id: str, seen: Seen) -> None:
        known = self.remembered.setdefault(feed, {})
        known.pop(entry_id, None)  # last: the order is when each was last listed
        known[entry_id] = seen

    def _listed_only(self, feed: str, update: FeedUpdate) -> None:
        """Keep of ``feed``'s entries those its latest listing (``update``'s
        items) holds, and of the others the ones it stopped listing last: as
        many as it lists, :data:`_FORMER_LEAST` at least. An item that leaves
        a listing and comes back (a feed of the day's top stories) is then
        still known while the file is held, and what is remembered follows
        the feeds' listings, not the run's length. An update without items
        (unchanged, failed) changes nothing; one whose items could not be
        hashed (a document the parser reads another way than its items)
        keeps the entries last listed or taken, up to twice
        ``fetch.max_entries_per_feed``."""
        known = self.remembered.get(feed)
        if not known:
            return
        listed = poll.listed_entries(update.item_hashes)
        if listed:
            former = [k for k in known if k not in listed]
            keep = former[-max(len(listed), _FORMER_LEAST):]
            self.remembered[feed] = {**{k: known[k] for k in keep},
                                     **{k: v for k, v in known.items() if k in listed}}
        elif update.item_hashes is None and len(known) > (
                most := 2 * self.settings.fetch.max_entries_per_feed):
            self.remembered[feed] = dict(list(known.items())[-most:])

    def _from_memory(self, pairs: Sequence[tuple[str, str]]
                     ) -> dict[tuple[str, str], Seen] | None:
        """What :meth:`known` would find of ``pairs``, from what this run
        remembers; None when one of their feeds had no lookup yet this run."""
        if any(feed not in self.remembered for feed, _ in pairs):
            return None
        return {(feed, i): seen for feed, i in pairs
                if (seen := self.remembered[feed].get(i)) is not None}

    async def known(self, pairs: Sequence[tuple[str, str]]
                    ) -> dict[tuple[str, str], Seen]:
        """Which of ``pairs`` were delivered before, with their links. Feeds
        parsed while a lookup (or a load) runs share the next one: one query
        each costs 10-20 ms."""
        future: asyncio.Future[dict[tuple[str, str], Seen]] = (
            asyncio.get_running_loop().create_future())
        self.lookups.append((pairs, future))
        if self.lookup_task is None or self.lookup_task.done():
            self.lookup_task = asyncio.ensure_future(self._look_up())
        return await future

    async def _look_up(self) -> None:
        while self.lookups:
            waiting, self.lookups = self.lookups, []
            asked = [p for pairs, _ in waiting for p in pairs]
            try:
                seen = await self.db(self._seen, asked)
            except store.DatabaseLocked as exc:
                # Held read-write: the feeds looked up before this run answer
                # from memory; the others' polls are deferred, as before.
                for pairs, future in waiting:
                    found = self._from_memory(pairs)
                    if found is None:
                        future.set_exception(exc)
                    else:
                        future.set_result(found)
                continue
            except Exception as exc:  # noqa: BLE001 - each waiting feed's task raises it
                for _, future in waiting:
                    future.set_exception(exc)
                continue
            self._looked_up(asked, seen)
            for _, future in waiting:
                future.set_result(seen)

    def _read_due(self, settings: Settings, now: datetime, force: bool, retries: bool,
                  settled: dict[str, store.FeedState]
                  ) -> tuple[list[Feed], dict[str, store.FeedState], list[dict[str, Any]],
                             dict[str, dict[str, tuple[str, int | None]]]]:
        # Read-only once the database exists: an analyst's read-only session
        # does not hold the poll up (only each load needs the file alone).
        with explained(settings.database), \
                open_store(settings, brief=self.read_error is not None) as con:
            listed = feeds.all_feeds(settings, con)
            stored = store.feed_states(con)
            self.feeds_read = (listed, stored)
            recalled = self._recall(con, [f.url for f in listed if f.url not in self.busy_feeds],
                                    stored)
            retry = store.entries_to_retry(con, MAX_PAGE_ATTEMPTS) if retries else []

            def known(pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Seen]:
                # The due feeds' stored items: those of the feeds just recalled
                # (every feed, at a run's first read) answered from that lookup,
                # on this connection; only the others asked.
                asked, seen = recalled
                rest = [p for p in pairs if p not in asked]
                found = {p: hit for p in pairs if p in asked and (hit := seen.get(p)) is not None}
                if rest:
                    found.update(store.seen_entries(con, rest))
                return self._looked_up(pairs, found)

            due, states, skippable = self._due(settings, now, force, settled, listed, stored,
                                               known)
        return due, states, retry, skippable

    def _recall(self, con: duckdb.DuckDBPyConnection, urls: Sequence[str],
                stored: dict[str, store.FeedState]
                ) -> tuple[set[tuple[str, str]], dict[tuple[str, str], Seen]]:
        """Look up the entries of the stored listings of the feeds among
        ``urls`` this run has not looked up yet (one query, once a feed a
        run): a feed not due before a session holds the file read-write, or
        whose every poll was unchanged, is then polled on from memory like
        the others. A feed whose stored state keeps no listing (never parsed,
        or its items could not be hashed) is left out: what of it is stored
        is not known. The pairs asked and what was found of them (the due
        feeds' lookup of the same read answers those from it)."""
        listings = {url: poll.listed_entries(state.item_hashes) for url in urls
                    if url not in self.remembered and (state := stored.get(url)) is not None
                    and state.item_hashes is not None}
        pairs = [(url, entry) for url, entries in listings.items() for entry in entries]
        seen = self._looked_up(pairs, store.seen_entries(con, pairs) if pairs else {})
        for url in listings:
            self.remembered.setdefault(url, {})
        return set(pairs), seen

    def _looked_up(self, pairs: Sequence[tuple[str, str]], seen: dict[tuple[str, str], Seen]
                   ) -> dict[tuple[str, str], Seen]:
        """``seen``, what the store found of ``pairs``, remembered: their feeds
        can be polled on from memory while the file is held read-write."""
        for feed, entry_id in pairs:
            self.remembered.setdefault(feed, {})
            if (hit := seen.get((feed, entry_id))) is not None:
                self._remember(feed, entry_id, hit)
        return seen

    def _due(self, settings: Settings, now: datetime, force: bool,
             settled: dict[str, store.FeedState], listed: list[Feed],
             stored: dict[str, store.FeedState], known: poll.KnownLookup
             ) -> tuple[list[Feed], dict[str, store.FeedState],
                        dict[str, dict[str, tuple[str, int | None]]]]:
        # Only the feeds polled say when to look next: one removed from the
        # config (or paused) keeps its row, and a next poll long past.
        polled = {f.url for f in listed}
        # A state staged and not loaded yet is newer than the file's.
        states = {url: state for url, state in {**stored, **settled}.items() if url in polled}
        candidates = [f for f in listed if f.url not in self.busy_feeds]
        due = poll.due_feeds(candidates, states, now, force=force, options=settings.poll)
        return due, states, poll.skippable_items(due, states, known)

    def _due_from_memory(self, now: datetime, force: bool,
                         settled: dict[str, store.FeedState]
                         ) -> tuple[list[Feed], dict[str, store.FeedState],
                                    dict[str, dict[str, tuple[str, int | None]]]] | None:
        """The due feeds as :meth:`_read_due` finds them, from the last read and
        this run's polls (the store cannot be read): the feeds this run has
        looked up entries of, and those the last read found no state of (a
        feed a config reload added: nothing of it is stored, it is polled
        from scratch); the others wait for the file. None before any read
        went through."""
        if self.feeds_read is None:
            return None
        listed, stored = self.feeds_read
        # The config's feeds as they are now (one a reload removed is not
        # polled), then the ones added with `newsmon feeds add`, as last read
        # (paused ones left out: a paused feed has a state).
        read = {f.url for f in listed}
        listed = [f for f in feeds.config_and_added(
                      self.settings, [f for f in listed if f.origin == "added"])
                  if (f.url in self.remembered and f.url in read) or f.url not in stored]
        for feed in listed:
            self.remembered.setdefault(feed.url, {})  # a new feed: none of its entries stored

        def known(pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Seen]:
            return self._from_memory(pairs) or {}

        return self._due(self.settings, now, force, settled, listed, stored, known)

    # -- a reloaded config ------------------------------------------------------------------

    async def reconfigure(self, settings: Settings, poller: poll.FeedPoller) -> None:
        """Go on with ``settings`` (its restart keys as they were:
        :func:`pipeline.reload.reconcile`), on the event loop's thread between
        two polls. What is under way keeps what it started with (a staged batch
        its settings, a request its fetcher, a send round its mailer); the feeds,
        rules and limits are read from ``self.settings`` as each poll, page,
        batch and send round starts."""
        old = self.settings
        mailer = self.mailer
        if self.given_mailer is None and (settings.smtp, settings.outbox) != (old.smtp,
                                                                              old.outbox):
            try:
                mailer = alert.mailer_for(settings)
            except (ConfigError, OSError) as exc:  # the password or CA file went unreadable
                log.warning("the SMTP settings were not reloaded: %s; alerts go on as before",
                            exc)
                settings = settings.model_copy(update={"smtp": old.smtp,
                                                       "outbox_dir": old.outbox_dir})
        self.settings, self.mailer = settings, mailer
        if self.given_batching is None:
            self.batching = Batching.of(settings)
        limits = fetch_limits(settings)
        if limits != fetch_limits(old):
            await self._refetch(limits)
        if _tagging(settings) != _tagging(old):
            self._retag(settings)
        poller.retune(fetcher=self.fetcher, options=poll_options(settings))

    def _retag(self, settings: Settings) -> None:
        """Pages from now on tagged with ``settings``' topics and people. A
        worker builds its tagger once, when it starts, so these are new
        workers (started now, in the background: about 3.5 s); the old ones
        stop once the tasks that may still hand them a page are done. Articles
        already extracted keep the tags they were given."""
        old, users = self.processor, set(self.tasks)
        self.processor = Processor(settings, workers=self.parallel)
        loop = asyncio.get_running_loop()
        starting = loop.run_in_executor(None, self.processor.start)
        retire = asyncio.ensure_future(self._stop_workers(old, users, starting))
        self.retiring.add(retire)
        retire.add_done_callback(self.retiring.discard)

    @staticmethod
    async def _stop_workers(processor: Processor, users: set[AnyTask],
                            starting: asyncio.Future[None]) -> None:
        try:
            if users:
                await asyncio.wait(users)
        finally:
            # Closing waits for calls in progress (each within its time limit).
            await asyncio.get_running_loop().run_in_executor(None, processor.close)
            # A start that failed fails the next page's call too, with its reason.
            await asyncio.gather(starting, return_exceptions=True)

    async def _refetch(self, limits: FetchLimits) -> None:
        """Requests from now on under ``limits``. A fetcher's limits are its
        client's timeouts, its pools and its semaphores, so it is a new one;
        the old one is closed once the tasks that may still use it are done
        (meanwhile a host may have a request from each in flight)."""
        # The new one first: a task started while it opens (were that ever to
        # yield) is then counted among the old one's users, not closed under.
        fresh = await Fetcher(limits).__aenter__()
        old, users = self.fetcher, set(self.tasks)
        self.fetcher = fresh
        retire = asyncio.ensure_future(self._retire(old, users))
        self.retiring.add(retire)
        retire.add_done_callback(self.retiring.discard)

    @staticmethod
    async def _retire(fetcher: Fetcher, users: set[AnyTask]) -> None:
        try:
            if users:
                await asyncio.wait(users)
        finally:
            await fetcher.aclose()

    # -- tasks -----------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: AnyTask) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self.fatal is None:
            self.fatal = task.exception()
        self.wake.set()

    def warm_up(self) -> None:
        """Start the extraction workers and load the sentence encoder while the
        feeds are polled (``warming``): the first batch's latency would
        otherwise include all of it (2-4 s each here). The loads run on
        threads the exit does not wait for (:func:`_on_daemon_thread`); a
        start ends at once when the workers are killed (:meth:`abort`)."""
        loop = asyncio.get_running_loop()
        self.warming.append(loop.run_in_executor(self.extractors, self.processor.start))
        self.warming.append(_on_daemon_thread(background.warm_up))
        if self.settings.cluster.embeddings:
            self.warming.append(_on_daemon_thread(embed.warm_up))

    def abort(self) -> None:
        """Stop now (Ctrl-C, SIGTERM). The tasks are cancelled first, so that no
        page whose worker is killed next is recorded as a crash of its worker
        (an attempt); then the workers are killed, those starting too, and
        after them the fork server (the feed parser's pool was aborted as the
        interrupt left its ``with``; a pool not aborted would start a new
        server). The threads waiting on them return at once, where they
        waited for the start-up (5-6 s) or a page's extraction (up to its
        limit: 18.7 s for a 4 MB page). The warm-ups are not waited for: a
        start ends at once, and a model load goes on, on its thread, till the
        process exits."""
        for task in self.tasks:
            task.cancel()
        self.processor.abort()
        stop_fork_server()
        for started in self.warming:
            started.cancel()

    def _page_deadline(self, host: str) -> float | None:
        """The pass's deadline, or the host's, whichever comes first: a host
        gets ``fetch.host_budget_seconds`` from the first of its pages in
        flight, so a slow server's queue of pages delays only itself (the rest
        wait for the next poll, with no attempt counted)."""
        until = self.host_deadlines.get(host)
        if until is None:
            until = time.monotonic() + self.settings.fetch.host_budget_seconds
            self.host_deadlines[host] = until
        return until if self.deadline is None else min(until, self.deadline)

    def _expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    async def start_polls(self, poller: poll.FeedPoller, *, force: bool, retries: bool
                          ) -> datetime | None:
        """Start polling the due feeds (and retrying earlier passes' entries);
        when the next feed not in flight is due (None: none known)."""
        now = datetime.now(UTC)
        settled = {url: state for url, (state, _) in self.settled.items()}
        reread: datetime | None = None
        try:
            due, states, retry, skippable = await self.db(self._read_due, self.settings, now,
                                                          force, retries, settled)
        except store.DatabaseLocked as exc:
            # Held read-write (`duckdb news.duckdb`, a notebook): even the
            # feeds' states cannot be read. The feeds are polled on from what
            # this run knows of them (_due_from_memory); the rest wait for it.
            remembered = self._due_from_memory(now, force, settled)
            if remembered is None:
                raise
            if str(exc) != self.read_error:
                log.warning("the database is held, polling the feeds from what this run"
                            " remembers of them (the pages to retry, and the feeds whose"
                            " stored entries it has not looked up, wait for it; reading it"
                            " again at each look for due feeds): %s", exc)
            self.read_error = str(exc)
            (due, states, skippable), retry = remembered, []
            reread = now + timedelta(seconds=_LOAD_AGAIN)  # the file may be free by then
        else:
            self.read_error = None
        for row in retry:
            work = _Work(entry=entry_from(row), attempts=int(row["attempts"]), feed=None)
            if self._claim(work.entry):
                self.feed_counts["retry"] += 1
                self.entries_total += 1
                self.spawn(self._entry(work))
        self.due += len(due)
        for feed in due:
            self.busy_feeds.add(feed.url)
            self.polling.add(feed.url)
            self.spawn(self._poll(poller, feed, states.get(feed.url), skippable.get(feed.url),
                                  now))
        upcoming = [s.next_poll_at for url, s in states.items()
                    if url not in self.busy_feeds and s.status != "retired"
                    and s.next_poll_at is not None]
        return min([*upcoming, reread] if reread is not None else upcoming, default=None)

    def _claim(self, entry: FeedEntry) -> bool:
        """Each (feed, entry id) once in flight: an article a feed lists
        twice (common in real feeds) is one entry, the first copy."""
        key = (entry.feed_url, entry.id)
        if key in self.keys:
            return False
        self.keys.add(key)
        return True

    async def _poll(self, poller: poll.FeedPoller, feed: Feed, state: store.FeedState | None,
                    known_items: dict[str, tuple[str, int | None]] | None,
                    now: datetime) -> None:
        try:
            async with asyncio.timeout_at(self.deadline):  # loop.time() is time.monotonic()
                polled = await poller.poll(feed, state, now=now, known_items=known_items)
        except (TimeoutError, store.DatabaseLocked) as exc:
            # Not done within the pass's budget, or its entries could not be
            # looked up (the file held read-write by another session): left
            # as it was, due next pass.
            self.feed_counts["deferred"] += 1
            self.busy_feeds.discard(feed.url)
            self.polling.discard(feed.url)
            log.warning("feed deferred to the next pass, %s: %s",
                        "the time budget was spent" if isinstance(exc, TimeoutError) else exc,
                        feed.url, extra={"feed": feed.url})
            return
        self.feed_counts["polled"] += 1
        self.feed_counts["failed"] += bool(polled.update.last_error)
        self.progress("poll", self.feed_counts["polled"] + self.feed_counts["deferred"],
                      self.due)
        works = [_Work(entry=e, attempts=0, feed=feed.url) for e in polled.entries
                 if self._claim(e)]
        for work in works:  # taken: known to this run's lookups from now on
            e = work.entry
            self._remember(e.feed_url, e.id, Seen(e.url, e.title, e.published_at))
        self._listed_only(feed.url, polled.update)
        self.feed_counts["new"] += len(works)
        self.entries_total += len(works)
        self.polled[feed.url] = _Polled(polled=polled, left=len(works), now=now)
        if not works:
            self._feed_settled(feed.url)
        for work in works:
            self.spawn(self._entry(work))

    async def _entry(self, work: _Work) -> None:
        entry = work.entry
        if self._expired():
            self._settle(work, deferred=True)
            return
        host = urlsplit(entry.url).hostname or ""
        self.host_pages[host] += 1
        try:
            async with asyncio.timeout_at(self._page_deadline(host)):
                page = await fetch_page(entry, self.fetcher)
        except TimeoutError:
            self._settle(work, deferred=True)
            return
        finally:
            self.host_pages[host] -= 1
            if not self.host_pages[host]:  # the next page starts a new budget
                del self.host_pages[host], self.host_deadlines[host]
        if isinstance(page, FetchedPage):
            self.extracting += 1
            try:
                outcome = await self._extract(work, page)
            finally:
                self.extracting -= 1
            if outcome is None:
                return
        else:
            outcome = page
        self._settle(work, outcome=outcome)

    async def _extract(self, work: _Work, page: FetchedPage) -> TaggedArticle | Rejection | None:
        """The page's article (or why not); None: deferred, the budget was spent."""
        async with self.extract_slots:
            if self._expired():
                self._settle(work, deferred=True)
                return None
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.extractors, self.processor.process, page)

    # -- settling: records into the batch --------------------------------------------------

    def _settle(self, work: _Work, *, outcome: TaggedArticle | Rejection | None = None,
                deferred: bool = False) -> None:
        batch = self.batch
        if deferred or outcome is None:
            batch.write("entries", deferred_record(work.entry, work.attempts))
            self.counts["deferred"] += 1
        else:
            status = record_outcome(batch, work.entry, outcome, work.attempts + 1, self.counts,
                                    datetime.now(UTC))
            key = (work.entry.feed_url, work.entry.id)
            if status == "retry":
                self.retrying.add(key)
            else:
                self.retrying.discard(key)
        batch.keys.append((work.entry.feed_url, work.entry.id))
        self.progress("process", self.counts["entries"] + self.counts["deferred"],
                      self.entries_total)
        if work.feed is not None:
            polled = self.polled[work.feed]
            polled.left -= 1
            if polled.left == 0:
                self._feed_settled(work.feed)

    def _feed_settled(self, url: str) -> None:
        """Every new entry of the feed is in the batch: its new state goes too."""
        done = self.polled.pop(url)
        self.polling.discard(url)
        self.batch.write("feeds", feed_record(done.polled.update))
        for rejection in done.polled.rejections:
            self.batch.write("rejected", rejection_record(rejection, done.now))
        self.batch.feeds.append(url)
        self.settled[url] = (_state_of(done.polled.update), self.batch)
        if self.failed is not None or self.waiting_writer:
            # A failed load's batches may wait for hours (a notebook left open),
            # a load for the writer up to its wait: the feed is polled on, from
            # this state, or what it lists only meanwhile is lost. Its entries
            # stay in flight (self.keys). The loop wakes for it: its next poll
            # was not known while it was busy.
            self.busy_feeds.discard(url)
            self.freed += 1

    # -- batches: staged, planned, loaded, sent --------------------------------------------

    def flush(self, *, final: bool = False) -> None:
        """Stage the batch when it is due and the one before it is loaded."""
        batch = self.batch
        if not batch.records:
            return
        # The batch is planned and loaded with the settings it is staged with,
        # whatever a reload brings meanwhile.
        settings = self.settings
        if self.failed is not None:
            # Not while the failed run is loaded again (load_again): a shard
            # staged beside it then might not be in what that load reads.
            if (final or batch.articles >= self.batching.articles) and not self.load_under_way():
                self._stage(batch, settings)  # beside the failed run, for the next pass
                self.failed_batches.append(batch)
            return
        if self.load_under_way():
            return
        # Nothing waiting for or in extraction: no article would join the
        # batch soon, so waiting out the interval would only add latency.
        idle = self.extracting == 0
        due = (final or idle or batch.articles >= self.batching.articles
               or time.monotonic() - batch.opened >= self.batching.seconds)
        if due:
            run_id = self._stage(batch, settings)
            self.loading = asyncio.ensure_future(self._load(run_id, batch, settings))

    def _stage(self, batch: _Batch, settings: Settings) -> str:
        self.batch = _Batch()
        if self.failed_run is not None:
            run_id = self.failed_run
            self.shard += 1
        else:
            run_id, self.shard = new_run_id(), 0
            self.first_run = self.first_run or run_id
        directory = staging.run_dir(settings.staging, run_id)
        try:
            with explained(settings.staging), \
                    staging.StagingWriter(directory, staging.process_shard(self.shard)) as writer:
                for kind, record in batch.records:
                    writer.write(kind, record)
            # On disk now; a batch kept for a failed load waits with its feeds
            # and keys only, however long the run polls meanwhile.
            batch.records = []
            # With staging on S3 (lake mode) the load reads the run from there.
            shared_staging.push(settings, run_id, staging.process_shard(self.shard))
        except BaseException:
            if self.shard == 0:
                staging.remove(directory)
            raise
        return run_id

    def _plan_and_load(self, settings: Settings, run_id: str, brief: bool = False,
                       room: bool = False, waited: float = 0.0
                       ) -> tuple[PlanResult, LoadResult]:
        # The warm clusterer is given back only to a plan with the cluster
        # settings it was made with (store.warm): an edited `cluster:` restores.
        # ``brief``: each try of a load that may find the file held asks for
        # the writer briefly, before it plans (plan and load share it).
        with explained(settings.database):
            if room:
                # A load tried again after a full disk: the plan only once
                # the staged run would fit (it may still not: the load says).
                backend(settings).probe_room(
                    staging.size(staging.run_dir(settings.staging, run_id)))
            if self.warm.holds_any():
                return plan_and_load_stage(settings, run_id, started_at=self.started,
                                           warm=self.warm, checkpoint=False, brief=brief,
                                           waited=waited)
            # The run's first plan, or the first after a failure dropped the
            # warm clusterer, restores the open stories (seconds at 50,000
            # articles): on a reader, as the DAG's cluster task plans, so the
            # file is not held meanwhile; the writer only for the load. Asked
            # for briefly first, so that a file held elsewhere costs no restore.
            if brief:
                with backend(settings).writer(checkpoint=False, brief=True, waited=waited):
                    pass
            planned = cluster_stage(settings, run_id, warm=self.warm)
            loaded = load_stage(settings, run_id, started_at=self.started, warm=self.warm,
                                checkpoint=False, brief=brief)
            return planned, loaded

    def may_load_again(self) -> bool:
        """Whether the failed load's cause may pass while the run goes on: a
        lock held too long (an analyst's session), a full disk."""
        return isinstance(self.failed, (store.DatabaseLocked, store.DiskFull))

    def load_again(self) -> None:
        """Continuous mode, between two polls: load the failed run again, with
        what was staged beside it and what is waiting in memory, as the next
        pass would (each shard of a run is loaded once: if the failed load
        went through after all, only what was staged beside it is loaded; the
        clusterer kept warm was dropped with the failure). Until it loads, the
        entries it carries stay in flight (not fetched again); its feeds are
        polled on from the states it staged (``settled``).

        Only when its next try is due (:meth:`next_load_again`); a try after a
        lock waits for it briefly, and each failed try doubles the wait before
        the next (up to :data:`_LOAD_AGAIN_MAX`): a session held open costs a
        loop a fraction of a second, not the writer's ~18 s."""
        if self.failed_run is None or self.load_under_way():
            return
        if time.monotonic() < self.load_again_at:
            return
        if self.batch.records:
            batch = self.batch
            self._stage(batch, self.settings)
            self.failed_batches.append(batch)
        self.loading = asyncio.ensure_future(self._load_again(self.failed_run))

    def load_under_way(self) -> bool:
        """A load (a try again included) is running on the database thread."""
        return self.loading is not None and not self.loading.done()

    def next_load_again(self) -> float | None:
        """When (time.monotonic()) the failed run's next try is due; None: no
        failed run."""
        return None if self.failed_run is None else self.load_again_at

    def _failed_load(self) -> None:
        """A load failed: its run is tried again :data:`_LOAD_AGAIN` from now,
        then twice as long after each try that fails (5, 10, 20, 30, 30 s...)."""
        self.load_tries = 0
        self.load_again_at = time.monotonic() + load_again_wait(0)

    async def _load_again(self, run_id: str) -> None:
        # Briefly after a lock: it failed once waiting the writer's full wait.
        brief = isinstance(self.failed, store.DatabaseLocked)
        room = isinstance(self.failed, store.DiskFull)
        try:
            planned, loaded = await self.db(self._plan_and_load, self.settings, run_id, brief,
                                            room)
        except Exception as exc:  # noqa: BLE001 - raised by finish() if it never loads
            # Said once per distinct error: the tries go on while it lasts.
            if str(exc) != str(self.failed):
                log.error("loading batch %s failed again; its staging is kept: %s", run_id,
                          exc, extra={"run_id": run_id})
            self.failed = exc
            self.load_tries += 1
            self.load_again_at = time.monotonic() + load_again_wait(self.load_tries)
            return
        log.warning("batch %s loaded on another try", run_id, extra={"run_id": run_id})
        batches, self.failed_batches = self.failed_batches, []
        self.failed = self.failed_run = None
        await self._loaded(planned, loaded, batches)

    def _idle(self) -> bool:
        """Nothing on its way to a batch: no page fetched, extracted or staged."""
        return not (self.batch.records or self.extracting or self.polled)

    def _poll_on(self, batch: _Batch) -> None:
        """The feeds whose states ``batch`` (staged, not loaded) and the batch
        being filled carry are polled on from those states (``settled``)."""
        self.busy_feeds.difference_update({*batch.feeds, *self.batch.feeds} - self.polling)
        self.freed += 1

    async def _when_free(self, settings: Settings, attempt: Callable[[float], Awaitable[T]],
                         waiting: Callable[[store.DatabaseLocked], None]) -> T:
        """``attempt(waited)``, a call that asks for the writer briefly (about
        0.3 s, a lake's lock 1 s) on the database thread, tried again while
        it finds the writer held, for as long as a writer waits for it (about
        18 s for the file, 10 minutes for a lake's lock), with the waits
        between the tries asleep on the event loop: the due-feed reads and
        seen-entry lookups of the polls go on meanwhile (one call waiting the
        writer's whole wait on the database thread held every poll back that
        long). ``waiting`` is told of each try that found the writer held.
        Raises the last try's :class:`~pipeline.store.DatabaseLocked` once the
        wait is over."""
        wait = backend(settings).writer_wait()
        started, delay = time.monotonic(), _WRITER_PROBE_FIRST
        while True:
            try:
                return await attempt(time.monotonic() - started)
            except store.DatabaseLocked as exc:
                left = wait - (time.monotonic() - started)
                if left <= 0:
                    raise
                waiting(exc)
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, _WRITER_PROBE_MAX)

    async def _load_when_free(self, settings: Settings, batch: _Batch, run_id: str
                              ) -> tuple[PlanResult, LoadResult]:
        """Plan and load ``run_id`` once the writer is free (:meth:`_when_free`:
        each try probes for it before it plans); while it waits, the feeds of
        ``batch`` are polled on from the states it carries."""

        def attempt(waited: float) -> Awaitable[tuple[PlanResult, LoadResult]]:
            return self.db(self._plan_and_load, settings, run_id, True, False, waited)

        def waiting(exc: store.DatabaseLocked) -> None:
            if not self.waiting_writer:
                self.waiting_writer = True
                self._poll_on(batch)
                log.warning("batch %s: the writer is busy, waiting for it (up to %.0f s;"
                            " the feeds are polled meanwhile): %s", run_id,
                            backend(settings).writer_wait(), exc, extra={"run_id": run_id})

        try:
            return await self._when_free(settings, attempt, waiting)
        finally:
            self.waiting_writer = False

    async def _load(self, run_id: str, batch: _Batch, settings: Settings) -> None:
        try:
            planned, loaded = await self._load_when_free(settings, batch, run_id)
        except Exception as exc:  # noqa: BLE001 - raised by finish(), once all is staged
            # Kept for the next pass, with what is still in flight beside it.
            log.error("loading batch %s failed; its staging is kept for the next pass: %s",
                      run_id, exc, extra={"run_id": run_id})
            self.failed, self.failed_run = exc, run_id
            self.failed_batches.append(batch)
            self._failed_load()
            self._poll_on(batch)
            return
        await self._loaded(planned, loaded, [batch])

    async def _loaded(self, planned: PlanResult, loaded: LoadResult,
                      batches: list[_Batch]) -> None:
        """The batches' run is loaded: their feeds and entries are no longer in
        flight; alert, fold, count."""
        for batch in batches:
            self.busy_feeds.difference_update(set(batch.feeds) - self.polling)
            self.keys.difference_update(batch.keys)
            for url in batch.feeds:
                if url in self.settled and self.settled[url][1] is batch:
                    state = self.settled.pop(url)[0]
                    if self.feeds_read is not None:  # as stored now
                        self.feeds_read[1][url] = state
        self.freed += 1
        self.unfolded = True
        # A round after a failed one too: the load just opened the writer.
        # A round talks to the mail server off the database thread (a file's
        # delivers there, a lake's runs there whole): it goes on beside the
        # next batches' loads (a mail server that stops answering held them
        # for its smtp.timeout), started at once (or, when one is under way,
        # as soon as it ends: it is due).
        if loaded.alerts_queued or self.send_error is not None:
            self.send_due = time.monotonic()
            self.send_asked += 1
            self.send_soon()
        folded = await self._fold_if_idle()
        result = BatchResult(plan=planned, load=loaded, send=None, folded=folded)
        self.totals.add_batch(result)
        if self.on_batch is not None:
            self.on_batch(result)
        self.wake.set()

    def send_is_due(self) -> bool:
        """Whether a send round between two polls has anything to do: an
        alert due (its next attempt come), as the last round and the loads
        since left the outbox, or :data:`_SEND_AT_LEAST` since the last round
        (another process may have queued alerts). A round opens the writer,
        which an analyst's session holds up (about 18 s)."""
        now = time.monotonic()
        return ((self.send_due is not None and now >= self.send_due)
                or now - self.last_send >= _SEND_AT_LEAST)

    def send_backlog(self) -> bool:
        """The last round took its most and no round is under way: the next
        one is due now (between two looks for due feeds, a minute apart)."""
        return self.send_more and not self.send_under_way()

    def send_under_way(self) -> bool:
        """A round :meth:`send_soon` started is running (or waiting for the writer)."""
        return self.sending is not None and not self.sending.done()

    def send_soon(self) -> None:
        """Start a send round between two polls and go on: the loop does not
        wait for it (a round that finds the file held waits for the writer,
        up to about 18 s, and the polls go on meanwhile)."""
        if not self.send_under_way():
            self.sending = asyncio.ensure_future(self.send())

    async def _sent(self) -> None:
        """Wait for the round :meth:`send_soon` started, if one is under way."""
        if self.sending is not None:
            await asyncio.gather(self.sending, return_exceptions=True)

    async def send(self) -> alert.SendResult | None:
        """A send round. One that fails (the file held by an analyst's session
        past the writer's wait, a full disk) leaves its alerts pending for
        the next round, which tries again; :meth:`finish` raises the last
        round's failure, if the last failed."""
        self.last_send = time.monotonic()
        self.send_more = False
        settings, mailer = self.settings, self.mailer
        asked = self.send_asked
        said: list[store.DatabaseLocked] = []

        def claiming(waited: float) -> Awaitable[alert.SendRound]:
            del waited
            return self.db(partial(claim_stage, checkpoint=False, brief=True), settings)

        def waiting(exc: store.DatabaseLocked) -> None:
            # Once a round, and only while the last round did not fail the same
            # way (a session held open meets a round every 5 minutes).
            if not said and (self.send_error is None or str(exc) != str(self.send_error)):
                said.append(exc)
                log.warning("alerts: the writer is busy, waiting for it (up to %.0f s; the"
                            " feeds are polled meanwhile): %s", backend(settings).writer_wait(),
                            exc)

        try:
            if settings.store.mode == "lake":
                result = await self._send_lake(settings, mailer)
            else:
                result = await self._send_file(settings, mailer, claiming, waiting)
        except Exception as exc:  # noqa: BLE001 - raised by finish(); loads go on
            if self.send_error is None or str(exc) != str(self.send_error):
                log.warning("alerts not sent this round, they stay pending and the next round "
                            "tries again: %s", exc)
            self.send_error = exc
            # Tried again after the next load (it opens the writer) or at
            # _SEND_AT_LEAST: not at every poll, each waiting out the lock.
            self.send_due = self._asked_since(asked)
            return None
        finally:
            # Its marks are in the log too, with or without a load this pass
            # (a fold finds nothing to do when the round wrote nothing).
            self.unfolded = True
        self.send_error = None
        self.send_due = self._asked_since(asked) or self._next_send(result)
        # A round took its most (smtp.max_per_round): the next goes as soon
        # as this one ends, not at the next look for due feeds.
        self.send_more = result.more
        self.totals.add_send(result)
        return result

    def _asked_since(self, asked: int) -> float | None:
        """Now, when a load asked for a round since :attr:`send_asked` was
        ``asked`` (while this round was under way: its alerts are due), None
        otherwise."""
        return time.monotonic() if self.send_asked != asked else None

    async def _send_lake(self, settings: Settings, mailer: alert.Mailer) -> alert.SendResult:
        """A lake's round, whole, on a thread of its own (not the database
        thread): it shares nothing with the stream's loads and reads. It
        never takes the lake's writer lock, reads the lake on a read-only
        connection of its own (a DuckDB instance of its own, as a sender on
        another host does) and keeps the delivery state in a PostgreSQL
        session of its own, claimed with ``FOR UPDATE SKIP LOCKED`` under a
        lease and marked as each email goes (:mod:`pipeline.store.delivery`).
        So a mail server that stops answering holds neither the loads nor
        the polls' reads, only this round (one ``smtp.timeout``)."""
        return await asyncio.get_running_loop().run_in_executor(
            None, partial(send_stage, settings, mailer, checkpoint=False, brief=True,
                          one_round=True))

    async def _send_file(self, settings: Settings, mailer: alert.Mailer,
                         claiming: Callable[[float], Awaitable[alert.SendRound]],
                         waiting: Callable[[store.DatabaseLocked], None]) -> alert.SendResult:
        """A round on the file: claim and read on the database thread,
        deliver off it (the mail server's timeouts hold neither the file nor
        the polls' reads), mark on it again. Each writer session asks for
        the lock as briefly as a load tried again between two polls."""
        round_ = await self._when_free(settings, claiming, waiting)
        if round_.result is not None:
            mailer.close()
            return round_.result
        try:
            await asyncio.get_running_loop().run_in_executor(None, round_.deliver, mailer)

            def marking(waited: float) -> Awaitable[alert.SendResult]:
                del waited
                return self.db(partial(record_stage, checkpoint=False, brief=True), settings,
                               round_)

            return await self._when_free(settings, marking, waiting)
        finally:
            round_.abandon()  # not marked: the journal is left for the next round

    @staticmethod
    def _next_send(result: alert.SendResult) -> float | None:
        """When the outbox the round left has an alert due (a monotonic time),
        None: nothing pending or being sent."""
        if not (result.pending or result.sending):
            return None
        times = [t for t in (result.next_attempt_at, result.reclaim_at) if t is not None]
        if result.pending and result.next_attempt_at is None:
            return time.monotonic()  # a row due now the round left (the server stopped it)
        first = min(times, default=None)
        if first is None:
            return time.monotonic()
        wait = (first - datetime.now(UTC)).total_seconds()
        return time.monotonic() + max(0.0, wait)

    async def fold(self) -> None:
        """:meth:`_fold_if_idle`, unless a batch is loading."""
        if not self.load_under_way():
            await self._fold_if_idle()

    async def fold_at_end(self) -> None:
        """A pass ended by a failure, its tasks stopped: fold in what its loads
        and sends left in the log (what was on its way will not come), as
        :meth:`finish` does for a pass that ends well."""
        if not self.folded_at_end:
            await self._fold_if_idle(ended=True)

    async def _fold_if_idle(self, *, ended: bool = False) -> bool:
        """Fold the write-ahead log into the database file once nothing is on
        its way to a batch; True when nothing is left in the log.

        The stream's loads and sends leave their commits in the log: folding
        rewrites each table's last row group, about 3 s at 50,000 articles for
        a batch of 50 (BENCHMARKS.md), so a burst pays it once, at its end. The
        file alone then holds every load, to copy or to open with any DuckDB. A
        failure loses nothing (every connection reads the log, and DuckDB folds
        it in by itself past 16 MiB), so it is a warning."""
        if not self.unfolded:
            return True
        if not ended and not self._idle():
            return False
        try:
            await self.db(checkpoint_stage, self.settings)
        except Exception as exc:  # noqa: BLE001 - the log stays and is read; see above
            # Said once per distinct error: continuous mode tries at every poll.
            if str(exc) != self.fold_error:
                log.warning("could not fold the write-ahead log into %s: %s; every "
                            "connection reads it, and the next pass folds it in",
                            self.settings.database, exc)
            self.fold_error = str(exc)
            return False
        self.unfolded = False
        self.fold_error = None
        return True

    async def batcher(self) -> None:
        while True:
            try:
                self.flush()
            except BaseException as exc:
                self.fatal = self.fatal or exc
                self.wake.set()
                raise
            await asyncio.sleep(_TICK)

    async def drain(self) -> None:
        """Wait until nothing is in flight; raise what ended a task."""
        while self.tasks:
            await self.wake.wait()
            self.wake.clear()
            if self.fatal is not None:
                raise self.fatal

    async def finish(self) -> None:
        """Stage and load what is left; then raise a load's or a send's failure."""
        while self.batch.records or self.load_under_way():
            if self.loading is not None:
                await self.loading
            self.flush(final=True)
        if self.loading is not None:
            await self.loading
        await self._sent()
        if self.failed is None:
            # Earlier passes' alerts due again, even with none queued now; a
            # backlog in rounds of smtp.max_per_round, one after the other,
            # for half a claim's lease at most (as stages.send_stage's).
            started = time.monotonic()
            budget = alert.lease_for(self.settings).total_seconds() / 2
            while ((result := await self.send()) is not None and result.more
                   and time.monotonic() - started < budget):
                pass
        await self.fold()
        self.folded_at_end = True
        if self.failed is not None:
            raise self.failed
        if self.send_error is not None:
            raise self.send_error

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.loading is not None:
            await asyncio.gather(self.loading, return_exceptions=True)
        await self._sent()
        if self.lookup_task is not None:
            await asyncio.gather(self.lookup_task, return_exceptions=True)
        await asyncio.gather(*self.retiring, return_exceptions=True)
        await self.fetcher.aclose()  # a reload's (the first one's `async with` closes it too)
        # A reload's workers (the first ones are closed by stream_pass's `with`).
        await asyncio.get_running_loop().run_in_executor(None, self.processor.close)

    def result(self) -> StreamResult:
        f, run_id, totals = self.feed_counts, self.first_run or "", self.totals
        return StreamResult(
            poll=PollSummary(run_id=run_id, feeds_polled=f["polled"], feeds_failed=f["failed"],
                             entries_new=f["new"], entries_retry=f["retry"],
                             feeds_deferred=f["deferred"]),
            process=ProcessSummary(run_id=run_id, shard=0,
                                   **{**self.counts, "retry": len(self.retrying)}),
            batches=totals.batches,
            plan=replace(totals.plan, run_id=run_id, already_loaded=False),
            load=replace(totals.load, run_id=run_id, already_loaded=False),
            send=totals.send,
        )


async def _run(settings: Settings, stream_of: Callable[[Fetcher], _Stream], *, force: bool,
               stop: threading.Event | None, watch: ConfigWatch | None) -> StreamResult:
    async with Fetcher(fetch_limits(settings)) as fetcher:
        stream = stream_of(fetcher)
        batcher = asyncio.ensure_future(stream.batcher())
        failed = False
        try:
            stream.warm_up()
            with poll.FeedPoller(fetcher=fetcher, options=poll_options(settings),
                                 known=stream.known) as poller:
                next_due = await stream.start_polls(poller, force=force, retries=True)
                if stop is not None:
                    await _keep_polling(stream, poller, stop, next_due, watch)
                await stream.drain()
            batcher.cancel()
            await stream.finish()
        except Exception:
            failed = True
            raise
        except BaseException:  # Ctrl-C, SIGTERM (or a cancel): stop now
            stream.abort()
            raise
        finally:
            batcher.cancel()
            await asyncio.gather(batcher, *stream.warming, return_exceptions=True)
            await stream.close()
            # Not on a second Ctrl-C (a KeyboardInterrupt or a cancel): that
            # is to stop at once, and the log is read by every connection.
            if failed:
                await stream.fold_at_end()
        return stream.result()


def _on_daemon_thread(work: Callable[[], None]) -> asyncio.Future[None]:
    """``work()`` on a daemon thread; its outcome in the future returned. An
    executor's threads are joined at exit (``asyncio.run`` joins its default
    one's, ``concurrent.futures`` every one's): a Ctrl-C while the sentence
    encoder loaded waited for it (2-4 s). A load left half done is nothing
    to lose, the process is ending."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if future.done():  # cancelled: nobody waits for it any more
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def target() -> None:
        error: BaseException | None = None
        try:
            work()
        except Exception as exc:  # noqa: BLE001 -- raised where the future is awaited
            error = exc
        # RuntimeError: the loop is closed, the run ended meanwhile.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=target, name=f"newsmon-{work.__module__}-warm-up",
                     daemon=True).start()
    return future


async def _nap(stream: _Stream, stop: threading.Event, seconds: float, floor: float,
               watch: ConfigWatch | None) -> None:
    """Sleep ``seconds``, or until ``stop`` is set or the stream failed, or the
    config file was edited (or SIGHUP asked to read it), or (``floor`` seconds
    at least) until feeds in flight are free again (a batch loaded, or its
    load failed and it is kept): one may be due before ``seconds``; or until
    a load that failed while it slept is due to be tried again (with no feed
    due, the nap was the whole minute). The try is not held to ``floor`` (the
    least time between two looks for due feeds, a minute by default): the
    README's 5, 10, 20 and 30 s came a minute apart each (a kept batch loaded
    a minute after the session that held it closed). While a try is under way
    its time is past and means nothing: the nap then waits for the try."""
    start = time.monotonic()
    until, freed = start + seconds, stream.freed
    while not stop.is_set() and stream.fatal is None and time.monotonic() < until:
        if stream.freed != freed and time.monotonic() - start >= floor:
            return
        again = stream.next_load_again()
        if again is not None and not stream.load_under_way():
            until = min(until, max(again, start + _LOAD_AGAIN_LEAST))
        if watch is not None and watch.due():
            return
        if stream.send_backlog() and not stream.load_under_way():
            stream.send_soon()
        await asyncio.sleep(0.2)


def _pace(settings: Settings) -> tuple[float, float]:
    """How often earlier passes' pages are retried (the poll interval), and
    the least time between two looks for due feeds (as the whole-pass loop did)."""
    poll_ = settings.poll
    return poll_.interval_minutes * 60, min(_MAX_SLEEP, poll_.min_interval_minutes * 60 / 5)


async def _keep_polling(stream: _Stream, poller: poll.FeedPoller, stop: threading.Event,
                        next_due: datetime | None, watch: ConfigWatch | None) -> None:
    """Continuous mode: poll each feed again when it is due, retry earlier
    pages every poll interval, send alerts whose backoff ended, until ``stop``;
    take the config file's edits between two polls (``watch``)."""
    last_retry = time.monotonic()
    while True:
        floor = _pace(stream.settings)[1]
        wait = _MAX_SLEEP if next_due is None else (next_due - datetime.now(UTC)).total_seconds()
        again = stream.next_load_again()
        if again is not None:
            wait = min(wait, again - time.monotonic())
        await _nap(stream, stop, min(_MAX_SLEEP, max(floor, wait)), floor, watch)
        if stream.fatal is not None:
            raise stream.fatal
        if stop.is_set():
            log.warning("stopping: finishing the pages in flight (again to stop at once)")
            return
        if stream.failed is not None:
            if not stream.may_load_again():
                return  # the rest is staged for the next run; finish() says why
            stream.load_again()  # the session held open may be closed now, or space freed
        edit = watch.check(stream.settings) if watch is not None else None
        if edit is not None:
            await stream.reconfigure(edit.settings, poller)  # a new feed is due at once
        await stream.fold()  # a burst's last load may have found more on its way
        retries = time.monotonic() - last_retry >= _pace(stream.settings)[0]
        looked = time.monotonic()
        try:
            next_due = await stream.start_polls(poller, force=False, retries=retries)
        except store.DatabaseLocked as exc:
            # Held read-write (`duckdb news.duckdb`, a notebook) before any read
            # went through: even the feeds' states cannot be read. The run
            # waits, it does not end.
            if str(exc) != stream.read_error:
                log.warning("feeds not polled while the database is held, looking again "
                            "at each look for due feeds: %s", exc)
            stream.read_error = str(exc)
            next_due = datetime.now(UTC) + timedelta(seconds=_LOAD_AGAIN)
        else:
            if retries and stream.read_error is None:  # not dropped for a held file
                last_retry = looked
        if not stream.load_under_way() and stream.send_is_due():
            stream.send_soon()
        await stream.fold()


def _state_of(update: FeedUpdate) -> store.FeedState:
    """The state a feed's next poll starts from, as the load will store it."""
    return store.FeedState(
        url=update.url, status=update.status, etag=update.etag,
        last_modified=update.last_modified, content_hash=update.content_hash,
        error_count=update.error_count, next_poll_at=update.next_poll_at,
        last_success_at=update.last_success_at, name=update.name, fetch_url=update.fetch_url,
        poll_interval_minutes=update.poll_interval_minutes, item_hashes=update.item_hashes)


def _tagging(settings: Settings) -> tuple[object, ...]:
    """What a worker's tagger is built from (:func:`pipeline.signal.tag.build_tagger`)."""
    return settings.topics, settings.default_topics, settings.people


def stream_pass(
    settings: Settings, *, force: bool = False, workers: int | None = None,
    progress: Progress = quiet, mailer: alert.Mailer | None = None,
    batching: Batching | None = None, stop: threading.Event | None = None,
    deadline: float | None = None, on_batch: Callable[[BatchResult], None] | None = None,
    watch: ConfigWatch | None = None,
) -> StreamResult:
    """Run the pipeline: one pass over the due feeds (``stop`` None), or
    continuously until ``stop`` is set (by a signal handler, or another thread),
    taking the edits of the config file ``watch`` looks at.

    ``deadline`` (a :func:`time.monotonic` value): feeds and pages not done by
    then wait for the next pass (continuous mode has none). ``mailer`` and
    ``batching``, given, are kept through a reload; by default they follow
    the settings."""
    parallel = max(1, workers if workers is not None else worker_count(settings))
    started = datetime.now(UTC)
    with Processor(settings, workers=parallel) as processor, \
            ThreadPoolExecutor(parallel, thread_name_prefix="newsmon-extract") as extractors, \
            ThreadPoolExecutor(1, thread_name_prefix="newsmon-database") as database:

        def stream_of(fetcher: Fetcher) -> _Stream:
            return _Stream(settings, fetcher=fetcher, processor=processor,
                           extractors=extractors, parallel=parallel, database=database,
                           batching=batching, mailer=mailer, progress=progress,
                           deadline=deadline, started=started, on_batch=on_batch)

        return asyncio.run(_run(settings, stream_of, force=force, stop=stop, watch=watch))
