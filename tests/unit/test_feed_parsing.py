"""The feed boundary: feedparser output becomes FeedEntry, or a clear reason."""

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import ids
from pipeline.sources.parsing import (
    FeedParseError,
    _item_spans,
    _items,
    _root_element,
    parse_feed,
)

DATA = Path(__file__).parent / "testdata" / "feeds"
URL = "https://wire.example.org/feed.xml"


def parse(name: str) -> object:
    return parse_feed((DATA / name).read_bytes(), url=URL, name="Wire", max_entries=50)


def test_rss_entries_get_ids_absolute_links_and_utc_dates() -> None:
    parsed = parse_feed((DATA / "rss2.xml").read_bytes(), url=URL, name="Wire", max_entries=50)
    assert parsed.title == "Example Wire"
    first, second = parsed.entries
    assert first.id == "wire-1"
    assert first.published_at == datetime(2019, 2, 27, 8, 0, tzinfo=UTC)
    assert second.url == "https://wire.example.org/news/b#frag"
    assert second.id == "https://wire.example.org/news/b"  # no guid: canonical link
    reasons = sorted(r.reason for r in parsed.rejections)
    assert reasons[0] == "entry has no link to an article"
    assert reasons[1].startswith("entry link is not http(s)")


def test_atom_feed() -> None:
    parsed = parse_feed((DATA / "atom.xml").read_bytes(), url=URL, name="A", max_entries=50)
    (entry,) = parsed.entries
    assert entry.url == "https://atom.example.org/2019/03/03/entry"
    assert entry.id.startswith("urn:uuid:1225c695")


def test_entry_cap() -> None:
    parsed = parse_feed((DATA / "rss2.xml").read_bytes(), url=URL, name="W", max_entries=1)
    assert [e.id for e in parsed.entries] == ["wire-1"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty response body"),
        (b"   \n", "empty response body"),
        ((DATA / "page.html").read_bytes(), "got an HTML page where a feed was expected"),
        (b"just some text", "not an RSS or Atom feed"),
    ],
)
def test_non_feeds_get_a_clear_reason(body: bytes, reason: str) -> None:
    with pytest.raises(FeedParseError, match=reason):
        parse_feed(body, url=URL, name="W", max_entries=5)


def test_a_page_given_as_a_feed_names_the_feeds_it_links_to() -> None:
    """A site's home page in `feeds:` (the usual first mistake) said only `got
    an HTML page where a feed was expected`, though the page's head names its
    feed (RSS autodiscovery): the error gives that URL, resolved."""
    page = (b'<!DOCTYPE html><html><head><title>Wire</title>'
            b'<link rel="stylesheet" href="/s.css">'
            b'<link rel="alternate" type="application/rss+xml" href="/world/rss.xml">'
            b'<LINK REL="Alternate feed" TYPE="application/atom+xml; charset=utf-8"'
            b' href="https://wire.example.org/atom?x=1&amp;y=2">'
            b'<link rel="alternate" type="text/html" hreflang="fr" href="/fr/">'
            b'<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">'
            b"</head><body><p>News</p></body></html>")
    with pytest.raises(FeedParseError) as err:
        parse_feed(page, url="https://wire.example.org/", name="W", max_entries=5)
    assert str(err.value) == (
        "got an HTML page where a feed was expected; the page names its feeds:"
        " https://wire.example.org/world/rss.xml, https://wire.example.org/atom?x=1&y=2"
        " (give newsmon that URL instead)")
    # A page that names none: the sentence as before.
    with pytest.raises(FeedParseError) as err:
        parse_feed((DATA / "page.html").read_bytes(), url=URL, name="W", max_entries=5)
    assert str(err.value) == "got an HTML page where a feed was expected"


def test_str_is_never_passed_to_feedparser(tmp_path: Path) -> None:
    # A body that is a local path must be parsed as (invalid) content, not opened.
    secret = tmp_path / "secret.xml"
    secret.write_bytes((DATA / "atom.xml").read_bytes())
    with pytest.raises(FeedParseError):
        parse_feed(str(secret).encode(), url=URL, name="W", max_entries=5)


# -- parsing only the changed items -----------------------------------------------------------


def _rss(items: list[str], *, build: str = "Mon, 06 May 2024 12:00:00 GMT") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Wire</title>'
        f"<lastBuildDate>{build}</lastBuildDate>" + "".join(items) + "</channel></rss>"
    ).encode()


def _item(n: int, *, title: str | None = None, description: str = "Text.",
          guid: str | None = None, link: str | None = None) -> str:
    return (f"<item><title>{title or f'Story {n}'}</title>"
            f"<link>{link or f'https://wire.example.org/{n}'}</link>"
            f"<guid isPermaLink=\"false\">{guid or f'story-{n}'}</guid>"
            f"<pubDate>Mon, 06 May 2024 {n % 24:02d}:00:00 GMT</pubDate>"
            f"<description>{description}</description></item>")


def _delivered(parsed: Any) -> dict[str, tuple[str, int | None]]:
    """What the poll stage passes for items whose entries are stored."""
    return {digest: (entry, when) for digest, entry, when in parsed.items if entry}


def _parse(body: bytes, known: dict[str, tuple[str, int | None]] | None = None,
           max_entries: int = 50) -> Any:
    return parse_feed(body, url=URL, name="Wire", max_entries=max_entries, known_items=known)


def test_unchanged_items_are_not_parsed_again_and_the_result_is_the_same() -> None:
    before = _parse(_rss([_item(n) for n in range(5, 0, -1)]))
    assert before.items is not None and len(before.items) == 5
    body = _rss([_item(n) for n in range(7, 0, -1)], build="Mon, 06 May 2024 13:00:00 GMT")
    full, partial = _parse(body), _parse(body, _delivered(before))
    assert [e.id for e in partial.entries] == ["story-7", "story-6"]
    assert partial.entries == full.entries[:2]
    assert partial.items == full.items  # what is stored for the next poll
    assert sorted(partial.published) == sorted(full.published)  # the schedule's hints
    assert partial.title == full.title


def test_skipped_items_are_taken_from_what_was_stored() -> None:
    """The proof that an item was not parsed: its stored entry id comes back
    as stored, where parsing would have given its real one."""
    body = _rss([_item(2), _item(1)])
    stored = _delivered(_parse(body))
    digest = next(d for d, (entry, _) in stored.items() if entry == "story-1")
    stored[digest] = ("stored-id", 0)
    again = _parse(body, stored)
    assert again.entries == ()
    assert again.items is not None and (digest, "stored-id", 0) in again.items


def test_a_changed_item_is_parsed_again() -> None:
    before = _parse(_rss([_item(2), _item(1)]))
    changed = _parse(_rss([_item(2), _item(1, title="Story 1, updated")]), _delivered(before))
    assert [(e.id, e.title) for e in changed.entries] == [("story-1", "Story 1, updated")]


def test_a_cut_in_doubt_falls_back_to_the_whole_document() -> None:
    """A closing tag inside CDATA makes the pattern end an item early: cutting
    that item out leaves the rest of it behind, feedparser finds an error in
    what is left, and the whole document is parsed instead."""
    tricky = _item(3, description="<![CDATA[a list: <item>x</item> and more]]>")
    before = _parse(_rss([tricky, _item(1)]))
    assert before.items is not None  # the pattern's count and feedparser's agreed
    body = _rss([_item(4), tricky, _item(1)])
    parsed, full = _parse(body, _delivered(before)), _parse(body)
    assert [e.id for e in parsed.entries] == ["story-4", "story-3", "story-1"]
    assert parsed.entries == full.entries


def test_items_beyond_the_cap_are_neither_parsed_nor_stored() -> None:
    body = _rss([_item(n) for n in range(6, 0, -1)])
    before = _parse(body, max_entries=3)
    assert before.items is not None and [i[1] for i in before.items] == [
        "story-6", "story-5", "story-4"]
    after = _parse(_rss([_item(n) for n in range(7, 0, -1)]), _delivered(before),
                   max_entries=3)
    assert [e.id for e in after.entries] == ["story-7"]
    assert after.items is not None and [i[1] for i in after.items] == [
        "story-7", "story-6", "story-5"]


def test_rejected_items_are_stored_without_an_entry_and_parsed_each_time() -> None:
    no_link = "<item><title>No link</title><guid isPermaLink=\"false\">x</guid></item>"
    before = _parse(_rss([no_link, _item(1)]))
    assert before.items is not None and before.items[0][1] is None
    again = _parse(_rss([no_link, _item(1)]), _delivered(before))
    assert [r.reason for r in again.rejections] == ["entry has no link to an article"]


def test_items_past_max_entries_are_counted_not_read() -> None:
    # A 30-item feed read 10 at a time: the 20 left are said, on both paths.
    body = _rss([_item(n) for n in range(30, 0, -1)])
    first = _parse(body, max_entries=10)
    assert len(first.entries) == 10 and first.beyond == 20
    again = _parse(_rss([_item(31), *(_item(n) for n in range(30, 0, -1))]),
                   _delivered(first), max_entries=10)
    assert [e.id for e in again.entries] == ["story-31"] and again.beyond == 21
    assert _parse(_rss([_item(n) for n in range(3, 0, -1)]), max_entries=10).beyond == 0


def test_the_same_item_under_another_address_is_parsed_again() -> None:
    """Relative links resolve against the feed's address: it keys the hash."""
    body = _rss([_item(1)])
    before = parse_feed(body, url=URL, name="W", max_entries=5)
    moved = parse_feed(body, url=URL, base="https://moved.example.org/feed", name="W",
                       max_entries=5, known_items=_delivered(before))
    assert [e.id for e in moved.entries] == ["story-1"]


_HEAD = (b'<?xml version="1.0" encoding="utf-8"?>\n'
         b'<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>')


def _hashes(head: bytes) -> list[str]:
    body = head + _item(1).encode() + b"</channel></rss>"
    return [digest for _, _, digest in _items(body, URL, "application/rss+xml")]


_BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(("before", "after"), [
    (_HEAD, _BOM + _HEAD),
    (_HEAD, _HEAD.replace(b"utf-8", b"iso-8859-1")),
    (_BOM + _HEAD, _BOM + _HEAD.replace(b"utf-8", b"iso-8859-1")),  # behind a byte order mark
    (_HEAD, _HEAD.replace(b"<rss", b'<!DOCTYPE rss SYSTEM "http://my.netscape.com/rss.dtd">'
                          b"\n<rss")),
    (_HEAD, _HEAD.replace(b"purl.org/dc/elements/1.1/", b"example.org/other")),  # a namespace
    (_HEAD, _HEAD.replace(b"<channel>", b'<channel xml:base="https://elsewhere.example.org/">')),
    (_HEAD.replace(b"<channel>", b'<channel note="a>b" xml:base="https://one.example.org/">'),
     _HEAD.replace(b"<channel>", b'<channel note="a>b" xml:base="https://two.example.org/">')),
])
def test_what_decides_how_an_item_parses_keys_its_hash(before: bytes, after: bytes) -> None:
    assert _hashes(before) != _hashes(after)


def test_what_changes_with_every_new_item_does_not_key_the_hash() -> None:
    rdf_list = (b'<items><rdf:Seq><rdf:li rdf:resource="https://wire.example.org/{n}"/>'
                b"</rdf:Seq></items>")
    before = _HEAD + b"<lastBuildDate>Mon, 06 May 2024</lastBuildDate>" + rdf_list
    after = (_HEAD + b"<lastBuildDate>Tue, 07 May 2024</lastBuildDate>"
             + rdf_list.replace(b"{n}", b"2"))
    assert _hashes(before) == _hashes(after) != []


@pytest.mark.parametrize("doctype", [
    b'<!DOCTYPE rss [<!ENTITY who "Wire">]>',
    b'<!DOCTYPE rss [<!-- <item></item> --><!ENTITY who "Wire">]>',  # an item in a comment
])
def test_a_document_declaring_entities_is_always_parsed_whole(doctype: bytes) -> None:
    assert _hashes(_HEAD.replace(b"<rss", doctype + b"\n<rss")) == []


def test_a_feed_whose_charset_is_overridden_stores_no_items() -> None:
    """feedparser falls back to another charset when the declared one fails,
    and which one depends on the whole document: nothing is cut from it."""
    body = _rss([_item(2, description="caf\xe9"), _item(1)]).replace(
        "café".encode(), b"caf\xe9")  # Latin-1 bytes in a feed declared UTF-8
    parsed = _parse(body)
    assert [e.id for e in parsed.entries] == ["story-2", "story-1"]
    assert parsed.items is None


@given(st.lists(st.sampled_from([
    b"<item>", b"</item>", b"<entry x='1'>", b"</entry >", b"<ITEM>", b"</Item>", b"<a:item>",
    b"</a:item>", b"</a:entry>", b"<item/>", b"<items>", b"text",
]), max_size=30))
def test_item_spans_are_what_the_pattern_finds(parts: list[bytes]) -> None:
    body = b"".join(parts)
    pattern = re.compile(rb"<((?:[\w.-]+:)?(?:item|entry))[\s>].*?</\1\s*>",
                         re.DOTALL | re.IGNORECASE)
    assert _item_spans(body) == [m.span() for m in pattern.finditer(body)]


# -- CDF, and what is not a feed --------------------------------------------------------------


CDF = (b'<?xml version="1.0"?>\n<!-- a channel -->\n<CHANNEL HREF="https://cdf.example.org/">'
       b"<TITLE>CDF Wire</TITLE>"
       b'<ITEM HREF="https://cdf.example.org/1" LASTMOD="2024-05-06T10:00"><TITLE>One</TITLE>'
       b"<ABSTRACT>First.</ABSTRACT></ITEM>"
       b"<ITEM><TITLE>No address</TITLE></ITEM></CHANNEL>")


def test_cdf_is_read_like_any_feed() -> None:
    """feedparser reads CDF but reports no version for it; newsmon reads it
    anyway, and its items follow the same rules as RSS items."""
    parsed = parse_feed(CDF, url=URL, name="W", max_entries=5)
    assert parsed.title == "CDF Wire"
    assert [(e.url, e.title, e.summary) for e in parsed.entries] == [
        ("https://cdf.example.org/1", "One", "First.")]
    assert [r.reason for r in parsed.rejections] == ["entry has no link to an article"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'<?xml version="1.0"?><opml version="2.0"><body/></opml>',
         r"not an RSS or Atom feed: the root element is <opml> \(feeds are <rss>, <feed>, "
         r"<rdf:RDF>, or CDF's <channel>\)\Z"),
        # feedparser finds an entry here, but nothing says this is a feed.
        (b"<catalog><item><link>https://wire.example.org/1</link></item></catalog>",
         r"not an RSS or Atom feed: the root element is <catalog> "),
        (b'\xef\xbb\xbf  {"version": "https://jsonfeed.org/version/1.1", "items": []}',
         r"not an RSS or Atom feed: the body is JSON \(JSON Feed is not read\)\Z"),
        (b"<?xml version='1.0'?><!-- only a comment -->",
         r"not an RSS or Atom feed: <unknown>:1:\d+: no element found\Z"),
    ],
    ids=["opml", "unknown-root-with-items", "json-feed", "no-element"],
)
def test_a_document_that_is_no_feed_says_exactly_why(body: bytes, reason: str) -> None:
    with pytest.raises(FeedParseError) as raised:
        parse_feed(body, url=URL, name="W", max_entries=5)
    assert re.match(reason, str(raised.value)), str(raised.value)


@pytest.mark.parametrize(
    ("body", "root"),
    [
        (b"<channel/>", "channel"),
        (b"\xef\xbb\xbf\n <?xml version='1.0'?>\n<!-- <rss> -->\n<CHANNEL>", "channel"),
        (b"<!DOCTYPE rss [<!ENTITY a 'x>y'>]><rss version='2.0'>", "rss"),
        (b"<!DOCTYPE rss PUBLIC '-//Netscape//DTD RSS 0.91//EN' 'x.dtd'><rss>", "rss"),
        (b"<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>", "rdf"),
        ('<?xml version="1.0" encoding="utf-16"?><feed>'.encode("utf-16"), "feed"),
        (b"<!-- never closed <channel>", None),
        (b"<!DOCTYPE x [ never closed", None),
        (b"just text", None),
        (b"", None),
    ],
)
def test_root_element(body: bytes, root: str | None) -> None:
    assert _root_element(body) == root


_PROLOG_PARTS = [b" ", b"\n", b"<?xml version='1.0'?>", b"<?pi x?>", b"<!-- c -->",
                 b"<!-- <rss> -->", b"<!DOCTYPE rss>", b"<!DOCTYPE x [<!ENTITY a 'b>c'>]>"]


@given(st.lists(st.sampled_from(_PROLOG_PARTS), max_size=8),
       st.sampled_from(["rss", "feed", "CHANNEL", "rdf:RDF", "opml", "x-y.z"]))
def test_the_root_is_found_after_any_prolog(prolog: list[bytes], root: str) -> None:
    body = b"".join(prolog) + f"<{root} a='1'><item/></{root}>".encode()
    assert _root_element(body) == root.rsplit(":", 1)[-1].lower()


@given(st.binary(max_size=200))
def test_the_root_scan_never_fails_on_any_bytes(body: bytes) -> None:
    root = _root_element(body)
    assert root is None or (root and root == root.lower())


def test_the_root_scan_is_linear_on_hostile_prologs() -> None:
    # Many comments, then one never closed: a pattern over the prolog would
    # backtrack through every "-->" it passed.
    hostile = b"<!-- -- -->" * 200_000 + b"<!--" + b"-" * 2_000_000
    started = time.perf_counter()
    assert _root_element(hostile) is None
    assert _root_element(b"<?x ?>" * 300_000 + b"<channel>") == "channel"
    assert time.perf_counter() - started < 2


# -- duplicate entry ids ------------------------------------------------------------------------


def test_a_repeated_id_keeps_the_first_entry_and_records_the_copy() -> None:
    body = _rss([_item(3), _item(2), _item(2, title="Story 2 again"), _item(1),
                 _item(3, title="Story 3 again")])
    parsed = _parse(body)
    assert [(e.id, e.title) for e in parsed.entries] == [
        ("story-3", "Story 3"), ("story-2", "Story 2"), ("story-1", "Story 1")]
    assert [(r.url, r.stage, r.reason) for r in parsed.rejections] == [
        ("https://wire.example.org/2", "poll", "duplicate entry id: an earlier entry of the "
         "feed has the id 'story-2' (the first one is kept)"),
        ("https://wire.example.org/3", "poll", "duplicate entry id: an earlier entry of the "
         "feed has the id 'story-3' (the first one is kept)"),
    ]
    # A copy's item stands for the entry kept: once that is stored, the
    # copy is cut out of the next parse instead of being rejected again.
    assert parsed.items is not None
    assert [entry for _, entry, _ in parsed.items] == [
        "story-3", "story-2", "story-2", "story-1", "story-3"]
    again = _parse(body, _delivered(parsed))
    assert (again.entries, again.rejections) == ((), ())


def test_one_guid_for_different_links_gives_each_article_an_entry() -> None:
    """A CMS that gives every item one GUID: the first article of the document
    keeps it as its id, each other gets the GUID and a hash of its link."""
    body = _rss([_item(3, guid="same"), _item(2, guid="same"), _item(1, guid="same")])
    parsed = _parse(body)
    assert parsed.rejections == ()
    assert [(e.id, e.url) for e in parsed.entries] == [
        ("same", "https://wire.example.org/3"),
        (ids.reused_guid_id("same", "https://wire.example.org/2"), "https://wire.example.org/2"),
        (ids.reused_guid_id("same", "https://wire.example.org/1"), "https://wire.example.org/1"),
    ]
    assert dict(parsed.guids) == dict.fromkeys((e.id for e in parsed.entries), "same")
    assert parsed.items is not None
    assert [entry for _, entry, _ in parsed.items] == [e.id for e in parsed.entries]


def test_one_guid_for_one_article_listed_twice_is_one_entry() -> None:
    """The same article again under its GUID (its link with a tracking
    parameter, a fragment, over http) is a copy, not another article."""
    copies = ["https://wire.example.org/2?utm_source=rss", "https://wire.example.org/2#more",
              "http://www.wire.example.org/2/"]
    body = _rss([_item(2, guid="same"), *(_item(2, guid="same", link=c) for c in copies)])
    parsed = _parse(body)
    assert [(e.id, e.url) for e in parsed.entries] == [("same", "https://wire.example.org/2")]
    assert [(r.url, r.reason) for r in parsed.rejections] == [
        (c, "duplicate entry id: an earlier entry of the feed has the id 'same' "
            "(the first one is kept)") for c in copies]


def test_unique_guids_keep_the_ids_they_always_had() -> None:
    """Every feed whose GUIDs name one article each: ids as before, or every
    stored entry would be fetched again after an upgrade."""
    parsed = _parse(_rss([_item(n) for n in range(5, 0, -1)]))
    assert [e.id for e in parsed.entries] == [f"story-{n}" for n in range(5, 0, -1)]
    assert parsed.rejections == ()


def test_linkless_entries_without_a_guid_or_title_are_told_apart() -> None:
    body = (b'<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
            b"<entry><summary>one</summary></entry><entry><summary>two</summary></entry></feed>")
    parsed = parse_feed(body, url=URL, name="A", max_entries=5)
    assert [r.url for r in parsed.rejections] == [f"{URL}#entry 1", f"{URL}#entry 2"]
