"""The web page served by a real uvicorn on 127.0.0.1 over a database built by the
real load; the writer that holds the file is a real second process."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import browse_db
from support.hostile import add_hostile_story
from support.lockholder import write_lock
from support.webserver import ipv6_loopback, serving

from pipeline import store
from pipeline.config import Settings
from pipeline.web import (
    MAX_QUERY_LENGTH,
    Reader,
    View,
    create_app,
    host_allowed,
    loopback_hosts,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return browse_db.build(tmp_path / "db")


@pytest.fixture
def reader(settings: Settings, tmp_path: Path) -> Iterator[Reader]:
    reader = Reader(settings.database, tmp_path / "copies", min_refresh_seconds=0)
    yield reader
    reader.close()


@pytest.fixture
def client(settings: Settings, reader: Reader) -> Iterator[httpx.Client]:
    with serving(create_app(settings, reader)) as base, \
            httpx.Client(base_url=base, timeout=10) as client:
        yield client


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_page_answers(client: httpx.Client) -> None:
    stories = client.get("/")
    assert stories.status_code == 200
    assert browse_db.SYRIA_TITLE in stories.text
    assert "Earthquake shakes northern Japan" in stories.text
    assert "3 stories" in stories.text and "<svg" in stories.text
    story_id = stories.text.split('href="/story/', 1)[1].split('"', 1)[0]
    story = client.get(f"/story/{story_id}")
    assert story.status_code == 200 and "Timeline" in story.text
    assert client.get("/feeds").status_code == 200
    alerts = client.get("/alerts")
    assert alerts.status_code == 200 and "topic:syria" in alerts.text and "1 pending" in alerts.text
    chart = client.get("/chart", params={"country": "SY", "by": "hour"})
    assert chart.status_code == 200 and chart.text.count('class="bar"') == 6
    css = client.get("/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def numbers(html: str, table_id: str) -> list[tuple[str, int]]:
    """The rows of the chart's table of numbers (bucket, reports)."""
    table = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><th scope=\"row\">([^<]+)</th><td>([\d,]+)</td></tr>", table)
    return [(when, int(n.replace(",", ""))) for when, n in rows]


def test_the_charts_counts_are_text_not_only_a_tooltip(client: httpx.Client) -> None:
    """A bar's count in a title attribute reaches a mouse only: each chart has
    a table of its numbers (a <details> a keyboard opens, a screen reader
    reads), one row per bar, and the bars with room show their count."""
    chart = client.get("/chart", params={"country": "SY", "by": "hour"})
    assert chart.status_code == 200
    rows = numbers(chart.text, "chart-numbers")
    assert len(rows) == chart.text.count('class="bar"') == 6
    total = int(re.search(r'id="count">([\d,]+) report', chart.text).group(1))  # type: ignore[union-attr]
    assert sum(n for _, n in rows) == total > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:00", rows[0][0])
    assert '<summary>Reports per hour, as a table (6 hours)</summary>' in chart.text
    assert chart.text.count('class="bar-count"') == sum(1 for _, n in rows if n)
    stories = client.get("/")
    assert numbers(stories.text, "stories-chart-numbers")
    assert "Reports per day, as a table" in stories.text


def test_filters_and_the_query_language_narrow_the_list(client: httpx.Client) -> None:
    assert client.get("/").text.count('class="story"') == 3
    syria = client.get("/", params={"topic": "syria"}).text
    assert syria.count('class="story"') == 1 and browse_db.SYRIA_TITLE in syria
    quake = client.get("/", params={"q": "earthquake OR tsunami"}).text
    assert quake.count('class="story"') == 1 and "Japan" in quake
    spanish = client.get("/", params={"lang": "es", "from": "2019-02-27", "to": "2019-02-27"})
    assert spanish.text.count('class="story"') == 1 and "Spain" in spanish.text
    bad = client.get("/", params={"q": "putin AND (<b>"})
    assert bad.status_code == 400 and "Search: " in bad.text
    assert "<b>" not in bad.text.split('id="error"', 1)[1]


def error_of(page: httpx.Response) -> str:
    return page.text.split('id="error">', 1)[1].split("</pre>", 1)[0]


# The form's own names: the user typed into a field, not a command line.
@pytest.mark.parametrize(("path", "params", "message"), [
    ("/", {"since": "999999999d"}, "Time &#39;999999999d&#39;: too far back"),
    ("/chart", {"since": "999999999d"}, "Time &#39;999999999d&#39;: too far back"),
    ("/", {"since": "100000000000000h"}, "Time &#39;100000000000000h&#39;: too far back"),
    ("/", {"from": "2019-02-30"}, "From &#39;2019-02-30&#39;: not a duration"),
    ("/chart", {"to": "9999-12-31"}, "To &#39;9999-12-31&#39;: too far ahead"),
    ("/", {"to": "soon"}, "To &#39;soon&#39;: not a duration"),
    ("/chart", {"q": "putin AND"}, "Search: unexpected end of query"),
])
def test_a_bad_filter_names_its_field_in_the_form(client: httpx.Client, path: str,
                                                  params: dict[str, str],
                                                  message: str) -> None:
    page = client.get(path, params=params)
    assert page.status_code == 400 and error_of(page).startswith(message), error_of(page)
    assert "--" not in error_of(page)


def test_a_query_longer_than_the_search_box_takes_is_refused_not_cut(
        client: httpx.Client) -> None:
    # Before: cut at 500 characters without a word, so the query run was not the
    # query typed ("earthquak" here, which matches nothing).
    def query(length: int) -> str:
        return "z" * (length - len(" OR earthquake")) + " OR earthquake"

    found = client.get("/", params={"q": query(MAX_QUERY_LENGTH)})
    assert found.status_code == 200 and found.text.count('class="story"') == 1
    for path in ("/", "/chart"):
        page = client.get(path, params={"q": query(MAX_QUERY_LENGTH + 1)})
        assert page.status_code == 400, page.text
        assert error_of(page).startswith(
            f"Search: {MAX_QUERY_LENGTH + 1:,} characters; the search box takes at most"
            f" {MAX_QUERY_LENGTH:,}"), error_of(page)


def test_the_search_box_takes_every_built_in_topic_query(client: httpx.Client) -> None:
    from pipeline.signal.tag import default_topics

    longest = max(default_topics().values(), key=len)
    assert len(longest) <= MAX_QUERY_LENGTH
    assert client.get("/", params={"q": longest}).status_code == 200


def test_a_page_number_past_any_archive_is_an_empty_page(client: httpx.Client) -> None:
    # Before: HTTP 500, DuckDB's offset out of range.
    for page_no in ("99999999999999999999", "1000001", "-5", "x"):
        page = client.get("/", params={"page": page_no})
        assert page.status_code == 200, (page_no, page.text[-300:])


def test_a_block_damaged_past_what_opening_reads_is_a_sentence_not_a_500(
        settings: Settings, tmp_path: Path) -> None:
    # The file opens (its header and catalog are whole), and a query of the
    # stories page meets the damaged block: before, HTTP 500 and a stack trace.
    with store.connect(settings.database) as con:
        con.execute("INSERT INTO stories SELECT 's-x' || i, repeat('filler ', 40) || i,"
                    " first_seen, last_seen, n_articles, n_sources, lead_article_id"
                    " FROM (SELECT * FROM stories LIMIT 1), range(30000) t(i)")
        con.execute("CHECKPOINT")
    whole = settings.database.read_bytes()
    block = 262144
    damaged_pages = 0
    for k in range(3, len(whole) // block):
        settings.database.write_bytes(whole[:k * block] + b"\xff" * block
                                      + whole[(k + 1) * block:])
        reader = Reader(settings.database, tmp_path / f"copies-{k}", min_refresh_seconds=0)
        try:
            with serving(create_app(settings, reader)) as base, \
                    httpx.Client(base_url=base, timeout=10) as client:
                page = client.get("/")
        finally:
            reader.close()
        assert page.status_code in (200, 503), (k, page.text[-500:])
        if page.status_code == 503 and "Damaged database" in page.text:
            assert "is damaged" in page.text and "move it aside" in page.text
            damaged_pages += 1
            break
    assert damaged_pages == 1


def test_a_rule_whose_query_duckdb_cannot_run_is_its_sentence_on_the_alerts_page(
        settings: Settings, reader: Reader) -> None:
    # 3,000 wildcard words in one OR: an RE2 pattern past DuckDB's size limit.
    # Before: HTTP 500 for the whole page; `newsmon alerts test` said it in a sentence.
    from pipeline.config import AlertRule

    huge = " OR ".join(f"w{n}x*" for n in range(3000)) + " OR syria"
    rules = (*settings.alerts, AlertRule.model_validate(
        {"name": "huge", "query": huge, "to": ["analyst@example.org"]}))
    wide = settings.model_copy(update={"alerts": rules})
    with serving(create_app(wide, reader)) as base, \
            httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/alerts")
    assert page.status_code == 200, page.text[-500:]
    assert "DuckDB could not run its query" in page.text and "try a shorter query" in page.text
    assert page.text.count("no stored story matches") == 0  # the syria rule still lists its hits


def test_hostile_values_render_as_text(settings: Settings, client: httpx.Client) -> None:
    story_id = add_hostile_story(settings.database)
    for path in ("/", f"/story/{story_id}", "/?topic=%3Ci%3Etopic%3C/i%3E"):
        page = client.get(path)
        assert page.status_code == 200, path
        body = page.text
        assert "<script>alert" not in body and "<img src=x" not in body, path
        assert "<b onmouseover" not in body and "<i>topic</i>" not in body, path
        assert "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt;" in body, path
        assert 'href="javascript:' not in body, path
    story = client.get(f"/story/{story_id}").text
    assert "&lt;iframe src=//x&gt;" in story and "<iframe" not in story
    assert "{{ 7*7 }}" in story  # never evaluated as a template
    policy = client.get("/").headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script" not in policy


def test_unknown_story_and_page(client: httpx.Client) -> None:
    missing = client.get("/story/s-<nothing>")
    assert missing.status_code == 404 and "&lt;nothing&gt;" in missing.text
    assert client.get("/nowhere").status_code == 404


def test_the_server_never_writes_the_database(settings: Settings, client: httpx.Client) -> None:
    before = digest(settings.database)
    for path in ("/", "/feeds", "/alerts", "/chart", "/?q=syria"):
        assert client.get(path).status_code == 200
    assert digest(settings.database) == before


def test_locked_before_any_copy_says_updating(settings: Settings, client: httpx.Client) -> None:
    with write_lock(settings.database):
        page = client.get("/")
    assert page.status_code == 503
    assert "Updating, retry in a moment" in page.text
    assert page.headers["retry-after"] == "2"
    assert client.get("/").status_code == 200  # the writer is gone


def test_locked_after_a_change_serves_the_last_copy(settings: Settings,
                                                    client: httpx.Client) -> None:
    assert "Evil Outlet" not in client.get("/").text  # the copy is taken
    add_hostile_story(settings.database)  # the file changes
    with write_lock(settings.database):
        page = client.get("/")
        assert page.status_code == 200
        assert 'id="stale"' in page.text and "Evil Outlet" not in page.text
    fresh = client.get("/")
    assert 'id="stale"' not in fresh.text and "Evil Outlet" in fresh.text


def test_no_database_is_an_error_with_its_path(tmp_path: Path) -> None:
    from support import factories

    settings = factories.settings(tmp_path)
    app = create_app(settings, Reader(settings.database, tmp_path / "copies"))
    with serving(app) as base:
        page = httpx.get(base + "/", timeout=10)
    assert page.status_code == 503 and str(settings.database) in page.text
    assert "newsmon run --once" in page.text


def test_an_empty_duckdb_file_is_no_database_yet_and_stays_unwritten(tmp_path: Path) -> None:
    # `newsmon serve` never writes the database: store.connect gives an empty
    # file newsmon's schema when the pipeline opens it to read, not here.
    import duckdb
    from support import factories

    settings = factories.settings(tmp_path)
    duckdb.connect(str(settings.database)).close()
    before = digest(settings.database)
    app = create_app(settings, Reader(settings.database, tmp_path / "copies"))
    with serving(app) as base:
        page = httpx.get(base + "/", timeout=10)
    assert page.status_code == 503 and str(settings.database) in page.text
    assert "newsmon run --once" in page.text
    assert digest(settings.database) == before


def test_the_writer_is_asked_at_most_once_a_period(settings: Settings, tmp_path: Path) -> None:
    reader = Reader(settings.database, tmp_path / "copies", min_refresh_seconds=0)

    def stories(view: View) -> object:
        return view.con.execute("SELECT count(*) FROM stories").fetchone()

    try:
        with reader.view() as view:
            assert not view.stale
            first = view.as_of
        add_hostile_story(settings.database)
        with write_lock(settings.database):
            with reader.view() as view:  # tries, finds the writer: the last copy
                assert view.stale and view.as_of == first and stories(view) == (3,)
            reader.min_refresh_seconds = 60
            with reader.view() as view:  # within the period: that answer stands
                assert view.stale and stories(view) == (3,)
        with reader.view() as view:  # the writer is gone, but no new attempt yet
            assert view.stale
        reader.min_refresh_seconds = 0
        with reader.view() as view:
            assert not view.stale and view.as_of > first and stories(view) == (4,)
        assert len(list((tmp_path / "copies").glob("*.duckdb"))) == 2  # the last two copies
    finally:
        reader.close()
    assert list((tmp_path / "copies").glob("*.duckdb")) == []


def test_on_loopback_it_answers_only_loopback_names(settings: Settings, reader: Reader) -> None:
    app = create_app(settings, reader, allowed_hosts=loopback_hosts("127.0.0.1"))
    with serving(app) as base:
        assert httpx.get(base + "/", timeout=10).status_code == 200
        port = base.rsplit(":", 1)[1]
        local = httpx.get(base + "/", headers={"Host": f"localhost:{port}"}, timeout=10)
        assert local.status_code == 200
        # DNS rebinding: a name of the attacker's that resolves to 127.0.0.1.
        rebound = httpx.get(base + "/", headers={"Host": f"evil.example:{port}"}, timeout=10)
        assert rebound.status_code == 400 and browse_db.SYRIA_TITLE not in rebound.text


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine cannot listen on ::1")
def test_on_ipv6_loopback_it_answers_only_loopback_names(settings: Settings,
                                                         reader: Reader) -> None:
    # Before: 400 for every request; Starlette's host check split "[::1]:PORT" on ":".
    app = create_app(settings, reader, allowed_hosts=loopback_hosts("::1"))
    with serving(app, host="::1") as base:
        port = base.rsplit(":", 1)[1]
        page = httpx.get(base + "/", timeout=10)  # Host: [::1]:PORT
        assert page.status_code == 200 and browse_db.SYRIA_TITLE in page.text
        for host in (f"localhost:{port}", f"[0:0:0:0:0:0:0:1]:{port}", "[::1]"):
            assert httpx.get(base + "/", headers={"Host": host}, timeout=10).status_code == 200
        for host in (f"evil.example:{port}", f"[::2]:{port}", f"[::1]evil.example:{port}"):
            rebound = httpx.get(base + "/", headers={"Host": host}, timeout=10)
            assert rebound.status_code == 400 and browse_db.SYRIA_TITLE not in rebound.text


@pytest.mark.parametrize("header", [
    "[::1]:8000", "[::1]", "[0:0:0:0:0:0:0:1]:8000", "localhost:8000", "LocalHost",
    "127.0.0.1:8000", "127.0.0.1"])
def test_a_loopback_server_answers_its_loopback_names(header: str) -> None:
    for listening in ("::1", "127.0.0.1", "localhost"):
        assert host_allowed(header, loopback_hosts(listening) or []), (listening, header)


@pytest.mark.parametrize("header", [
    None, "", "evil.example:8000", "evil.example", "[::2]:8000", "127.0.0.1.evil.example",
    "[::1]evil.example", "[::1", "::1", "::1:8000", "[::1]:80:80", "[evil.example]:80",
    "localhost:80x", "localhost@evil.example"])
def test_a_loopback_server_refuses_any_other_host_header(header: str | None) -> None:
    assert not host_allowed(header, loopback_hosts("::1") or []), header


def test_which_hosts_a_server_answers() -> None:
    assert loopback_hosts("127.0.0.1") == ["127.0.0.1", "localhost", "::1", "127.0.0.1"]
    assert loopback_hosts("::1") is not None and loopback_hosts("localhost") is not None
    assert loopback_hosts("0.0.0.0") is None and loopback_hosts("192.0.2.10") is None
    assert loopback_hosts("news.example.org") is None


def test_pages_of_stories(settings: Settings, reader: Reader) -> None:
    with serving(create_app(settings, reader, page_size=2)) as base, \
            httpx.Client(base_url=base, timeout=10) as client:
        first = client.get("/", params={"sort": "outlets"}).text
        assert first.count('class="story"') == 2 and 'id="previous"' not in first
        assert "3 stories; page 1 of 2." in first  # how far paging goes
        assert browse_db.SYRIA_TITLE in first  # most outlets first
        next_page = first.split('id="next"', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0]
        second = client.get(next_page.replace("&amp;", "&")).text
        assert second.count('class="story"') == 1 and 'id="next"' not in second
        assert 'id="previous"' in second and browse_db.SYRIA_TITLE not in second
        assert "3 stories; page 2 of 2." in second


def test_a_story_of_one_report_says_one_outlet_and_one_report(client: httpx.Client) -> None:
    listed = client.get("/", params={"q": "floods"}).text
    story_id = listed.split('href="/story/', 1)[1].split('"', 1)[0]
    meta = client.get(f"/story/{story_id}").text.split('<p class="meta">', 1)[1].split("</p>")[0]
    assert meta.startswith("1 outlet · 1 report · languages: es"), meta


def test_a_reports_title_and_text_carry_its_language(client: httpx.Client) -> None:
    """A screen reader reads a Spanish report with a Spanish voice: the page's
    own ``lang="en"`` is for its labels."""
    listed = client.get("/", params={"q": "floods"}).text
    story_id = listed.split('href="/story/', 1)[1].split('"', 1)[0]
    page = client.get(f"/story/{story_id}").text
    assert '<h3 dir="auto" lang="es">Thousands flee floods' in page
    assert '<div class="text" lang="es">' in page


def test_an_outbox_longer_than_the_page_shows_says_how_many_it_left_out(
        settings: Settings, client: httpx.Client) -> None:
    with store.connect(settings.database) as con:
        before = con.execute("SELECT count(*) FROM alerts").fetchone()
        con.execute(
            "INSERT INTO alerts (rule, story_id, recipient, status, created_at)"
            " SELECT 'syria', 's-' || i, 'analyst@example.org', 'sent',"
            " TIMESTAMPTZ '2019-03-01 00:00:00+00' + i * INTERVAL 1 MINUTE"
            " FROM range(600) t(i)")
    page = client.get("/alerts").text
    assert page.count('<tr class="alert') == 500
    assert before is not None
    assert f"The newest 500 of {600 + before[0]} alerts" in page
