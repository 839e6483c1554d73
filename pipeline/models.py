"""The plain, frozen records that travel between stages.

Library types (feedparser dicts, trafilatura documents, httpx responses) are
converted into these at the boundary of the module that uses the library and
never travel further.

    FeedEntry  --fetch-->  FetchedPage  --extract-->  Extracted  --clean-->
    Article  --tag-->  TaggedArticle  --cluster (in load)-->  story_id

Every stage may instead produce a :class:`Rejection`: the item is recorded with
its reason and the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import NamedTuple


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedEntry:
    """One item of a feed, as the poll stage saw it."""

    # guid, else canonical URL, else hash of title + summary (see ids.entry_id);
    # guid#hash of the link for a GUID the feed gives to another article too
    # (see sources.guids)
    id: str
    feed_url: str
    feed_name: str
    url: str  # the link as given by the feed (absolute)
    title: str
    summary: str
    published_at: datetime | None  # UTC


class Seen(NamedTuple):
    """What the store holds of an entry delivered before, for settling a
    feed's ids (:mod:`pipeline.sources.guids`); None: not known."""

    url: str | None
    title: str | None = None
    published_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchedPage:
    """The raw bytes of an article page, as our own HTTP client fetched them."""

    entry: FeedEntry
    url: str  # final URL after redirects
    status: int
    content_type: str
    body: bytes
    fetched_at: datetime  # UTC


@dataclass(frozen=True, slots=True, kw_only=True)
class Extracted:
    """What the extractor found in a page, before our own cleaning."""

    title: str | None
    text: str
    author: str | None
    published: datetime | None  # UTC
    language: str | None  # as declared by the page (html lang / meta), if any
    site_name: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RemovedLine:
    """A line the cleaner cut, kept so a user can audit it."""

    position: int  # 0-based line index in the extracted text
    line: str
    rule: str  # the name of the rule that removed it


@dataclass(frozen=True, slots=True, kw_only=True)
class Cleaned:
    text: str
    removed: tuple[RemovedLine, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Article:
    id: str  # hash of canonical_url (see ids.article_id)
    entry_id: str
    feed_url: str
    url: str
    canonical_url: str
    source: str
    title: str
    text: str
    author: str | None
    published_at: datetime | None
    fetched_at: datetime
    language: str | None
    removed: tuple[RemovedLine, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TagEvidence:
    kind: str  # "topic" | "country" | "person"
    tag: str
    evidence: str  # the sentence that matched


@dataclass(frozen=True, slots=True, kw_only=True)
class TaggedArticle:
    article: Article
    topics: tuple[str, ...]
    countries: tuple[str, ...]  # ISO 3166-1 alpha-2
    people: tuple[str, ...]  # canonical names from the watchlist
    evidence: tuple[TagEvidence, ...] = field(default=())
    # What the cluster stage compares it by, computed beside the extraction
    # (pipeline.signal.cluster.staged_features) and staged with it.
    cluster_features: dict[str, object] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """An entry, page or feed that was not stored, and why."""

    url: str
    feed_url: str | None
    stage: str  # "poll" | "fetch" | "extract" | "clean" | ...
    reason: str
    transient: bool = False  # True: worth retrying on a later pass (timeout, 503)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedUpdate:
    """The new state of one feed after a poll; applied by the load step. The
    staged ``feeds`` record (its columns: ``staging.columns(FeedUpdate)``)."""

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
    item_hashes: str | None = None  # JSON {hash: [entry id, date]}: ParsedFeed.items


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryOutcome:
    """What became of one entry's page: the staged ``entries`` record, and its
    row of the ``entries`` table."""

    feed_url: str
    id: str
    url: str
    title: str
    published_at: datetime | None
    status: str  # stored | rejected | retry
    attempts: int
    article_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ArticleRecord(Article):
    """A tagged article as staged (``articles`` records) and read by the cluster
    stage and the load: the article's fields, its tags and their evidence."""

    topics: tuple[str, ...]
    countries: tuple[str, ...]
    people: tuple[str, ...]
    evidence: tuple[TagEvidence, ...] = ()

    @classmethod
    def of(cls, tagged: TaggedArticle) -> ArticleRecord:
        article = {f.name: getattr(tagged.article, f.name) for f in fields(Article)}
        return cls(**article, topics=tagged.topics, countries=tagged.countries,
                   people=tagged.people, evidence=tagged.evidence)
