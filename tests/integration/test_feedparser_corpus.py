"""feedparser's own 2,107 test feeds, served from 127.0.0.1 with their
``Header:`` lines as real response headers and polled in one pass through the
real poll stage (``poll_stage``, what ``newsmon run`` polls with), then loaded.

Every difference between the entries newsmon keeps from a feed and
``len(feedparser.parse(bytes).entries)`` on the same response must be one of
the rules below, each recorded with its reason: a ``rejected`` row per entry
or the feed's ``last_error`` (README, *Feeds: what is read and what is
refused*).
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import feedparser
import httpx
import pytest
from support.corpus import ARCHIVE, CorpusFile, corpus_files, response_headers, serve, unpack
from support.factories import skip_processing
from support.feedserver import FeedServer

from pipeline.config import parse_settings
from pipeline.run import PollSummary, load_stage, new_run_id, poll_stage
from pipeline.store import staging

# The documented rules: why an entry feedparser returns is not kept (a
# ``rejected`` row, stage ``poll``) ...
ENTRY_RULES = {
    "no link": re.compile(r"entry has no link to an article\Z"),
    "link not http(s)": re.compile(r"entry link is not http\(s\): "),
    "link too long": re.compile(r"entry link is longer than \d+ characters\Z"),
    "duplicate id": re.compile(r"duplicate entry id: "),
    "cut off": re.compile(r"entry cut off: the feed ends inside it \(truncated feed\)\Z"),
}
# ... and why a whole feed gives nothing (its ``last_error``; a truncated feed
# keeps its complete entries and says so).
FEED_RULES = {
    "unknown root": re.compile(r"not an RSS or Atom feed: the root element is <[\w.-]+> "),
    "not a feed": re.compile(r"not an RSS or Atom feed: .+"),
    "html page": re.compile(r"got an HTML page where a feed was expected\Z"),
    "empty body": re.compile(r"empty response body \(expected an RSS or Atom feed\)\Z"),
    "too large": re.compile(r"body larger than "),
}
# Only these may refuse a document in which feedparser finds entries; the
# others must agree with it that there are none.
REFUSE_ENTRIES = {"unknown root", "html page", "too large"}
TRUNCATED = re.compile(r"feed is truncated \(.+\): kept the \d+ complete entries, "
                       r"dropped \d+ cut off\Z")
MAX_ENTRIES = 200  # fetch.max_entries_per_feed, the default


@dataclass(frozen=True, slots=True, kw_only=True)
class CorpusPass:
    files: list[CorpusFile]
    urls: dict[str, str]  # file path -> feed URL
    summary: PollSummary
    seconds: float
    polled: dict[str, int]  # feed URL -> entries kept
    rejected: dict[str, list[dict[str, Any]]]  # feed URL -> its staged rejections
    updates: dict[str, dict[str, Any]]  # feed URL -> its staged new state
    table_rejected: set[tuple[str, str, str]]  # (url, stage, reason) after the load
    table_errors: dict[str, str | None]  # feeds.url -> last_error after the load
    records: list[logging.LogRecord]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[CorpusFile]:
    if not ARCHIVE.exists():
        pytest.skip(f"feedparser's test feeds are not at {ARCHIVE}")
    return corpus_files(unpack(ARCHIVE, tmp_path_factory.mktemp("feedparser-tests")))


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def corpus_pass(corpus: list[CorpusFile],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusPass]:
    tmp = tmp_path_factory.mktemp("corpus-pass")
    collect = _Collect()
    logging.getLogger("pipeline").addHandler(collect)
    try:
        with FeedServer() as server:
            serve(server, corpus)
            urls = {f.path: server.url(f.path) for f in corpus}
            settings = parse_settings({
                "database": str(tmp / "news.duckdb"), "staging_dir": str(tmp / "staging"),
                "outbox_dir": str(tmp / "outbox"),
                "feeds": [{"url": url} for url in urls.values()],
                "fetch": {"allow_private": [server.host_port],
                          "max_entries_per_feed": MAX_ENTRIES},
            })
            run_id = new_run_id()
            started = time.monotonic()
            summary = poll_stage(settings, run_id, force=True)
            seconds = time.monotonic() - started
            directory = staging.run_dir(settings.staging, run_id)
            polled = Counter(r["feed_url"] for r in staging.read(directory, "polled"))
            rejected: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in staging.read(directory, "rejected"):
                rejected[r["feed_url"]].append(r)
            updates = {r["url"]: r for r in staging.read(directory, "feeds")}
            skip_processing(settings, run_id)  # the poll alone is under test
            load_stage(settings, run_id)
    finally:
        logging.getLogger("pipeline").removeHandler(collect)
    with duckdb.connect(str(settings.database), read_only=True) as con:
        table_rejected = {(str(u), str(s), str(r)) for u, s, r in con.execute(
            "SELECT url, stage, reason FROM rejected").fetchall()}
        table_errors = dict(con.execute("SELECT url, last_error FROM feeds").fetchall())
    yield CorpusPass(files=corpus, urls=urls, summary=summary, seconds=seconds,
                     polled=dict(polled), rejected=dict(rejected), updates=updates,
                     table_rejected=table_rejected, table_errors=table_errors,
                     records=collect.records)


def feedparser_count(file: CorpusFile) -> int:
    """feedparser's own reading of the same response (bytes and headers)."""
    parsed = feedparser.parse(io.BytesIO(file.body), response_headers=response_headers(file))
    return len(parsed.entries)


def rule_of(reason: str, rules: dict[str, re.Pattern[str]]) -> str | None:
    return next((name for name, rule in rules.items() if rule.match(reason)), None)


def test_every_file_is_served_with_its_headers(corpus: list[CorpusFile]) -> None:
    assert len(corpus) == 2107
    with FeedServer() as server:
        serve(server, corpus)
        with httpx.Client() as client:
            etag = client.get(server.url("/tests/wellformed/http/headers_etag.xml"))
            typed = client.get(server.url("/tests/encoding/http_text_xml_charset_2.xml"))
            plain = client.get(server.url("/tests/wellformed/rss/channel_title.xml"))
    assert etag.status_code == 200 and etag.headers["etag"] == "foo"
    assert typed.headers["content-type"] == "text/xml; charset=windows-1252"
    assert plain.headers["content-type"] == "application/xml"
    (channel_title,) = [f for f in corpus if f.path == "/tests/wellformed/rss/channel_title.xml"]
    assert plain.content == channel_title.body


def test_one_pass_polls_every_file_without_a_traceback(corpus_pass: CorpusPass) -> None:
    summary = corpus_pass.summary
    assert (summary.feeds_polled, summary.feeds_deferred) == (2107, 0)
    assert corpus_pass.seconds < 60, f"the pass took {corpus_pass.seconds:.1f} s"
    assert not [r for r in corpus_pass.records if r.exc_info or r.levelno >= logging.ERROR]
    crashed = [u for u, row in corpus_pass.updates.items()
               if (row["last_error"] or "").startswith(("the feed parser crashed", "parsing the"))]
    assert crashed == []
    # What was staged is what was loaded.
    assert {u: r["last_error"] for u, r in corpus_pass.updates.items()} == \
        corpus_pass.table_errors


def test_every_difference_from_feedparser_is_a_recorded_rule(corpus_pass: CorpusPass) -> None:
    unexplained = []
    tally: Counter[str] = Counter()
    for file in corpus_pass.files:
        url = corpus_pass.urls[file.path]
        expected = feedparser_count(file)
        assert expected <= MAX_ENTRIES  # the cap is not what is tested here
        kept = corpus_pass.polled.get(url, 0)
        rejected = corpus_pass.rejected.get(url, [])
        error = corpus_pass.updates[url]["last_error"]
        rules = [rule_of(r["reason"], ENTRY_RULES) for r in rejected]
        if None in rules:
            unexplained.append((file.path, "rejected for an undocumented reason",
                                [r["reason"] for r in rejected]))
            continue
        tally.update(r for r in rules if r is not None)
        if error is not None and not TRUNCATED.match(error):
            feed_rule = rule_of(error, FEED_RULES)
            if feed_rule is None or kept or rejected or (
                    expected and feed_rule not in REFUSE_ENTRIES):
                unexplained.append((file.path, error, kept, len(rejected)))
            tally[feed_rule or "?"] += expected
            continue
        if error is not None and "cut off" not in rules:
            unexplained.append((file.path, error, "truncated, yet no entry cut off"))
        if expected - kept != len(rejected):
            unexplained.append((file.path, f"feedparser {expected}, kept {kept}",
                                [r["reason"] for r in rejected]))
    assert unexplained == []
    # Every rule the corpus exercises is recorded as a row, not only staged.
    for rows in corpus_pass.rejected.values():
        for r in rows:
            assert (r["url"], "poll", r["reason"]) in corpus_pass.table_rejected
    # No file lists one article twice (the duplicate rule's tests are in
    # test_feed_parsing.py and test_poll.py); see the next test.
    assert tally["no link"] > 1000 and tally["cut off"] >= 1
    assert tally["duplicate id"] == 0


def test_one_id_given_to_two_links_is_two_entries_and_said(corpus_pass: CorpusPass) -> None:
    """node_precedence/atom10_id.xml: feedparser gives both entries the id
    "Correct Value", and the second a link of its own (from an ``<image>``'s
    ``<id>``). Two links under one id are two articles: both are kept, and
    the poll says the feed reuses an id, once."""
    url = corpus_pass.urls["/tests/wellformed/node_precedence/atom10_id.xml"]
    assert (corpus_pass.polled.get(url), corpus_pass.rejected.get(url)) == (2, None)
    reused = [r for r in corpus_pass.records
              if r.msg.startswith("feed %s gives one GUID to different articles")]
    assert [(r.levelno, r.__dict__["feed"]) for r in reused] == [(logging.WARNING, url)]


def test_cdf_feeds_are_read(corpus_pass: CorpusPass) -> None:
    cdf = [f.path for f in corpus_pass.files if "/cdf/" in f.path or "/cdf_" in f.path]
    assert len(cdf) == 15
    errors = {p: corpus_pass.updates[corpus_pass.urls[p]]["last_error"] for p in cdf}
    assert errors == dict.fromkeys(cdf)
    link = corpus_pass.urls["/tests/wellformed/cdf/item_href_map_link.xml"]
    assert corpus_pass.polled.get(link) == 1


def test_feeds_that_fail_say_exactly_why(corpus_pass: CorpusPass) -> None:
    failed = {p: corpus_pass.updates[u]["last_error"] for p, u in corpus_pass.urls.items()
              if corpus_pass.updates[u]["last_error"]
              and not TRUNCATED.match(corpus_pass.updates[u]["last_error"])}
    assert failed == {
        "/tests/illformed/rss_empty_document.xml":
            "not an RSS or Atom feed: <unknown>:6:0: no element found",
        "/tests/json/example.json":
            "not an RSS or Atom feed: the body is JSON (JSON Feed is not read)",
    }
    messages = [r.getMessage() for r in corpus_pass.records if r.levelno == logging.WARNING]
    for path, reason in failed.items():
        assert f"feed failed: {corpus_pass.urls[path]}: {reason}" in messages
