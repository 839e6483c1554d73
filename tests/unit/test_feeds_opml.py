"""The feed registry: OPML in (safely) and out, and adding feeds to the database."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline import store
from pipeline.config import ConfigError, Settings, parse_settings
from pipeline.sources import feeds
from pipeline.sources.feeds import FeedError, FeedHealth, OpmlFeed, export_opml, parse_opml

OPML = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>My feeds</title></head>
  <body>
    <outline text="News">
      <outline type="rss" text="Wire &amp; Co" title="Wire &amp; Co" xmlUrl="https://wire.example.org/rss?a=1&amp;b=2"/>
      <outline type="rss" text="Only text" xmlUrl="https://text.example.org/feed"/>
    </outline>
    <outline type="rss" xmlUrl="https://noname.example.org/atom.xml"/>
    <outline text="A link, not a feed" htmlUrl="https://site.example.org/"/>
  </body>
</opml>
"""


def settings(tmp_path: Path, *urls: str) -> Settings:
    return parse_settings({"database": str(tmp_path / "news.duckdb"),
                           "feeds": [{"url": u} for u in urls]})


def test_parse_takes_every_feed_outline_at_any_depth() -> None:
    assert parse_opml(OPML) == [
        OpmlFeed(url="https://wire.example.org/rss?a=1&b=2", name="Wire & Co"),
        OpmlFeed(url="https://text.example.org/feed", name="Only text"),
        OpmlFeed(url="https://noname.example.org/atom.xml", name=None),
    ]


def test_billion_laughs_is_refused_quickly() -> None:
    lol = b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10) for i in range(1, 10))
    bomb = (b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY lol0 "lol">' + lol + b"]>"
            b'<opml version="2.0"><body><outline text="&lol9;" xmlUrl="https://x.org/&lol9;"/>'
            b"</body></opml>")
    started = time.monotonic()
    with pytest.raises(FeedError, match="declares XML entities; refused"):
        parse_opml(bomb)
    assert time.monotonic() - started < 0.5


def test_external_entities_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET", encoding="utf-8")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file://{secret}">]>'
           '<opml version="2.0"><body><outline text="&x;" xmlUrl="https://x.org/"/></body>'
           "</opml>").encode()
    with pytest.raises(FeedError, match="refused"):
        parse_opml(xxe)


def test_the_parser_itself_expands_nothing(tmp_path: Path) -> None:
    # Defence in depth: a DOCTYPE naming an external DTD has no entity
    # declaration to refuse; the parser must not load it (load_dtd=False,
    # no_network=True), or this not-a-DTD file would be read and fail.
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET", encoding="utf-8")
    doctype = (f'<?xml version="1.0"?><!DOCTYPE opml SYSTEM "file://{secret}">'
               '<opml version="2.0"><body><outline text="t" xmlUrl="https://x.org/"/></body>'
               "</opml>").encode()
    assert parse_opml(doctype) == [OpmlFeed(url="https://x.org/", name="t")]


@pytest.mark.parametrize(("data", "reason"), [
    (b"<opml><body><outline", "not a valid OPML file"),
    (b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>', "the root element is <rss>"),
    (b"", "not a valid OPML file"),
])
def test_not_opml_gets_a_clear_reason(data: bytes, reason: str) -> None:
    with pytest.raises(FeedError, match=reason):
        parse_opml(data)


def _health(url: str, name: str, *, status: str = "active",
            fetch_url: str | None = None) -> FeedHealth:
    return FeedHealth(name=name, url=url, fetch_url=fetch_url, origin="config", status=status,
                      last_success_at=None, last_error=None, error_count=0, next_poll_at=None,
                      entries_seen=0)


def test_export_is_opml_2_that_reads_back() -> None:
    exported = export_opml([
        _health("https://a.example.org/rss?x=1&y=2", "A & <B>"),
        _health("https://old.example.org/feed", "Moved", fetch_url="https://new.example.org/f"),
        _health("https://gone.example.org/feed", "Gone", status="retired"),
    ], now=datetime(2024, 5, 6, 12, tzinfo=UTC))
    assert exported.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    assert "<dateCreated>Mon, 06 May 2024 12:00:00 GMT</dateCreated>" in exported
    assert parse_opml(exported.encode()) == [
        OpmlFeed(url="https://a.example.org/rss?x=1&y=2", name="A & <B>"),
        OpmlFeed(url="https://new.example.org/f", name="Moved"),  # where it lives now
    ]


def test_one_feed_written_two_ways_is_one_feed_in_the_config_add_and_import(
        tmp_path: Path) -> None:
    # Case, a fragment, a default port, "./" and "www.": fetched once per pass, not four times.
    with pytest.raises(ConfigError, match=r"'HTTP://Config.example.org:80/./rss#top' is the same "
                       r"feed as 'http://config.example.org/rss'"):
        settings(tmp_path, "http://config.example.org/rss",
                 "HTTP://Config.example.org:80/./rss#top")
    s = settings(tmp_path, "http://config.example.org/rss")
    with store.connect(s.database) as con:
        with pytest.raises(FeedError, match=r"already in the config file \(as "
                           r"http://config.example.org/rss\)"):
            feeds.add(con, s, "http://www.config.example.org/rss#latest")
        feeds.add(con, s, "https://new.example.org/a/rss")
        with pytest.raises(FeedError, match=r"https://new\.example\.org/a/rss was already added"):
            feeds.add(con, s, "https://NEW.example.org/a/b/../rss")
        imported = feeds.import_opml(con, s, b"""<?xml version="1.0"?><opml version="2.0"><body>
            <outline type="rss" xmlUrl="https://other.example.org/feed"/>
            <outline type="rss" xmlUrl="https://other.example.org/./feed#x"/></body></opml>""")
        urls = [f.url for f in feeds.all_feeds(s, con)]
    assert [f.url for f in imported.added] == ["https://other.example.org/feed"]
    assert [why for _, why in imported.skipped] == [
        "https://other.example.org/./feed#x appears twice in the file"]
    assert urls == ["http://config.example.org/rss", "https://new.example.org/a/rss",
                    "https://other.example.org/feed"]


def test_export_replaces_what_xml_cannot_hold_and_keeps_the_rest() -> None:
    # XML 1.0 forbids C0 controls but tab, newline and CR, even as &#27;.
    name = "\x1b[2J\x00Evil\x07\ttab\nline \x85 \ufffe"
    exported = export_opml([_health("https://a.example.org/rss", name)])
    assert parse_opml(exported.encode()) == [OpmlFeed(
        url="https://a.example.org/rss", name="\ufffd[2J\ufffdEvil\ufffd\ttab\nline \x85 \ufffd")]


def test_add_writes_an_added_row_and_refuses_duplicates(tmp_path: Path) -> None:
    s = settings(tmp_path, "https://config.example.org/rss")
    with store.connect(s.database) as con:
        added = feeds.add(con, s, " https://new.example.org/rss ", name="New")
        with pytest.raises(FeedError, match="was already added"):
            feeds.add(con, s, "https://new.example.org/rss")
        with pytest.raises(FeedError, match="already in the config file"):
            feeds.add(con, s, "https://config.example.org/rss")
        with pytest.raises(FeedError, match="must be an http:// or https:// URL"):
            feeds.add(con, s, "file:///etc/passwd")
        with pytest.raises(FeedError, match="longer than 2048 characters"):
            feeds.add(con, s, "https://x.example.org/" + "a" * 2048)
        polled = feeds.all_feeds(s, con)
    assert added.url == "https://new.example.org/rss"
    assert [(f.url, f.name, f.origin) for f in polled] == [
        ("https://config.example.org/rss", None, "config"),
        ("https://new.example.org/rss", "New", "added"),
    ]


def test_adding_a_retired_feed_again_brings_it_back(tmp_path: Path) -> None:
    s = settings(tmp_path)
    with store.connect(s.database) as con:
        feeds.add(con, s, "https://back.example.org/rss")
        con.execute("UPDATE feeds SET status = 'retired', error_count = 2,"
                    " last_error = 'HTTP 410 Gone'")
        feeds.add(con, s, "https://back.example.org/rss")
        row = con.execute("SELECT status, error_count, last_error FROM feeds").fetchone()
    assert row == ("active", 0, None)


def test_import_adds_the_new_and_says_why_it_skipped_the_rest(tmp_path: Path) -> None:
    s = settings(tmp_path, "https://text.example.org/feed")
    data = OPML.replace(b"</body>", b'<outline text="bad" xmlUrl="ftp://x.org/f"/>'
                        b'<outline text="again" xmlUrl="https://noname.example.org/atom.xml"/>'
                        b"</body>")
    with store.connect(s.database) as con:
        result = feeds.import_opml(con, s, data)
        again = feeds.import_opml(con, s, data)
    assert [f.url for f in result.added] == ["https://wire.example.org/rss?a=1&b=2",
                                             "https://noname.example.org/atom.xml"]
    assert [(url, why.split(": ", 1)[-1]) for url, why in result.skipped] == [
        ("https://text.example.org/feed", "https://text.example.org/feed is already in the "
         "config file"),
        ("ftp://x.org/f", "must be an http:// or https:// URL, got 'ftp://x.org/f'"),
        ("https://noname.example.org/atom.xml", "https://noname.example.org/atom.xml appears "
         "twice in the file"),
    ]
    assert again.added == ()


def test_import_skips_private_addresses_unless_allowed(tmp_path: Path) -> None:
    s = parse_settings({"database": str(tmp_path / "news.duckdb"),
                        "fetch": {"allow_private": ["10.0.0.8:8080"]}})
    data = (b'<opml version="2.0"><body>'
            b'<outline text="metadata" xmlUrl="http://169.254.169.254/latest"/>'
            b'<outline text="intranet" xmlUrl="http://10.0.0.8:8080/rss"/>'
            b'<outline text="other port" xmlUrl="http://10.0.0.8:9090/rss"/>'
            b"</body></opml>")
    with store.connect(s.database) as con:
        result = feeds.import_opml(con, s, data)
    assert [f.url for f in result.added] == ["http://10.0.0.8:8080/rss"]
    assert [(url, why.split("; ")[0]) for url, why in result.skipped] == [
        ("http://169.254.169.254/latest",
         "http://169.254.169.254/latest: 169.254.169.254 is a link-local address"),
        ("http://10.0.0.8:9090/rss", "http://10.0.0.8:9090/rss: 10.0.0.8 is a private address"),
    ]


def test_paused_feeds_are_left_out_of_a_pass_but_listed(tmp_path: Path) -> None:
    s = settings(tmp_path, "https://config.example.org/rss")
    with store.connect(s.database) as con:
        feeds.add(con, s, "https://added.example.org/rss")
        feeds.pause(con, s, "https://config.example.org/rss",
                    now=datetime(2026, 1, 2, tzinfo=UTC))
        polled = [f.url for f in feeds.all_feeds(s, con)]
        health = feeds.health(s, store.feed_rows(con))
    assert polled == ["https://added.example.org/rss"]
    assert [(h.url, h.status) for h in health] == [
        ("https://config.example.org/rss", "paused"), ("https://added.example.org/rss", "active")]
    # A read-only look at a database from before paused_at: nothing is paused.
    old = tmp_path / "old.duckdb"
    with store.connect(old) as con:
        con.execute("ALTER TABLE feeds DROP COLUMN paused_at")
    with store.connect(old, read_only=True) as con:
        assert [f.url for f in feeds.all_feeds(s, con)] == ["https://config.example.org/rss"]


def test_a_feed_in_the_config_and_added_another_way_is_one_feed_the_configs(
        tmp_path: Path) -> None:
    # Added first, then written into the config file: case of the host, a default
    # port, a fragment, "./". Before: both URLs polled and listed.
    before = settings(tmp_path)
    with store.connect(before.database) as con:
        feeds.add(con, before, "https://WIRE.example.org:443/./rss#top", name="Added")
        feeds.add(con, before, "https://other.example.org/rss")
        s = settings(tmp_path, "https://wire.example.org/rss")
        polled = feeds.all_feeds(s, con)
        health = feeds.health(s, store.feed_rows(con))
    assert [(f.url, f.origin) for f in polled] == [
        ("https://wire.example.org/rss", "config"), ("https://other.example.org/rss", "added")]
    assert [(h.url, h.origin) for h in health] == [(f.url, f.origin) for f in polled]
