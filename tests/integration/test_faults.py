"""Faults of data and of the machine: nothing lost, nothing doubled, nothing stuck.

Real servers on 127.0.0.1, real DuckDB files, real processes holding locks, a
real full disk (a small tmpfs; skipped where it cannot be mounted). Each test
counts what is stored before and after: no article lost or doubled.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from support.disk import fill, tmpfs
from support.feedserver import FeedServer, Reply, article, rss
from support.lockholder import write_lock

from pipeline import store
from pipeline.config import Settings, parse_settings
from pipeline.run import (
    cluster_stage,
    load_stage,
    new_run_id,
    poll_stage,
    process_stage,
    run_pass,
)
from pipeline.stages import checkpoint_stage
from pipeline.store import staging

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def serve_feed(server: FeedServer, name: str, n: int, *, repeat: int = 0) -> str:
    """A feed of ``n`` article pages; ``repeat`` more items reuse the first GUIDs."""
    items = []
    for i in range(n):
        path = f"/{name}/{i}"
        server.route(path, Reply(body=article(f"{name} report {i}", day=f"day {i}").encode(),
                                 content_type="text/html; charset=utf-8"))
        items.append({"title": f"{name} report {i}", "link": server.url(path),
                      "guid": f"{name}-{i}"})
    for i in range(repeat):  # the same GUID again, another link (a feed's own mistake)
        path = f"/{name}/again-{i}"
        server.route(path, Reply(body=article(f"{name} again {i}").encode(),
                                 content_type="text/html; charset=utf-8"))
        items.append({"title": f"{name} again {i}", "link": server.url(path),
                      "guid": f"{name}-{i}"})
    server.route(f"/{name}.xml", Reply(body=rss(items, title=name).encode()))
    return server.url(f"/{name}.xml")


def make_settings(tmp_path: Path, server: FeedServer, feeds: list[str],
                  **overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "database": str(tmp_path / "db" / "news.duckdb"),
        "staging_dir": str(tmp_path / "staging"), "outbox_dir": str(tmp_path / "outbox"),
        "feeds": [{"url": u} for u in feeds],
        "fetch": {"allow_private": [server.host_port]}, "process": {"workers": 1},
    }
    data.update(overrides)
    return parse_settings(data)


def counts(settings: Settings) -> dict[str, int]:
    with duckdb.connect(str(settings.database), read_only=True) as con:
        row = con.execute(
            "SELECT (SELECT count(*) FROM articles), (SELECT count(DISTINCT id) FROM articles),"
            " (SELECT count(*) FROM entries), (SELECT count(*) FROM entries WHERE status ="
            " 'stored' AND article_id NOT IN (SELECT id FROM articles)),"
            " (SELECT coalesce(sum(entries_seen), 0) FROM feeds)").fetchone()
    assert row is not None
    return dict(zip(("articles", "distinct", "entries", "orphans", "seen"), row, strict=True))


def stage_run(settings: Settings) -> str:
    """Poll and process one run; return its id (not loaded)."""
    run_id = new_run_id()
    poll_stage(settings, run_id, force=True)
    process_stage(settings, run_id)
    return run_id


# -- duplicate entry ids ----------------------------------------------------------------------


def test_a_guid_given_to_different_articles_stops_nothing_and_loses_none(
    tmp_path: Path, server: FeedServer
) -> None:
    dup = serve_feed(server, "dup", 4, repeat=2)
    fine = serve_feed(server, "fine", 3)
    settings = make_settings(tmp_path, server, [dup, fine])
    result = run_pass(settings)
    assert result.load.articles_new == 9  # 4 + 2 + 3: the two that reuse a GUID too
    after = counts(settings)
    assert after["articles"] == after["distinct"] == 9 and after["orphans"] == 0
    assert server.hits["/dup/again-0"] == server.hits["/dup/0"] == 1
    again = run_pass(settings, force=True)
    assert again.load.articles_new == 0 and counts(settings)["articles"] == 9


def test_a_feed_giving_every_item_one_guid_loses_no_article_over_three_passes(
    tmp_path: Path, server: FeedServer
) -> None:
    """The reviewer's reproduction, through the pass ``newsmon run`` makes:
    every item has ``<guid>same</guid>`` and a link of its own. Each article
    is fetched once and stored once: on the pass it appears, and never again,
    whether its item is unchanged (cut out before parsing) or changed and in
    another place (parsed again, its id settled against the stored ones)."""
    for name in "abcde":
        server.route(f"/same/{name}", Reply(body=article(f"Report {name}").encode(),
                                            content_type="text/html; charset=utf-8"))

    def serve(*names: str, edited: str = "") -> None:
        server.route("/same.xml", Reply(body=rss(
            [{"title": f"Report {n}{edited}", "link": server.url(f"/same/{n}"), "guid": "same"}
             for n in names], title="same").encode()))

    settings = make_settings(tmp_path, server, [server.url("/same.xml")])
    serve("b", "a")
    assert run_pass(settings).load.articles_new == 2
    serve("c", "b", "a")
    assert run_pass(settings, force=True).load.articles_new == 1
    serve("e", "d", "a", "c", "b", edited=" (updated)")
    assert run_pass(settings, force=True).load.articles_new == 2
    assert {n: server.hits[f"/same/{n}"] for n in "abcde"} == dict.fromkeys("abcde", 1)
    with duckdb.connect(str(settings.database), read_only=True) as con:
        stored = con.execute("SELECT url, id, status FROM entries ORDER BY url").fetchall()
    assert [(url, status) for url, _, status in stored] == [
        (server.url(f"/same/{n}"), "stored") for n in "abcde"]
    # b, the first article seen, keeps the GUID (feedparser resolves it as a link).
    assert stored[1][1] == server.url("/same")
    assert len({entry for _, entry, _ in stored}) == 5
    after = counts(settings)
    assert after["articles"] == after["distinct"] == after["seen"] == 5


def test_an_item_whose_link_is_another_items_guid_is_fetched_and_stored_once(
    tmp_path: Path, server: FeedServer
) -> None:
    """a's GUID is b's address (a permalink GUID of another article); b has no
    GUID, so its id is its link: both are stored, whether a is new beside b
    or unchanged (cut out before parsing), and neither is fetched again."""
    for name in "ab":
        server.route(f"/mixed/{name}", Reply(body=article(f"Report {name}").encode(),
                                             content_type="text/html; charset=utf-8"))
    a = {"title": "Report a", "link": server.url("/mixed/a"), "guid": server.url("/mixed/b")}
    b = {"title": "Report b", "link": server.url("/mixed/b")}
    settings = make_settings(tmp_path, server, [server.url("/mixed.xml")])
    server.route("/mixed.xml", Reply(body=rss([b, a], title="mixed").encode()))
    assert run_pass(settings).load.articles_new == 2
    server.route("/mixed.xml", Reply(body=rss([{**b, "title": "Report b (updated)"}, a],
                                              title="mixed").encode()))
    assert run_pass(settings, force=True).load.articles_new == 0
    # The other way round: a first, alone; b comes later, a unchanged.
    tmp = tmp_path / "second"
    settings = make_settings(tmp, server, [server.url("/mixed.xml")])
    server.route("/mixed.xml", Reply(body=rss([a], title="mixed").encode()))
    assert run_pass(settings).load.articles_new == 1
    server.route("/mixed.xml", Reply(body=rss([b, a], title="mixed").encode()))
    assert run_pass(settings, force=True).load.articles_new == 1
    server.route("/mixed.xml", Reply(body=rss([{**b, "title": "Report b (updated)"}, a],
                                              title="mixed").encode()))
    assert run_pass(settings, force=True).load.articles_new == 0
    assert server.hits["/mixed/a"] == server.hits["/mixed/b"] == 2  # once per database
    after = counts(settings)
    assert after["articles"] == after["distinct"] == after["seen"] == 2


# -- staging that cannot prove it is complete -------------------------------------------------


@pytest.mark.parametrize("cut", ["line", "mid-line"])
def test_a_staged_file_cut_short_is_refused_then_redone(
    tmp_path: Path, server: FeedServer, cut: str
) -> None:
    settings = make_settings(tmp_path, server, [serve_feed(server, "cut", 6)])
    run_id = stage_run(settings)
    directory = staging.run_dir(settings.staging, run_id)
    path = directory / "articles-p000.jsonl"
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    assert len(lines) == 6
    path.write_bytes(b"".join(lines[:4]) if cut == "line" else data[: len(data) - 40])
    with pytest.raises(staging.StagingError, match="incomplete staged file"):
        load_stage(settings, run_id)
    with pytest.raises(staging.StagingError, match="incomplete staged file"):
        cluster_stage(settings, run_id)
    before = counts(settings)
    assert before["articles"] == 0 and before["entries"] == 0  # nothing marked stored
    process_stage(settings, run_id)  # the stage that wrote it, again
    assert load_stage(settings, run_id).articles_new == 6
    assert counts(settings)["articles"] == 6


def test_a_damaged_staged_file_of_the_same_length_is_refused(
    tmp_path: Path, server: FeedServer
) -> None:
    settings = make_settings(tmp_path, server, [serve_feed(server, "flip", 2)])
    run_id = stage_run(settings)
    path = staging.run_dir(settings.staging, run_id) / "entries-p000.jsonl"
    data = bytearray(path.read_bytes())
    data[data.index(b"stored")] = ord("S")
    path.write_bytes(bytes(data))
    with pytest.raises(staging.StagingError, match="damaged"):
        load_stage(settings, run_id)


def test_a_missing_staging_folder_is_an_error_and_keeps_the_feed_state(
    tmp_path: Path, server: FeedServer
) -> None:
    url = serve_feed(server, "gone", 3)
    items = [{"title": f"gone report {i}", "link": server.url(f"/gone/{i}"), "guid": f"gone-{i}"}
             for i in range(3)]
    server.route("/gone.xml", Reply(body=rss(items).encode(), etag='"v1"'))
    settings = make_settings(tmp_path, server, [url])
    run_id = stage_run(settings)
    staging.remove(staging.run_dir(settings.staging, run_id))  # "on another host"
    with pytest.raises(staging.StagingError, match="no staging folder"):
        load_stage(settings, run_id)
    with duckdb.connect(str(settings.database), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM feeds WHERE etag IS NOT NULL"
                           ).fetchone() == (0,)
    # The next pass gets the whole feed again (no ETag was saved): nothing lost.
    assert run_pass(settings).load.articles_new == 3


def test_polled_entries_no_process_shard_finished_are_refused(
    tmp_path: Path, server: FeedServer
) -> None:
    settings = make_settings(tmp_path, server, [serve_feed(server, "half", 2)])
    run_id = new_run_id()
    poll_stage(settings, run_id, force=True)
    with pytest.raises(staging.StagingError, match="no process shard finished"):
        load_stage(settings, run_id)
    # Two shards planned, one finished: the other is named.
    process_stage(settings, run_id, shard=0, shards=2)
    with pytest.raises(staging.StagingError, match="p001 of 2 did not finish"):
        load_stage(settings, run_id)
    process_stage(settings, run_id, shard=1, shards=2)
    assert load_stage(settings, run_id).articles_new == 2


# -- the database file ------------------------------------------------------------------------


def test_a_damaged_database_is_called_damaged_at_once(tmp_path: Path) -> None:
    db = tmp_path / "news.duckdb"
    db.write_bytes(b"not a database at all " * 500)
    started = time.monotonic()
    with pytest.raises(store.DatabaseDamaged, match="is damaged") as err, store.connect(db):
        pass
    assert time.monotonic() - started < 3
    assert "locked" not in str(err.value)


def test_a_damaged_database_with_a_log_beside_it_says_to_move_both(tmp_path: Path) -> None:
    """A run killed mid-pass leaves its commits in news.duckdb.wal. DuckDB
    replays a log it finds beside a file onto that file, whichever it is: a
    backup restored as the sentence said, with the log left where it was,
    took in commits made after the backup (here a row; in general rows
    changed by position). The sentence names the log when there is one, and
    the backup restored so is the backup."""
    db = tmp_path / "news.duckdb"
    with store.connect(db) as con:
        con.execute("INSERT INTO meta VALUES ('backed up', '1')")
    backup = tmp_path / "backup.duckdb"
    backup.write_bytes(db.read_bytes())
    with store.connect(db, checkpoint=False) as con:
        con.execute("INSERT INTO meta VALUES ('after the backup', '1')")
    wal = tmp_path / "news.duckdb.wal"
    assert wal.stat().st_size > 0
    db.write_bytes(b"not a database at all " * 500)
    with pytest.raises(store.DatabaseDamaged) as err, store.connect(db):
        pass
    assert "move it and news.duckdb.wal aside and restore a backup" in str(err.value)
    aside = tmp_path / "aside"
    aside.mkdir()
    for file in (db, wal):
        file.rename(aside / file.name)
    db.write_bytes(backup.read_bytes())
    with store.connect(db, read_only=True) as con:
        keys = {k for (k,) in con.execute("SELECT key FROM meta").fetchall()}
    assert "backed up" in keys and "after the backup" not in keys
    # Without a log, the sentence is as it was.
    db.write_bytes(b"not a database at all " * 500)
    with pytest.raises(store.DatabaseDamaged, match="; move it aside and restore"), \
            store.connect(db):
        pass


def test_a_database_cut_short_is_called_damaged_and_left_as_it_was(tmp_path: Path) -> None:
    """A copy that stopped half way (a full disk, a killed scp). Before:
    'cannot open the database: IO Error: Could not read enough bytes ...',
    with nothing said about what to do."""
    db = tmp_path / "news.duckdb"
    with store.connect(db) as con:
        con.execute("CREATE TABLE filler AS SELECT range AS i, repeat('x', 200) AS s"
                    " FROM range(20000)")
    whole = db.read_bytes()
    db.write_bytes(whole[: len(whole) // 2])
    for read_only in (True, False):
        with pytest.raises(store.DatabaseDamaged) as err, store.connect(db, read_only=read_only):
            pass
        assert str(err.value).startswith(f"{db} is damaged (IO Error: Could not read enough")
        assert "; move it aside and restore a backup" in str(err.value)
    assert db.read_bytes() == whole[: len(whole) // 2]


def test_a_database_of_a_newer_newsmon_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    """Before, any newsmon opened it, read its tables as they were and wrote
    rows without what the newer one keeps in them."""
    db = tmp_path / "news.duckdb"
    with store.connect(db) as con:
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                    [str(store.SCHEMA_VERSION + 1)])
    before = db.read_bytes()
    for read_only in (True, False):
        with pytest.raises(store.StoreError) as err, store.connect(db, read_only=read_only):
            pass
        assert str(err.value) == (
            f"{db} was written by a newer newsmon (schema version {store.SCHEMA_VERSION + 1};"
            f" this one knows up to {store.SCHEMA_VERSION}): upgrade newsmon to use it, or set"
            " `database:` to another file; nothing was changed")
    assert db.read_bytes() == before
    assert not db.with_name("news.duckdb.wal").exists()


def test_a_database_of_another_program_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "theirs.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE articles (x INTEGER); CREATE TABLE foo AS SELECT 1 AS y")
    refused = r"is not a newsmon database: it holds other tables \(articles, foo\)"
    for read_only in (False, True):
        with pytest.raises(store.StoreError, match=refused), store.connect(db, read_only=read_only):
            pass
    with duckdb.connect(str(db), read_only=True) as con:
        assert sorted(r[0] for r in con.execute("SHOW TABLES").fetchall()) == ["articles", "foo"]
        assert [r[0] for r in con.execute("DESCRIBE articles").fetchall()] == ["x"]


def test_an_empty_duckdb_file_gets_the_schema_even_when_first_opened_to_read(
        tmp_path: Path) -> None:
    # `duckdb news.duckdb` and quit, or a first run killed before its schema: the
    # read-only lookups that come first (seen entries, loaded runs) found no tables.
    db = tmp_path / "news.duckdb"
    duckdb.connect(str(db)).close()
    with store.connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()


def test_a_damaged_block_is_not_taken_for_a_lock(tmp_path: Path) -> None:
    db = tmp_path / "news.duckdb"
    with store.connect(db) as con:
        con.execute("CREATE TABLE filler AS SELECT range AS i, repeat('x', 200) AS s"
                    " FROM range(20000)")
    with open(db, "r+b") as handle:  # overwrite data blocks past the headers
        handle.seek(3 * 262144)
        handle.write(b"\xff" * 262144)
    started = time.monotonic()
    with pytest.raises(store.StoreError) as err, store.connect(db) as con:
        con.execute("SELECT sum(i), max(s) FROM filler").fetchall()
    assert time.monotonic() - started < 3
    assert isinstance(err.value, store.DatabaseDamaged) or "block" not in str(err.value)
    assert "locked" not in str(err.value)


def _holder(db: Path, *, read_only: bool) -> subprocess.Popen[str]:
    """A process holding ``db`` open until a line arrives on its stdin."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb,sys; c=duckdb.connect({str(db)!r}, read_only={read_only}); "
         "print('ok', flush=True); sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
    return holder


def test_a_read_only_session_does_not_stop_polling_and_the_load_waits_for_it(
    tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, server, [serve_feed(server, "ro", 3)])
    run_pass(settings)  # the database exists
    serve_feed(server, "ro", 5)  # two more reports
    holder = _holder(settings.database, read_only=True)
    try:
        run_id = new_run_id()
        summary = poll_stage(settings, run_id, force=True)  # read-only beside the session
        assert summary.entries_new == 2 and summary.feeds_failed == 0
        process_stage(settings, run_id)
        cluster_stage(settings, run_id)

        def close_session() -> None:
            assert holder.stdin is not None
            holder.stdin.write("done\n")
            holder.stdin.flush()

        threading.Timer(1.5, close_session).start()  # the analyst closes the session
        with caplog.at_level(logging.WARNING, logger="pipeline.store"):
            loaded = load_stage(settings, run_id)  # waits for the session to close
    finally:
        holder.kill()
        holder.communicate()
    assert loaded.articles_new == 2
    waits = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert waits and f"process {holder.pid}" in waits[0] and "read-only" in waits[0]
    assert counts(settings)["articles"] == 5


def test_a_writer_holding_the_file_is_named_with_its_mode(tmp_path: Path) -> None:
    db = tmp_path / "news.duckdb"
    with store.connect(db):
        pass
    holder = _holder(db, read_only=False)
    try:
        retry = store.LockRetry(attempts=2, first_delay=0.05)
        with pytest.raises(store.DatabaseLocked) as err, store.connect(db, retry=retry):
            pass
    finally:
        holder.kill()
        holder.communicate()
    assert f"process {holder.pid}" in str(err.value) and "read-write" in str(err.value)


# -- passes -----------------------------------------------------------------------------------


def _write_config(tmp_path: Path, settings: Settings, feeds: list[str]) -> Path:
    import yaml

    path = tmp_path / "newsmon.yaml"
    path.write_text(yaml.safe_dump({
        "database": str(settings.database), "staging_dir": str(settings.staging),
        "outbox_dir": str(tmp_path / "outbox"), "feeds": [{"url": u} for u in feeds],
        "fetch": {"allow_private": list(settings.fetch.allow_private)},
        "process": {"workers": 1},
    }), encoding="utf-8")
    return path


def test_two_passes_at_once_fetch_each_page_once(tmp_path: Path, server: FeedServer) -> None:
    urls = [serve_feed(server, "twice", 8)]
    for i in range(8):  # slow pages: the first pass is still running when the second starts
        path = f"/twice/{i}"
        server.route(path, Reply(body=article(f"twice report {i}").encode(),
                                 content_type="text/html; charset=utf-8", trickle=0.0004))
    settings = make_settings(tmp_path, server, urls)
    config = _write_config(tmp_path, settings, urls)
    command = [sys.executable, "-m", "pipeline.cli", "run", "--once", "--quiet",
               "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    deadline = time.monotonic() + 30
    while server.hits["/twice.xml"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    _out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    assert "another newsmon pass is running" in second.stderr
    assert f"process {first.pid}" in second.stderr
    assert all(server.hits[f"/twice/{i}"] == 1 for i in range(8)), dict(server.hits)
    after = counts(settings)
    assert after["articles"] == after["distinct"] == 8
    assert after["seen"] == 8  # entries_seen not counted twice


def test_a_pass_beside_a_continuous_run_says_so_instead_of_waiting_for_ever(
    tmp_path: Path, server: FeedServer
) -> None:
    """`newsmon run` (continuous) never finishes; a `run --once` (a cron job)
    or a second `newsmon run` beside it waited for it for ever. They say who
    polls the feeds already and exit 2; the continuous run goes on."""
    urls = [serve_feed(server, "beside", 2)]
    settings = make_settings(tmp_path, server, urls)
    config = _write_config(tmp_path, settings, urls)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "pipeline.cli", "run", "--quiet", "--config", str(config)]
    continuous = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while server.hits["/beside.xml"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.hits["/beside.xml"] == 1
        for extra in (["--once"], []):
            beside = subprocess.run(command + extra, capture_output=True, text=True, env=env,
                                    timeout=60)
            assert beside.returncode == 2, beside.stderr
            assert beside.stderr.splitlines()[-1] == (
                f"newsmon: a continuous newsmon run (process {continuous.pid}) polls these "
                f"feeds already (staging folder {settings.staging}); stop it first (Ctrl-C "
                "or SIGTERM) to run another pass")
        assert continuous.poll() is None  # untouched
    finally:
        continuous.terminate()
        _out, err = continuous.communicate(timeout=60)
    assert continuous.returncode == 0, err
    assert counts(settings)["articles"] == 2


def test_a_pass_loads_what_an_earlier_pass_left_and_prunes_the_rest(
    tmp_path: Path, server: FeedServer
) -> None:
    settings = make_settings(tmp_path, server, [serve_feed(server, "left", 3)])
    run_pass(settings)
    left = stage_run(make_settings(tmp_path, server, [serve_feed(server, "later", 2)]))
    root = settings.staging
    abandoned = root / "20200101T000000Z-abcdef"
    with staging.StagingWriter(abandoned, "poll") as writer:  # a pass killed mid-process
        writer.write("polled", {"id": "x", "feed_url": "f", "url": "u"})
    old = time.time() - 3 * 3600
    for path in [abandoned, *abandoned.iterdir()]:
        os.utime(path, (old, old))
    fresh = root / "20990101T000000Z-abcdef"  # incomplete but recent: maybe still running
    fresh.mkdir()
    result = run_pass(settings)
    assert [r.run_id for r in result.leftovers] == [left]
    assert result.leftovers[0].articles_new == 2
    assert not abandoned.exists() and fresh.exists()
    assert not staging.run_dir(root, left).exists()
    assert counts(settings)["articles"] == 5
    assert server.hits["/later/0"] == 1  # loaded from the staging, not fetched again


# -- a full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A small tmpfs (3 MiB, or the size the test asks for), as root; skipped
    where it cannot be mounted."""
    with tmpfs(tmp_path / "small", getattr(request, "param", "3m")) as mount:
        yield mount


def test_a_full_disk_under_the_staging_is_one_sentence_then_recovers(
    tmp_path: Path, server: FeedServer, small_disk: Path
) -> None:
    settings = make_settings(tmp_path, server, [serve_feed(server, "full", 30)],
                             staging_dir=str(small_disk / "staging"))
    filler = fill(small_disk, leave=4096)
    with pytest.raises(store.DiskFull, match="disk full at"):
        run_pass(settings)
    assert list((small_disk / "staging").iterdir()) == [small_disk / "staging" / ".pass.lock"]
    filler.unlink()
    assert run_pass(settings).load.articles_new == 30
    after = counts(settings)
    assert after["articles"] == after["distinct"] == 30 and after["orphans"] == 0


# An empty newsmon database is 1 MiB; room for it to grow after the disk is freed.
@pytest.mark.parametrize("small_disk", ["16m"], indirect=True)
def test_a_full_disk_under_the_database_keeps_the_pass_for_the_next(
    tmp_path: Path, server: FeedServer, small_disk: Path
) -> None:
    settings = make_settings(tmp_path, server, [serve_feed(server, "dbfull", 3)],
                             database=str(small_disk / "news.duckdb"))
    run_pass(settings)
    serve_feed(server, "dbfull", 40)
    filler = fill(small_disk)
    with pytest.raises(store.DiskFull, match="disk full at"):
        run_pass(settings, force=True)
    kept = [p for p in settings.staging.iterdir() if not p.name.startswith(".")]
    assert len(kept) == 1  # the failed pass's extraction, kept for the next pass
    filler.unlink()
    result = run_pass(settings, force=True)
    assert [r.articles_new for r in result.leftovers] == [37]
    assert result.load.articles_new == 0
    assert all(server.hits[f"/dbfull/{i}"] == 1 for i in range(40))
    after = counts(settings)
    assert after["articles"] == after["distinct"] == 40 and after["orphans"] == 0


def test_the_cli_says_disk_full_in_one_line(tmp_path: Path, server: FeedServer,
                                             small_disk: Path) -> None:
    settings = make_settings(tmp_path, server, [serve_feed(server, "cli", 20)],
                             staging_dir=str(small_disk / "staging"))
    config = _write_config(tmp_path, settings, [f.url for f in settings.feeds])
    fill(small_disk, leave=4096)
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--once", "--quiet",
                           "--config", str(config)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"disk full at {small_disk}" in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr



def test_folding_the_log_does_not_wait_out_a_lock(tmp_path: Path) -> None:
    """The stream folds the write-ahead log once idle, and after a load that
    failed on the lock: the fold is optional (every connection reads the
    log), so it tries briefly, not for the load's ~18 s of retries."""
    settings = parse_settings({"database": str(tmp_path / "news.duckdb"),
                               "staging_dir": str(tmp_path / "staging")})
    with store.connect(settings.database, checkpoint=False) as con:
        con.execute("INSERT INTO meta VALUES ('fold-test', 'x')")
    wal = settings.database.with_name(settings.database.name + ".wal")
    assert wal.stat().st_size > 0
    with write_lock(settings.database):
        started = time.monotonic()
        with pytest.raises(store.DatabaseLocked):
            checkpoint_stage(settings)
        assert time.monotonic() - started < 2.0
    checkpoint_stage(settings)  # once the lock is gone: folded in
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_brief_writer_does_not_wait_out_a_lock_and_folds_nothing(
        tmp_path: Path) -> None:
    """A stream's load or send round tried while the file may be held asks
    for the writer briefly (``brief``), not the load's ~18 s, before it plans
    anything; and, the file free, its writer (``checkpoint=False``) closes
    without folding the log in (that is the stream's fold's, later) or
    holding the file."""
    from pipeline.store.backend import backend

    settings = parse_settings({"database": str(tmp_path / "news.duckdb"),
                               "staging_dir": str(tmp_path / "staging")})
    with backend(settings).writer(brief=True):  # makes the file
        pass
    with write_lock(settings.database):
        started = time.monotonic()
        with pytest.raises(store.DatabaseLocked), \
                backend(settings).writer(checkpoint=False, brief=True):
            pass
        assert time.monotonic() - started < 2.0
    with store.connect(settings.database, checkpoint=False) as con:
        con.execute("INSERT INTO meta VALUES ('probe-test', 'x')")
    wal = settings.database.with_name(settings.database.name + ".wal")
    logged = wal.stat().st_size
    assert logged > 0
    with backend(settings).writer(checkpoint=False, brief=True):
        pass
    assert wal.stat().st_size == logged  # not folded in
    with store.connect(settings.database, retry=store.SHORT_RETRY) as con:  # not held
        assert con.execute("SELECT value FROM meta WHERE key = 'probe-test'"
                           ).fetchone() == ("x",)


def test_a_backup_onto_a_full_disk_is_one_sentence_and_leaves_nothing(
    tmp_path: Path, small_disk: Path
) -> None:
    db = tmp_path / "news.duckdb"
    with store.connect(db, checkpoint=False) as con:
        con.execute("CREATE TABLE filler AS SELECT range AS i, md5(range::varchar) AS s"
                    " FROM range(100000)")
    with pytest.raises(store.DiskFull, match=f"disk full at {small_disk}/copy.duckdb"):
        store.backup(db, small_disk / "copy.duckdb")
    assert list(small_disk.iterdir()) == []
    with store.connect(db, read_only=True) as con:  # the live file is as it was
        assert con.execute("SELECT count(*) FROM filler").fetchone() == (100000,)
