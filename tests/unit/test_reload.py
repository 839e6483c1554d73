"""What a continuous run takes from an edited config file, and when it looks."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline import reload
from pipeline.config import Settings, load_settings, parse_settings
from pipeline.reload import ConfigWatch, reconcile

BASE: dict[str, Any] = {
    "database": "news.duckdb",
    "feeds": [{"url": "https://a.example.org/rss"}, {"url": "https://b.example.org/rss"}],
    "alerts": [{"name": "quakes", "query": "earthquake", "to": ["desk@example.org"]},
               {"name": "rates", "query": "bank", "to": ["desk@example.org"]}],
}


def edited(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    return path


def watching(tmp_path: Path, data: dict[str, Any] = BASE) -> tuple[Path, Settings, ConfigWatch]:
    """The config ``data`` written, the settings a run started with, and its watch."""
    path = write(tmp_path / "newsmon.yaml", data)
    return path, load_settings(path), ConfigWatch(path)


def test_feeds_and_rules_are_told_apart_added_removed_and_changed() -> None:
    running = parse_settings(BASE)
    new = parse_settings(edited(
        feeds=[{"url": "https://a.example.org/rss", "name": "A"},
               {"url": "https://c.example.org/rss"}],
        alerts=[{"name": "quakes", "query": "earthquake OR tremor", "to": ["desk@example.org"]},
                {"name": "cup", "query": "penalty", "to": ["sport@example.org"]}],
        poll={"interval_minutes": 5}, smtp={"url": "smtp://127.0.0.1:1025"}))
    result = reconcile(running, new)
    assert result.changes == (
        "feeds added: https://c.example.org/rss",
        "feeds removed: https://b.example.org/rss",
        "feeds renamed: https://a.example.org/rss",
        "alert rules added: cup",
        "alert rules changed: quakes",
        "alert rules removed: rates",
        "changed: smtp, poll.interval_minutes",  # in the order of the keys
    )
    assert result.waiting == ()
    assert result.settings == new  # all of it live


def test_what_is_opened_at_start_keeps_its_value_and_is_named() -> None:
    running = parse_settings(BASE)
    new = parse_settings(edited(
        database="other.duckdb", staging_dir="/tmp/elsewhere", process={"workers": 3},
        topics={"cup": "penalty"}, store={"mode": "lake", "catalog": "dbname=x",
                                          "data_path": "/data"},
        stream={"batch_articles": 5}, cluster={"threshold": 0.3}))
    result = reconcile(running, new)
    assert result.waiting == ("database", "staging_dir", "store.catalog", "store.data_path",
                              "store.mode", "process.workers")
    kept = result.settings
    assert (kept.database, kept.staging_dir, kept.store, kept.process) == (
        running.database, running.staging_dir, running.store, running.process)
    # The rest is taken, topics too (new extraction workers tag with them).
    assert kept.stream.batch_articles == 5 and kept.cluster.threshold == 0.3
    assert kept.topics == {"cup": "penalty"}
    assert result.changes == ("changed: topics.cup, cluster.threshold, stream.batch_articles",)


def test_topics_and_people_are_taken_live_and_named() -> None:
    running = parse_settings(BASE)
    new = parse_settings(edited(default_topics=False, people=[{"name": "Ada Lovelace"}]))
    result = reconcile(running, new)
    assert result.waiting == ()
    assert result.settings == new
    assert result.changes == ("changed: default_topics, people",)


def test_an_unchanged_file_is_not_read_again_until_it_changes(tmp_path: Path) -> None:
    path, running, watch = watching(tmp_path)
    assert watch.check(running) is None
    os.utime(path, ns=(1, 1))  # touched, content the same
    assert watch.check(running) is None
    write(path, edited(feeds=BASE["feeds"][:1]))
    result = watch.check(running)
    assert result is not None and result.changes == ("feeds removed: https://b.example.org/rss",)


def test_the_stat_is_looked_at_once_a_second_at_most(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "newsmon.yaml", BASE)
    clock = [100.0]
    monkeypatch.setattr(reload.time, "monotonic", lambda: clock[0])
    watch = ConfigWatch(path)
    write(path, edited(feeds=[]))
    assert not watch.due()  # looked at less than a second ago
    clock[0] += reload.STAT_EVERY
    assert watch.due()


def test_an_edit_that_keeps_size_and_time_is_found_within_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "newsmon.yaml", edited(poll={"interval_minutes": 15}))
    running = load_settings(path)
    clock = [100.0]
    monkeypatch.setattr(reload.time, "monotonic", lambda: clock[0])
    watch = ConfigWatch(path)
    before = path.stat()
    write(path, edited(poll={"interval_minutes": 16}))  # same length
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert not watch.due()
    assert watch.check(running) is None
    clock[0] += reload.READ_EVERY
    result = watch.check(running)
    assert result is not None and result.settings.poll.interval_minutes == 16


def test_sighup_reads_the_file_even_unchanged(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.reload")
    path = write(tmp_path / "newsmon.yaml", BASE)
    watch = ConfigWatch(path)
    watch.request()
    assert watch.due()
    result = watch.check(load_settings(path))
    assert result is not None and result.changes == ()
    assert caplog.messages == [f"config reloaded from {path} (on SIGHUP): nothing changed"]
    assert not watch.due()


def test_a_sighup_at_any_point_of_a_check_neither_hangs_nor_is_lost(tmp_path: Path) -> None:
    """A signal handler runs in the main thread between two bytecodes, the event
    loop's included: ``request()`` landing inside ``check()`` (as it clears the
    last request) must not wait for a lock that thread holds (a threading.Event
    does: the run hung for ever), and must leave a request for the next look."""
    import sys
    import threading

    _, running, watch = watching(tmp_path)
    watched = (reload.__file__, threading.__file__)

    def as_a_signal(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename not in watched:
            return None
        frame.f_trace_opcodes = True

        def each(frame: Any, event: str, arg: Any) -> Any:
            if event == "opcode":
                watch.request()
            return each
        return each

    done = threading.Event()

    def look() -> None:
        watch.request()
        sys.settrace(as_a_signal)
        try:
            watch.check(running)
        finally:
            sys.settrace(None)
        done.set()

    looker = threading.Thread(target=look, daemon=True)
    looker.start()
    assert done.wait(timeout=10), "check() hung on a request made inside it"
    assert watch.due()  # the requests made after it read the last one


def test_an_invalid_edit_is_one_warning_and_its_fix_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.reload")
    path, running, watch = watching(tmp_path)
    path.write_text("feeds:\n  - url: https://a.example.org/rss\n    nmae: A\n",
                    encoding="utf-8")
    assert watch.check(running) is None  # held back once (an editor may be half way)
    time.sleep(reload.SETTLE)
    assert watch.check(running) is None  # the second look warns
    monkeypatch.setattr(reload, "READ_EVERY", 0.0)  # read again and again: warned once
    assert watch.check(running) is None
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "config not reloaded, the run goes on with the settings it has: "
                    f"{path}: line 3: feeds[0].nmae: unknown key (a typo?)")]
    caplog.clear()
    path.unlink()
    assert watch.check(running) is None
    time.sleep(reload.SETTLE)
    assert watch.check(running) is None
    assert caplog.messages == ["config not reloaded, the run goes on with the settings it has: "
                               f"{path}: config file not found"]
    caplog.clear()
    write(path, edited(feeds=BASE["feeds"][:1]))
    result = watch.check(running)
    assert result is not None
    assert caplog.messages == [f"config reloaded from {path} (the error before is fixed): "
                               "feeds removed: https://b.example.org/rss"]


def test_a_change_that_needs_a_restart_is_a_warning_naming_each_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.reload")
    path, running, watch = watching(tmp_path)
    write(path, edited(database="elsewhere.duckdb", process={"workers": 2}))
    result = watch.check(running)
    assert result is not None and result.settings.database == running.database
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"config reloaded from {path}: nothing changed"),
        ("WARNING", f"{path}: database, process.workers cannot change while newsmon runs: the "
                    "run goes on with the values it started with, the new ones take effect "
                    "after a restart")]


def test_an_editor_saving_in_two_writes_gets_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.reload")
    path, running, watch = watching(tmp_path)
    text = json.dumps(edited(feeds=BASE["feeds"][:1]))
    with path.open("w", encoding="utf-8") as f:  # truncated, then the first half
        f.write(text[:len(text) // 2])
    assert watch.check(running) is None  # a half file: looked at again, not warned of
    with path.open("a", encoding="utf-8") as f:
        f.write(text[len(text) // 2:])
    result = watch.check(running)
    assert result is not None and result.changes == ("feeds removed: https://b.example.org/rss",)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"config reloaded from {path}: feeds removed: https://b.example.org/rss")]
    caplog.clear()
    with path.open("w", encoding="utf-8") as f:  # saved again, unchanged, in two writes
        f.write(text[:10])
    assert watch.check(result.settings) is None
    with path.open("a", encoding="utf-8") as f:
        f.write(text[10:])
    assert watch.check(result.settings) is None and not caplog.records


def test_a_half_file_that_stays_is_warned_of_at_the_second_look(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.reload")
    clock = [100.0]
    monkeypatch.setattr(reload.time, "monotonic", lambda: clock[0])
    path, running, watch = watching(tmp_path)
    text = json.dumps(edited(feeds=BASE["feeds"][:1]))
    path.write_text(text[:len(text) // 2], encoding="utf-8")
    assert watch.check(running) is None
    assert watch.check(running) is None  # too soon: the editor may still be writing
    assert not watch.due() and not caplog.records
    clock[0] += reload.SETTLE
    assert watch.due()  # the second look, though the file did not change
    assert watch.check(running) is None
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert caplog.messages[0].startswith(
        f"config not reloaded, the run goes on with the settings it has: {path}: ")
    clock[0] += reload.STAT_EVERY
    assert not watch.due()  # warned once: the next look waits for an edit
