"""Poll stage: fetch due feeds (conditionally) and emit the entries not seen before.

feedparser is only ever given bytes wrapped in ``io.BytesIO``: given a ``str``
it treats it as a path or URL and reads it, which would let a feed make us
read local files. Its dicts never leave this module: entries become
:class:`~pipeline.models.FeedEntry` at once.
"""

from __future__ import annotations

import asyncio
import calendar
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from pipeline import ids
from pipeline.config import FeedConfig, PollConfig
from pipeline.http import Fetcher, FetchError
from pipeline.models import FeedEntry, Rejection
from pipeline.store import FeedState

log = logging.getLogger(__name__)

# A feed is shown as failing after this many weighted errors in a row.
FAILING_AFTER = 3.0
# Hard errors (DNS failure, 404, parse error) say more about a feed than soft
# ones (timeout, 429, 503), so they back off the next poll faster.
HARD_WEIGHT, SOFT_WEIGHT = 1.0, 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedUpdate:
    """The new state of one feed after a poll; applied by the load step."""

    url: str
    name: str
    status: str
    last_polled_at: datetime
    last_success_at: datetime | None
    next_poll_at: datetime
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    error_count: int
    last_error: str | None
    new_entries: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PollResult:
    entries: tuple[FeedEntry, ...]
    updates: tuple[FeedUpdate, ...]
    rejections: tuple[Rejection, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedFeed:
    title: str | None
    entries: tuple[FeedEntry, ...]
    rejections: tuple[Rejection, ...]


class FeedParseError(Exception):
    """The body is not a feed we can read; the message says why."""


KnownLookup = Callable[[str, Sequence[str]], set[str]]


def due_feeds(
    feeds: Sequence[FeedConfig], states: dict[str, FeedState], now: datetime, *, force: bool
) -> list[FeedConfig]:
    due = []
    for feed in feeds:
        state = states.get(feed.url)
        if state is not None and state.status == "retired":
            continue
        if force or state is None or state.next_poll_at is None or state.next_poll_at <= now:
            due.append(feed)
    return due


def _struct_to_datetime(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, TypeError):
        return None


def parse_feed(body: bytes, *, url: str, name: str, max_entries: int) -> ParsedFeed:
    """Parse feed bytes into our entries; raise FeedParseError when it is no feed."""
    if not body.strip():
        raise FeedParseError("empty response body (expected an RSS or Atom feed)")
    parsed = feedparser.parse(
        io.BytesIO(body), sanitize_html=False, resolve_relative_uris=False,
        response_headers={"content-location": url},
    )
    version = parsed.get("version") or ""
    if not version:
        head = body[:512].lstrip().lower()
        if head.startswith((b"<!doctype html", b"<html")):
            raise FeedParseError("got an HTML page where a feed was expected")
        problem = parsed.get("bozo_exception")
        detail = f": {problem}" if problem else ""
        raise FeedParseError(f"not an RSS or Atom feed{detail}")
    feed_title = (parsed.feed.get("title") or "").strip() or None
    entries: list[FeedEntry] = []
    rejections: list[Rejection] = []
    for raw in parsed.entries[:max_entries]:
        title = (raw.get("title") or "").strip()
        summary = (raw.get("summary") or "").strip()
        link = (raw.get("link") or "").strip()
        if not link:
            rejections.append(Rejection(
                url=f"{url}#{raw.get('id') or title[:80]}", feed_url=url, stage="poll",
                reason="entry has no link to an article",
            ))
            continue
        link = urljoin(url, link)
        if urlsplit(link).scheme not in ("http", "https"):
            rejections.append(Rejection(
                url=link[:2048], feed_url=url, stage="poll",
                reason=f"entry link is not http(s): {link[:80]!r}",
            ))
            continue
        published = _struct_to_datetime(raw.get("published_parsed") or raw.get("updated_parsed"))
        entries.append(FeedEntry(
            id=ids.entry_id(guid=raw.get("id"), link=link, title=title, summary=summary),
            feed_url=url, feed_name=name, url=link, title=title, summary=summary[:2000],
            published_at=published,
        ))
    return ParsedFeed(title=feed_title, entries=tuple(entries), rejections=tuple(rejections))


def _next_poll(now: datetime, options: PollConfig, error_weight: float) -> datetime:
    minutes = options.interval_minutes * (2 ** min(error_weight, 8.0))
    minutes = max(options.min_interval_minutes, min(minutes, options.max_interval_minutes))
    return now + timedelta(minutes=minutes)


async def _poll_one(
    feed: FeedConfig, state: FeedState | None, *, fetcher: Fetcher, known: KnownLookup,
    now: datetime, options: PollConfig, max_entries: int,
) -> tuple[FeedUpdate, ParsedFeed | None]:
    name = feed.name or (urlsplit(feed.url).hostname or feed.url)
    base = FeedUpdate(
        url=feed.url, name=name, status="active", last_polled_at=now,
        last_success_at=state.last_success_at if state else None,
        next_poll_at=_next_poll(now, options, 0), etag=state.etag if state else None,
        last_modified=state.last_modified if state else None,
        content_hash=state.content_hash if state else None,
        error_count=0, last_error=None, new_entries=0,
    )
    try:
        response = await fetcher.get(
            feed.url, kind="feed", etag=base.etag, last_modified=base.last_modified
        )
        if response.status == 304:
            return replace(base, last_success_at=now), None
        digest = ids.content_hash(response.body)
        if state is not None and digest == state.content_hash:
            # The server ignored our conditional GET (or sends no validators):
            # the body hash says nothing changed.
            return replace(base, last_success_at=now, etag=response.etag,
                           last_modified=response.last_modified), None
        parsed = await asyncio.to_thread(
            parse_feed, response.body, url=feed.url, name=name, max_entries=max_entries
        )
    except FetchError as exc:
        return _failed(base, state, exc.reason, transient=exc.transient, now=now,
                       options=options, retire=exc.status == 410), None
    except FeedParseError as exc:
        return _failed(base, state, str(exc), transient=False, now=now, options=options), None
    if feed.name is None and parsed.title:
        name = parsed.title
    fresh_ids = known(feed.url, [e.id for e in parsed.entries])
    new = tuple(replace(e, feed_name=name) for e in parsed.entries if e.id not in fresh_ids)
    update = replace(
        base, name=name, last_success_at=now, etag=response.etag,
        last_modified=response.last_modified, content_hash=digest, new_entries=len(new),
    )
    return update, replace(parsed, entries=new)


def _failed(
    base: FeedUpdate, state: FeedState | None, reason: str, *, transient: bool,
    now: datetime, options: PollConfig, retire: bool = False,
) -> FeedUpdate:
    # error_count is kept in half-units so soft errors weigh half as much as hard ones.
    weight = SOFT_WEIGHT if transient else HARD_WEIGHT
    count = (state.error_count if state else 0) + int(weight * 2)
    status = "retired" if retire else ("failing" if count / 2 >= FAILING_AFTER else "active")
    return replace(
        base, status=status, error_count=count, last_error=reason,
        next_poll_at=_next_poll(now, options, count / 2),
    )


async def poll(
    feeds: Sequence[FeedConfig], *, states: dict[str, FeedState], fetcher: Fetcher,
    known: KnownLookup, now: datetime, options: PollConfig, max_entries: int,
    progress: Callable[[int, int], None] | None = None,
) -> PollResult:
    """Poll ``feeds`` concurrently (the fetcher enforces the limits)."""
    done = 0

    async def one(feed: FeedConfig) -> tuple[FeedUpdate, ParsedFeed | None]:
        nonlocal done
        result = await _poll_one(
            feed, states.get(feed.url), fetcher=fetcher, known=known, now=now,
            options=options, max_entries=max_entries,
        )
        done += 1
        if progress is not None:
            progress(done, len(feeds))
        return result

    results = await asyncio.gather(*(one(f) for f in feeds))
    entries: list[FeedEntry] = []
    rejections: list[Rejection] = []
    for update, parsed in results:
        if update.last_error:
            log.warning("feed failed", extra={"feed": update.url, "reason": update.last_error})
        if parsed is not None:
            entries.extend(parsed.entries)
            rejections.extend(parsed.rejections)
    return PollResult(
        entries=tuple(entries), updates=tuple(u for u, _ in results), rejections=tuple(rejections)
    )
