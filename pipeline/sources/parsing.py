"""Feed bytes into entries: the feedparser boundary.

:func:`parse_feed` turns a feed's body into :class:`ParsedFeed` (its
:class:`~pipeline.models.FeedEntry` items, the entries refused and why, its
timing hints), or raises :class:`FeedParseError` with the reason the body is
no feed. The poll stage (:mod:`pipeline.sources.poll`) runs it in worker processes.

feedparser is only ever given bytes wrapped in ``io.BytesIO``: given a ``str``
it treats it as a path or URL and reads it, which would let a feed make us
read local files. It runs in worker processes under ``fetch.parse_timeout``
(see :mod:`pipeline.workers`: its e-mail regex blows up on a long
author field). Its dicts never leave this module: entries become
:class:`~pipeline.models.FeedEntry` at once.

What is a feed: whatever feedparser gives a version (RSS, Atom), and CDF,
which it reads without naming it. Every entry it returns is kept or refused
with a reason (no link, a link that is not http(s) or too long, the same
article as an earlier entry of the feed, cut off by the end of the body);
README, *What is read and what is refused*. One GUID given to different
articles is no reason: each gets an id of its own (:mod:`pipeline.sources.guids`).

Hostile XML: feedparser's strict parser is expat with external general
entities off (no XXE: nothing is read from disk or network); before parsing,
feedparser drops every ENTITY declaration whose value is not plain text, so
nothing can expand (billion laughs), and expat 2.4+ would refuse the
amplification anyway. The tests in ``tests/integration/test_hostile_feeds.py``
hold these to account.
"""

from __future__ import annotations

import bisect
import calendar
import functools
import hashlib
import html
import io
import re
import xml.sax
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from pipeline import ids
from pipeline.models import FeedEntry, Rejection

__all__ = ["FeedParseError", "ParsedFeed", "parse_feed"]

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
# The GUIDs (RSS) or ids (Atom) of the items past the limit, which are not
# parsed: each element's text, CDATA sections and character references read
# as feedparser reads them; any other markup inside and it is not read. A
# pattern per element name, tried in turn: one that starts with a literal is
# found by a fast search (0.18 ms over 300 items, against 0.54 ms for one
# pattern of all three names, and 1.2 ms for a loop over the items).
_CONTENT = rb"(?:\s[^>]*)?>([^<]*(?:<!\[CDATA\[.*?\]\]>[^<]*)*)"
_GUIDS = tuple(re.compile(rb"<" + name + _CONTENT + rb"</" + name + rb"\s*>", re.DOTALL)
               for name in (rb"guid", rb"id", rb"(?:[\w.-]+:)id"))
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.DOTALL)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedFeed:
    title: str | None
    entries: tuple[FeedEntry, ...]
    rejections: tuple[Rejection, ...]
    # Timing hints for pipeline.sources.schedule, as the feed gives them.
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
    # Items past the first max_entries, not read (fetch.max_entries_per_feed).
    beyond: int = 0
    # Entry id -> the GUID it comes from, for the entries keyed by one: the
    # poll settles their ids against the stored entries (pipeline.sources.guids).
    guids: Mapping[str, str] = field(default_factory=dict)
    # The digests of ``items`` not parsed this time: their ids are as stored.
    skipped: frozenset[str] = frozenset()
    # The GUIDs of the items past the first max_entries (not read): a GUID
    # the document gives to one of them too is given twice (see guids.settle).
    beyond_guids: frozenset[str] = frozenset()


class FeedParseError(Exception):
    """The body is not a feed we can read; the message says why."""


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


def _guids_in(body: bytes, spans: Sequence[tuple[int, int, str]]) -> frozenset[str]:
    """The GUIDs of the items at ``spans`` (consecutive), found by pattern (``_GUIDS``)."""
    if not spans:
        return frozenset()
    found: set[str] = set()
    start, end = spans[0][0], spans[-1][1]
    texts: set[bytes] = next((found for found in (
        set(p.findall(body, start, end)) for p in _GUIDS) if found), set())
    for text in texts:
        try:
            raw = text.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if "<" in raw:  # CDATA: its text as it is, the text around it unescaped
            parts = _CDATA.split(raw)
            raw = "".join(html.unescape(p) if k % 2 == 0 else p for k, p in enumerate(parts))
        elif "&" in raw:
            raw = html.unescape(raw)
        guid = _text(raw, _MAX_GUID + 1)
        if guid and len(guid) <= _MAX_GUID:
            found.add(guid)
    return frozenset(found)


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
            return replace(parsed, published=parsed.published + earlier, items=recorded,
                           beyond=max(0, len(items) - max_entries),
                           skipped=frozenset(digest for k, (_, _, digest) in enumerate(first)
                                             if k in skip),
                           beyond_guids=_guids_in(body, items[max_entries:]))
    parsed, found, clean, seen = parse(body)
    if items:  # as when they are cut out (above), so an item's id is the same each poll
        parsed = replace(parsed, beyond_guids=_guids_in(body, items[max_entries:]))
    if first and clean and found == len(items):
        return replace(parsed, items=tuple(
            (digest, *entry) for (_, _, digest), entry in zip(first, seen, strict=True)))
    return parsed


_FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml"})
_HEAD_BYTES = 256 * 1024  # a page's <head> is near its start; never the whole page


class _FeedLinks(HTMLParser):
    """The feeds a page names in its head (``<link rel="alternate"
    type="application/rss+xml" href=...>``, RSS autodiscovery)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "link":
            return
        found = {k: (v or "") for k, v in attrs}
        rel = found.get("rel", "").lower().split()
        kind = found.get("type", "").split(";")[0].strip().lower()
        href = found.get("href", "").strip()
        if "alternate" in rel and kind in _FEED_TYPES and href and href not in self.hrefs:
            self.hrefs.append(href)


def _named_feeds(body: bytes, base: str) -> str:
    """What to do about a page given as a feed (the site's home page, an
    article): the feed URLs it names, or nothing when it names none."""
    finder = _FeedLinks()
    try:
        finder.feed(body[:_HEAD_BYTES].decode("utf-8", errors="replace"))
    except (ValueError, AssertionError):  # html.parser's words for markup it gives up on
        return ""
    urls = [urljoin(base, href) for href in finder.hrefs[:3]]
    urls = [u for u in urls if u.startswith(("http://", "https://")) and len(u) <= 2048]
    if not urls:
        return ""
    return (f"; the page names its feed{'s' if len(urls) > 1 else ''}: {', '.join(urls)}"
            " (give newsmon that URL instead)")


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
            raise FeedParseError("got an HTML page where a feed was expected"
                                 + _named_feeds(body, base))
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
    claims: dict[str, str] = {}  # GUID -> link_key of the article whose id it is
    guids: dict[str, str] = {}
    linked = _guid_links(raw_entries, base, 10 * max_url_length)
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
        usable = guid if len(guid) <= _MAX_GUID else None
        entry_id = ids.entry_id(guid=usable, link=link, title=title, summary=summary)
        if usable:
            # A CMS may give every item one GUID: the first article of the
            # document keeps it as its id, each other gets an id of its own
            # (settled against the stored entries by pipeline.sources.guids).
            key = ids.link_key(link)
            if claims.setdefault(usable, key) != key:
                entry_id = ids.reused_guid_id(usable, link)
        elif entry_id in linked and ids.link_key(link) not in linked[entry_id]:
            # An item without a GUID is keyed by its link, and another item
            # of the document has that link as its GUID (a permalink GUID of
            # another article): two articles, so this one gets an id of its
            # own, wherever it stands (before, the later one was a duplicate).
            entry_id = ids.reused_guid_id(entry_id, link)
        seen[-1] = (entry_id, seen[-1][1])  # a copy's item stands for the entry kept
        if entry_id in kept:
            # The same article listed twice (one GUID and link, or one link,
            # or one title and summary); every later stage keys on (feed, id),
            # so one copy goes on.
            reject(link, f"duplicate entry id: an earlier entry of the feed has the id "
                         f"{entry_id[:200]!r} (the first one is kept)")
            continue
        kept.add(entry_id)
        if usable:
            guids[entry_id] = usable
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
        beyond=max(0, len(parsed.entries) - max_entries), guids=guids,
        beyond_guids=frozenset(
            guid for raw in parsed.entries[max_entries:]
            if 0 < len(guid := _text(raw.get("id"), _MAX_GUID + 1)) <= _MAX_GUID),
    ), len(parsed.entries), _well_formed(parsed), seen


def _guid_links(raw_entries: list[Any], base: str, limit: int) -> dict[str, set[str]]:
    """Each GUID of the document and the link keys of the items giving it;
    empty unless some items have a GUID and some have none (only these are
    keyed by their links)."""
    guids = [guid if len(guid := _text(raw.get("id"), _MAX_GUID + 1)) <= _MAX_GUID else ""
             for raw in raw_entries]
    if all(guids) or not any(guids):
        return {}
    linked: dict[str, set[str]] = {}
    for raw, guid in zip(raw_entries, guids, strict=True):
        if guid and urlsplit(link := urljoin(base, _text(raw.get("link"), limit))).scheme in (
                "http", "https"):
            linked.setdefault(guid, set()).add(ids.link_key(link))
    return linked


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
