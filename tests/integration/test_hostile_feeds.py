"""Hostile and broken inputs above the HTTP layer, through the real stages against
a real server on 127.0.0.1: XML attacks, broken feeds, pathological inputs
under the parse and extraction time limits, charsets, and pages that are not
HTML. Every refusal has its own reason; nothing else in the pass suffers."""

# Russian test text: its Cyrillic letters are meant, not look-alikes.
# ruff: noqa: RUF001

from __future__ import annotations

import functools
import io
import operator
import os
import signal
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import feedparser
import pytest
from support.factories import skip_processing
from support.feedserver import FeedServer, Reply, article, rss
from support.settings import feed_settings as make_settings

from pipeline.config import Settings, parse_settings
from pipeline.models import FeedEntry, FetchedPage, Rejection, TaggedArticle
from pipeline.process import Processor
from pipeline.run import PassResult, load_stage, new_run_id, poll_stage, run_pass
from pipeline.sources.parsing import parse_feed
from pipeline.stages import record_outcome
from pipeline.store import staging
from pipeline.workers import TimeLimitExceeded, WorkerDied, WorkerPool, stop_fork_server

NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def poll(settings: Settings) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """One poll stage and its load: the staged new entries, and the feeds rows by path."""
    run_id = new_run_id()
    poll_stage(settings, run_id, now=NOW, force=True)
    polled = list(staging.read(staging.run_dir(settings.staging, run_id), "polled"))
    skip_processing(settings, run_id)
    load_stage(settings, run_id)
    with duckdb.connect(str(settings.database), read_only=True) as con:
        cursor = con.execute("SELECT * FROM feeds")
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
    return polled, {r["url"].rsplit("/", 1)[1]: r for r in rows}


def rejected(settings: Settings) -> dict[str, str]:
    with duckdb.connect(str(settings.database), read_only=True) as con:
        return dict(con.execute("SELECT url, reason FROM rejected").fetchall())


# -- XML attacks ------------------------------------------------------------------------------


def test_external_entities_never_read_a_local_file(tmp_path: Path, server: FeedServer) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-42", encoding="utf-8")
    body = (f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "file://{secret}">\n'
            f'<!ENTITY % dtd SYSTEM "file://{secret}">\n%dtd;\n]>\n'
            '<rss version="2.0"><channel><title>Wire &xxe;</title>'
            "<item><title>A &xxe;</title><link>http://127.0.0.1:9/a</link>"
            "<description>&xxe;</description><guid>xxe-1</guid></item></channel></rss>")
    server.route("/xxe.xml", Reply(body=body.encode()))
    settings = make_settings(tmp_path, server, ["/xxe.xml"])
    polled, feeds = poll(settings)
    everything = repr(polled) + repr(feeds) + repr(rejected(settings))
    assert "TOP-SECRET" not in everything
    assert [e["url"] for e in polled] == ["http://127.0.0.1:9/a"]  # the entry itself is kept


def _billion_laughs() -> bytes:
    levels = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
    return (f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY lol0 "lol">\n{levels}]>\n'
            '<rss version="2.0"><channel><title>&lol9;</title><item><title>&lol9;</title>'
            "<link>http://127.0.0.1:9/lol</link><guid>lol</guid></item></channel></rss>").encode()


def test_billion_laughs_finishes_quickly_without_expanding(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/lol.xml", Reply(body=_billion_laughs()))
    settings = make_settings(tmp_path, server, ["/lol.xml"])
    started = time.monotonic()
    polled, _ = poll(settings)
    assert time.monotonic() - started < 3
    assert "lollol" not in repr(polled)


def test_billion_laughs_parses_in_bounded_memory() -> None:
    tracemalloc.start()
    try:
        parsed = parse_feed(_billion_laughs(), url="http://x.org/f", name="x", max_entries=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20  # fully expanded, &lol9; alone is 3 GB
    assert all(len(e.title) < 100 for e in parsed.entries)


# -- broken feeds -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reply", "reason"),
    [
        ("/page-not-feed.xml", Reply(body=article("A page").encode(), content_type="text/html"),
         "got an HTML page where a feed was expected"),
        ("/page-as-xml.xml", Reply(body=article("A page").encode()),
         "got an HTML page where a feed was expected"),
        ("/empty.xml", Reply(body=b""), "empty response body (expected an RSS or Atom feed)"),
        ("/json.xml", Reply(body=b'{"items": []}', content_type="application/json"),
         "not an RSS or Atom feed"),
    ],
    ids=["html", "html-labelled-as-rss", "empty", "json"],
)
def test_not_a_feed_gets_a_clear_reason(
    tmp_path: Path, server: FeedServer, path: str, reply: Reply, reason: str
) -> None:
    server.route(path, reply)
    settings = make_settings(tmp_path, server, [path])
    polled, feeds = poll(settings)
    row = feeds[path.lstrip("/")]
    assert polled == []
    assert row["last_error"].startswith(reason)
    assert row["error_count"] == 2  # hard


def test_truncated_feed_keeps_only_complete_entries(tmp_path: Path, server: FeedServer) -> None:
    whole = rss([{"title": f"t{i}", "link": f"http://127.0.0.1:9/t{i}", "guid": f"t{i}",
                  "description": f"summary number {i}, complete"} for i in range(3)])
    cut = whole[:whole.index("summary number 2") + len("summary num")]  # inside entry 3
    server.route("/truncated.xml", Reply(body=cut.encode()))
    settings = make_settings(tmp_path, server, ["/truncated.xml"])
    polled, feeds = poll(settings)
    assert [(e["title"], e["summary"]) for e in polled] == [
        ("t0", "summary number 0, complete"), ("t1", "summary number 1, complete")]
    row = feeds["truncated.xml"]
    assert row["last_error"].startswith("feed is truncated (")
    assert row["last_error"].endswith("kept the 2 complete entries, dropped 1 cut off")
    assert row["error_count"] == 1 and row["content_hash"] is None  # parsed again next time
    assert rejected(settings) == {
        "http://127.0.0.1:9/t2": "entry cut off: the feed ends inside it (truncated feed)"}
    # entries_seen counts the feed's recorded entries: a whole pass records the
    # two complete ones (their pages fail here), never the one cut off.
    run_pass(settings, force=True)
    with duckdb.connect(str(settings.database), read_only=True) as con:
        seen = con.execute("SELECT entries_seen FROM feeds").fetchall()
        rows = con.execute("SELECT id FROM entries").fetchall()
        ids = sorted(r[0].rsplit("/", 1)[-1] for r in rows)
    assert seen == [(2,)] and ids == ["t0", "t1"]


def test_malformed_but_complete_feed_keeps_every_entry(
    tmp_path: Path, server: FeedServer
) -> None:
    # Not well-formed XML (an HTML entity, an unescaped ampersand), but every
    # entry is closed: feedparser's lenient parser reads it all.
    body = rss([{"title": "a", "link": "http://127.0.0.1:9/m0", "guid": "m0"},
                {"title": "b", "link": "http://127.0.0.1:9/m1", "guid": "m1"}])
    body = body.replace("<title>a</title>", "<title>a&nbsp;b & c</title>")
    server.route("/malformed.xml", Reply(body=body.encode()))
    settings = make_settings(tmp_path, server, ["/malformed.xml"])
    polled, feeds = poll(settings)
    assert feedparser.parse(io.BytesIO(body.encode())).bozo  # it is malformed
    assert [e["url"] for e in polled] == ["http://127.0.0.1:9/m0", "http://127.0.0.1:9/m1"]
    assert feeds["malformed.xml"]["last_error"] is None


def test_a_pathological_feed_is_cut_by_the_parse_timeout(
    tmp_path: Path, server: FeedServer
) -> None:
    # feedparser's author e-mail regex (mixin.py, _sync_author_detail) is
    # worse than quadratic: these 40 kB would keep it busy for 13 s.
    evil = rss([{"title": "x", "link": "http://127.0.0.1:9/x", "guid": "x",
                 "author": "@" + "a." * 20000}])
    server.route("/redos.xml", Reply(body=evil.encode()))
    server.route("/after-redos.xml", Reply(body=rss([{
        "title": "fine", "link": "http://127.0.0.1:9/fine", "guid": "fine"}]).encode()))
    settings = make_settings(tmp_path, server, ["/redos.xml", "/after-redos.xml"],
                             fetch={"parse_timeout": 1.0})
    started = time.monotonic()
    polled, feeds = poll(settings)
    assert time.monotonic() - started < 4
    assert feeds["redos.xml"]["last_error"] == "parsing the feed took longer than 1 s; gave up"
    assert [e["title"] for e in polled] == ["fine"]


def test_a_timed_out_worker_is_killed_and_replaced() -> None:
    with WorkerPool(operator.call, workers=1) as pool:
        first = pool.call(os.getpid, timeout=10)
        with pytest.raises(TimeLimitExceeded):
            pool.call(functools.partial(time.sleep, 30), timeout=0.2)
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)  # gone (and reaped), not left running
        assert pool.call(os.getpid, timeout=10) != first


# -- feed charsets ----------------------------------------------------------------------------

RUSSIAN_TITLE = "Переговоры о выводе войск продолжатся в Москве"


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/cp1251-header.xml",
         rss([{"title": RUSSIAN_TITLE, "link": "http://127.0.0.1:9/r1", "guid": "r1"}],
             encoding=None).encode("cp1251"), "application/rss+xml; charset=windows-1251"),
        ("/utf8-bom.xml", b"\xef\xbb\xbf" + rss([{
            "title": RUSSIAN_TITLE, "link": "http://127.0.0.1:9/r2", "guid": "r2"}],
            encoding=None).encode("utf-8"), "application/rss+xml"),
        ("/iso-8859-5.xml", rss([{
            "title": RUSSIAN_TITLE, "link": "http://127.0.0.1:9/r3", "guid": "r3"}],
            encoding="iso-8859-5").encode("iso8859_5"), "application/xml"),
    ],
    ids=["undeclared-windows-1251-with-http-charset", "utf-8-with-bom", "declared-iso-8859-5"],
)
def test_feed_charsets_come_out_as_text(
    tmp_path: Path, server: FeedServer, path: str, body: bytes, content_type: str
) -> None:
    server.route(path, Reply(body=body, content_type=content_type))
    settings = make_settings(tmp_path, server, [path])
    polled, _ = poll(settings)
    assert [e["title"] for e in polled] == [RUSSIAN_TITLE]


# -- pages: one whole pass in pool mode -------------------------------------------------------

RUSSIAN = (
    "Министерство иностранных дел России заявило в понедельник, что переговоры с Израилем "
    "о выводе иностранных войск из Сирии продолжатся на следующей неделе в Москве.",
    "По словам дипломатов, рабочая группа обсудит сроки и порядок контроля за выполнением "
    "договорённостей, а также роль международных наблюдателей.",
    "Эксперты напоминают, что прежние соглашения такого рода распадались уже через "
    "несколько недель после их объявления.",
    "Официальные представители обеих стран отказались назвать точную дату следующей "
    "встречи, сославшись на необходимость дополнительных консультаций.",
)
POLISH = (
    "Rozmowy w sprawie wycofania obcych wojsk z Syrii będą kontynuowane w przyszłym "
    "tygodniu w Moskwie, poinformowało w poniedziałek ministerstwo spraw zagranicznych.",
    "Według dyplomatów grupa robocza omówi harmonogram oraz sposób nadzoru nad wykonaniem "
    "porozumienia, a także rolę międzynarodowych obserwatorów.",
    "Eksperci przypominają, że wcześniejsze porozumienia tego rodzaju rozpadały się już "
    "po kilku tygodniach od ich ogłoszenia.",
    "Przedstawiciele obu państw odmówili podania dokładnej daty kolejnego spotkania, "
    "powołując się na potrzebę dalszych konsultacji.",
)
EXTRACT_TIMEOUT = 2.0


def _page(title: str, paragraphs: tuple[str, ...], *, head: str = "", lang: str) -> str:
    body = "".join(f"<p>{p}</p>\n" for p in paragraphs)
    return (f'<!DOCTYPE html>\n<html lang="{lang}"><head>{head}<title>{title}</title></head>\n'
            f"<body><article><h1>{title}</h1>\n{body}</article></body></html>\n")


def _slow_page() -> bytes:
    # ~4 MB of paragraphs: trafilatura needs about 18 s (measured: 2.5 MB, 10.7 s).
    filler = "".join(f"<div><p>Paragraph {i} with some words about the talks.</p></div>"
                     for i in range(50000))
    return article("A very long page", extra=filler).encode()


PAGES: dict[str, tuple[bytes, str]] = {
    "/p/ru-meta.html": (_page("Переговоры в Москве", RUSSIAN, lang="ru",
                              head='<meta charset="windows-1251">').encode("cp1251"),
                        "text/html"),
    "/p/ru-header.html": (_page("Переговоры продолжатся", RUSSIAN, lang="ru").encode("cp1251"),
                          "text/html; charset=windows-1251"),
    "/p/pl-header.html": (_page("Rozmowy w Moskwie", POLISH, lang="pl").encode("iso8859_2"),
                          "text/html; charset=iso-8859-2"),
    "/p/pdf.html": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "text/html"),
    "/p/json.html": (b'{"headline": "not a page"}', "text/html"),
    "/p/octet.html": (article("Served as octet-stream").encode(), "application/octet-stream"),
    "/p/slow.html": (_slow_page(), "text/html; charset=utf-8"),
}


@pytest.fixture(scope="module")
def page_pass(
    server: FeedServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, PassResult]:
    for path, (body, content_type) in PAGES.items():
        server.route(path, Reply(body=body, content_type=content_type))
    server.route("/pages.xml", Reply(body=rss([
        {"title": path, "link": server.url(path), "guid": path} for path in PAGES]).encode()))
    settings = make_settings(tmp_path_factory.mktemp("pages"), server, ["/pages.xml"],
                             process={"extract_timeout": EXTRACT_TIMEOUT})
    return settings, run_pass(settings, workers=2)  # pool mode


def _articles(settings: Settings) -> dict[str, tuple[str, str]]:
    with duckdb.connect(str(settings.database), read_only=True) as con:
        rows = con.execute("SELECT url, title, text FROM articles").fetchall()
    return {url.split("/p/")[1]: (title, text) for url, title, text in rows}


@pytest.mark.parametrize(
    ("page", "title", "first_line"),
    [
        ("ru-meta.html", "Переговоры в Москве", RUSSIAN[0]),
        ("ru-header.html", "Переговоры продолжатся", RUSSIAN[0]),
        ("pl-header.html", "Rozmowy w Moskwie", POLISH[0]),  # trafilatura alone: ISO-8859-1
    ],
)
def test_page_charsets_come_out_as_text(
    page_pass: tuple[Settings, PassResult], page: str, title: str, first_line: str
) -> None:
    stored_title, text = _articles(page_pass[0])[page]
    assert stored_title == title
    assert text.splitlines()[0] == first_line


def test_html_served_as_octet_stream_is_extracted(
    page_pass: tuple[Settings, PassResult]
) -> None:
    assert _articles(page_pass[0])["octet.html"][0] == "Served as octet-stream"


@pytest.mark.parametrize(("page", "reason"), [
    ("pdf.html", "not HTML: the body is a PDF document"),
    ("json.html", "not HTML: the body is JSON"),
    ("slow.html", f"extraction took longer than {EXTRACT_TIMEOUT:g} s"),
])
def test_pages_that_are_not_articles_are_rejected_with_their_reason(
    server: FeedServer, page_pass: tuple[Settings, PassResult], page: str, reason: str
) -> None:
    assert rejected(page_pass[0])[server.url(f"/p/{page}")] == reason


def test_the_pass_counts_every_page(page_pass: tuple[Settings, PassResult]) -> None:
    result = page_pass[1]
    assert (result.process.articles, result.process.rejected, result.process.deferred) == (4, 3, 0)


# -- the extraction limit in the one-worker mode --------------------------------------------


def test_extraction_time_limit_holds_with_one_worker(tmp_path: Path) -> None:
    settings = parse_settings({"database": str(tmp_path / "news.duckdb"),
                               "process": {"extract_timeout": EXTRACT_TIMEOUT}})

    def fetched(url: str, body: bytes) -> FetchedPage:
        entry = FeedEntry(id=url, feed_url="http://127.0.0.1:9/f", feed_name="F", url=url,
                          title="", summary="", published_at=None)
        return FetchedPage(entry=entry, url=url, status=200, content_type="text/html",
                           body=body, fetched_at=NOW)

    pages = [fetched("http://127.0.0.1:9/ok", article("Talks resume").encode()),
             fetched("http://127.0.0.1:9/slow", _slow_page())]
    started = time.monotonic()
    with Processor(settings, workers=1) as processor:
        ok, slow = processor.map(pages)
    assert time.monotonic() - started < 15
    assert isinstance(ok, TaggedArticle) and ok.article.title == "Talks resume"
    assert isinstance(slow, Rejection)
    assert slow.reason == f"extraction took longer than {EXTRACT_TIMEOUT:g} s"


def _grandchildren() -> set[int]:
    """The processes two levels below this one: the forkserver's workers."""
    def children(pid: int) -> set[int]:
        found = set()
        for task in Path(f"/proc/{pid}/task").iterdir():
            found |= {int(c) for c in (task / "children").read_text().split()}
        return found
    return {g for c in children(os.getpid()) for g in children(c)}


def _slow_extraction(tmp_path: Path) -> tuple[Settings, FetchedPage]:
    """Settings allowing 120 s an extraction, and a page that takes ~18 s."""
    settings = parse_settings({"database": str(tmp_path / "news.duckdb"),
                               "process": {"extract_timeout": 120}})
    entry = FeedEntry(id="slow", feed_url="http://127.0.0.1:9/f", feed_name="F",
                      url="http://127.0.0.1:9/slow", title="", summary="", published_at=None)
    slow = FetchedPage(entry=entry, url=entry.url, status=200, content_type="text/html",
                       body=_slow_page(), fetched_at=NOW)
    return settings, slow


def test_a_worker_killed_from_outside_leaves_its_page_to_retry(tmp_path: Path) -> None:
    """The OOM killer (or an operator's kill -9) ends an extraction worker in
    the middle of a page: not the page's fault, so the page is tried again on
    a later pass (transient, like a timeout while fetching), not rejected for
    good; the next page gets a fresh worker."""
    settings, slow = _slow_extraction(tmp_path)
    entry = slow.entry
    with Processor(settings, workers=1) as processor:
        processor.start()
        before = _grandchildren()
        assert before, "no extraction worker started"
        with ThreadPoolExecutor(1) as thread:
            result = thread.submit(processor.process, slow)
            time.sleep(1.0)  # inside trafilatura (about 18 s for this page)
            assert not result.done()
            for pid in before:
                os.kill(pid, signal.SIGKILL)
            killed = result.result(timeout=30)
        assert isinstance(killed, Rejection) and killed.transient
        assert killed.reason.startswith("extraction crashed its worker: worker process died")
        again = processor.process(replace(slow, body=article("Talks resume").encode()))
        assert isinstance(again, TaggedArticle)
        assert _grandchildren().isdisjoint(before)
    tries: dict[str, int] = {"entries": 0, "articles": 0, "rejected": 0, "retry": 0}
    staged: list[tuple[str, dict[str, Any]]] = []

    class Sink:
        def write(self, kind: staging.Kind, record: dict[str, Any]) -> None:
            staged.append((kind, record))

    record_outcome(Sink(), entry, killed, 1, tries, NOW)
    assert tries["retry"] == 1 and tries["rejected"] == 0
    assert [r["status"] for kind, r in staged if kind == "entries"] == ["retry"]


def test_an_abort_ends_the_workers_start_and_a_page_under_way_at_once(tmp_path: Path) -> None:
    """Ctrl-C or SIGTERM in a pass (pipeline.stream): before, the way out
    waited for the workers to finish starting (each builds its tagger, one
    after the other: 5-6 s) and for a page under way (up to its limit, 120 s
    here; about 18 s for this page). Killed, each thread waiting on a worker
    returns at once, and no worker is left."""
    settings, slow = _slow_extraction(tmp_path)
    with ThreadPoolExecutor(1) as thread:
        with Processor(settings, workers=3) as processor:
            starting = thread.submit(processor.start)
            deadline = time.monotonic() + 60
            while not (workers := _grandchildren()):  # the first one forked: it starts
                assert time.monotonic() < deadline and not starting.done()
                time.sleep(0.01)
            aborted = time.monotonic()
            processor.abort()
            stop_fork_server()
            with pytest.raises(WorkerDied):
                starting.result(timeout=30)
            processor.close()
            assert time.monotonic() - aborted < 1.5
        # The fork server is gone, so its workers are no longer grandchildren.
        assert not _alive(*workers)

        with Processor(settings, workers=1) as processor:
            processor.start()
            workers = _grandchildren()
            page = thread.submit(processor.process, slow)
            time.sleep(1.0)  # inside trafilatura
            assert not page.done()
            aborted = time.monotonic()
            processor.abort()
            outcome = page.result(timeout=30)
            processor.close()
            assert time.monotonic() - aborted < 1.5
        assert workers and not _alive(*workers)
    # Not the page's fault: tried again on the next pass, were it recorded (a
    # pass cancels its tasks first, so it records none).
    assert isinstance(outcome, Rejection) and outcome.transient


def _alive(*pids: int) -> list[int]:
    """Those of ``pids`` that still run a moment later (SIGKILL takes a few
    milliseconds; a zombie is dead, its parent gone too)."""
    def running(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 1
    while (left := [pid for pid in pids if running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left
