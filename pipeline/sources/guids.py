"""Entry ids for GUIDs a feed gives to more than one article.

Some CMSs give every item one ``<guid>``, or recycle a few, with a different
link each time. An entry keyed by its GUID alone would then be "seen" before
its page was ever fetched, and the article lost without a word. So a GUID
names one article of its feed, the first one stored under it; every other
article (another link: :func:`pipeline.ids.link_key`) gets
:func:`pipeline.ids.reused_guid_id`, the GUID and a hash of its link.

The parser (:mod:`pipeline.sources.parsing`) applies that rule within one
document, where it can see the other items; it cannot see the stored entries.
:func:`settle` applies it against them, once the poll has looked up the
:func:`candidates`: an item whose GUID the feed used for another article on an
earlier pass gets an id of its own, and an item stored under an id of its own
keeps it wherever it stands in the document. The id of an item is thus the
same on every poll, and a feed whose GUIDs name one article each keeps the ids
it always had.

A stored GUID that comes back with another link is not by itself a reused
GUID: a publisher that changes an article's slug (WordPress keeps ``?p=123``
as the GUID while the permalink follows the new slug) keeps its GUID on
purpose, and that is the same article, not a new one to fetch and store
twice. So it is read as another article when this document gives the GUID to
two items or more, or when the item's date says it is not the stored one
(:func:`_same_article`: a one-item feed recycling its GUID for the next
day's article); otherwise it is the stored entry moved, logged. Read wrong,
a moved article is fetched once more (a second copy, in the same story) and
a new one is lost, so where the dates allow it the doubt goes to fetching.
The items not parsed this time count too: an unchanged item cut out before
parsing by the GUID it is stored under (an id of its own,
:func:`pipeline.ids.reused_guid_id`, only when its hash is that of its stored
link: a feed's own GUID may look like one), and an item past
``fetch.max_entries_per_feed`` by its GUID as the parser found it
(:attr:`ParsedFeed.beyond_guids`): a GUID the feed still gives to the stored
article further down is not that article moved.

An item without a GUID is keyed by its link, and another item's GUID may be
that very address (a permalink GUID of another article): the item without
one then gets an id of its own, :func:`pipeline.ids.reused_guid_id` of its
link, where the parser sees both items and here where the other is an item
not parsed this time, stored under that id with its own link.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta

from pipeline import ids
from pipeline.models import FeedEntry, Seen
from pipeline.sources.parsing import ParsedFeed

__all__ = ["Seen", "Stored", "candidates", "settle"]


# (feed url, entry id) -> the entry as it was stored.
Stored = Mapping[tuple[str, str], Seen]

# A stored article moved to another link keeps its date (WordPress keeps the
# post's date through a slug's edit); a GUID recycled for another article
# comes with the new one's: the next day's briefing 24 hours later (or 23, as
# it is posted), the next headline hours later. Half a day tells a daily
# recycling from an item re-dated as it is edited (with its title kept).
SAME_ARTICLE_WITHIN = timedelta(hours=12)
SAME_DATE = timedelta(minutes=1)


def candidates(parsed: ParsedFeed | None) -> list[tuple[str, str]]:
    """The (feed url, entry id) pairs to look up for :func:`settle`: each
    entry's id, and for an entry keyed by a GUID, the GUID alone and the id
    of its own."""
    if parsed is None:
        return []
    pairs: dict[tuple[str, str], None] = {}
    unparsed = _unparsed_ids(parsed)
    for entry in parsed.entries:
        pairs[entry.feed_url, entry.id] = None
        if (guid := parsed.guids.get(entry.id)) is not None:
            pairs[entry.feed_url, guid] = None
            pairs[entry.feed_url, ids.reused_guid_id(guid, entry.url)] = None
        elif entry.id in unparsed:
            pairs[entry.feed_url, ids.reused_guid_id(entry.id, entry.url)] = None
    if parsed.guids:  # an item not parsed with an id of its own: its stored link says
        feed_url = parsed.entries[0].feed_url
        for _, entry_id in _skipped(parsed):
            if ids.has_reused_form(entry_id):
                pairs[feed_url, entry_id] = None
    return list(pairs)


def _skipped(parsed: ParsedFeed) -> list[tuple[str, str]]:
    """The items not parsed this time (digest, stored entry id)."""
    return [(digest, entry_id) for digest, entry_id, _ in parsed.items or ()
            if digest in parsed.skipped and entry_id is not None]


def _unparsed_ids(parsed: ParsedFeed) -> set[str]:
    """The stored ids of the document's items not parsed this time."""
    return {entry_id for _, entry_id in _skipped(parsed)}


def _given_twice(parsed: ParsedFeed, stored: Stored) -> set[str]:
    """The GUIDs this document gives to two items or more: the parsed entries
    by their GUIDs, the items not parsed this time by their stored ids (and
    links), the items past the limit by their GUIDs."""
    count: Counter[str] = Counter(parsed.guids.values())
    if not parsed.guids:
        return set()
    feed_url = parsed.entries[0].feed_url
    for _, entry_id in _skipped(parsed):
        count[ids.guid_of(entry_id, _link(stored, (feed_url, entry_id)))] += 1
    count.update(parsed.beyond_guids)
    return {guid for guid, n in count.items() if n > 1 and guid in parsed.guids.values()}


def settle(parsed: ParsedFeed, stored: Stored
           ) -> tuple[ParsedFeed, tuple[str, ...], tuple[str, ...]]:
    """``parsed`` with each entry's final id, and its items' too (for the next
    poll's skipping); the GUIDs found given to another article, and those of
    articles found moved to another link, for the log. ``stored``: what the
    store holds of :func:`candidates`."""
    twice = _given_twice(parsed, stored)
    unparsed = _unparsed_ids(parsed)
    final = {entry.id: _final_id(entry, parsed.guids.get(entry.id), stored, twice, unparsed)
             for entry in parsed.entries}
    reused = tuple(dict.fromkeys(
        guid for entry in parsed.entries
        if (guid := parsed.guids.get(entry.id)) is not None and final[entry.id] != guid))
    moved = tuple(dict.fromkeys(
        guid for entry in parsed.entries
        if (guid := parsed.guids.get(entry.id)) is not None and final[entry.id] == guid
        and _moved(entry, guid, stored)))
    if all(old == new for old, new in final.items()):
        return parsed, reused, moved
    entries = tuple(replace(e, id=final[e.id]) for e in parsed.entries)
    items = None if parsed.items is None else tuple(
        (digest, entry if entry is None or digest in parsed.skipped else final.get(entry, entry),
         when)
        for digest, entry, when in parsed.items)
    guids = {final[entry_id]: guid for entry_id, guid in parsed.guids.items()}
    return replace(parsed, entries=entries, items=items, guids=guids), reused, moved


def _link(stored: Stored, key: tuple[str, str]) -> str | None:
    seen = stored.get(key)
    return None if seen is None else seen.url


def _moved(entry: FeedEntry, guid: str, stored: Stored) -> bool:
    """Whether the GUID is stored with another link than the entry's."""
    link = _link(stored, (entry.feed_url, guid))
    # A row without a link (the column allows one) cannot say it moved.
    return link is not None and ids.link_key(link) != ids.link_key(entry.url)


def _final_id(entry: FeedEntry, guid: str | None, stored: Stored, twice: set[str],
              unparsed: set[str]) -> str:
    if guid is None:
        # Keyed by its link, which an item not parsed this time is stored
        # under as its GUID with a link of its own: another article (the
        # parser gives it an id of its own when it sees both items).
        if entry.id in unparsed and _moved(entry, entry.id, stored):
            return ids.reused_guid_id(entry.id, entry.url)
        return entry.id
    own = ids.reused_guid_id(guid, entry.url)
    if (entry.feed_url, own) in stored:
        # Stored as another article than the GUID's, on an earlier poll: it
        # is that one, alone in the document or not (not the GUID's moved).
        return own
    if (entry.feed_url, guid) in stored:
        # Another link: another article where this document gives the GUID
        # to several or the item is not the stored one, else the stored one
        # moved (a new slug): see above.
        if not _moved(entry, guid, stored):
            return guid
        same = guid not in twice and _same_article(entry, stored[entry.feed_url, guid])
        return guid if same else own
    # Nothing stored under either: the document's own order decided.
    return entry.id


def _same_article(entry: FeedEntry, seen: Seen) -> bool:
    """Whether an item under a stored GUID and another link may be the stored
    article moved, by its date: a post keeps its date through a slug's edit
    (WordPress), so the same date (to :data:`SAME_DATE`) says moved whatever
    the title; a date :data:`SAME_ARTICLE_WITHIN` or more away says another
    article (a GUID recycled for the next day's); between the two, a feed
    re-dating an item as it is edited keeps its title, and a GUID recycled
    within the day comes with a new one. An item or a stored entry without a
    date cannot be told from a slug edited (the title may be edited with
    it): moved, as the README says."""
    if seen.published_at is None or entry.published_at is None:
        return True
    apart = abs(seen.published_at - entry.published_at)
    if apart <= SAME_DATE:
        return True
    if apart >= SAME_ARTICLE_WITHIN:
        return False
    return not (seen.title and entry.title and _words(seen.title) != _words(entry.title))


def _words(title: str) -> str:
    return " ".join(title.casefold().split())
