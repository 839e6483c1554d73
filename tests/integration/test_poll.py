"""Polling feeds through the real poll stage against a real server on 127.0.0.1:
conditional GET, the body hash, errors and their weights, redirects, the
address guard, the schedule, the time budget, and the feed registry."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from support.badserver import gzip_bomb
from support.factories import skip_processing
from support.feedserver import FeedServer, Reply, article, rss
from support.settings import feed_settings as make_settings

from pipeline import ids
from pipeline.cli import main
from pipeline.config import Settings
from pipeline.run import PollSummary, load_stage, new_run_id, poll_stage, process_stage
from pipeline.store import staging

NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def items(n: int, prefix: str, *, newest: datetime = NOW, step: timedelta = timedelta(hours=1),
          base: str = "http://127.0.0.1:9/") -> list[dict[str, str]]:
    return [{"title": f"{prefix} story {i}", "link": f"{base}{prefix}/{i}",
             "guid": f"{prefix}-{i}", "pubDate": format_datetime(newest - i * step)}
            for i in range(n)]


def poll(settings: Settings, *, now: datetime = NOW,
         force: bool = True) -> tuple[PollSummary, list[dict[str, Any]]]:
    """One poll stage and its load; returns the summary and the staged new entries."""
    run_id = new_run_id()
    summary = poll_stage(settings, run_id, now=now, force=force)
    polled = list(staging.read(staging.run_dir(settings.staging, run_id), "polled"))
    skip_processing(settings, run_id)
    load_stage(settings, run_id)
    return summary, polled


def processed_poll(settings: Settings, *, now: datetime = NOW,
                   ) -> tuple[PollSummary, list[dict[str, Any]]]:
    """One poll stage, its process stage (which stores the entries: a poll
    delivers them again until then) and its load; as :func:`poll`."""
    run_id = new_run_id()
    summary = poll_stage(settings, run_id, now=now, force=True)
    polled = list(staging.read(staging.run_dir(settings.staging, run_id), "polled"))
    process_stage(settings, run_id)
    load_stage(settings, run_id)
    return summary, polled


def feed(settings: Settings, path: str) -> dict[str, Any]:
    with duckdb.connect(str(settings.database), read_only=True) as con:
        cursor = con.execute("SELECT * FROM feeds WHERE url LIKE ?", [f"%{path}"])
        row = cursor.fetchone()
        assert row is not None, f"no feeds row for {path}"
        return dict(zip([d[0] for d in cursor.description], row, strict=True))


def minutes_until_next_poll(row: dict[str, Any], now: datetime = NOW) -> float:
    return round((row["next_poll_at"] - now).total_seconds() / 60, 3)


# -- conditional GET and the body hash ------------------------------------------------------


def test_etag_gets_304_and_no_entries(tmp_path: Path, server: FeedServer) -> None:
    server.route("/etag.xml", Reply(body=rss(items(2, "etag")).encode(), etag='"e1"'))
    settings = make_settings(tmp_path, server, ["/etag.xml"])
    first, _ = poll(settings)
    second, _ = poll(settings, now=NOW + timedelta(hours=1))
    assert (first.entries_new, second.entries_new) == (2, 0)
    assert server.requests[-1][1].get("if-none-match") == '"e1"'
    row = feed(settings, "/etag.xml")
    assert row["last_success_at"] == NOW + timedelta(hours=1)
    assert row["etag"] == '"e1"' and row["error_count"] == 0


def test_last_modified_gets_304(tmp_path: Path, server: FeedServer) -> None:
    stamp = "Mon, 06 May 2024 10:00:00 GMT"
    server.route("/lm.xml", Reply(body=rss(items(2, "lm")).encode(), last_modified=stamp))
    settings = make_settings(tmp_path, server, ["/lm.xml"])
    poll(settings)
    second, _ = poll(settings, now=NOW + timedelta(hours=1))
    assert second.entries_new == 0
    assert server.requests[-1][1].get("if-modified-since") == stamp
    assert feed(settings, "/lm.xml")["last_modified"] == stamp


def test_a_304_without_validators_keeps_ours(tmp_path: Path, server: FeedServer) -> None:
    server.route("/bare304.xml", Reply(body=rss(items(1, "b3")).encode(), etag='"b"',
                                       validators_on_304=False))
    settings = make_settings(tmp_path, server, ["/bare304.xml"])
    for hour in range(3):
        poll(settings, now=NOW + timedelta(hours=hour))
    assert [h.get("if-none-match") for p, h in server.requests if p == "/bare304.xml"] == [
        None, '"b"', '"b"']
    assert feed(settings, "/bare304.xml")["etag"] == '"b"'


def test_a_304_to_a_request_without_validators_is_an_error_not_a_success(
    tmp_path: Path, server: FeedServer
) -> None:
    """A 304 answers a conditional request only (RFC 9110 §15.4.5). One to a
    GET that sent no validators (a broken cache in front of the feed) has
    nothing of ours to stand for: taken as success, the feed looked healthy
    for ever and never gave an entry."""
    server.route("/always304.xml", Reply(status=304))
    settings = make_settings(tmp_path, server, ["/always304.xml"])
    for hour in range(3):
        summary, _ = poll(settings, now=NOW + timedelta(hours=hour))
        assert summary.feeds_failed == 1
    assert all(h.get("if-none-match") is None and h.get("if-modified-since") is None
               for p, h in server.requests if p == "/always304.xml")
    row = feed(settings, "/always304.xml")
    assert (row["status"], row["error_count"], row["last_success_at"]) == ("failing", 6, None)
    assert row["last_error"] == ("HTTP 304 Not Modified to a request without validators "
                                 "(If-None-Match, If-Modified-Since): the server sent no feed")


def test_identical_body_without_validators_is_skipped_by_its_hash(
    tmp_path: Path, server: FeedServer
) -> None:
    # Entries are only marked seen once processed; here they never are, so
    # only the body hash can stop the second poll from re-emitting them.
    server.route("/same.xml", Reply(body=rss(items(3, "same")).encode()))
    settings = make_settings(tmp_path, server, ["/same.xml"])
    first, _ = poll(settings)
    second, _ = poll(settings, now=NOW + timedelta(hours=1))
    assert (first.entries_new, second.entries_new) == (3, 0)
    server.route("/same.xml", Reply(body=rss(items(4, "same")).encode()))
    third, _ = poll(settings, now=NOW + timedelta(hours=2))
    assert third.entries_new == 4  # a changed body is parsed again


def test_a_changed_feed_delivers_its_new_items_and_stores_every_items_hash(
    tmp_path: Path, server: FeedServer
) -> None:
    """The items whose entries are stored are not parsed again (unit tests in
    test_feed_parsing.py); here: the poll stage passes them, the load stores the
    hashes, and what is delivered is the same."""
    server.route("/grow.xml", Reply(body=rss(items(3, "grow")).encode()))
    settings = make_settings(tmp_path, server, ["/grow.xml"])
    run_id = new_run_id()
    poll_stage(settings, run_id, now=NOW)
    process_stage(settings, run_id)  # the entries are stored (rejected: port 9 is refused)
    load_stage(settings, run_id)
    assert stored_items(settings, "/grow.xml") == entry_ids(settings)
    assert len(entry_ids(settings)) == 3
    later = NOW + timedelta(hours=1)
    body = rss(items(1, "fresh", newest=later) + items(3, "grow"))
    server.route("/grow.xml", Reply(body=body.encode()))
    summary, polled = poll(settings, now=later)
    assert summary.entries_new == 1 and [e["title"] for e in polled] == ["fresh story 0"]
    stored = stored_items(settings, "/grow.xml")
    assert len(stored) == 4 and set(entry_ids(settings)) < set(stored)
    assert polled[0]["id"] in stored


def stored_items(settings: Settings, path: str) -> list[str]:
    """The entry ids of the feed's stored items (``feeds.item_hashes``)."""
    return sorted(entry for entry, _ in json.loads(feed(settings, path)["item_hashes"]).values())


def entry_ids(settings: Settings) -> list[str]:
    with duckdb.connect(str(settings.database), read_only=True) as con:
        return sorted(r[0] for r in con.execute("SELECT id FROM entries").fetchall())


# -- errors ---------------------------------------------------------------------------------


def test_429_retry_after_sets_the_next_poll(tmp_path: Path, server: FeedServer) -> None:
    server.route("/429.xml", Reply(status=429, headers={"Retry-After": "7200"}))
    settings = make_settings(tmp_path, server, ["/429.xml"])
    summary, _ = poll(settings)
    row = feed(settings, "/429.xml")
    assert summary.feeds_failed == 1
    assert row["last_error"] == "HTTP 429 Too Many Requests"
    assert row["error_count"] == 1  # soft
    assert minutes_until_next_poll(row) == 120.0


def test_500_is_a_soft_error_that_backs_off(tmp_path: Path, server: FeedServer) -> None:
    server.route("/500.xml", Reply(status=500))
    settings = make_settings(tmp_path, server, ["/500.xml"])
    poll(settings)
    row = feed(settings, "/500.xml")
    assert (row["status"], row["error_count"]) == ("active", 1)
    assert row["last_error"] == "HTTP 500 Internal Server Error"
    assert minutes_until_next_poll(row) == round(15 * 2 ** 0.5, 3)


def test_hard_errors_make_a_feed_failing_never_dropped(tmp_path: Path, server: FeedServer) -> None:
    settings = make_settings(tmp_path, server, ["/gone-missing.xml"])  # 404
    for hour in range(3):
        poll(settings, now=NOW + timedelta(hours=hour))
        row = feed(settings, "/gone-missing.xml")
        if hour == 1:
            assert (row["status"], row["error_count"]) == ("active", 4)
            assert minutes_until_next_poll(row, NOW + timedelta(hours=1)) == 60.0  # 15 * 2 * 2
    assert (row["status"], row["error_count"]) == ("failing", 6)
    assert row["last_error"] == "HTTP 404 Not Found"
    assert minutes_until_next_poll(row, NOW + timedelta(hours=2)) == 120.0  # 15 * 2**3
    # Still polled: a failing feed that recovers is active again at once.
    server.route("/gone-missing.xml", Reply(body=rss(items(1, "back")).encode()))
    summary, _ = poll(settings, now=NOW + timedelta(hours=3))
    row = feed(settings, "/gone-missing.xml")
    assert (summary.entries_new, row["status"], row["error_count"]) == (1, "active", 0)
    assert row["last_error"] is None


def test_410_retires_the_feed_with_its_reason(tmp_path: Path, server: FeedServer) -> None:
    server.route("/410.xml", Reply(status=410))
    settings = make_settings(tmp_path, server, ["/410.xml"])
    poll(settings)
    row = feed(settings, "/410.xml")
    assert row["status"] == "retired"
    assert row["last_error"] == "HTTP 410 Gone: the feed is gone, retired"
    hits = server.hits["/410.xml"]
    summary, _ = poll(settings, now=NOW + timedelta(days=2))
    assert summary.feeds_polled == 0 and server.hits["/410.xml"] == hits


# -- redirects and the address guard --------------------------------------------------------


def test_permanent_redirects_move_the_fetch_url(tmp_path: Path, server: FeedServer) -> None:
    server.route("/old.xml", Reply(status=301, headers={"Location": "/mid.xml"}))
    server.route("/mid.xml", Reply(status=308, headers={"Location": "/new.xml"}))
    server.route("/new.xml", Reply(body=rss(items(1, "moved")).encode()))
    settings = make_settings(tmp_path, server, ["/old.xml"])
    poll(settings)
    row = feed(settings, "/old.xml")
    assert row["url"] == server.url("/old.xml")  # the identity stays
    assert row["fetch_url"] == server.url("/new.xml")
    before = server.hits["/old.xml"]
    poll(settings, now=NOW + timedelta(hours=1))
    assert server.hits["/old.xml"] == before  # polled at the new address from now on


def test_temporary_redirect_keeps_the_url(tmp_path: Path, server: FeedServer) -> None:
    server.route("/temp.xml", Reply(status=302, headers={"Location": "/temp-target.xml"}))
    server.route("/temp-target.xml", Reply(body=rss(items(1, "temp")).encode()))
    settings = make_settings(tmp_path, server, ["/temp.xml"])
    summary, _ = poll(settings)
    assert summary.entries_new == 1
    assert feed(settings, "/temp.xml")["fetch_url"] == server.url("/temp.xml")


def test_redirect_to_a_private_address_is_refused(tmp_path: Path, server: FeedServer) -> None:
    server.route("/evil.xml", Reply(status=302, headers={
        "Location": "http://169.254.169.254/latest/meta-data/"}))
    settings = make_settings(tmp_path, server, ["/evil.xml"])
    poll(settings)
    row = feed(settings, "/evil.xml")
    assert row["last_error"].startswith("refused: 169.254.169.254 is a link-local address")
    assert row["error_count"] == 2  # hard


def test_a_name_resolving_to_loopback_is_refused(tmp_path: Path, server: FeedServer) -> None:
    server.route("/local.xml", Reply(body=rss(items(1, "local")).encode()))
    url = server.url("/local.xml", host="localhost")  # only 127.0.0.1:port is allowed
    settings = make_settings(tmp_path, server, [url])
    poll(settings)
    row = feed(settings, "/local.xml")
    assert "refused" in row["last_error"] and "localhost resolves to it" in row["last_error"]
    assert server.hits["/local.xml"] == 0


# -- hostile servers: one feed's problem is only its own --------------------------------------


def test_slow_trickle_is_cut_and_the_other_feeds_succeed(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/trickle.xml", Reply(body=rss(items(5, "slow")).encode(), trickle=0.05))
    server.route("/fast.xml", Reply(body=rss(items(2, "fast")).encode()))
    settings = make_settings(tmp_path, server, ["/trickle.xml", "/fast.xml"],
                             fetch={"timeout": 1.0, "read_timeout": 1.0})
    started = time.monotonic()
    summary, polled = poll(settings)
    assert time.monotonic() - started < 5
    assert feed(settings, "/trickle.xml")["last_error"] == "timed out after 1 s"
    assert summary.entries_new == 2 and {e["title"] for e in polled} == {
        "fast story 0", "fast story 1"}


def test_gzip_bomb_feed_is_refused(tmp_path: Path, server: FeedServer) -> None:
    server.route("/bomb.xml", Reply(body=gzip_bomb(64 * 2**20), gzip=True, raw=True))
    settings = make_settings(tmp_path, server, ["/bomb.xml"], fetch={"max_feed_bytes": 2**20})
    poll(settings)
    assert feed(settings, "/bomb.xml")["last_error"] == "body larger than 1 MiB"


def test_oversized_feed_is_refused(tmp_path: Path, server: FeedServer) -> None:
    server.route("/huge.xml", Reply(body=rss(items(4000, "huge")).encode()))
    settings = make_settings(tmp_path, server, ["/huge.xml"], fetch={"max_feed_bytes": 2**18})
    poll(settings)
    assert feed(settings, "/huge.xml")["last_error"].startswith(
        "body larger than 256 KiB (Content-Length: ")


def test_items_past_max_entries_per_feed_are_said_in_the_log(
        tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture) -> None:
    server.route("/archive.xml", Reply(body=rss(items(25, "arc")).encode()))
    settings = make_settings(tmp_path, server, ["/archive.xml"],
                             fetch={"max_entries_per_feed": 10})
    caplog.set_level("WARNING", logger="pipeline.sources.poll")
    summary, _ = poll(settings)
    assert summary.entries_new == 10
    said = [r.getMessage() for r in caplog.records if "more items than" in r.getMessage()]
    assert said == [f"feed {server.url('/archive.xml')} has 15 more items than the 10 read "
                    "each poll (fetch.max_entries_per_feed); they were not read"]


def test_a_too_long_entry_link_is_a_rejected_row(tmp_path: Path, server: FeedServer) -> None:
    long_link = "http://127.0.0.1:9/" + "a" * 3000
    server.route("/longlink.xml", Reply(body=rss([
        {"title": "long", "link": long_link, "guid": "long"}, *items(1, "short")]).encode()))
    settings = make_settings(tmp_path, server, ["/longlink.xml"])
    summary, _ = poll(settings)
    assert summary.entries_new == 1
    with duckdb.connect(str(settings.database), read_only=True) as con:
        rows = con.execute("SELECT url, stage, reason FROM rejected").fetchall()
    assert rows == [(long_link[:2048], "poll", "entry link is longer than 2048 characters")]


def test_a_guid_given_to_different_articles_loses_none_of_them_over_three_passes(
    tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A CMS that gives every item one GUID, with a new link each time: each
    article is an entry of its own, on the pass it appears and on later ones,
    and no page is fetched twice. The same article listed twice (its link
    with a tracking parameter) is one entry; another feed with the same GUID
    is untouched. Through the staged stages (the Airflow DAG's path)."""
    for name in ("dup-a", "dup-b", "dup-c", "other"):
        server.route(f"/{name}.html", Reply(body=article(f"Talks {name}").encode(),
                                            content_type="text/html; charset=utf-8"))
    guid = "tag:wire.example.org,2024:same"

    def item(name: str, *, link: str | None = None, title: str | None = None) -> dict[str, str]:
        return {"title": title or f"Talks {name}", "link": link or server.url(f"/{name}.html"),
                "guid": guid}

    server.route("/dup.xml", Reply(body=rss([
        item("dup-a"), item("dup-b"),
        item("dup-a", link=server.url("/dup-a.html?utm_source=rss"), title="Talks again"),
    ]).encode()))
    server.route("/dup-other.xml", Reply(body=rss([item("other")]).encode()))
    settings = make_settings(tmp_path, server, ["/dup.xml", "/dup-other.xml"])

    def delivered(polled: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return sorted((e["feed_url"].rsplit("/", 1)[1], e["url"].rsplit("/", 1)[1])
                      for e in polled)

    with caplog.at_level(logging.WARNING, logger="pipeline.sources.poll"):
        summary, polled = processed_poll(settings)
    assert summary.entries_new == 3
    assert delivered(polled) == [("dup-other.xml", "other.html"), ("dup.xml", "dup-a.html"),
                                 ("dup.xml", "dup-b.html")]
    ids = {e["url"].rsplit("/", 1)[1]: e["id"] for e in polled}
    assert ids["dup-a.html"] == ids["other.html"] == guid  # the first article keeps the GUID
    assert ids["dup-b.html"].startswith(guid + "#")
    logged = [r for r in caplog.records if r.name == "pipeline.sources.poll"]
    assert [r.getMessage() for r in logged] == [
        f"feed {server.url('/dup.xml')} gives one GUID to different articles ({guid!r}): "
        "each article after the first gets an entry id of its own, GUID#hash of its link"]
    assert (logged[0].__dict__["feed"], logged[0].__dict__["guids"]) == (
        server.url("/dup.xml"), 1)
    with duckdb.connect(str(settings.database), read_only=True) as con:
        rejected = con.execute("SELECT url, feed_url, stage, reason FROM rejected").fetchall()
    assert rejected == [(server.url("/dup-a.html?utm_source=rss"), server.url("/dup.xml"),
                         "poll", f"duplicate entry id: an earlier entry of the feed has the "
                         f"id {guid!r} (the first one is kept)")]

    # A new article under the GUID, on top: delivered, the known ones are not.
    server.route("/dup.xml", Reply(body=rss([item("dup-c"), item("dup-a"), item("dup-b")])
                                   .encode()))
    summary, polled = processed_poll(settings, now=NOW + timedelta(hours=1))
    assert delivered(polled) == [("dup.xml", "dup-c.html")]
    ids["dup-c.html"] = polled[0]["id"]
    assert ids["dup-c.html"].startswith(guid + "#") and ids["dup-c.html"] != ids["dup-b.html"]

    # Every item changed (so parsed again) and in another order: the same ids.
    server.route("/dup.xml", Reply(body=rss([
        item(name, title=f"Talks {name}, updated") for name in ("dup-b", "dup-c", "dup-a")
    ]).encode()))
    summary, polled = processed_poll(settings, now=NOW + timedelta(hours=2))
    assert (summary.entries_new, polled) == (0, [])
    with duckdb.connect(str(settings.database), read_only=True) as con:
        stored = con.execute("SELECT url, id FROM entries WHERE feed_url = ? ORDER BY url",
                             [server.url("/dup.xml")]).fetchall()
        titles = sorted(r[0] for r in con.execute("SELECT title FROM articles").fetchall())
    assert stored == [(server.url("/dup-a.html"), guid),
                      (server.url("/dup-b.html"), ids["dup-b.html"]),
                      (server.url("/dup-c.html"), ids["dup-c.html"])]
    assert titles == ["Talks dup-a", "Talks dup-b", "Talks dup-c", "Talks other"]
    assert [server.hits[f"/{n}.html"] for n in ("dup-a", "dup-b", "dup-c", "other")] == [
        1, 1, 1, 1]


def test_an_article_whose_link_changes_under_its_guid_is_not_fetched_again(
    tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A new slug: WordPress keeps ``?p=123`` as the GUID while the permalink
    follows the slug. The feed gives the GUID to one item, so it is the stored
    article under a new link: not a new entry, not fetched, said in the log."""
    for name in ("old-slug", "new-slug"):
        server.route(f"/{name}.html", Reply(body=article(f"Talks {name}").encode(),
                                            content_type="text/html; charset=utf-8"))
    guid = "https://wire.example.org/?p=123"

    def feed(slug: str, title: str) -> bytes:
        return rss([{"title": title, "link": server.url(f"/{slug}.html"), "guid": guid},
                    *items(1, "slug-other")]).encode()

    server.route("/slug.xml", Reply(body=feed("old-slug", "Talks begin")))
    settings = make_settings(tmp_path, server, ["/slug.xml"])
    summary, _ = processed_poll(settings)
    assert summary.entries_new == 2
    server.route("/slug.xml", Reply(body=feed("new-slug", "Talks begin in Geneva")))
    with caplog.at_level(logging.INFO, logger="pipeline.sources.poll"):
        summary, polled = processed_poll(settings, now=NOW + timedelta(hours=1))
    assert (summary.entries_new, polled) == (0, [])
    assert (server.hits["/old-slug.html"], server.hits["/new-slug.html"]) == (1, 0)
    assert [r.getMessage() for r in caplog.records if r.name == "pipeline.sources.poll"] == [
        f"feed {server.url('/slug.xml')} gives a stored GUID a new link ({guid!r}): read as"
        " the same article moved, not fetched again"]


def test_a_guid_a_one_item_feed_recycles_for_the_next_days_article_is_fetched(
    tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A one-item feed gives its one GUID to each day's briefing. The next
    day's, under a new link and dated a day later, is a new article: fetched
    and stored under an id of its own (it was read as yesterday's moved, and
    lost); a third poll finds it seen."""
    guid = "tag:wire.example.org,2024:briefing"
    for name in ("monday", "tuesday"):
        server.route(f"/{name}.html", Reply(body=article(f"Briefing {name}").encode(),
                                            content_type="text/html; charset=utf-8"))

    def feed(name: str, day: datetime) -> bytes:
        return rss([{"title": "Morning briefing", "link": server.url(f"/{name}.html"),
                     "guid": guid, "pubDate": format_datetime(day)}]).encode()

    server.route("/brief.xml", Reply(body=feed("monday", NOW)))
    settings = make_settings(tmp_path, server, ["/brief.xml"])
    assert processed_poll(settings)[0].entries_new == 1
    server.route("/brief.xml", Reply(body=feed("tuesday", NOW + timedelta(days=1))))
    with caplog.at_level(logging.INFO, logger="pipeline.sources.poll"):
        summary, polled = processed_poll(settings, now=NOW + timedelta(days=1))
    assert summary.entries_new == 1
    assert [e["id"] for e in polled] == [ids.reused_guid_id(guid, server.url("/tuesday.html"))]
    assert (server.hits["/monday.html"], server.hits["/tuesday.html"]) == (1, 1)
    assert [r.levelno for r in caplog.records if r.name == "pipeline.sources.poll"] == [
        logging.WARNING]
    summary, _ = processed_poll(settings, now=NOW + timedelta(days=1, hours=1))
    assert summary.entries_new == 0 and server.hits["/tuesday.html"] == 1


def test_a_guid_the_feed_still_gives_past_the_limit_is_not_read_as_moved(
    tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The stored article under the GUID is still in the feed, past
    ``fetch.max_entries_per_feed`` (not read this poll); a new item on top
    with that GUID is another article: fetched and stored, not taken for the
    stored one moved (and so lost). Its neighbour, unchanged, is cut out
    before parsing, as on any poll of a changed feed."""
    for name in ("first", "next", "later"):
        server.route(f"/{name}.html", Reply(body=article(f"Talks {name}").encode(),
                                            content_type="text/html; charset=utf-8"))
    guid = "tag:wire.example.org,2024:same"

    def item(name: str, item_guid: str = guid) -> dict[str, str]:
        return {"title": f"Talks {name}", "link": server.url(f"/{name}.html"),
                "guid": item_guid}

    server.route("/limit.xml", Reply(body=rss([item("first"), item("next", "other")]).encode()))
    settings = make_settings(tmp_path, server, ["/limit.xml"], fetch={"max_entries_per_feed": 2})
    summary, _ = processed_poll(settings)
    assert summary.entries_new == 2
    server.route("/limit.xml", Reply(body=rss(
        [item("later"), item("next", "other"), item("first")]).encode()))
    with caplog.at_level(logging.INFO, logger="pipeline.sources.poll"):
        summary, polled = processed_poll(settings, now=NOW + timedelta(hours=1))
    assert [e["url"] for e in polled] == [server.url("/later.html")]
    assert polled[0]["id"] == ids.reused_guid_id(guid, server.url("/later.html"))
    assert [server.hits[f"/{n}.html"] for n in ("first", "next", "later")] == [1, 1, 1]
    assert [r.getMessage() for r in caplog.records if r.name == "pipeline.sources.poll"] == [
        f"feed {server.url('/limit.xml')} has 1 more items than the 2 read each poll"
        " (fetch.max_entries_per_feed); they were not read",
        f"feed {server.url('/limit.xml')} gives one GUID to different articles ({guid!r}): "
        "each article after the first gets an entry id of its own, GUID#hash of its link"]


def test_a_feed_with_unique_guids_keeps_the_ids_it_always_had(
    tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Each entry's id is its GUID, as before GUIDs reused for other articles
    got ids of their own: an upgrade fetches no stored entry again, nor does a
    site's move to https (every link changes, no GUID)."""
    server.route("/unique.xml", Reply(body=rss(items(3, "uq")).encode()))
    settings = make_settings(tmp_path, server, ["/unique.xml"])

    # feedparser reads a GUID not marked isPermaLink="false" as a link.
    guids = [server.url(f"/uq-{i}") for i in range(3)]
    _, polled = processed_poll(settings)  # stored as rejected: port 9 is refused
    assert sorted(e["id"] for e in polled) == entry_ids(settings) == guids
    moved = [{**i, "title": i["title"] + ", updated"}
             for i in items(3, "uq", base="https://127.0.0.1:9/")]
    server.route("/unique.xml", Reply(body=rss(moved).encode()))
    with caplog.at_level(logging.WARNING, logger="pipeline.sources.poll"):
        second, polled = processed_poll(settings, now=NOW + timedelta(hours=1))
    logged = [r for r in caplog.records if r.name == "pipeline.sources.poll"]
    assert (second.entries_new, polled, logged) == (0, [], [])
    assert entry_ids(settings) == stored_items(settings, "/unique.xml") == guids


def test_a_failed_feed_is_logged_with_its_url_and_reason(
    tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, server, ["/log-missing.xml"])  # 404
    with caplog.at_level(logging.WARNING, logger="pipeline.sources.poll"):
        poll(settings)
    # The default formatter prints only the message: what and why are in it.
    assert [logging.Formatter("%(levelname)s %(name)s: %(message)s").format(r)
            for r in caplog.records if r.name == "pipeline.sources.poll"] == [
        f"WARNING pipeline.sources.poll: feed failed: {server.url('/log-missing.xml')}: "
        "HTTP 404 Not Found"]


def test_a_moved_feed_that_fails_is_logged_with_both_addresses(
    tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.route("/log-old.xml", Reply(status=301, headers={"Location": "/log-new.xml"}))
    server.route("/log-new.xml", Reply(body=rss(items(1, "ln")).encode()))
    settings = make_settings(tmp_path, server, ["/log-old.xml"])
    poll(settings)
    server.route("/log-new.xml", Reply(status=503))
    with caplog.at_level(logging.WARNING, logger="pipeline.sources.poll"):
        poll(settings, now=NOW + timedelta(hours=1))
    assert [r.getMessage() for r in caplog.records if r.name == "pipeline.sources.poll"] == [
        f"feed failed: {server.url('/log-old.xml')} (polled at {server.url('/log-new.xml')}): "
        "HTTP 503 Service Unavailable"]


def test_deferred_feeds_are_logged_with_their_urls(
    tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.route("/log-slow.xml", Reply(body=rss(items(2, "ls")).encode(), trickle=0.02))
    settings = make_settings(tmp_path, server, ["/log-slow.xml"],
                             fetch={"pass_budget_seconds": 0.5})
    with caplog.at_level(logging.WARNING, logger="pipeline.sources.poll"):
        summary, _ = poll(settings)
    assert summary.feeds_deferred == 1
    assert [r.getMessage() for r in caplog.records if r.name == "pipeline.sources.poll"] == [
        "1 feed(s) deferred to the next pass, the time budget was spent: "
        + server.url("/log-slow.xml")]


# -- the schedule follows the feed ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reply", "minutes"),
    [
        ("/ttl.xml", Reply(body=rss(items(1, "ttl"), channel="<ttl>180</ttl>").encode()), 180.0),
        ("/sy.xml", Reply(body=rss(
            items(1, "sy"), namespaces=' xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"',
            channel="<sy:updatePeriod>daily</sy:updatePeriod>"
                    "<sy:updateFrequency>4</sy:updateFrequency>").encode()), 360.0),
        ("/maxage.xml", Reply(body=rss(items(1, "ma")).encode(),
                              headers={"Cache-Control": "public, max-age=3600"}), 60.0),
        ("/rhythm.xml", Reply(body=rss(items(10, "rh", step=timedelta(hours=2))).encode()), 60.0),
    ],
    ids=["ttl", "sy-update", "max-age", "publishing-rhythm"],
)
def test_next_poll_follows_the_feeds_hints(
    tmp_path: Path, server: FeedServer, path: str, reply: Reply, minutes: float
) -> None:
    server.route(path, reply)
    settings = make_settings(tmp_path, server, [path])
    poll(settings)
    row = feed(settings, path)
    assert minutes_until_next_poll(row) == minutes
    assert row["poll_interval_minutes"] == minutes


def test_a_304_keeps_the_feeds_own_interval(tmp_path: Path, server: FeedServer) -> None:
    server.route("/ttl304.xml", Reply(body=rss(items(1, "t3"), channel="<ttl>120</ttl>").encode(),
                                      etag='"t"'))
    settings = make_settings(tmp_path, server, ["/ttl304.xml"])
    poll(settings)
    later = NOW + timedelta(hours=2)
    poll(settings, now=later, force=False)
    row = feed(settings, "/ttl304.xml")
    assert server.requests[-1][1].get("if-none-match") == '"t"'
    assert minutes_until_next_poll(row, later) == 120.0


def test_a_feed_is_polled_only_when_due(tmp_path: Path, server: FeedServer) -> None:
    server.route("/due.xml", Reply(body=rss(items(1, "due"), channel="<ttl>60</ttl>").encode()))
    settings = make_settings(tmp_path, server, ["/due.xml"])
    poll(settings)
    early, _ = poll(settings, now=NOW + timedelta(minutes=59), force=False)
    on_time, _ = poll(settings, now=NOW + timedelta(minutes=60), force=False)
    assert (early.feeds_polled, on_time.feeds_polled) == (0, 1)


# -- the time budget -------------------------------------------------------------------------


def test_feeds_over_the_budget_are_deferred_not_failed(tmp_path: Path, server: FeedServer) -> None:
    server.route("/budget-slow.xml", Reply(body=rss(items(2, "bs")).encode(), trickle=0.02))
    server.route("/budget-fast.xml", Reply(body=rss(items(1, "bf")).encode()))
    settings = make_settings(tmp_path, server, ["/budget-slow.xml", "/budget-fast.xml"],
                             fetch={"pass_budget_seconds": 1.0})
    started = time.monotonic()
    summary, _ = poll(settings)
    assert time.monotonic() - started < 4
    assert (summary.feeds_polled, summary.feeds_deferred, summary.feeds_failed) == (1, 1, 0)
    with duckdb.connect(str(settings.database), read_only=True) as con:
        urls = [r[0] for r in con.execute("SELECT url FROM feeds").fetchall()]
    assert urls == [server.url("/budget-fast.xml")]  # the slow one: untouched, due next pass


def test_entries_over_the_budget_wait_for_the_next_pass(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/later.xml", Reply(body=rss(items(2, "later")).encode()))
    settings = make_settings(tmp_path, server, ["/later.xml"])
    run_id = new_run_id()
    poll_stage(settings, run_id, now=NOW)
    processed = process_stage(settings, run_id, deadline=time.monotonic())  # already spent
    load_stage(settings, run_id)
    assert (processed.deferred, processed.rejected, processed.retry) == (2, 0, 0)
    with duckdb.connect(str(settings.database), read_only=True) as con:
        rows = con.execute("SELECT status, attempts FROM entries").fetchall()
        rejected = con.execute("SELECT count(*) FROM rejected").fetchone()
    assert rows == [("retry", 0), ("retry", 0)]  # no attempt counted
    assert rejected == (0,)


# -- the whole pass through the CLI ----------------------------------------------------------


def test_one_broken_feed_among_good_ones_the_pass_exits_0(
    tmp_path: Path, server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in (1, 2):
        server.route(f"/good{n}/a.html", Reply(body=article(f"Talks resume, report {n}",
                                                            day="Tuesday").encode(),
                                               content_type="text/html; charset=utf-8"))
        server.route(f"/good{n}.xml", Reply(body=rss([{
            "title": f"Talks resume, report {n}", "link": server.url(f"/good{n}/a.html"),
            "guid": f"good-{n}"}]).encode()))
    server.route("/broken.xml", Reply(body=b"<html><body>Not a feed</body></html>",
                                      content_type="text/html"))
    config = tmp_path / "newsmon.yaml"
    config.write_text(json.dumps({
        "database": "news.duckdb",
        "feeds": [{"url": server.url(p)} for p in ("/good1.xml", "/broken.xml", "/good2.xml")],
        "fetch": {"allow_private": [server.host_port]}, "process": {"workers": 1},
    }), encoding="utf-8")
    assert main(["run", "--once", "--quiet", "--config", str(config)]) == 0
    assert "polled 3 feed(s) (1 failed)" in capsys.readouterr().out
    with duckdb.connect(str(tmp_path / "news.duckdb"), read_only=True) as con:
        titles = sorted(r[0] for r in con.execute("SELECT title FROM articles").fetchall())
        errors = con.execute("SELECT url, last_error FROM feeds WHERE last_error IS NOT NULL"
                             ).fetchall()
    assert titles == ["Talks resume, report 1", "Talks resume, report 2"]
    assert errors == [(server.url("/broken.xml"), "got an HTML page where a feed was expected")]


# -- the feed registry -----------------------------------------------------------------------


def test_added_and_imported_feeds_are_polled_and_listed(
    tmp_path: Path, server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route("/cfg.xml", Reply(body=rss(items(1, "cfg")).encode()))
    server.route("/added.xml", Reply(body=rss(items(1, "added"), title="Added Wire").encode()))
    server.route("/opml1.xml", Reply(body=rss(items(1, "o1")).encode()))
    config = tmp_path / "newsmon.yaml"
    config.write_text(json.dumps({
        "database": "news.duckdb", "feeds": [{"url": server.url("/cfg.xml")}],
        "fetch": {"allow_private": [server.host_port]},
    }), encoding="utf-8")
    opml = tmp_path / "subs.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head/><body><outline text="folder">'
        f'<outline text="One" xmlUrl="{server.url("/opml1.xml")}"/>'
        f'<outline text="Cfg again" xmlUrl="{server.url("/cfg.xml")}"/>'
        "</outline></body></opml>", encoding="utf-8")
    cfg = ["--config", str(config)]
    assert main(["feeds", "add", server.url("/added.xml"), "--name", "Mine", *cfg]) == 0
    assert main(["feeds", "import", str(opml), *cfg]) == 0
    assert main(["feeds", "add", server.url("/added.xml"), *cfg]) == 2  # already there
    out = capsys.readouterr()
    assert "added 1 feed(s), skipped 1" in out.out
    assert "already in the config file" in out.err and "was already added" in out.err

    from pipeline.config import load_settings

    summary, _ = poll(load_settings(config))
    assert (summary.feeds_polled, summary.entries_new) == (3, 3)
    assert main(["feeds", "--json", *cfg]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(f["url"].rsplit("/", 1)[1], f["origin"], f["name"], f["status"]) for f in listed] == [
        ("cfg.xml", "config", "Test Wire", "active"),
        ("added.xml", "added", "Mine", "active"),
        ("opml1.xml", "added", "One", "active"),
    ]
    assert main(["feeds", "export", *cfg]) == 0
    exported = capsys.readouterr().out
    assert exported.count("<outline ") == 3 and 'xmlUrl="' + server.url("/added.xml") in exported


def test_feeds_lists_the_moved_address(
    tmp_path: Path, server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route("/list-old.xml", Reply(status=301, headers={"Location": "/list-new.xml"}))
    server.route("/list-new.xml", Reply(body=rss(items(1, "ln")).encode()))
    config = tmp_path / "newsmon.yaml"
    config.write_text(json.dumps({
        "database": "news.duckdb", "feeds": [{"url": server.url("/list-old.xml")}],
        "fetch": {"allow_private": [server.host_port]},
    }), encoding="utf-8")
    from pipeline.config import load_settings

    poll(load_settings(config))
    assert main(["feeds", "--json", "--config", str(config)]) == 0
    (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert listed["fetch_url"] == server.url("/list-new.xml")
    assert (listed["status"], listed["errors"], listed["last_error"]) == ("active", 0, None)
