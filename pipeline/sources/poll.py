"""Poll stage: fetch due feeds (conditionally) and emit the entries not seen before.

Feeds are parsed by :mod:`pipeline.sources.parsing` in worker processes, under
``fetch.parse_timeout``.

Errors are counted in ``feeds.error_count`` in points: a hard error (DNS
failure, refused address, 404, body too large, not a feed, parse error or
parse timeout) adds :data:`HARD_POINTS`, a soft one (timeout, connection
failure, 429, 5xx, a truncated feed) :data:`SOFT_POINTS`; a successful poll
resets it to 0. Each point backs the next poll off (see
:mod:`pipeline.sources.schedule`); from :data:`FAILING_AT` points the feed is shown
as ``failing`` and, soon after, polled at the maximum interval. A 410 Gone
retires it with its reason; nothing is ever dropped silently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from pipeline import ids
from pipeline.config import PollConfig
from pipeline.http import AddressRefused, Fetcher, FetchError, Response
from pipeline.models import FeedEntry, FeedUpdate, Rejection
from pipeline.sources import guids, schedule
from pipeline.sources.feeds import Feed
from pipeline.sources.parsing import FeedParseError, ParsedFeed, parse_feed
from pipeline.store import FeedState
from pipeline.workers import TimeLimitExceeded, WorkerDied, WorkerPool

log = logging.getLogger(__name__)

HARD_POINTS = 2
SOFT_POINTS = 1
# Three hard errors in a row (or six soft ones): shown as failing.
FAILING_AT = 6
# Feed parsing is quick (milliseconds for a typical feed); a few workers keep
# up with the network, and each costs ~0.5 s to start (importing feedparser).
PARSE_WORKERS = max(1, min(4, os.cpu_count() or 1))
_UNASKED_304 = ("HTTP 304 Not Modified to a request without validators "
                "(If-None-Match, If-Modified-Since): the server sent no feed")
# A pass may defer thousands of feeds: the log line names the first few.
_LOGGED_URLS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class PollOptions:
    schedule: PollConfig
    max_entries: int = 200
    max_url_length: int = 2048
    parse_timeout: float = 20.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PollResult:
    entries: tuple[FeedEntry, ...]
    updates: tuple[FeedUpdate, ...]
    rejections: tuple[Rejection, ...]
    deferred: tuple[str, ...] = ()  # feeds not done within the time budget


@dataclass(frozen=True, slots=True, kw_only=True)
class ParseJob:
    """What a parse worker needs: pickled across the process boundary."""

    body: bytes
    url: str  # the feed's identity: entries carry it as feed_url
    base: str  # where the body came from: relative links resolve against it
    name: str
    content_type: str
    max_entries: int
    max_url_length: int
    # Items parsed before whose entries are stored (hash -> (entry id, date)):
    # not parsed again when unchanged; see pipeline.sources.parsing._items.
    known_items: dict[str, tuple[str, int | None]] | None = None


# Which (feed url, entry id) pairs among these were seen before, with the
# link each was seen with (pipeline.sources.guids): one query for the whole
# pass. One query per feed cost 10-20 ms each (DuckDB binds a Python list
# value by value), more than fetching and parsing the feed.
KnownLookup = Callable[[Sequence[tuple[str, str]]], guids.Stored]


def due_feeds(
    feeds: Sequence[Feed], states: Mapping[str, FeedState], now: datetime, *, force: bool,
    options: PollConfig | None = None,
) -> list[Feed]:
    """The feeds to poll now. With ``options``, a feed whose next poll is
    further away than ``options.max_interval_minutes`` (lowered since it was
    scheduled) is due now too: no schedule made under them waits that long."""
    longest = None if options is None else timedelta(minutes=options.max_interval_minutes)
    due = []
    for feed in feeds:
        state = states.get(feed.url)
        if state is not None and state.status == "retired":
            continue
        if force or state is None or state.next_poll_at is None or state.next_poll_at <= now \
                or (longest is not None and state.next_poll_at - now > longest):
            due.append(feed)
    return due


def _parse_job(job: ParseJob) -> ParsedFeed:
    """The worker side of :func:`parse_feed` (module level: pickled by name)."""
    return parse_feed(
        job.body, url=job.url, base=job.base, name=job.name, content_type=job.content_type,
        max_entries=job.max_entries, max_url_length=job.max_url_length,
        known_items=job.known_items,
    )


def _stored_items(stored: str | None) -> dict[str, tuple[str, int | None]]:
    """The items of a stored ``item_hashes`` that gave an entry; {} when there
    are none or it cannot be read (then every item is parsed)."""
    try:
        items = json.loads(stored) if stored else {}
    except ValueError:
        return {}
    if not isinstance(items, dict):
        return {}
    return {
        digest: (value[0], value[1] if isinstance(value[1], int) else None)
        for digest, value in items.items()
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
    }


def listed_entries(stored: str | None) -> set[str]:
    """The entry ids of a feed's listing as an update's ``item_hashes`` keeps
    them (empty when it keeps none)."""
    return {entry for entry, _ in _stored_items(stored).values()}


def skippable_items(
    feeds: Sequence[Feed], states: Mapping[str, FeedState], known: KnownLookup
) -> dict[str, dict[str, tuple[str, int | None]]]:
    """Per feed, the stored items whose entries are stored too (one query):
    the ``known_items`` of :meth:`FeedPoller.poll`."""
    stored = {}
    for feed in feeds:
        state = states.get(feed.url)
        if state is not None and state.item_hashes:
            stored[feed.url] = _stored_items(state.item_hashes)
    pairs = [(url, entry) for url, items in stored.items() for entry, _ in items.values()]
    delivered = known(pairs) if pairs else {}
    return {url: {digest: item for digest, item in items.items()
                  if (url, item[0]) in delivered}
            for url, items in stored.items()}


def _hints(response: Response, parsed: ParsedFeed | None) -> schedule.Hints:
    headers = response.headers
    hints = schedule.Hints(cache_control=headers.get("cache-control"),
                           expires=headers.get("expires"), date=headers.get("date"))
    if parsed is None:  # 304 or unchanged: the stored interval stands in for the feed's hints
        return hints
    return replace(hints, ttl=parsed.ttl, update_period=parsed.update_period,
                   update_frequency=parsed.update_frequency, published=parsed.published)


class _Poller:
    """Polls feeds for one pass: the shared fetcher, parser pool and options."""

    def __init__(self, *, fetcher: Fetcher, parser: WorkerPool[ParseJob, ParsedFeed],
                 now: datetime, options: PollOptions) -> None:
        self.fetcher, self.parser = fetcher, parser
        self.now, self.options = now, options

    async def poll(
        self, feed: Feed, state: FeedState | None,
        known_items: dict[str, tuple[str, int | None]] | None = None,
    ) -> tuple[FeedUpdate, ParsedFeed | None]:
        """The feed's new state and, when it was parsed, all its entries (the
        caller drops the known ones). ``known_items``: see :func:`parse_feed`."""
        now = self.now
        fetch_url = (state.fetch_url if state else None) or feed.url
        name = feed.name or (state.name if state else None) or urlsplit(feed.url).hostname
        base = FeedUpdate(
            url=feed.url, fetch_url=fetch_url, name=name or feed.url, status="active",
            last_polled_at=now, last_success_at=state.last_success_at if state else None,
            next_poll_at=now, poll_interval_minutes=self.options.schedule.interval_minutes,
            etag=state.etag if state else None,
            last_modified=state.last_modified if state else None,
            content_hash=state.content_hash if state else None,
            error_count=0, last_error=None,
            item_hashes=state.item_hashes if state else None,
        )
        try:
            response = await self.fetcher.get(
                fetch_url, kind="feed", etag=base.etag, last_modified=base.last_modified
            )
        except FetchError as exc:
            points = SOFT_POINTS if exc.transient else HARD_POINTS
            retire = exc.status == 410
            reason = f"{exc.reason}: the feed is gone, retired" if retire else exc.reason
            if isinstance(exc, AddressRefused):
                reason = exc.advice()  # the feed's own address, or where it redirects
            return self._failed(base, state, reason, points, retry_after=exc.retry_after,
                                retire=retire), None
        # RFC 9110 §15.4.2: after a 301/308 the new URL is the one to use.
        base = replace(base, fetch_url=response.permanent_redirect or fetch_url)
        if response.status == 304:
            if base.etag is None and base.last_modified is None:
                # RFC 9110 §15.4.5: a 304 answers a conditional request. To a
                # plain GET it stands for nothing we hold (a broken cache);
                # taken as success, the feed would look healthy and never
                # give an entry.
                return self._failed(base, state, _UNASKED_304, HARD_POINTS), None
            return self._succeeded(base, state, response, None), None
        digest = ids.content_hash(response.body)
        if state is not None and digest == state.content_hash:
            # The server ignored our conditional GET (or sends no validators):
            # the body hash says nothing changed.
            return self._succeeded(base, state, response, None), None
        job = ParseJob(
            body=response.body, url=feed.url, base=response.url, name=base.name,
            content_type=response.headers.get("content-type", ""),
            max_entries=self.options.max_entries, max_url_length=self.options.max_url_length,
            known_items=known_items,
        )
        limit = self.options.parse_timeout
        try:
            parsed = await asyncio.to_thread(self.parser.call, job, timeout=limit)
        except FeedParseError as exc:
            return self._failed(base, state, str(exc), HARD_POINTS), None
        except TimeLimitExceeded:
            reason = f"parsing the feed took longer than {limit:g} s; gave up"
            return self._failed(base, state, reason, HARD_POINTS), None
        except WorkerDied as exc:
            return self._failed(base, state, f"the feed parser crashed: {exc}", HARD_POINTS), None
        if feed.name is None and parsed.title:
            base = replace(base, name=parsed.title)
        if parsed.beyond:
            # Not an error (an archive feed of every item), but never silent.
            log.warning("feed %s has %d more items than the %d read each poll "
                        "(fetch.max_entries_per_feed); they were not read",
                        feed.url, parsed.beyond, self.options.max_entries)
        if parsed.truncated:
            # Keep what is complete, but say so, and parse it again next time
            # (no content hash) rather than trust these bytes.
            return self._failed(base, state, parsed.truncated, SOFT_POINTS,
                                hints=_hints(response, parsed)), parsed
        # item_hashes: set by _settle, once the entries' ids are settled.
        return replace(self._succeeded(base, state, response, parsed),
                       content_hash=digest), parsed

    def _succeeded(self, base: FeedUpdate, state: FeedState | None, response: Response,
                   parsed: ParsedFeed | None) -> FeedUpdate:
        plan = schedule.next_poll(
            _hints(response, parsed), now=self.now, options=self.options.schedule,
            previous_minutes=state.poll_interval_minutes if state else None,
        )
        etag, last_modified = response.etag, response.last_modified
        if response.status == 304:
            # A 304 should repeat the validators (RFC 9110 §15.4.5) but need
            # not; the ones we sent are still the current ones.
            etag, last_modified = etag or base.etag, last_modified or base.last_modified
        return replace(
            base, last_success_at=self.now, etag=etag, last_modified=last_modified,
            next_poll_at=plan.next_poll_at, poll_interval_minutes=plan.interval_minutes,
        )

    def _failed(
        self, base: FeedUpdate, state: FeedState | None, reason: str, points: int, *,
        retry_after: float | None = None, retire: bool = False,
        hints: schedule.Hints | None = None,
    ) -> FeedUpdate:
        count = (state.error_count if state else 0) + points
        status = "retired" if retire else ("failing" if count >= FAILING_AT else "active")
        previous = state.poll_interval_minutes if state else None
        plan = schedule.next_poll(
            replace(hints or schedule.Hints(), retry_after=retry_after), now=self.now,
            options=self.options.schedule, previous_minutes=previous, error_count=count,
        )
        return replace(
            base, status=status, error_count=count, last_error=reason,
            next_poll_at=plan.next_poll_at, poll_interval_minutes=plan.interval_minutes,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedPolled:
    """One feed's poll: its new state and its entries not seen before."""

    update: FeedUpdate
    entries: tuple[FeedEntry, ...]
    rejections: tuple[Rejection, ...]


def _settle(update: FeedUpdate, parsed: ParsedFeed | None, seen: guids.Stored) -> FeedPolled:
    """Settle the entries' ids against the stored ones (``seen``: what the
    store holds of :func:`guids.candidates`), drop the entries seen before,
    store the items for the next poll, log a failure."""
    if update.last_error:
        moved = f" (polled at {update.fetch_url})" if update.fetch_url != update.url else ""
        log.warning("feed failed: %s%s: %s", update.url, moved, update.last_error,
                    extra={"feed": update.url, "reason": update.last_error})
    if parsed is None:
        return FeedPolled(update=update, entries=(), rejections=())
    parsed, reused, relinked = guids.settle(parsed, seen)
    # Once per feed and poll. The feed is broken, though nothing is lost:
    _log_guids(logging.WARNING, update.url, reused, "gives one GUID to different articles",
               "each article after the first gets an entry id of its own, GUID#hash of its"
               " link")
    # Nothing fetched: read as the stored article under a new link.
    _log_guids(logging.INFO, update.url, relinked, "gives a stored GUID a new link",
               "read as the same article moved, not fetched again")
    if parsed.truncated is None:
        update = replace(update, item_hashes=None if parsed.items is None else json.dumps(
            {digest: [entry, when] for digest, entry, when in parsed.items},
            separators=(",", ":")))
    new = tuple(e if e.feed_name == update.name else replace(e, feed_name=update.name)
                for e in parsed.entries if (e.feed_url, e.id) not in seen)
    return FeedPolled(update=update, entries=new, rejections=parsed.rejections)


def _log_guids(level: int, feed: str, found: Sequence[str], what: str, done: str) -> None:
    """One line for the GUIDs ``found`` in a feed's poll (none: nothing)."""
    if not found:
        return
    # The default formatter drops ``extra``: what and why go in the message.
    more = f" and {len(found) - 1} more" if len(found) > 1 else ""
    # ``what`` and ``done`` are this module's constants, in the template so a
    # record's ``msg`` names its kind.
    log.log(level, f"feed %s {what} (%r%s): {done}", feed, found[0][:200], more,
            extra={"feed": feed, "guids": len(found)})


# The streaming pass asks for the seen entries of one feed at a time, through
# the one thread that opens the database (pipeline.stream).
AsyncKnownLookup = Callable[[Sequence[tuple[str, str]]], Awaitable[guids.Stored]]


class FeedPoller:
    """Polls feeds one at a time, as the pipelined pass wants them: each feed's
    new entries are known as soon as that feed is parsed. The parser pool
    lives as long as the poller (``with FeedPoller(...) as poller``)."""

    def __init__(self, *, fetcher: Fetcher, options: PollOptions, known: AsyncKnownLookup
                 ) -> None:
        self._fetcher, self._options, self._known = fetcher, options, known
        self._parser = WorkerPool(_parse_job, workers=PARSE_WORKERS)

    async def poll(self, feed: Feed, state: FeedState | None, *, now: datetime,
                   known_items: dict[str, tuple[str, int | None]] | None = None) -> FeedPolled:
        poller = _Poller(fetcher=self._fetcher, parser=self._parser, now=now,
                         options=self._options)
        update, parsed = await poller.poll(feed, state, known_items)
        pairs = guids.candidates(parsed)
        seen = await self._known(pairs) if pairs else {}
        return _settle(update, parsed, seen)

    def retune(self, *, fetcher: Fetcher, options: PollOptions) -> None:
        """The polls started from now on use ``fetcher`` and ``options`` (a
        reloaded config); one under way goes on with what it started with."""
        self._fetcher, self._options = fetcher, options

    def __enter__(self) -> FeedPoller:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception):
            # Ctrl-C, SIGTERM, a cancel: the parses under way are not waited
            # for (up to their time limit), nor a start.
            self._parser.abort()
        self._parser.close()


async def poll(
    feeds: Sequence[Feed], *, states: Mapping[str, FeedState], fetcher: Fetcher,
    known: KnownLookup, now: datetime, options: PollOptions, deadline: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PollResult:
    """Poll ``feeds`` concurrently (the fetcher enforces the limits), all of
    them before any entry goes on: the Airflow DAG's poll task.

    ``known`` is asked once, after the polls, which of the parsed entries were
    delivered before; only the others are returned. It is asked once before too,
    for the entries of the items stored at the last polls (see
    :func:`pipeline.sources.parsing._items`).

    ``deadline`` (a :func:`time.monotonic` value): feeds not done by then are
    cancelled and left as they were, due again on the next pass.
    """
    done = 0
    skippable = skippable_items(feeds, states, known)

    with WorkerPool(_parse_job, workers=PARSE_WORKERS) as parser:
        poller = _Poller(fetcher=fetcher, parser=parser, now=now, options=options)

        async def one(feed: Feed) -> tuple[FeedUpdate, ParsedFeed | None]:
            nonlocal done
            result = await poller.poll(feed, states.get(feed.url), skippable.get(feed.url))
            done += 1
            if progress is not None:
                progress(done, len(feeds))
            return result

        tasks = {asyncio.ensure_future(one(f)): f for f in feeds}
        pending: set[asyncio.Future[tuple[FeedUpdate, ParsedFeed | None]]] = set()
        if tasks:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    results = [task.result() for task in tasks if task not in pending]
    deferred = tuple(tasks[task].url for task in tasks if task in pending)
    log_deferred(deferred)
    seen = known([pair for _, parsed in results for pair in guids.candidates(parsed)])
    polled = [_settle(update, parsed, seen) for update, parsed in results]
    return PollResult(
        entries=tuple(e for p in polled for e in p.entries),
        updates=tuple(p.update for p in polled),
        rejections=tuple(r for p in polled for r in p.rejections),
        deferred=deferred,
    )


def log_deferred(deferred: Sequence[str]) -> None:
    """Say which feeds the time budget left for the next pass."""
    if not deferred:
        return
    # The default formatter drops ``extra``: what and why go in the message.
    shown = ", ".join(deferred[:_LOGGED_URLS])
    more = f" and {len(deferred) - _LOGGED_URLS} more" if len(deferred) > _LOGGED_URLS else ""
    log.warning("%d feed(s) deferred to the next pass, the time budget was spent: %s%s",
                len(deferred), shown, more, extra={"feeds": len(deferred)})
