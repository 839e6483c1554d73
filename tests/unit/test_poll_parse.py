"""The feed boundary: feedparser output becomes FeedEntry, or a clear reason."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.poll import FeedParseError, parse_feed

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


def test_str_is_never_passed_to_feedparser(tmp_path: Path) -> None:
    # A body that is a local path must be parsed as (invalid) content, not opened.
    secret = tmp_path / "secret.xml"
    secret.write_bytes((DATA / "atom.xml").read_bytes())
    with pytest.raises(FeedParseError):
        parse_feed(str(secret).encode(), url=URL, name="W", max_entries=5)
