"""The read side shared by ``newsmon stories``/``story``/``status`` and the web page,
over a database built by the real load."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from support import browse_db

from pipeline import browse, store
from pipeline.config import Settings, parse_settings
from pipeline.models import RemovedLine

T0 = datetime(2019, 2, 27, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # Built once: every test here only reads it.
    return browse_db.build(tmp_path_factory.mktemp("browse"))


@pytest.fixture
def con(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    with store.connect(settings.database, read_only=True) as con:
        yield con


def titles(page: browse.StoryPage) -> list[str]:
    return [s.title for s in page.stories]


def test_default_order_is_newest_day_then_most_outlets(con: duckdb.DuckDBPyConnection) -> None:
    page = browse.list_stories(con, browse.StoryFilter())
    assert page.total == 3
    # 02-28 first; on 02-27 the story of two outlets before the later one of one.
    assert titles(page) == ["Earthquake shakes northern Japan", browse_db.SYRIA_TITLE,
                            "Thousands flee floods in southern Spain"]
    syria = page.stories[1]
    assert (syria.n_sources, syria.n_articles) == (2, 2)
    assert syria.sources == ("Outlet One", "Outlet Two")
    assert syria.topics == ("syria",) and syria.countries == ("IL", "RU", "SY")
    assert syria.people == ("Benjamin Netanyahu", "Vladimir Putin")
    assert syria.first_seen == T0 and syria.last_seen == T0 + timedelta(hours=5)


def test_other_orders_and_paging(con: duckdb.DuckDBPyConnection) -> None:
    latest = browse.list_stories(con, browse.StoryFilter(), sort="latest")
    assert titles(latest)[:2] == ["Earthquake shakes northern Japan",
                                  "Thousands flee floods in southern Spain"]
    outlets = browse.list_stories(con, browse.StoryFilter(), sort="outlets")
    assert titles(outlets)[0] == browse_db.SYRIA_TITLE
    second = browse.list_stories(con, browse.StoryFilter(), limit=2, offset=2)
    assert second.total == 3 and titles(second) == ["Thousands flee floods in southern Spain"]
    past = browse.list_stories(con, browse.StoryFilter(), limit=2, offset=10)
    assert past.total == 3 and past.stories == ()
    none = browse.list_stories(con, browse.StoryFilter(country="FR"))
    assert none.total == 0 and none.stories == ()


@pytest.mark.parametrize(("story_filter", "expected"), [
    (browse.StoryFilter(topic="SYRIA"), [browse_db.SYRIA_TITLE]),
    (browse.StoryFilter(country="es"), ["Thousands flee floods in southern Spain"]),
    (browse.StoryFilter(person="vladimir putin"), [browse_db.SYRIA_TITLE]),
    (browse.StoryFilter(language="es"), ["Thousands flee floods in southern Spain"]),
    (browse.StoryFilter(query='"working group" AND Moscow'), [browse_db.SYRIA_TITLE]),
    (browse.StoryFilter(query="earthquake OR floods", since=T0 + timedelta(hours=7)),
     ["Earthquake shakes northern Japan"]),
    (browse.StoryFilter(until=T0 + timedelta(hours=1)), [browse_db.SYRIA_TITLE]),
    (browse.StoryFilter(topic="syria", country="JP"), []),
])
def test_filters_narrow_the_list(con: duckdb.DuckDBPyConnection,
                                 story_filter: browse.StoryFilter, expected: list[str]) -> None:
    page = browse.list_stories(con, story_filter)
    assert titles(page) == expected and page.total == len(expected)


def test_a_story_counts_all_its_reports_even_when_one_matches(
        con: duckdb.DuckDBPyConnection) -> None:
    page = browse.list_stories(con, browse.StoryFilter(person="Benjamin Netanyahu"))
    assert page.stories[0].n_sources == 2
    assert page.stories[0].people == ("Benjamin Netanyahu", "Vladimir Putin")


def test_a_bad_query_is_a_filter_error(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(browse.FilterError, match="query: "):
        browse.list_stories(con, browse.StoryFilter(query="putin AND"))


def test_one_story_has_every_report_and_what_was_removed(
        con: duckdb.DuckDBPyConnection) -> None:
    syria = browse.list_stories(con, browse.StoryFilter(topic="syria")).stories[0]
    detail = browse.find_story(con, syria.id)
    assert detail is not None and detail.summary == syria
    assert [r.source for r in detail.reports] == ["Outlet One", "Outlet Two"]  # oldest first
    first = detail.reports[0]
    assert first.link == "https://outlet1.example.org/story-1" == first.url
    assert first.text.startswith("Israel and Russia agreed")
    assert first.removed == (
        browse.RemovedLine(position=0, line="0 $", rule="donation-amount"),)
    assert browse.RemovedLine is RemovedLine  # the cleaner's record, not a second one
    assert first.time == T0
    # The unique start of an id finds it; too short or unknown does not.
    assert browse.find_story(con, syria.id[:8]) == detail
    assert browse.find_story(con, "s-") is None
    assert browse.find_story(con, "s-nothing") is None


def test_links_are_only_http(tmp_path: Path) -> None:
    settings = browse_db.build(tmp_path)
    with store.connect(settings.database) as con:
        con.execute("UPDATE articles SET url = 'javascript:alert(1)' WHERE source = 'Outlet Two'")
    with store.connect(settings.database, read_only=True) as con:
        story_id = browse.list_stories(con, browse.StoryFilter(topic="syria")).stories[0].id
        detail = browse.find_story(con, story_id)
    assert detail is not None
    second = detail.reports[1]
    assert second.url == "javascript:alert(1)" and second.link is None


def test_reports_per_day_and_hour_include_empty_buckets(con: duckdb.DuckDBPyConnection) -> None:
    days = browse.report_counts(con, browse.StoryFilter(), "day")
    assert [(c.start, c.reports) for c in days] == [
        (datetime(2019, 2, 27, tzinfo=UTC), 3), (datetime(2019, 2, 28, tzinfo=UTC), 1)]
    hours = browse.report_counts(con, browse.StoryFilter(topic="syria"), "hour")
    assert len(hours) == 6 and [c.reports for c in hours] == [1, 0, 0, 0, 0, 1]
    assert browse.report_counts(con, browse.StoryFilter(country="FR"), "day") == []


def test_facets_list_what_the_filters_offer(con: duckdb.DuckDBPyConnection) -> None:
    facets = browse.facets(con)
    assert facets.topics == ("syria",)
    assert set(facets.countries) == {"IL", "RU", "SY", "ES", "JP"}
    assert facets.countries[:3] == ("IL", "RU", "SY")  # most frequent first
    assert set(facets.languages) == {"en", "es"}
    assert set(facets.people) == {"Vladimir Putin", "Benjamin Netanyahu"}


def test_status_and_outbox(settings: Settings, con: duckdb.DuckDBPyConnection) -> None:
    st = browse.status(con, settings, settings.database)
    assert (st.articles, st.stories, st.runs) == (4, 3, 1)
    assert st.size_bytes == settings.database.stat().st_size > 0
    assert st.last_run is not None and st.last_run.articles_new == 4
    assert st.last_report_at == T0 + timedelta(hours=30)
    assert st.stories_24h == 1  # Japan; Spain is exactly 24 h before it, Syria earlier
    assert st.alerts == {"pending": 1, "sending": 0, "sent": 0, "failed": 0}
    rows = browse.outbox(con)
    assert [(r.rule, r.status, r.story_title) for r in rows] == [
        ("syria", "pending", browse_db.SYRIA_TITLE)]


def test_status_lists_a_failed_alert_older_than_the_newest_500(tmp_path: Path) -> None:
    """The Alerts page shows the newest 500 rows; ``newsmon status`` lists the
    failures, which may be older (before: only those among the newest 500)."""

    database = tmp_path / "news.duckdb"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with store.connect(database) as con:
        con.execute("INSERT INTO alerts (rule, story_id, recipient, update_no, article_id,"
                    " status, created_at, error, attempts) VALUES ('old', 's-0', 'a@example.org',"
                    " 0, 'x', 'failed', ?, '550 mailbox unavailable', 3)", [t0])
        con.execute("INSERT INTO alerts (rule, story_id, recipient, update_no, article_id,"
                    " status, created_at, attempts) SELECT 'new', 's-' || i, 'a@example.org', 0,"
                    " 'x', 'sent', ?::TIMESTAMPTZ + to_hours(i), 1 FROM range(1, 601) t(i)",
                    [t0])
        st = browse.status(con, parse_settings({"database": str(database)}), database)
        assert len(browse.outbox(con)) == 500
    assert st.alerts["failed"] == 1 and st.alerts["sent"] == 600
    assert [(r.rule, r.error) for r in st.failed_alerts] == [("old", "550 mailbox unavailable")]


@pytest.mark.parametrize(("text", "expected"), [
    ("24h", T0 - timedelta(hours=24)), ("30m", T0 - timedelta(minutes=30)),
    ("7d", T0 - timedelta(days=7)), ("2w", T0 - timedelta(weeks=2)),
    ("2019-03-01", datetime(2019, 3, 1, tzinfo=UTC)),
    ("2019-03-01T10:00:00+02:00", datetime(2019, 3, 1, 8, tzinfo=UTC)),
    ("all", None), ("", None), (None, None),
])
def test_since(text: str | None, expected: datetime | None) -> None:
    assert browse.parse_since(text, now=T0) == expected


def test_until_includes_the_whole_day_and_bad_input_says_why() -> None:
    assert browse.parse_until("2019-03-01") == datetime(2019, 3, 2, tzinfo=UTC)
    with pytest.raises(browse.FilterError, match="not a duration"):
        browse.parse_since("yesterday")
    with pytest.raises(browse.FilterError, match="until 'soon'"):
        browse.parse_until("soon")


@pytest.mark.parametrize(("parse", "text", "message"), [
    (browse.parse_since, "999999999d", "since '999999999d': too far back"),
    (browse.parse_since, "100000000000000h", "since '100000000000000h': too far back"),
    (browse.parse_until, "9999-12-31", "until '9999-12-31': too far ahead"),
])
def test_a_moment_past_the_calendar_says_why(parse: Callable[[str], object], text: str,
                                             message: str) -> None:
    with pytest.raises(browse.FilterError, match=re.escape(message)):
        parse(text)


@pytest.mark.parametrize(("parse", "text", "field"), [
    (browse.parse_since, "yesterday", "since"),
    (browse.parse_since, "999999999d", "since"),
    (browse.parse_until, "9999-12-31", "until"),
    (browse.parse_until, "soon", "until"),
])
def test_a_filter_error_names_its_field_and_each_front_end_words_it(
        parse: Callable[[str], object], text: str, field: str) -> None:
    # The command line calls the field --until, the web page's form "To": the
    # error carries the field, never one front end's name for it.
    with pytest.raises(browse.FilterError) as caught:
        parse(text)
    assert caught.value.field == field and "--" not in str(caught.value)
    assert caught.value.worded("To").startswith(f"To {text!r}: ")


def test_a_bad_query_names_the_query_field(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(browse.FilterError) as caught:
        browse.list_stories(con, browse.StoryFilter(query="putin AND"))
    assert caught.value.field == "query"
    assert caught.value.worded("Search").startswith("Search: unexpected end of query")
