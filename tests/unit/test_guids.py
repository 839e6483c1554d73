"""Entry ids settled against the stored entries, for GUIDs a feed reuses.

The whole path (poll, fetch, load, three passes, no page fetched twice) is in
tests/integration/test_faults.py and test_poll.py; here, the rule itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline import ids
from pipeline.models import Seen
from pipeline.sources.guids import Stored, candidates, settle
from pipeline.sources.parsing import ParsedFeed, parse_feed

URL = "https://wire.example.org/feed.xml"


def _link(name: str) -> str:
    return f"https://wire.example.org/{name}"


def _rss(*items: tuple[str, str]) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>W</title>'
            + "".join(f"<item><title>{name}</title><link>{_link(name)}</link>"
                      f'<guid isPermaLink="false">{guid}</guid></item>' for name, guid in items)
            + "</channel></rss>").encode()


def _parse(body: bytes, known: dict[str, tuple[str, int | None]] | None = None) -> ParsedFeed:
    return parse_feed(body, url=URL, name="W", max_entries=50, known_items=known)


def _ids(parsed: ParsedFeed) -> dict[str, str]:
    return {e.url.rsplit("/", 1)[1]: e.id for e in parsed.entries}


def _own(name: str, guid: str = "same") -> str:
    return ids.reused_guid_id(guid, _link(name))


def _stored(**rows: str | None) -> dict[tuple[str, str], Seen]:
    """Stored entries of the feed: id -> link (title and date not known)."""
    return {(URL, entry): Seen(link) for entry, link in rows.items()}


def test_a_guid_stored_for_another_article_gives_the_new_one_an_id_of_its_own() -> None:
    """The reviewer's case: ``same`` was stored for a; c comes first in the
    document now, where the parser alone gives it ``same``."""
    parsed = _parse(_rss(("c", "same"), ("a", "same")))
    assert _ids(parsed) == {"c": "same", "a": _own("a")}  # the document's own order
    assert set(candidates(parsed)) >= {(URL, "same"), (URL, _own("a")), (URL, _own("c"))}
    settled, reused, _ = settle(parsed, _stored(same=_link("a")))
    assert _ids(settled) == {"c": _own("c"), "a": "same"}
    assert reused == ("same",)
    assert settled.items is not None
    assert [entry for _, entry, _ in settled.items] == [_own("c"), "same"]
    assert dict(settled.guids) == {_own("c"): "same", "same": "same"}


def test_an_article_stored_under_an_id_of_its_own_keeps_it_wherever_it_stands() -> None:
    stored = _stored(same=_link("a"), **{_own("b"): _link("b")})
    parsed = _parse(_rss(("b", "same"), ("d", "same"), ("a", "same")))
    settled, reused, _ = settle(parsed, stored)
    assert _ids(settled) == {"b": _own("b"), "d": _own("d"), "a": "same"}
    assert reused == ("same",)


def test_items_not_parsed_keep_their_stored_ids() -> None:
    """An unchanged item is cut out before parsing and keeps the id it was
    stored with; only the items parsed now are settled. Here the parsed item
    c got ``same`` from the parser, the id the skipped item a is stored with."""
    before = _parse(_rss(("a", "same")))
    known = {digest: (entry, when) for digest, entry, when in before.items or () if entry}
    parsed = _parse(_rss(("c", "same"), ("a", "same")), known)
    assert _ids(parsed) == {"c": "same"} and parsed.skipped == frozenset(known)
    settled, _, _ = settle(parsed, _stored(same=_link("a")))
    assert _ids(settled) == {"c": _own("c")}
    assert settled.items is not None
    assert [entry for _, entry, _ in settled.items] == [_own("c"), "same"]


def test_unique_guids_are_never_changed() -> None:
    """A healthy feed keeps the ids it always had, stored or not, and when
    its site moves to https (every link changes, no GUID does)."""
    parsed = _parse(_rss(("a", "g-a"), ("b", "g-b")))
    before = _ids(parsed)
    assert before == {"a": "g-a", "b": "g-b"}
    http: Stored = _stored(**{"g-a": "http://www.wire.example.org/a/", "g-b": None})
    for stored in ({}, _stored(**{"g-a": _link("a"), "g-b": _link("b")}), http):
        settled, reused, _ = settle(parsed, stored)
        assert (_ids(settled), reused) == (before, ())


def test_entries_without_a_guid_are_left_alone() -> None:
    body = ('<rss version="2.0"><channel><title>W</title>'
            f"<item><title>x</title><link>{_link('x')}</link></item>"
            "</channel></rss>").encode()
    parsed = _parse(body)
    assert dict(parsed.guids) == {}
    assert candidates(parsed) == [(URL, _link("x"))]
    settled: Any = settle(parsed, {(URL, _link("x")): Seen(_link("y"))})
    assert settled == (parsed, (), ())


def test_a_guid_that_comes_back_alone_with_a_new_link_is_the_stored_article_moved() -> None:
    """A new slug: WordPress keeps ``?p=123`` as the GUID while the permalink
    follows the slug. The document gives the GUID to one item, so it is the
    stored article under a new link (seen: not fetched again), logged as moved."""
    for guid in ("same", "https://wire.example.org/?p=123"):
        parsed = _parse(_rss(("a-new-slug", guid), ("b", "g-b")))
        settled, reused, moved = settle(parsed, _stored(**{guid: _link("a-old-slug")}))
        assert _ids(settled)["a-new-slug"] == guid
        assert (reused, moved) == ((), (guid,))


def _dated(name: str, guid: str, title: str, when: datetime) -> bytes:
    """A one-item feed: the item's title and date given."""
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>W</title>'
            f"<item><title>{title}</title><link>{_link(name)}</link>"
            f'<guid isPermaLink="false">{guid}</guid>'
            f"<pubDate>{when.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate></item>"
            "</channel></rss>").encode()


DAY = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def test_a_guid_recycled_for_another_days_article_is_another_article() -> None:
    """A one-item feed gives its GUID to each day's briefing (or each hour's
    headline): under a new link, dated half a day away or more, or hours
    away with another title, it is a new article, fetched under an id of its own,
    not the stored one moved (which would lose it); the next poll finds it
    under that id."""
    stored = {(URL, "briefing"): Seen(_link("mon"), "Morning briefing", DAY)}
    for title, when in (("Morning briefing", DAY + timedelta(days=1)),
                        ("Morning briefing", DAY + timedelta(hours=23)),
                        ("Morning briefing", DAY - timedelta(days=3)),
                        ("Storm closes the port", DAY + timedelta(hours=3))):
        body = _dated("tue", "briefing", title, when)
        settled, reused, moved = settle(_parse(body), stored)
        assert _ids(settled) == {"tue": _own("tue", "briefing")}, (title, when)
        assert (reused, moved) == (("briefing",), ())
        again = {**stored, (URL, _own("tue", "briefing")): Seen(_link("tue"), title, when)}
        assert _ids(settle(_parse(body), again)[0]) == {"tue": _own("tue", "briefing")}


def test_a_guid_under_a_new_link_with_its_date_is_the_article_moved() -> None:
    """The same date (a slug edited with its title: WordPress keeps the
    post's date), or the same title (case and spacing aside) re-dated by
    hours as it is edited, or no date to tell: the stored article moved, not
    fetched again."""
    stored = {(URL, "?p=7"): Seen(_link("old-slug"), "Port  closes after storm", DAY)}
    for title, when in (("Port closes after Storm", DAY),
                        ("Storm shuts the port for a week", DAY + timedelta(seconds=30)),
                        ("Port closes after Storm", DAY + timedelta(hours=6)),
                        ("Storm shuts the port for a week", None)):
        body = _dated("new-slug", "?p=7", title, when or DAY)
        if when is None:
            body = body.replace(b"<pubDate>", b"<!--").replace(b"</pubDate>", b"-->")
        settled, reused, moved = settle(_parse(body), stored)
        assert _ids(settled) == {"new-slug": "?p=7"}, (title, when)
        assert (reused, moved) == ((), ("?p=7",))


def test_an_article_stored_under_an_id_of_its_own_is_not_read_as_moved_when_alone() -> None:
    """b was given an id of its own (``same`` is a's); the feed now lists b
    alone, edited: it is b, seen under its own id, not a moved to b's link
    (no "moved" line, and its item keeps b's id for the next poll's skipping)."""
    parsed = _parse(_rss(("b", "same")))
    settled, _, moved = settle(parsed, _stored(same=_link("a"), **{_own("b"): _link("b")}))
    assert _ids(settled) == {"b": _own("b")}
    assert moved == ()
    assert settled.items is not None
    assert [entry for _, entry, _ in settled.items] == [_own("b")]


def test_a_guid_the_document_also_gives_to_an_item_past_the_limit_is_reused_not_moved() -> None:
    """``same`` is stored for b, which the feed still lists, past
    max_entries_per_feed (not read this poll); a comes first with ``same``:
    another article (fetched under an id of its own), not b moved to a's link
    (which would lose a: its id would be seen already)."""
    def parse(body: bytes, known: dict[str, tuple[str, int | None]] | None = None
              ) -> ParsedFeed:
        return parse_feed(body, url=URL, name="W", max_entries=2, known_items=known)

    before = parse(_rss(("b", "same"), ("x", "g-x")))
    known = {digest: (entry, when) for digest, entry, when in before.items or () if entry}
    stored = _stored(same=_link("b"), **{"g-x": _link("x")})
    body = _rss(("a", "same"), ("x", "g-x"), ("b", "same"))
    for parsed in (parse(body), parse(body, known)):  # parsed whole, and x skipped
        assert parsed.beyond == 1
        settled, reused, moved = settle(parsed, stored)
        assert _ids(settled)["a"] == _own("a")
        assert (reused, moved) == (("same",), ())
    # Atom, and a GUID in CDATA with an entity-escaped twin: read as feedparser does.
    atom = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            "<title>W</title>"
            + "".join(f'<entry><title>{n}</title><link href="{_link(n)}"/><id>{g}</id></entry>'
                      for n, g in (("a", "tag:w,1:a&amp;b"), ("x", "g-x"),
                                   ("b", "<![CDATA[tag:w,1:a&b]]>")))
            + "</feed>").encode()
    settled, reused, moved = settle(parse(atom), _stored(**{"tag:w,1:a&b": _link("b")}))
    assert (reused, moved) == (("tag:w,1:a&b",), ())


def test_an_id_of_its_own_of_an_item_not_parsed_counts_for_its_guid() -> None:
    """b is stored under an id of its own (``same`` was a's, a is gone): an
    unchanged item, cut out before parsing; c comes with ``same`` and another
    link than a's: the document gives ``same`` to two items, so c is another
    article, not a moved."""
    before = _parse(_rss(("a", "same"), ("b", "same")))
    known = {digest: (entry, when) for digest, entry, when in before.items or () if entry}
    assert set(e for e, _ in known.values()) == {"same", _own("b")}
    parsed = _parse(_rss(("c", "same"), ("b", "same")), known)
    assert _ids(parsed) == {"c": "same"}
    assert (URL, _own("b")) in candidates(parsed)  # its link says its id is GUID#hash
    settled, reused, moved = settle(parsed, _stored(same=_link("a"), **{_own("b"): _link("b")}))
    assert _ids(settled) == {"c": _own("c")}
    assert (reused, moved) == (("same",), ())


def test_a_natural_guid_shaped_like_an_id_of_its_own_is_read_as_itself() -> None:
    """A feed's own GUID ``post#<16 hex>`` is not newsmon's GUID#hash of its
    link: it names an item of its own and does not count for the GUID
    ``post``. Here c comes with ``post``, stored for d (d is gone): given once
    in the document, so d moved to c's link (not fetched again)."""
    natural = "post#0123456789abcdef"
    assert ids.guid_of(natural) == "post"  # the shape alone cannot tell
    before = _parse(_rss(("a", natural)))
    known = {digest: (entry, when) for digest, entry, when in before.items or () if entry}
    parsed = _parse(_rss(("c", "post"), ("a", natural)), known)
    assert _ids(parsed) == {"c": "post"} and parsed.skipped == frozenset(known)
    settled, reused, moved = settle(parsed, _stored(post=_link("d"), **{natural: _link("a")}))
    assert _ids(settled) == {"c": "post"}
    assert (reused, moved) == ((), ("post",))


def _mixed(*items: tuple[str, str | None]) -> bytes:
    """Items with a GUID (a permalink, as RSS reads one by default) or none."""
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>W</title>'
            + "".join(f"<item><title>{name}</title><link>{_link(name)}</link>"
                      + (f"<guid>{guid}</guid>" if guid else "") + "</item>"
                      for name, guid in items)
            + "</channel></rss>").encode()


def test_an_item_whose_link_is_another_items_guid_is_another_article() -> None:
    """a's GUID is b's address; b has no GUID, so it is keyed by its link: the
    same id as a. Two articles all the same, in either order (before, the
    later one was refused as a duplicate entry and never fetched)."""
    own_b = ids.reused_guid_id(_link("b"), _link("b"))
    for order in ((("a", _link("b")), ("b", None)), (("b", None), ("a", _link("b")))):
        parsed = _parse(_mixed(*order))
        assert _ids(parsed) == {"a": _link("b"), "b": own_b}
        assert parsed.rejections == ()
        settled, reused, moved = settle(parsed, {})
        assert (_ids(settled), reused, moved) == (_ids(parsed), (), ())
    # The same article twice (a permalink GUID and a copy without one) is still one.
    parsed = _parse(_mixed(("b", _link("b")), ("b", None)))
    assert _ids(parsed) == {"b": _link("b")} and len(parsed.rejections) == 1


def test_an_item_whose_link_is_the_guid_of_an_unchanged_item_is_another_article() -> None:
    """a was stored on an earlier poll under its GUID, b's address; b is new
    and a unchanged (cut out before parsing, so the parser does not see its
    GUID): b is not a, it gets the id of its own it gets beside a."""
    before = _parse(_mixed(("a", _link("b"))))
    known = {digest: (entry, when) for digest, entry, when in before.items or () if entry}
    parsed = _parse(_mixed(("b", None), ("a", _link("b"))), known)
    assert _ids(parsed) == {"b": _link("b")} and parsed.skipped == frozenset(known)
    own_b = ids.reused_guid_id(_link("b"), _link("b"))
    assert (URL, own_b) in candidates(parsed)
    stored = _stored(**{_link("b"): _link("a")})
    settled, _, moved = settle(parsed, stored)
    assert _ids(settled) == {"b": own_b} and moved == ()
    assert settled.items is not None
    assert [entry for _, entry, _ in settled.items] == [own_b, _link("b")]
    # Stored so, b keeps that id on the next poll, edited or not.
    stored[URL, own_b] = _link("b")
    for body in (_mixed(("b", None), ("a", _link("b"))),):
        assert _ids(settle(_parse(body, known), stored)[0]) == {"b": own_b}
