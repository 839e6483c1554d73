"""The feed registry: which feeds a pass polls, adding feeds, OPML in and out.

Feeds come from two places, and a pass polls both:

- ``feeds:`` in the config file (origin ``config``): reviewed, versioned
  configuration, never rewritten by newsmon (a rewrite would lose the
  user's comments and order);
- ``newsmon feeds add`` / ``newsmon feeds import`` (origin ``added``): rows
  in the database's ``feeds`` table, the same table that keeps every feed's
  state. A feed in both, however each writes its URL (``feed_key``), is the
  config's.

A feed's identity is the URL it was configured or added with; a permanent
redirect (301/308) moves only ``feeds.fetch_url``, where it is polled from.

An added feed can be removed and renamed here; a config feed only in its
file (the commands say so). Either kind can be paused: ``feeds.paused_at``
is state, like the ETag, not configuration, so pausing a config feed that
breaks at 3 a.m. needs no edit of a reviewed file. A paused feed is not
polled and keeps its state; resuming makes it due at once.

OPML is untrusted XML (a file someone sent you): entity declarations are
refused outright, and lxml parses with entity resolution, DTD loading and
network access off, and its size limits on (``huge_tree=False``), so neither
a billion-laughs document nor an external entity (XXE) can expand or read a
local file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlsplit
from xml.etree import ElementTree

import duckdb
from lxml import etree
from pydantic import ValidationError

from pipeline import store
from pipeline.config import FeedConfig, Settings
from pipeline.http import allow_entry, check_written_host, private_advice
from pipeline.ids import feed_key
from pipeline.store.backend import backend, fenced

__all__ = ["ConfiguredFeed", "Feed", "FeedError", "FeedHealth", "ImportResult", "OpmlFeed",
           "add", "all_feeds", "export_opml", "health", "import_opml", "parse_opml", "pause",
           "remove", "rename", "resume"]

_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)
# Characters XML 1.0 allows nowhere, not even as &#...; (section 2.2): a feed
# title with an escape sequence would make the export a file no parser reads.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class FeedError(Exception):
    """A feed cannot be added, changed or imported; the message says why."""


class ConfiguredFeed(FeedError):
    """The feed is in the config file, which newsmon never rewrites: edit it there."""

    def __init__(self, url: str, action: str) -> None:
        super().__init__(f"{url} is in the config file: {action}")
        self.url = url
        self.action = action


@dataclass(frozen=True, slots=True, kw_only=True)
class Feed:
    url: str  # its identity: as configured or added
    name: str | None
    origin: str  # "config" | "added"


@dataclass(frozen=True, slots=True, kw_only=True)
class OpmlFeed:
    url: str
    name: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult:
    added: tuple[Feed, ...]
    skipped: tuple[tuple[str, str], ...]  # (url, why)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedHealth:
    """One line of ``newsmon feeds``."""

    name: str
    url: str
    fetch_url: str | None  # only when a permanent redirect moved it
    origin: str
    status: str  # new | active | failing | retired | paused
    last_success_at: datetime | None
    last_error: str | None
    error_count: int
    next_poll_at: datetime | None
    entries_seen: int


def all_feeds(settings: Settings, con: duckdb.DuckDBPyConnection) -> list[Feed]:
    """The feeds a pass polls: the config's, then the added ones; paused ones left out."""
    feeds = _one_per_feed(settings, [Feed(url=url, name=name, origin="added")
                                     for url, name in store.added_feeds(con)])
    paused = _paused(con)
    return [f for f in feeds if f.url not in paused]


def config_and_added(settings: Settings, added: Sequence[Feed]) -> list[Feed]:
    """:func:`all_feeds` from the added feeds already read (the paused ones left out)."""
    return _one_per_feed(settings, added)


def _one_per_feed(settings: Settings, added: Sequence[Feed]) -> list[Feed]:
    """The config's feeds, then the ``added`` ones that are not already there by
    :func:`~pipeline.ids.feed_key`. A feed added, then written into the config file
    another way (``https://WIRE.example.org:443/./rss#top``), is the config's: polled
    once, not once per spelling. (``feeds add`` refuses a config feed, but the
    config file may gain it later.)"""
    feeds = [Feed(url=f.url, name=f.name, origin="config") for f in settings.feeds]
    seen = {feed_key(f.url) for f in feeds}
    for feed in added:
        key = feed_key(feed.url)
        if key not in seen:
            seen.add(key)
            feeds.append(feed)
    return feeds


def _paused(con: duckdb.DuckDBPyConnection) -> set[str]:
    # A read-only connection to a database from before paused_at has no such
    # column (only a read-write connect adds it): then nothing is paused.
    has_column = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database()"
        " AND schema_name = current_schema() AND table_name = 'feeds'"
        " AND column_name = 'paused_at'"
    ).fetchone()
    if not has_column or not has_column[0]:
        return set()
    rows = con.execute("SELECT url FROM feeds WHERE paused_at IS NOT NULL").fetchall()
    return {str(r[0]) for r in rows}


def _checked(url: str, name: str | None, settings: Settings) -> Feed:
    try:
        config = FeedConfig(url=url.strip(), name=(name or "").strip() or None)
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        shown = f"{url.strip()[:200]!r}"
        # The URL's own checks often name it already: said once, not twice.
        raise FeedError(message if shown in message else f"{shown}: {message}") from None
    limit = settings.fetch.max_url_length
    if len(config.url) > limit:
        raise FeedError(f"{config.url[:80]!r}...: longer than {limit} characters")
    parts = urlsplit(config.url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    refused = check_written_host(host, port, settings.fetch.allow_private)
    if refused is not None:
        raise FeedError(f"{config.url}: {refused};"
                        f" {private_advice(allow_entry(host, port, parts.scheme))}")
    return Feed(url=config.url, name=config.name, origin="added")


@dataclass(slots=True)
class _Known:
    """The feeds already there by :func:`~pipeline.ids.feed_key`: the config's
    and the stored ones (their URLs as written), read once for an import."""

    configured: dict[str, str]
    stored: dict[str, str]

    @classmethod
    def read(cls, con: duckdb.DuckDBPyConnection, settings: Settings) -> _Known:
        configured: dict[str, str] = {}
        for f in settings.feeds:
            configured.setdefault(feed_key(f.url), f.url)
        stored: dict[str, str] = {}
        for (url,) in con.execute("SELECT url FROM feeds ORDER BY url").fetchall():
            stored.setdefault(feed_key(url), url)
        return cls(configured=configured, stored=stored)


def _add_one(con: duckdb.DuckDBPyConnection, settings: Settings, feed: Feed,
             known: _Known | None = None) -> None:
    known = known or _Known.read(con, settings)
    key = feed_key(feed.url)
    if (configured := known.configured.get(key)) is not None:
        same = "" if configured == feed.url else f" (as {configured})"
        raise FeedError(f"{feed.url} is already in the config file{same}")
    # The same feed written another way is the stored one (its state, its entries).
    feed = replace(feed, url=known.stored.get(key, feed.url))
    row = con.execute("SELECT origin, status FROM feeds WHERE url = ?", [feed.url]).fetchone()
    if row is None:
        con.execute(
            "INSERT INTO feeds (url, name, origin, status) VALUES (?, ?, 'added', 'active')",
            [feed.url, feed.name],
        )
        known.stored[key] = feed.url
        return
    origin, status = row
    if origin == "added" and status != "retired":
        raise FeedError(f"{feed.url} was already added")
    # Known but not polled: removed from the config file, or retired (410).
    # Adding it again is the user saying "poll this": start afresh.
    con.execute(
        "UPDATE feeds SET origin = 'added', name = coalesce(?, name), status = 'active',"
        " error_count = 0, last_error = NULL, next_poll_at = NULL WHERE url = ?",
        [feed.name, feed.url],
    )


def add(
    con: duckdb.DuckDBPyConnection, settings: Settings, url: str, *, name: str | None = None
) -> Feed:
    """Add one feed; it is polled on the next pass. Raises FeedError."""
    if name is not None and not name.strip():
        # As rename refuses one; not a silent "the feed's own title".
        raise FeedError("the name is empty: give one, or leave --name out for the feed's own"
                        " title")
    feed = _checked(url, name, settings)
    _add_one(con, settings, feed)
    return feed


@dataclass(frozen=True, slots=True, kw_only=True)
class _Stored:
    """What the ``feeds`` table says about a feed that remove / pause / resume need."""

    origin: str
    status: str
    paused_at: datetime | None


def _stored(con: duckdb.DuckDBPyConnection, url: str) -> _Stored | None:
    row = con.execute(
        "SELECT origin, status, paused_at FROM feeds WHERE url = ?", [url]
    ).fetchone()
    return None if row is None else _Stored(origin=row[0], status=row[1], paused_at=row[2])


def _resolved(con: duckdb.DuckDBPyConnection, settings: Settings, url: str) -> str:
    """The feed's URL as newsmon holds it, for ``url`` written any way that is
    the same feed (:func:`~pipeline.ids.feed_key`): the config's spelling first,
    as polling uses it, then the stored one."""
    if any(f.url == url for f in settings.feeds):
        return url
    known = _Known.read(con, settings)
    key = feed_key(url)
    return known.configured.get(key) or known.stored.get(key) or url


def _known(
    con: duckdb.DuckDBPyConnection, settings: Settings, url: str
) -> tuple[str, _Stored | None]:
    """The feed's origin (``config`` or ``added``) and its row; FeedError if it is neither.
    ``url``: as :func:`_resolved` gives it."""
    stored = _stored(con, url)
    if any(f.url == url for f in settings.feeds):
        return "config", stored
    if stored is not None and stored.origin == "added":
        return "added", stored
    raise FeedError(f"{url} is not a feed here (`newsmon feeds` lists them, by url)")


def remove(con: duckdb.DuckDBPyConnection, settings: Settings, url: str) -> None:
    """Stop polling an added feed and forget its state (its entries and articles stay)."""
    url = _resolved(con, settings, url.strip())
    origin, _ = _known(con, settings, url)
    if origin == "config":
        raise ConfiguredFeed(url, "delete its entry under feeds: there")
    con.execute("DELETE FROM feeds WHERE url = ?", [url])


def rename(con: duckdb.DuckDBPyConnection, settings: Settings, url: str, name: str) -> None:
    """Give an added feed a new display name (``articles.source`` of new articles)."""
    url, name = _resolved(con, settings, url.strip()), name.strip()
    if not name:
        raise FeedError("the new name is empty")
    origin, _ = _known(con, settings, url)
    if origin == "config":
        raise ConfiguredFeed(url, "change its name: there")
    con.execute("UPDATE feeds SET name = ? WHERE url = ?", [name, url])


def pause(
    con: duckdb.DuckDBPyConnection, settings: Settings, url: str, *, now: datetime | None = None
) -> None:
    """Stop polling a feed, config or added, until :func:`resume`; its state is kept."""
    url = _resolved(con, settings, url.strip())
    _, stored = _known(con, settings, url)
    if stored is not None and stored.paused_at is not None:
        raise FeedError(f"{url} is already paused (since {stored.paused_at:%Y-%m-%d %H:%M} UTC)")
    if stored is not None and stored.status == "retired":
        raise FeedError(f"{url} is retired (the server said it is gone); it is not polled anyway")
    when = now or datetime.now(UTC)
    if stored is None:  # a config feed never polled yet
        con.execute(
            "INSERT INTO feeds (url, origin, status, paused_at) VALUES (?, 'config', 'active', ?)",
            [url, when],
        )
    else:
        con.execute("UPDATE feeds SET paused_at = ? WHERE url = ?", [when, url])


def resume(con: duckdb.DuckDBPyConnection, settings: Settings, url: str) -> None:
    """Poll a paused feed again, from the next pass on."""
    url = _resolved(con, settings, url.strip())
    _, stored = _known(con, settings, url)
    if stored is None or stored.paused_at is None:
        raise FeedError(f"{url} is not paused")
    con.execute("UPDATE feeds SET paused_at = NULL, next_poll_at = NULL WHERE url = ?", [url])


def parse_opml(data: bytes) -> list[OpmlFeed]:
    """Every ``outline`` with an ``xmlUrl`` (at any depth: folders nest). Raises FeedError."""
    if _ENTITY_DECLARATION.search(data):
        raise FeedError("OPML file declares XML entities; refused (entity expansion attacks)")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_pis=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise FeedError(f"not a valid OPML file: {exc}") from None
    if etree.QName(root).localname != "opml":
        raise FeedError(f"not an OPML file: the root element is <{etree.QName(root).localname}>")
    found: list[OpmlFeed] = []
    for outline in root.iter("{*}outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        if url:
            name = (outline.get("title") or outline.get("text") or "").strip() or None
            found.append(OpmlFeed(url=url, name=name))
    return found


def import_opml(con: duckdb.DuckDBPyConnection, settings: Settings, data: bytes) -> ImportResult:
    """Add every feed of an OPML file that is not there yet, in one transaction."""
    outlines = parse_opml(data)
    added: list[Feed] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    known = _Known.read(con, settings)
    # A lake: no other writer commits beside this (its lock cut off).
    with fenced(con, backend(settings).describe()):
        for outline in outlines:
            try:
                feed = _checked(outline.url, outline.name, settings)
                if feed_key(feed.url) in seen:
                    raise FeedError(f"{feed.url} appears twice in the file")
                seen.add(feed_key(feed.url))
                _add_one(con, settings, feed, known)
            except FeedError as exc:
                skipped.append((outline.url[:2048], str(exc)))
                continue
            added.append(feed)
    return ImportResult(added=tuple(added), skipped=tuple(skipped))


def health(settings: Settings, rows: Sequence[Mapping[str, object]]) -> list[FeedHealth]:
    """Every polled feed with its state (``rows``: :func:`pipeline.store.feed_rows`)."""
    by_url = {str(r["url"]): r for r in rows}
    feeds = _one_per_feed(settings, [Feed(url=str(r["url"]), name=_str(r.get("name")),
                                          origin="added")
                                     for r in rows if r.get("origin") == "added"])
    result = []
    for feed in feeds:
        row = by_url.get(feed.url, {})
        fetch_url = _str(row.get("fetch_url"))
        result.append(FeedHealth(
            name=feed.name or _str(row.get("name")) or "", url=feed.url,
            fetch_url=fetch_url if fetch_url != feed.url else None, origin=feed.origin,
            status="paused" if row.get("paused_at") else _str(row.get("status")) or "new",
            last_success_at=_time(row.get("last_success_at")),
            last_error=_str(row.get("last_error")),
            error_count=_int(row.get("error_count")),
            next_poll_at=_time(row.get("next_poll_at")),
            entries_seen=_int(row.get("entries_seen")),
        ))
    return result


def export_opml(feeds: Sequence[FeedHealth], *, now: datetime | None = None) -> str:
    """OPML 2.0 of ``feeds`` (retired ones left out), at their current address."""
    opml = ElementTree.Element("opml", version="2.0")
    head = ElementTree.SubElement(opml, "head")
    ElementTree.SubElement(head, "title").text = "newsmon feeds"
    ElementTree.SubElement(head, "dateCreated").text = format_datetime(
        now or datetime.now(UTC), usegmt=True)
    body = ElementTree.SubElement(opml, "body")
    for feed in feeds:
        if feed.status == "retired":
            continue
        name = _NOT_XML.sub("\ufffd", feed.name or feed.url)
        ElementTree.SubElement(body, "outline", type="rss", text=name, title=name,
                               xmlUrl=_NOT_XML.sub("\ufffd", feed.fetch_url or feed.url))
    ElementTree.indent(opml)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + ElementTree.tostring(opml, encoding="unicode") + "\n")


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _time(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None
