"""Stable identities: every write is an upsert keyed by these, so any stage can
run twice with the same result.

- An entry's id is its GUID, else its canonical URL, else a hash of title and
  summary (Miniflux does the same: guid -> url -> hash of content). A GUID
  the feed gives to more than one article (a CMS bug) names the first; each
  other gets :func:`reused_guid_id` (see :mod:`pipeline.sources.guids`).
- An article's id is a hash of its canonical URL, so the same page reached
  through two feeds (or with different tracking parameters) is one article.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that identify a campaign or a click, never the page.
_TRACKING_PREFIXES = ("utm_", "mc_", "pk_", "mtm_", "hsa_", "oly_", "vero_", "_hs")
_TRACKING_NAMES = frozenset(
    {
        "fbclid", "gclid", "gclsrc", "dclid", "msclkid", "yclid", "twclid", "igshid",
        "mkt_tok", "ref", "ref_src", "referrer", "cmpid", "ncid", "ocid", "sr_share",
        "at_medium", "at_campaign", "wt.mc_id", "spm", "_ga", "__twitter_impression",
        "rss", "rssfeed",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Tracking in an article link (it came from the feed), but in a feed's own URL
# they choose the feed: feed.php?rss=world, commits.atom?ref=main.
_FEED_CHOOSERS = frozenset({"rss", "rssfeed", "ref"})


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in _TRACKING_NAMES or lowered.startswith(_TRACKING_PREFIXES)


def canonical_url(url: str) -> str:
    """Normalise a URL so that trivially different spellings compare equal.

    Lower-cases scheme and host, drops default ports, the fragment and
    tracking parameters, sorts the remaining query parameters, and removes a
    trailing slash from non-root paths.
    """
    return _canonical(url, tracking=_is_tracking, userinfo=False)


def _canonical(url: str, *, tracking: Callable[[str], bool], userinfo: bool) -> str:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if host.startswith("www."):
        host = host[4:]
    netloc = host
    if parts.port is not None and _DEFAULT_PORTS.get(scheme) != parts.port:
        netloc = f"{host}:{parts.port}"
    if userinfo and "@" in parts.netloc:
        netloc = f"{parts.netloc.rpartition('@')[0]}@{netloc}"
    path = parts.path or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    query = urlencode(
        sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
               if not tracking(k))
    )
    return urlunsplit((scheme, netloc, path, query, ""))


def feed_key(url: str) -> str:
    """What makes two feed URLs one feed: :func:`canonical_url` of the URL with
    its dot segments resolved ("HTTP://Host/./rss#top" and "http://host/rss"
    are one feed, polled once). For comparing only: a feed keeps its URL.

    Unlike an article link's, a feed URL keeps its credentials (whose private
    feed) and the parameters that mark an article link as reached from a feed
    (``?rss=world``, ``?ref=main``): in a feed's own URL they pick the feed."""
    parts = urlsplit(url.strip())
    return _canonical(urlunsplit(parts._replace(path=_without_dot_segments(parts.path))),
                      tracking=_is_feed_tracking, userinfo=True)


def _is_feed_tracking(name: str) -> bool:
    return _is_tracking(name) and name.lower() not in _FEED_CHOOSERS


def _without_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4: "/a/./b/../c" -> "/a/c"."""
    if "." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/".join(out)


def entry_id(*, guid: str | None, link: str | None, title: str, summary: str) -> str:
    """The id of a feed entry: its GUID, else its canonical link, else a hash."""
    if guid and guid.strip():
        return guid.strip()
    if link and link.strip():
        return canonical_url(link)
    return "sha256:" + _digest(title.strip(), summary.strip())


def link_key(url: str) -> str:
    """What makes two links of one GUID the same article: :func:`canonical_url`
    without the scheme. A site that moves to https changes every link in its
    feed but not the GUIDs; read as new articles, every item would be fetched
    again."""
    return canonical_url(url).split("://", 1)[-1]


def reused_guid_id(guid: str, link: str) -> str:
    """The id of an entry whose GUID the feed also gives to another article:
    the GUID, ``#`` and a hash of the link (:func:`link_key`), the same on
    every poll."""
    return f"{guid}#{_digest(link_key(link))}"


_REUSED_GUID_ID = re.compile(r"(?s)(.*)#[0-9a-f]{16}")


def guid_of(entry_id: str, link: str | None = None) -> str:
    """The GUID an id of :func:`reused_guid_id`'s form was made from; any other
    id as it is. A feed's own GUID may have that form too (``post#<16 hex>``):
    given the entry's ``link``, the id is read as made from a GUID only when
    its hash is that of the link (a natural GUID's hex matches it by a chance
    of 2^-64); without one, by its form alone."""
    own = _REUSED_GUID_ID.fullmatch(entry_id)
    if own is None or (link is not None and reused_guid_id(own.group(1), link) != entry_id):
        return entry_id
    return own.group(1)


def has_reused_form(entry_id: str) -> bool:
    """Whether ``entry_id`` looks like :func:`reused_guid_id`'s (its link tells for sure)."""
    return _REUSED_GUID_ID.fullmatch(entry_id) is not None


def article_id(canonical: str) -> str:
    """The id of an article: a hash of its canonical URL."""
    return _digest(canonical)


def story_id(first_article_id: str) -> str:
    """A story is named after the article that started it; stable across re-runs."""
    return "s-" + first_article_id


def content_hash(body: bytes) -> str:
    """Hash of a fetched body, for servers whose ETag lies or is missing."""
    return hashlib.sha256(body).hexdigest()
