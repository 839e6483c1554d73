"""A continuous run takes an edited config file, against real servers on
127.0.0.1 (feeds and pages; SMTP with aiosmtpd): feeds and rules added while
it runs are polled and alerted, an invalid edit or a new database path is a
warning and the run goes on, SIGHUP reads the file again."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from support.feedserver import FeedServer, Reply, rss
from support.smtp import Inbox
from support.stream import EVENTS, continuous, newsmon_run, next_line, page

from pipeline.config import load_settings

WAIT = 60.0  # seconds at most for what takes a few


class Logged(logging.Handler):
    """The reload's log lines, as the run's thread logs them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[str, str]] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.lines.append((record.levelname, record.getMessage()))
            self.changed.notify_all()

    def wait_for(self, text: str) -> tuple[str, str]:
        """The first line containing ``text``, once it is logged."""
        def found() -> list[tuple[str, str]]:
            return [line for line in self.lines if text in line[1]]

        with self.changed:
            assert self.changed.wait_for(found, timeout=WAIT), (text, self.lines)
            return found()[0]


class Loaded:
    """The articles the run's batches loaded, counted as they come."""

    def __init__(self) -> None:
        self.articles = 0
        self.changed = threading.Condition()

    def __call__(self, batch: Any) -> None:
        with self.changed:
            self.articles += batch.load.articles_new
            self.changed.notify_all()

    def wait_for(self, articles: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.articles >= articles, timeout=WAIT), (
                self.articles, articles)


@pytest.fixture
def logged() -> Iterator[Logged]:
    handler, logger = Logged(), logging.getLogger("pipeline.reload")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        for name, (title, text) in EVENTS.items():
            s.route(f"/{name}/1", Reply(body=page(title, text),
                                        content_type="text/html; charset=utf-8"))
            items = [{"title": title, "link": s.url(f"/{name}/1"), "guid": f"{name}-1"}]
            s.route(f"/{name}.xml", Reply(body=rss(items, title=name).encode()))
        yield s


def config(tmp_path: Path, server: FeedServer, names: list[str], **extra: Any
           ) -> dict[str, Any]:
    """A feed per event in ``names`` (each one report); default poll schedule:
    nothing is polled again within a test, unless a reload brings it."""
    return {"database": str(tmp_path / "news.duckdb"),
            "staging_dir": str(tmp_path / "staging"),
            "feeds": [{"url": server.url(f"/{name}.xml")} for name in names],
            "fetch": {"allow_private": [server.host_port]}, "process": {"workers": 1},
            **extra}


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    return path


@contextlib.contextmanager
def running(tmp_path: Path, data: dict[str, Any]
            ) -> Iterator[tuple[Path, Loaded, list[Any]]]:
    """A continuous run of the config ``data`` (written to newsmon.yaml), from
    its first article loaded: the file, the loads counted, and the run's
    result (there once the block ends)."""
    path = write(tmp_path / "newsmon.yaml", data)
    loaded = Loaded()
    with continuous(load_settings(path), loaded, config=path) as outcome:
        loaded.wait_for(1)
        yield path, loaded, outcome


def stored_urls(database: Path) -> set[str]:
    with duckdb.connect(str(database), read_only=True) as con:
        return {url for (url,) in con.execute("SELECT url FROM articles").fetchall()}


def test_a_feed_added_to_the_file_is_polled_and_loaded_without_a_restart(
    tmp_path: Path, server: FeedServer, logged: Logged
) -> None:
    with running(tmp_path, config(tmp_path, server, ["quake"])) as (path, loaded, outcome):
        write(path, config(tmp_path, server, ["quake", "match"]))
        # Within seconds, though the next look for due feeds is a minute away.
        loaded.wait_for(2)
    (result,) = outcome
    assert result.load.articles_new == 2
    assert ("INFO", f"config reloaded from {path}: feeds added: {server.url('/match.xml')}"
            ) in logged.lines
    assert stored_urls(tmp_path / "news.duckdb") == {server.url("/quake/1"),
                                                     server.url("/match/1")}
    assert server.hits["/quake.xml"] == 1  # not due again: a reload polls what is due


def test_an_alert_rule_added_to_the_file_gets_its_email_for_a_new_story(
    tmp_path: Path, server: FeedServer, smtp_server: Inbox, logged: Logged
) -> None:
    def publish(*names: str) -> None:
        items = [{"title": EVENTS[n][0], "link": server.url(f"/{n}/1"), "guid": f"{n}-1"}
                 for n in names]
        server.route("/news.xml", Reply(body=rss(items, title="news").encode()))

    publish("quake")
    settings = {**config(tmp_path, server, ["news"]), "smtp": {"url": smtp_server.url},
                # Polled again within seconds (the feed sends no caching hints).
                "poll": {"interval_minutes": 0.02, "min_interval_minutes": 0.01}}
    with running(tmp_path, settings) as (path, loaded, _):
        write(path, {**settings, "alerts": [
            {"name": "cup", "query": "penalty", "to": ["sport@example.org"]}]})
        logged.wait_for("alert rules added: cup")
        publish("quake", "match")
        loaded.wait_for(2)
    assert len(smtp_server.messages) == 1
    assert EVENTS["match"][0] in str(smtp_server.messages[0]["Subject"])
    assert smtp_server.envelopes[0][1] == ["sport@example.org"]


def test_an_invalid_edit_keeps_the_run_on_its_settings_until_a_fix(
    tmp_path: Path, server: FeedServer, logged: Logged
) -> None:
    with running(tmp_path, config(tmp_path, server, ["quake"])) as (path, loaded, outcome):
        broken = config(tmp_path, server, ["quake", "match"])
        broken["feeds"][1]["nmae"] = "typo"
        write(path, broken)
        level, warning = logged.wait_for("config not reloaded")
        assert level == "WARNING"
        assert warning.endswith(f"{path}: line 1: feeds[1].nmae: unknown key (a typo?)")
        assert not outcome  # still running
        write(path, config(tmp_path, server, ["quake", "match"]))
        logged.wait_for("(the error before is fixed): feeds added: "
                        f"{server.url('/match.xml')}")
        loaded.wait_for(2)
    assert [line for line in logged.lines if line[0] == "WARNING"] == [("WARNING", warning)]
    assert server.hits["/match.xml"] == 1  # polled once, after the fix


def test_a_new_database_path_waits_for_a_restart_and_the_rest_is_taken(
    tmp_path: Path, server: FeedServer, logged: Logged
) -> None:
    with running(tmp_path, config(tmp_path, server, ["quake"])) as (path, loaded, _):
        write(path, config(tmp_path, server, ["quake", "match"],
                           database=str(tmp_path / "other.duckdb")))
        assert logged.wait_for("cannot change while newsmon runs") == (
            "WARNING", f"{path}: database cannot change while newsmon runs: the run goes on "
                       "with the values it started with, the new ones take effect after a "
                       "restart")
        loaded.wait_for(2)
    assert stored_urls(tmp_path / "news.duckdb") == {server.url("/quake/1"),
                                                     server.url("/match/1")}
    assert not (tmp_path / "other.duckdb").exists()


def test_a_shorter_poll_schedule_is_taken_by_feeds_already_scheduled(
    tmp_path: Path, server: FeedServer, logged: Logged
) -> None:
    # The feed's next poll, once the first article is loaded: 15 minutes away.
    with running(tmp_path, config(tmp_path, server, ["quake"])) as (path, _, _):
        write(path, config(tmp_path, server, ["quake"], poll={
            "interval_minutes": 0.01, "min_interval_minutes": 0.01,
            "max_interval_minutes": 0.02}))
        logged.wait_for("changed: poll.interval_minutes, poll.max_interval_minutes, "
                        "poll.min_interval_minutes")
        deadline = time.monotonic() + WAIT
        while server.hits["/quake.xml"] < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert server.hits["/quake.xml"] >= 3  # at once, then every second or so


def test_a_host_newly_allowed_in_the_fetch_limits_is_fetched_from(
    tmp_path: Path, server: FeedServer, logged: Logged
) -> None:
    with FeedServer(host="127.0.0.2") as other:
        title, text = EVENTS["rates"]
        other.route("/rates/1", Reply(body=page(title, text),
                                      content_type="text/html; charset=utf-8"))
        items = [{"title": title, "link": other.url("/rates/1"), "guid": "rates-1"}]
        other.route("/rates.xml", Reply(body=rss(items, title="rates").encode()))
        with running(tmp_path, config(tmp_path, server, ["quake"])) as (path, loaded, _):
            edited = config(tmp_path, server, ["quake"])
            edited["feeds"].append({"url": other.url("/rates.xml")})
            edited["fetch"]["allow_private"].append(other.host_port)
            write(path, edited)
            loaded.wait_for(2)
        assert logged.lines[0][1].endswith("changed: fetch.allow_private")
        assert stored_urls(tmp_path / "news.duckdb") == {server.url("/quake/1"),
                                                         other.url("/rates/1")}


def stored_tags(database: Path) -> dict[str, tuple[list[str], list[str]]]:
    with duckdb.connect(str(database), read_only=True) as con:
        return {url: (topics, people) for url, topics, people in con.execute(
            "SELECT url, topics, people FROM articles").fetchall()}


def test_a_topic_and_a_person_added_to_the_file_tag_the_next_article(
    tmp_path: Path, server: FeedServer, logged: Logged
) -> None:
    # The goalkeeper's name is in the match report only; the topic matches both.
    title, text = EVENTS["match"]
    server.route("/match/1", Reply(body=page(title, text.replace(
        "their goalkeeper", "their goalkeeper Tomasz Wierzbicki")),
        content_type="text/html; charset=utf-8"))
    start = config(tmp_path, server, ["quake"], default_topics=False)
    with running(tmp_path, start) as (path, loaded, _):
        write(path, {**config(tmp_path, server, ["quake", "match"]), "default_topics": False,
                     "topics": {"headline": "title:earthquake OR title:penalty"},
                     "people": [{"name": "Tomasz Wierzbicki"}]})
        loaded.wait_for(2)
    tags = stored_tags(tmp_path / "news.duckdb")
    assert tags[server.url("/match/1")] == (["headline"], ["Tomasz Wierzbicki"])
    assert tags[server.url("/quake/1")][0] == []  # stored before the edit: as it was tagged
    assert not [line for line in logged.lines if line[0] == "WARNING"]
    assert logged.lines[0][1].endswith("changed: topics.headline, people")


def test_sighup_has_newsmon_run_read_its_config_again(tmp_path: Path,
                                                      server: FeedServer) -> None:
    import os
    import signal

    path = tmp_path / "newsmon.yaml"
    first = json.dumps(config(tmp_path, server, ["quake"]))
    second = json.dumps(config(tmp_path, server, ["quake", "match"]))
    width = max(len(first), len(second))
    path.write_text(first.ljust(width), encoding="utf-8")
    with newsmon_run(path) as (proc, stopped):
        line = next_line(proc)
        assert "stored 1 article(s)" in line, line
        # Edited in place with its size and time kept: only SIGHUP (or the
        # once-a-minute read of the content) can tell.
        before = path.stat()
        path.write_text(second.ljust(width), encoding="utf-8")
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        time.sleep(2.5)  # the file's stat is looked at every second
        assert server.hits["/match.xml"] == 0
        proc.send_signal(signal.SIGHUP)
        line = next_line(proc)
        assert "stored 1 article(s)" in line, line
    (done,) = stopped
    assert done.returncode == 0, done.err
    assert "Traceback" not in done.err
    assert (f"config reloaded from {path} (on SIGHUP): feeds added: "
            f"{server.url('/match.xml')}") in done.err
    assert "stored 2 article(s)" in done.out  # the run's summary


def test_sighup_while_newsmon_run_waits_for_a_pass_does_not_end_it(
    tmp_path: Path, server: FeedServer
) -> None:
    """A continuous run started while a pass (a cron job's ``run --once``) holds
    the staging folder waits for it; it has already said it reads its config
    again on SIGHUP, and a SIGHUP then (a service manager's reload, a log
    rotation) must not end it, as SIGHUP's default action would."""
    import fcntl
    import signal

    path = write(tmp_path / "newsmon.yaml", config(tmp_path, server, ["quake"]))
    (tmp_path / "staging").mkdir()
    with open(tmp_path / "staging" / ".pass.lock", "a+", encoding="utf-8") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("process 1, since 2026-01-01 00:00:00 UTC")
        held.flush()
        with newsmon_run(path) as (proc, stopped):
            assert proc.stderr is not None
            while "waiting for it to finish" not in (line := proc.stderr.readline()):
                assert line, "newsmon run ended"
            proc.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            assert proc.poll() is None, proc.communicate()
            held.truncate(0)
            fcntl.flock(held.fileno(), fcntl.LOCK_UN)
            line = next_line(proc)
            assert "stored 1 article(s)" in line, line
    (done,) = stopped
    assert done.returncode == 0, done.err
    assert "Traceback" not in done.err


def test_sigterm_while_newsmon_run_waits_for_a_pass_ends_it_at_once(
    tmp_path: Path, server: FeedServer
) -> None:
    """Its handlers are set before it waits (above); SIGTERM then still ends
    it at once, in one line, rather than once the pass it waits for ends."""
    import fcntl
    import os
    import signal
    import subprocess
    import sys

    path = write(tmp_path / "newsmon.yaml", config(tmp_path, server, ["quake"]))
    (tmp_path / "staging").mkdir()
    with open(tmp_path / "staging" / ".pass.lock", "a+", encoding="utf-8") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "run", "--quiet", "--config", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        try:
            assert proc.stderr is not None
            while "waiting for it to finish" not in (line := proc.stderr.readline()):
                assert line, "newsmon run ended"
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=10)
        finally:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.strip() == "newsmon: interrupted" and server.hits["/quake.xml"] == 0
