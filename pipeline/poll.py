"""Poll stage: fetch due feeds (conditionally) and emit the entries not seen before.

feedparser is only ever given bytes wrapped in ``io.BytesIO``: given a ``str``
it treats it as a path or URL and reads it, which would let a feed make us
read local files. It runs in worker processes under ``fetch.parse_timeout``
(see :mod:`pipeline.timelimit`: its e-mail regex blows up on a long
author field). Its dicts never leave this module: entries become
:class:`~pipeline.models.FeedEntry` at once.

Hostile XML: feedparser's strict parser is expat with external general
entities off (no XXE: nothing is read from disk or network); before parsing,
feedparser drops every ENTITY declaration whose value is not plain text, so
nothing can expand (billion laughs), and expat 2.4+ would refuse the
amplification anyway. The tests in ``tests/integration/test_hostile_feeds.py``
hold these to account.

Errors are counted in ``feeds.error_count`` in points: a hard error (DNS
failure, refused address, 404, body too large, not a feed, parse error or
parse timeout) adds :data:`HARD_POINTS`, a soft one (timeout, connection
failure, 429, 5xx, a truncated feed) :data:`SOFT_POINTS`; a successful poll
resets it to 0. Each point backs the next poll off (see
:mod:`pipeline.schedule`); from :data:`FAILING_AT` points the feed is shown
as ``failing`` and, soon after, polled at the maximum interval. A 410 Gone
retires it with its reason; nothing is ever dropped silently.
"""

from __future__ import annotations

import asyncio
import bisect
import calendar
import functools
import hashlib
import io
import json
import logging
import os
import re
import time
import xml.sax
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from pipeline import ids, schedule
from pipeline.config import PollConfig
from pipeline.feeds import Feed
from pipeline.http import Fetcher, FetchError, Response
from pipeline.models import FeedEntry, Rejection
from pipeline.store import FeedState
from pipeline.timelimit import TimeLimitExceeded, WorkerDied, WorkerPool

log = logging.getLogger(__name__)

HARD_POINTS = 2
SOFT_POINTS = 1
# Three hard errors in a row (or six soft ones): shown as failing.
FAILING_AT = 6
# Feed parsing is quick (milliseconds for a typical feed); a few workers keep
# up with the network, and each costs ~0.5 s to start (importing feedparser).
PARSE_WORKERS = max(1, min(4, os.cpu_count() or 1))
# A GUID longer than a URL is no identity but an attack on our index.
_MAX_GUID = 2048
_MAX_TITLE = 1000
_MAX_SUMMARY = 2000
# An entry is complete when its closing tag is in the body (see _cut_entries).
_ENTRY_END = re.compile(rb"</(?:[\w.-]+:)?(?:item|entry)\s*>", re.IGNORECASE)
# Where items (RSS) and entries (Atom) open and close, for parsing only the
# changed ones (_items).
_ITEM_OPEN = re.compile(rb"<((?:[\w.-]+:)?(?:item|entry))[\s>]", re.IGNORECASE)
_ITEM_CLOSE = re.compile(rb"</((?:[\w.-]+:)?(?:item|entry))\s*>", re.IGNORECASE)
# Tags with attributes before the first item (namespaces, xml:base), except
# RSS 1.0's list of the items' addresses, which changes with every new item.
_TAG_WITH_ATTRIBUTES = re.compile(
    # A quoted value may hold ">", never "<" (XML 1.0 §3.1): each try stops at
    # the next tag, so a run of unclosed quotes costs linear time.
    rb"<(?!(?:[\w.-]+:)?li\s)[\w.:-]+\s(?:[^<>\"']|\"[^<\"]*\"|'[^<']*')*>")
_XML_DECLARATION = re.compile(rb"\s*<\?xml[^>]*>")
_DOCTYPE = re.compile(rb"<!DOCTYPE[^>\[]*", re.IGNORECASE)
# Declarations that change what an item's bytes mean (entities, default attributes).
_DECLARATION = re.compile(rb"<!(?:ENTITY|ATTLIST)", re.IGNORECASE)
_BOM = b"\xef\xbb\xbf"
# A pass may defer thousands of feeds: the log line names the first few.
_LOGGED_URLS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class PollOptions:
    schedule: PollConfig
    max_entries: int = 200
    max_url_length: int = 2048
    parse_timeout: float = 20.0


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedUpdate:
    """The new state of one feed after a poll; applied by the load step."""

    url: str
    fetch_url: str
    name: str
    status: str
    last_polled_at: datetime
    last_success_at: datetime | None
    next_poll_at: datetime
    poll_interval_minutes: float
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    error_count: int
    last_error: str | None
    new_entries: int
    item_hashes: str | None = None  # JSON {hash: [entry id, date]}: ParsedFeed.items


@dataclass(frozen=True, slots=True, kw_only=True)
class PollResult:
    entries: tuple[FeedEntry, ...]
    updates: tuple[FeedUpdate, ...]
    rejections: tuple[Rejection, ...]
    deferred: tuple[str, ...] = ()  # feeds not done within the time budget


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedFeed:
    title: str | None
    entries: tuple[FeedEntry, ...]
    rejections: tuple[Rejection, ...]
    # Timing hints for pipeline.schedule, as the feed gives them.
    ttl: str | None = None
    update_period: str | None = None
    update_frequency: str | None = None
    published: tuple[datetime, ...] = ()
    # Why the feed is incomplete (its complete entries are kept), or None.
    truncated: str | None = None
    # The first max_entries items: hash, entry id (None: rejected) and date
    # (epoch seconds), stored for the next poll (see _items); None when the
    # items could not be told apart for certain, and the next poll parses all.
    items: tuple[tuple[str, str | None, int | None], ...] | None = None


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
    # not parsed again when unchanged; see _items.
    known_items: dict[str, tuple[str, int | None]] | None = None


class FeedParseError(Exception):
    """The body is not a feed we can read; the message says why."""


# Which (feed url, entry id) pairs among these were seen before: one query
# for the whole pass. One query per feed cost 10-20 ms each (DuckDB binds a
# Python list value by value), more than fetching and parsing the feed.
KnownLookup = Callable[[Sequence[tuple[str, str]]], set[tuple[str, str]]]


def due_feeds(
    feeds: Sequence[Feed], states: Mapping[str, FeedState], now: datetime, *, force: bool
) -> list[Feed]:
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


def _text(value: Any, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def _items(body: bytes, base: str, content_type: str,
           max_url_length: int = 0) -> list[tuple[int, int, str]]:
    """Each item (or entry) of ``body``: where it starts and ends, and a hash of
    its bytes keyed with what else decides how it parses (the address links
    resolve against, the declared charset, a byte order mark, the document
    type, and the attributes of the elements before the first item:
    namespaces and ``xml:base`` of its ancestors). A document declaring
    entities or default attributes has no items here (it is parsed whole).

    A changed feed usually has a few new items among many it had before, and
    feedparser's time is per item (~0.4 ms): an item whose hash was stored at
    the last poll, and whose entry is in ``entries`` (the load stores it once
    the process stage has had it; until then it is parsed and delivered
    again), is cut out of the document before parsing; the entry it gives
    would be dropped as known anyway. The cut is by pattern, so it is trusted only when
    feedparser, on the document it gets, finds no error and exactly as many
    entries as were left in; otherwise the whole document is parsed and
    nothing is stored (see :func:`parse_feed`).
    """
    spans = _item_spans(body)
    if not spans:
        return []
    if _DECLARATION.search(body):  # anywhere: a pattern can be fooled in a DTD's comments
        return []
    head = body[: spans[0][0]]
    key = hashlib.blake2b(f"{base}\n{content_type}\n{max_url_length}\n".encode(),
                          digest_size=16)
    if head.startswith(_BOM):
        key.update(b"bom\n")
        head = head[len(_BOM):]
    if declaration := _XML_DECLARATION.match(head):
        key.update(declaration.group())
    if doctype := _DOCTYPE.search(head):
        key.update(doctype.group())
    for tag in _TAG_WITH_ATTRIBUTES.findall(head):
        key.update(tag)
    secret = key.digest()
    return [(start, end, hashlib.blake2b(body[start:end], digest_size=8, key=secret).hexdigest())
            for start, end in spans]


def _item_spans(body: bytes) -> list[tuple[int, int]]:
    """Each item from its opening tag to the first closing tag of its name
    after it, items inside an item skipped: what the pattern
    ``<item[\\s>].*?</item>`` finds, in time linear in the body (the pattern
    alone is quadratic on many items that never close)."""
    closes: dict[bytes, list[int]] = {}
    ends: dict[bytes, list[int]] = {}
    for m in _ITEM_CLOSE.finditer(body):
        name = m.group(1).lower()
        closes.setdefault(name, []).append(m.start())
        ends.setdefault(name, []).append(m.end())
    spans: list[tuple[int, int]] = []
    at = 0
    for m in _ITEM_OPEN.finditer(body):
        if m.start() < at:
            continue
        name = m.group(1).lower()
        k = bisect.bisect_left(closes.get(name, ()), m.end())
        if k < len(closes.get(name, ())):
            at = ends[name][k]
            spans.append((m.start(), at))
    return spans


def _without(body: bytes, items: list[tuple[int, int, str]], drop: set[int]) -> bytes:
    parts, at = [], 0
    for k, (start, end, _) in enumerate(items):
        if k in drop:
            parts.append(body[at:start])
            at = end
    parts.append(body[at:])
    return b"".join(parts)


def _epoch(when: datetime | None) -> int | None:
    return None if when is None else calendar.timegm(when.utctimetuple())


def parse_feed(
    body: bytes, *, url: str, name: str, max_entries: int, base: str | None = None,
    content_type: str = "", max_url_length: int = 2048,
    known_items: Mapping[str, tuple[str, int | None]] | None = None,
) -> ParsedFeed:
    """Parse feed bytes into our entries; raise FeedParseError when it is no feed.

    ``known_items``: items of an earlier poll whose entries are stored (hash ->
    entry id and date, from ``ParsedFeed.items``); those still byte for byte
    the same are not parsed again (their dates still count for the schedule),
    see :func:`_items`.
    """
    base = base or url
    if not body.strip():
        raise FeedParseError("empty response body (expected an RSS or Atom feed)")
    parse = functools.partial(_parse, url=url, name=name, max_entries=max_entries, base=base,
                              content_type=content_type, max_url_length=max_url_length)
    items = _items(body, base, content_type, max_url_length)
    first = items[:max_entries]
    skip = {k for k, (_, _, digest) in enumerate(first) if digest in (known_items or {})}
    if skip and known_items is not None:
        kept = len(first) - len(skip)
        drop = skip | set(range(len(first), len(items)))
        parsed, found, clean, seen = parse(_without(body, items, drop))
        if clean and found == kept:
            parsed_now = iter(seen)
            recorded = tuple(
                (digest, *(known_items[digest] if k in skip else next(parsed_now)))
                for k, (_, _, digest) in enumerate(first)
            )
            earlier = tuple(datetime.fromtimestamp(when, tz=UTC) for k, (_, _, digest)
                            in enumerate(first) if k in skip
                            and (when := known_items[digest][1]) is not None)
            return replace(parsed, published=parsed.published + earlier, items=recorded)
    parsed, found, clean, seen = parse(body)
    if first and clean and found == len(items):
        return replace(parsed, items=tuple(
            (digest, *entry) for (_, _, digest), entry in zip(first, seen, strict=True)))
    return parsed


def _parse(
    body: bytes, /, *, url: str, name: str, max_entries: int, base: str, content_type: str,
    max_url_length: int,
) -> tuple[ParsedFeed, int, bool, list[tuple[str | None, int | None]]]:
    """The feed; how many entries feedparser found; whether it found no error;
    the entry id (None: rejected) and date (epoch seconds) of each of the
    first ``max_entries``."""
    headers = {"content-location": base}
    if content_type:
        # The charset of an undeclared feed is in here (RFC 7303 §3).
        headers["content-type"] = content_type
    parsed = feedparser.parse(
        io.BytesIO(body), sanitize_html=False, resolve_relative_uris=False,
        response_headers=headers,
    )
    if not parsed.get("version") and _root_element(body) != "channel":
        head = body[:1024].lstrip(_BOM + b" \t\r\n").lower()
        if head.startswith((b"<!doctype html", b"<html")) or (
            content_type.split(";")[0].strip().lower() == "text/html"
        ):
            raise FeedParseError("got an HTML page where a feed was expected")
        raise FeedParseError(f"not an RSS or Atom feed: {_why_not(parsed, body)}")
    raw_entries = list(parsed.entries[:max_entries])
    raw_entries, cut = _cut_entries(parsed, raw_entries, body)
    entries: list[FeedEntry] = []
    rejections: list[Rejection] = []
    published: list[datetime] = []
    seen: list[tuple[str | None, int | None]] = []

    def reject(link: str, reason: str) -> None:
        rejections.append(Rejection(url=link[:max_url_length], feed_url=url, stage="poll",
                                    reason=reason))

    kept: set[str] = set()
    for position, raw in enumerate(raw_entries, start=1):
        title = _text(raw.get("title"), _MAX_TITLE)
        summary = _text(raw.get("summary"), _MAX_SUMMARY)
        link = _text(raw.get("link"), 10 * max_url_length)
        guid = _text(raw.get("id"), _MAX_GUID + 1)
        when = _struct_to_datetime(raw.get("published_parsed") or raw.get("updated_parsed"))
        seen.append((None, _epoch(when)))  # the id is set below when the entry is kept
        if when is not None:
            published.append(when)
        if not link:
            reject(f"{url}#{guid[:200] or title[:80] or f'entry {position}'}",
                   "entry has no link to an article")
            continue
        if len(link) > max_url_length:
            reject(link, f"entry link is longer than {max_url_length} characters")
            continue
        link = urljoin(base, link)
        if urlsplit(link).scheme not in ("http", "https"):
            reject(link, f"entry link is not http(s): {link[:80]!r}")
            continue
        if len(link) > max_url_length:  # resolving against the base made it longer
            reject(link, f"entry link is longer than {max_url_length} characters")
            continue
        entry_id = ids.entry_id(guid=guid if len(guid) <= _MAX_GUID else None, link=link,
                                title=title, summary=summary)
        seen[-1] = (entry_id, seen[-1][1])  # a copy's item stands for the entry kept
        if entry_id in kept:
            # Real feeds repeat GUIDs (a story updated in place, a CMS bug);
            # every later stage keys on (feed, id), so one copy goes on.
            reject(link, f"duplicate entry id: an earlier entry of the feed has the id "
                         f"{entry_id[:200]!r} (the first one is kept)")
            continue
        kept.add(entry_id)
        entries.append(FeedEntry(
            id=entry_id, feed_url=url, feed_name=name, url=link, title=title, summary=summary,
            published_at=when,
        ))
    for raw in cut:
        link = _text(raw.get("link"), max_url_length) or f"{url}#{_text(raw.get('id'), 200)}"
        reject(link, "entry cut off: the feed ends inside it (truncated feed)")
    truncated = None
    if cut:
        problem = parsed.get("bozo_exception")
        truncated = (f"feed is truncated ({problem}): kept the {len(raw_entries)} complete "
                     f"entries, dropped {len(cut)} cut off")
    feed = parsed.feed
    return ParsedFeed(
        title=_text(feed.get("title"), _MAX_TITLE) or None, entries=tuple(entries),
        rejections=tuple(rejections), ttl=_hint(feed.get("ttl")),
        update_period=_hint(feed.get("sy_updateperiod")),
        update_frequency=_hint(feed.get("sy_updatefrequency")),
        published=tuple(published), truncated=truncated,
    ), len(parsed.entries), _well_formed(parsed), seen


# What may come before the root element (XML 1.0 §2.8), and where each ends.
_PROLOG_ENDS = ((b"<?", b"?>"), (b"<!--", b"-->"))
_NAME = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _root_element(body: bytes) -> str | None:
    """The local name of the document's root element, lower-cased, or None
    when it cannot be told (no element, a DTD cut off, not ASCII-compatible
    without a byte order mark).

    feedparser 6 reads CDF (Microsoft's Channel Definition Format: a root
    ``<CHANNEL>`` of ``<ITEM HREF=...>``) but reports no version for it, as
    it does for any XML it does not know; the root tells them apart. A scan,
    not a pattern: a pattern over comments backtracks on hostile input.
    """
    if body.startswith(_UTF16_BOMS):
        body = body[:65536].decode("utf-16", "replace").encode("utf-8", "replace")
    at = len(_BOM) if body.startswith(_BOM) else 0
    while True:
        while at < len(body) and body[at] in b" \t\r\n":
            at += 1
        for start, end in _PROLOG_ENDS:
            if body.startswith(start, at):
                close = body.find(end, at + len(start))
                if close < 0:
                    return None
                at = close + len(end)
                break
        else:
            if body[at:at + 9].upper() == b"<!DOCTYPE":
                at = _doctype_end(body, at)
                if at < 0:
                    return None
                continue
            name = _NAME.match(body, at)
            return name.group(1).decode("ascii", "replace").rsplit(":", 1)[-1].lower() \
                if name else None


def _doctype_end(body: bytes, at: int) -> int:
    """Where the document type declaration opening at ``at`` ends, or -1. Its
    internal subset (``[...]``) may hold ">" in declarations, never "]"
    outside quotes or comments, which feeds do not put there."""
    bracket, close = body.find(b"[", at), body.find(b">", at)
    if close < 0:
        return -1
    if 0 <= bracket < close:
        subset_end = body.find(b"]", bracket)
        close = body.find(b">", subset_end) if subset_end >= 0 else -1
    return close + 1 if close >= 0 else -1


def _why_not(parsed: Any, body: bytes) -> str:
    """Why a document feedparser gave no version is not read as a feed."""
    problem = parsed.get("bozo_exception")
    if body.lstrip(_BOM + b" \t\r\n").startswith((b"{", b"[")):
        return "the body is JSON (JSON Feed is not read)"
    if parsed.get("bozo") and problem is not None and not isinstance(
            problem, feedparser.NonXMLContentType):
        return str(problem)
    root = _root_element(body)
    if root is None:
        return "no root element found"
    return (f"the root element is <{root}> (feeds are <rss>, <feed>, <rdf:RDF>, "
            "or CDF's <channel>)")


def _well_formed(parsed: Any) -> bool:
    """Whether expat read the whole document as declared: no error, or only a
    complaint about the content type (feedparser then still parses strictly).
    Not a charset it had to override: which one it falls back to depends on
    all of the document's bytes, so a part of it may decode another way."""
    return not parsed.get("bozo") or isinstance(
        parsed.get("bozo_exception"), feedparser.NonXMLContentType)


def _hint(value: Any) -> str | None:
    return value.strip()[:40] if isinstance(value, str) and value.strip() else None


def _cut_entries(
    parsed: Any, entries: list[Any], body: bytes
) -> tuple[list[Any], list[Any]]:
    """Split off the entries that the end of a broken document cut through.

    When expat gives up (the document is not well-formed), feedparser re-reads
    it with its lenient parser, which also returns the entry it was inside
    when the bytes ran out, with whatever fields it had read by then (a title
    and a link, but half a summary). The rule: an entry is stored only if its
    closing tag is in the body, so with N closing tags only the first N
    entries are kept. A feed with a stray ``&nbsp;`` but every entry closed
    keeps them all.
    """
    if not (parsed.get("bozo") and isinstance(parsed.get("bozo_exception"), xml.sax.SAXException)):
        return entries, []
    complete = len(_ENTRY_END.findall(body))
    return entries[:complete], entries[complete:]


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


def _skippable(
    feeds: Sequence[Feed], states: Mapping[str, FeedState], known: KnownLookup
) -> dict[str, dict[str, tuple[str, int | None]]]:
    """Per feed, the stored items whose entries are stored too (one query)."""
    stored = {}
    for feed in feeds:
        state = states.get(feed.url)
        if state is not None and state.item_hashes:
            stored[feed.url] = _stored_items(state.item_hashes)
    pairs = [(url, entry) for url, items in stored.items() for entry, _ in items.values()]
    delivered = known(pairs) if pairs else set()
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
        caller drops the known ones and sets ``new_entries``). ``known_items``:
        see :func:`parse_feed`."""
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
            error_count=0, last_error=None, new_entries=0,
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
            return self._failed(base, state, reason, points, retry_after=exc.retry_after,
                                retire=retire), None
        # RFC 9110 §15.4.2: after a 301/308 the new URL is the one to use.
        base = replace(base, fetch_url=response.permanent_redirect or fetch_url)
        if response.status == 304:
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
        if parsed.truncated:
            # Keep what is complete, but say so, and parse it again next time
            # (no content hash) rather than trust these bytes.
            return self._failed(base, state, parsed.truncated, SOFT_POINTS,
                                hints=_hints(response, parsed)), parsed
        items = None if parsed.items is None else json.dumps(
            {digest: [entry, when] for digest, entry, when in parsed.items},
            separators=(",", ":"))
        return replace(self._succeeded(base, state, response, parsed), content_hash=digest,
                       item_hashes=items), parsed

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


async def poll(
    feeds: Sequence[Feed], *, states: Mapping[str, FeedState], fetcher: Fetcher,
    known: KnownLookup, now: datetime, options: PollOptions, deadline: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PollResult:
    """Poll ``feeds`` concurrently (the fetcher enforces the limits).

    ``known`` is asked once, after the polls, which of the parsed entries were
    delivered before; only the others are returned (and counted in each
    feed's ``new_entries``). It is asked once before too, for the entries of
    the items stored at the last polls (see :func:`_items`).

    ``deadline`` (a :func:`time.monotonic` value): feeds not done by then are
    cancelled and left as they were, due again on the next pass.
    """
    done = 0
    skippable = _skippable(feeds, states, known)

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
    if deferred:
        # The default formatter drops ``extra``: what and why go in the message.
        shown = ", ".join(deferred[:_LOGGED_URLS])
        more = f" and {len(deferred) - _LOGGED_URLS} more" if len(deferred) > _LOGGED_URLS else ""
        log.warning("%d feed(s) deferred to the next pass, the time budget was spent: %s%s",
                    len(deferred), shown, more, extra={"feeds": len(deferred)})
    seen = known([(e.feed_url, e.id) for _, parsed in results if parsed is not None
                  for e in parsed.entries])
    entries: list[FeedEntry] = []
    rejections: list[Rejection] = []
    updates: list[FeedUpdate] = []
    for update, parsed in results:
        if update.last_error:
            moved = f" (polled at {update.fetch_url})" if update.fetch_url != update.url else ""
            log.warning("feed failed: %s%s: %s", update.url, moved, update.last_error,
                        extra={"feed": update.url, "reason": update.last_error})
        if parsed is None:
            updates.append(update)
            continue
        new = [e if e.feed_name == update.name else replace(e, feed_name=update.name)
               for e in parsed.entries if (e.feed_url, e.id) not in seen]
        updates.append(replace(update, new_entries=len(new)))
        entries.extend(new)
        rejections.extend(parsed.rejections)
    return PollResult(
        entries=tuple(entries), updates=tuple(updates), rejections=tuple(rejections),
        deferred=deferred,
    )
