"""Fetch stage: download each new entry's page with the same guarded client as feeds.

Only HTML goes on to extraction: the declared content type is checked and the
first bytes sniffed, because servers mislabel (a PDF as text/html, HTML as
application/octet-stream).

trafilatura decodes bytes itself, by guessing (UTF-8, else charset_normalizer)
and never reading a charset the page or the server declares; the guess is
wrong for short or mixed texts (a Polish ISO-8859-2 page comes out as
ISO-8859-1, an English page with Russian quotes in windows-1251 as
mojibake). :func:`pipeline.charset.utf8_html` therefore decodes with the declared charset
first, in the order browsers use (WHATWG HTML §13.2.3.2: byte order mark,
then the HTTP Content-Type charset, then ``<meta charset>``), so the text is
what the page's readers saw, and hands trafilatura UTF-8.
"""

from __future__ import annotations

import asyncio
import codecs
import re
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

from pipeline.http import Fetcher, FetchError
from pipeline.models import FeedEntry, FetchedPage, Rejection

_HTML_TYPES = ("text/html", "application/xhtml+xml")
# Types under which servers send whatever they have: the bytes decide.
_GENERIC_TYPES = ("", "application/octet-stream", "binary/octet-stream", "text/plain")
_NOT_HTML_MAGIC = (
    (b"%PDF-", "a PDF document"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"), (b"PK\x03\x04", "a ZIP archive"), (b"\x1f\x8b", "gzip data"),
)
_WHITESPACE = b" \t\r\n\x0c"
_FEED_ROOT = re.compile(rb"<(?:rss|feed|rdf:rdf)[\s>]")


def html_problem(content_type: str, body: bytes) -> str | None:
    """Why this response is not an HTML page, or None when it is one."""
    if not body.strip():
        return "empty page"
    head = body[:1024].lstrip(codecs.BOM_UTF8 + _WHITESPACE)
    for magic, what in _NOT_HTML_MAGIC:
        if head.startswith(magic):
            return f"not HTML: the body is {what}"
    if head[:1] in (b"{", b"["):  # no HTML document starts so
        return "not HTML: the body is JSON"
    lowered = head.lower()
    if lowered.startswith(b"<?xml") and _FEED_ROOT.search(lowered):
        return "not HTML: the body is an RSS or Atom feed"
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _HTML_TYPES:
        return None
    looks_html = lowered.startswith((b"<!doctype html", b"<html")) or any(
        tag in body[:8192].lower() for tag in (b"<body", b"<head")
    )
    if media in _GENERIC_TYPES and looks_html:
        return None
    return f"not HTML: content type {media or 'missing'}"


async def _fetch_one(
    entry: FeedEntry, fetcher: Fetcher
) -> tuple[FeedEntry, FetchedPage | Rejection]:
    return entry, await fetch_page(entry, fetcher)


async def fetch_page(entry: FeedEntry, fetcher: Fetcher) -> FetchedPage | Rejection:
    """One entry's page, or why not (a transient rejection may be tried again)."""
    try:
        response = await fetcher.get(entry.url, kind="page")
    except FetchError as exc:
        return Rejection(url=entry.url, feed_url=entry.feed_url, stage="fetch",
                         reason=exc.reason, transient=exc.transient)
    content_type = response.headers.get("content-type", "")
    problem = html_problem(content_type, response.body)
    if problem:
        return Rejection(url=entry.url, feed_url=entry.feed_url, stage="fetch", reason=problem)
    return FetchedPage(
        entry=entry, url=response.url, status=response.status, content_type=content_type,
        body=response.body, fetched_at=datetime.now(UTC),
    )


async def fetch(
    entries: Sequence[FeedEntry], *, fetcher: Fetcher,
    progress: Callable[[int, int], None] | None = None,
) -> AsyncIterator[tuple[FeedEntry, FetchedPage | Rejection]]:
    """Yield each entry with its page (or why not), as they complete."""
    tasks = [asyncio.ensure_future(_fetch_one(e, fetcher)) for e in entries]
    try:
        for done, future in enumerate(asyncio.as_completed(tasks), start=1):
            entry, result = await future
            if progress is not None:
                progress(done, len(entries))
            yield entry, result
    finally:
        for task in tasks:
            task.cancel()
