"""Lake mode under the faults a deployment meets: the catalog's PostgreSQL
cutting a session off mid-load (pg_terminate_backend, as a restart, a
failover or a firewall dropping an idle connection does). Real PostgreSQL,
data files in a folder; another host is a process of its own."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from support import factories as f
from support import lake

from integration.test_load import reports
from pipeline import store
from pipeline.config import Settings
from pipeline.store import load as load_module
from pipeline.store.backend import backend, open_store
from pipeline.store.lake import WRITER_LOCK
from pipeline.store.load import load


@pytest.fixture
def catalog() -> Iterator[str]:
    with lake.catalog_database() as dsn:
        yield dsn


def lake_settings(tmp_path: Path, dsn: str) -> Settings:
    settings = f.settings(tmp_path, store=lake.store_section(dsn, tmp_path / "lake-data"))
    with backend(settings).writer():
        pass  # the lake made, so both hosts start from the same empty lake
    return settings


def _load_elsewhere(settings_json: str, run_id: str) -> int:
    settings = Settings.model_validate_json(settings_json)
    with backend(settings).writer() as con:
        return load(con, settings, run_id).articles_new


def other_host_loads(settings: Settings, run_id: str) -> int:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return int(pool.apply(_load_elsewhere, (settings.model_dump_json(), run_id)))


def terminate(dsn: str, which: str) -> list[int]:
    """pg_terminate_backend on the sessions of the catalog database ``dsn``
    (only this database's: other test runs share the server) that hold the
    lake's writer lock (``which`` "lock") or all the others ("catalog")."""
    holds_lock = f"""pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory'
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND classid = {WRITER_LOCK >> 32} AND objid = {WRITER_LOCK & 0xFFFFFFFF})"""
    chosen = holds_lock if which == "lock" else f"NOT {holds_lock}"
    with psycopg2.connect(dsn) as pg, pg.cursor() as cur:
        cur.execute(f"""SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() AND {chosen}""")
        pids = [int(row[0]) for row in cur.fetchall()]
    pg.close()
    return pids


class Paused:
    """A load on this host stopped inside its transaction (before its stories
    are written) until :meth:`go`; its outcome in ``result`` or ``error``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, settings: Settings, run_id: str) -> None:
        self.reached, self.gate = threading.Event(), threading.Event()
        self.result: int | None = None
        self.error: BaseException | None = None
        upsert_stories = load_module._upsert_stories

        def paused(con: object) -> None:
            self.reached.set()
            assert self.gate.wait(120)
            upsert_stories(con)  # type: ignore[arg-type]

        monkeypatch.setattr(load_module, "_upsert_stories", paused)

        def run() -> None:
            try:
                with backend(settings).writer() as con:
                    self.result = load(con, settings, run_id).articles_new
            except BaseException as exc:  # noqa: BLE001 - the test asserts on it
                self.error = exc

        self.thread = threading.Thread(target=run)
        self.thread.start()
        assert self.reached.wait(120)
        monkeypatch.setattr(load_module, "_upsert_stories", upsert_stories)

    def go(self) -> None:
        self.gate.set()
        self.thread.join(120)
        assert not self.thread.is_alive()


def counts(settings: Settings) -> dict[str, tuple[int, int]]:
    with open_store(settings, read_only=True) as con:
        def pair(sql: str) -> tuple[int, int]:
            row = con.execute(sql).fetchone()
            assert row is not None
            return int(row[0]), int(row[1])
        return {
            "articles": pair("SELECT count(*), count(DISTINCT id) FROM articles"),
            "entries": pair("SELECT count(*), count(DISTINCT (feed_url, id)) FROM entries"),
            "stories": pair("SELECT count(*), count(DISTINCT id) FROM stories"),
        }


def sentence(error: BaseException | None) -> str:
    """What the CLI prints for ``error`` (exit 2), or fails when it would be a
    traceback."""
    assert error is not None
    explained = store.explain(error, "news.duckdb")
    assert isinstance(explained, store.StoreError), repr(error)
    return str(explained)


def test_a_load_whose_writer_lock_was_cut_off_never_stores_an_article_twice(
        tmp_path: Path, catalog: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock's session ends while this host's load runs (it sits idle the
    whole load: what a firewall or idle_session_timeout ends first); another
    host then takes the lock and loads the same pages. The lake keeps each
    article once: the load that lost its lock commits nothing and says so."""
    settings = lake_settings(tmp_path, catalog)
    f.stage(settings, "run-here", reports())
    f.stage(settings, "run-there", reports())  # the same pages, polled by another host
    here = Paused(monkeypatch, settings, "run-here")
    assert len(terminate(catalog, "lock")) == 1
    assert other_host_loads(settings, "run-there") == 3
    here.go()
    assert counts(settings) == {"articles": (3, 3), "entries": (3, 3), "stories": (2, 2)}
    assert here.result is None
    said = sentence(here.error)
    assert said.startswith("another writer committed to the lake while this one ran"), said
    assert "nothing of it was committed: run it again" in said
    assert isinstance(store.explain(here.error, "news.duckdb"), store.DatabaseLocked)
    with backend(settings).writer() as con:  # run again: the run was stored by the other host
        assert load(con, settings, "run-here").articles_new == 0
    assert counts(settings)["articles"] == (3, 3)


def test_a_load_whose_catalog_session_was_cut_off_is_one_sentence_and_stores_nothing(
        tmp_path: Path, catalog: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL ends the load's catalog sessions mid-transaction (a restart,
    a failover): the load fails with one sentence (it was a DuckDB traceback of
    the ROLLBACK that failed after it), commits nothing, and the same run loads
    whole on the next try."""
    settings = lake_settings(tmp_path, catalog)
    f.stage(settings, "run-1", reports())
    here = Paused(monkeypatch, settings, "run-1")
    assert terminate(catalog, "catalog")
    here.go()
    assert here.result is None
    said = sentence(here.error)
    assert said.startswith("lost the connection to the lake's catalog database ("), said
    assert "run it again" in said and "Traceback" not in said
    assert counts(settings) == {"articles": (0, 0), "entries": (0, 0), "stories": (0, 0)}
    with backend(settings).writer() as con:
        assert load(con, settings, "run-1").articles_new == 3
    assert counts(settings) == {"articles": (3, 3), "entries": (3, 3), "stories": (2, 2)}



RECIPIENTS = [f"analyst{n:02d}@example.org" for n in range(12)]


class _PausedMailer:
    """Delivers over SMTP; before the email after the first ``n`` it waits
    (the round is still running: a slow server, a long digest)."""

    def __init__(self, settings: Settings, n: int) -> None:
        from pipeline.alert import mailer_for

        self.inner, self.n, self.done = mailer_for(settings), n, 0
        self.reached, self.gate = threading.Event(), threading.Event()

    def send(self, message: object) -> None:
        if self.done == self.n:
            self.reached.set()
            assert self.gate.wait(120)
        self.inner.send(message)  # type: ignore[arg-type]
        self.done += 1

    def close(self) -> None:
        self.inner.close()


def alerts_queued_for_everyone(tmp_path: Path, catalog: str, smtp_server: Any) -> Settings:
    """Lake settings sending to ``smtp_server``, with the reports loaded and
    one alert queued for each of the :data:`RECIPIENTS`."""
    settings = f.settings(tmp_path, store=lake.store_section(catalog, tmp_path / "lake-data"),
                          smtp={"url": smtp_server.url},
                          alerts=[{"name": "syria", "query": "topic:syria", "to": RECIPIENTS}])
    f.stage(settings, "run-1", reports())
    with backend(settings).writer() as con:
        assert load(con, settings, "run-1").alerts_queued == len(RECIPIENTS)
    return settings


def test_a_host_whose_clock_is_ahead_never_takes_over_a_live_sender_s_alerts(
        tmp_path: Path, catalog: str, smtp_server: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two hosts send; the second's clock is 15 minutes ahead (NTP stopped, a
    VM restored from a snapshot). Its round must not read the first's claim
    as a dead sender's (a lease is 10 minutes): each alert goes out once."""
    from datetime import UTC, datetime, timedelta

    from pipeline.alert import _send
    from pipeline.run import send_stage

    settings = alerts_queued_for_everyone(tmp_path, catalog, smtp_server)
    first = _PausedMailer(settings, 3)
    results: list[int] = []
    sender = threading.Thread(target=lambda: results.append(send_stage(settings, first).sent))
    sender.start()
    assert first.reached.wait(120)  # 3 sent, the other 9 claimed and on their way

    class Ahead(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Ahead:  # type: ignore[override]
            return super().now(tz) + timedelta(minutes=15)

    with monkeypatch.context() as skewed:
        skewed.setattr(_send, "datetime", Ahead)
        assert Ahead.now(UTC) - datetime.now(UTC) > timedelta(minutes=14)
        second = send_stage(settings)
    first.gate.set()
    sender.join(120)
    assert not sender.is_alive()
    assert (second.sent, results) == (0, [len(RECIPIENTS)])
    assert sorted(str(m["To"]) for m in smtp_server.messages) == RECIPIENTS  # each once


def test_a_writer_kept_waiting_is_told_which_host_holds_the_lock_and_how_to_end_it(
        tmp_path: Path, catalog: str) -> None:
    """A host that vanished (power, a partition) leaves no process to end:
    the sentence names the holder as PostgreSQL sees it (host, process, since
    when) and the catalog session to end."""
    import os
    import re
    import socket

    from pipeline.store.lake import LakeBackend

    lake_backend = LakeBackend(lake_settings(tmp_path, catalog))
    with lake_backend.writer_lock(), pytest.raises(store.DatabaseLocked) as caught, \
            lake_backend.writer_lock(wait=0.2):
        pass
    said = str(caught.value)
    assert said.startswith("another host has held the lake's writer lock for over 0 s"), said
    here = f"newsmon writer on {socket.gethostname()} (process {os.getpid()})"
    assert f", held by {here} from 127.0.0.1 since 20" in said, said
    session = re.search(r"catalog session (\d+) \(if that host is gone, end it: "
                        r"SELECT pg_terminate_backend\((\d+)\)\)", said)
    assert session is not None and session[1] == session[2], said
    assert said.endswith("; let it finish, or end the stuck process, and run again")


def test_the_writer_lock_s_session_is_probed_so_a_vanished_host_releases_it(
        tmp_path: Path, catalog: str) -> None:
    """A host that vanishes sends no FIN: PostgreSQL ends its session only
    when TCP keepalives go unanswered, by default after 2 h 11 min (7200 s,
    then 9 probes 75 s apart), every load waiting and failing meanwhile. The
    lock's session asks for probes after 30 s idle, 3 of them 10 s apart."""
    from pipeline.store.lake import LakeBackend

    pg = LakeBackend(lake_settings(tmp_path, catalog)).lock_session()
    try:
        with pg.cursor() as cur:
            cur.execute("SELECT current_setting('tcp_keepalives_idle'),"
                        " current_setting('tcp_keepalives_interval'),"
                        " current_setting('tcp_keepalives_count')")
            assert cur.fetchone() == ("30", "10", "3")
    finally:
        pg.close()


def test_a_send_round_whose_delivery_session_is_cut_off_goes_on_and_sends_each_once(
        tmp_path: Path, catalog: str, smtp_server: Any) -> None:
    """PostgreSQL ends the sender's session while an email is on its way (a
    restart of the catalog, an idle connection dropped by a firewall). The
    round marks that email sent on a new session and sends the rest: before,
    it failed there, its 9 other alerts stayed 'sending' for the 10-minute
    lease, and the email just delivered went out again after it."""
    from pipeline.run import send_stage
    from pipeline.store import delivery

    settings = alerts_queued_for_everyone(tmp_path, catalog, smtp_server)
    mailer = _PausedMailer(settings, 3)
    results: list[Any] = []

    def round_() -> None:
        try:
            results.append(send_stage(settings, mailer))
        except BaseException as exc:  # noqa: BLE001 - the test asserts on it
            results.append(exc)

    sender = threading.Thread(target=round_)
    sender.start()
    assert mailer.reached.wait(120)
    with psycopg2.connect(catalog) as pg, pg.cursor() as cur:
        cur.execute("""SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = current_database() AND application_name LIKE 'newsmon sender on %'""")
        assert cur.fetchall() == [(True,)]
    pg.close()
    mailer.gate.set()
    sender.join(120)
    assert not sender.is_alive()
    assert [getattr(r, "sent", r) for r in results] == [len(RECIPIENTS)]
    assert sorted(str(m["To"]) for m in smtp_server.messages) == RECIPIENTS  # each once
    with psycopg2.connect(catalog) as pg, pg.cursor() as cur:
        cur.execute(f"SELECT status, count(*) FROM {delivery.TABLE} GROUP BY status")
        assert cur.fetchall() == [("sent", len(RECIPIENTS))]
    pg.close()


def lake_config(tmp_path: Path, catalog: str) -> Path:
    """A config file for ``newsmon`` of the lake :func:`lake_settings` makes."""
    import yaml

    config = tmp_path / "newsmon.yaml"
    config.write_text(yaml.safe_dump({"database": str(tmp_path / "news.duckdb"),
                                      "staging_dir": str(tmp_path / "staging"),
                                      "store": lake.store_section(catalog,
                                                                  tmp_path / "lake-data")}),
                      encoding="utf-8")
    return config


def test_a_feeds_change_beside_another_writer_commits_nothing_and_says_so(
        tmp_path: Path, catalog: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`newsmon feeds add`, `pause` and `rename` wrote the lake without the
    fence row: with the writer lock's session cut off, another writer (a
    load elsewhere) committing meanwhile did not stop them, and the two
    commits went in side by side. Now the second of the two commits nothing
    and says so in one sentence; run again, it goes through."""
    from pipeline.cli import main
    from pipeline.sources import feeds
    from pipeline.store.backend import fenced

    settings = lake_settings(tmp_path, catalog)
    config = lake_config(tmp_path, catalog)
    assert main(["feeds", "--config", str(config), "add",
                 "https://news.example.org/feed.xml", "--name", "News"]) == 0

    def feeds_table() -> list[tuple[object, ...]]:
        with open_store(settings, read_only=True) as con:
            return con.execute("SELECT url, name, paused_at IS NOT NULL FROM feeds"
                               " ORDER BY url").fetchall()

    for change, *args in [("add", "https://news.example.org/other.xml"),
                          ("pause", "https://news.example.org/feed.xml"),
                          ("rename", "https://news.example.org/feed.xml", "Renamed")]:
        before = feeds_table()
        original = getattr(feeds, change)

        def beside_another_writer(*args: Any, original: Any = original, **kwargs: Any) -> Any:
            done = original(*args, **kwargs)
            # Another host's writer, its lock taken while this one's was cut
            # off: it commits first.
            with backend(settings).connect() as other, fenced(other, "the lake"):
                pass
            return done

        monkeypatch.setattr(feeds, change, beside_another_writer)
        capsys.readouterr()
        assert main(["feeds", "--config", str(config), change, *args]) == 2, change
        said = capsys.readouterr().err
        assert said.startswith(
            "newsmon: another writer committed to the lake while this one ran"), said
        assert said.count("\n") == 1 and "Traceback" not in said
        assert feeds_table() == before, change  # nothing of it was written
        monkeypatch.setattr(feeds, change, original)
        assert main(["feeds", "--config", str(config), change, *args]) == 0, change
        assert feeds_table() != before, change


def test_compaction_removes_the_data_files_a_failed_load_left_once_a_day_old(
        tmp_path: Path, catalog: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A load whose catalog sessions were cut off mid-load had written its
    Parquet files, which no snapshot references: they stayed under the data
    path for ever. `newsmon compact` removes such files once they are a day
    old, and never a younger one (a load in flight writes its files before
    it commits), nor one the lake uses."""
    import os
    import time

    from pipeline.cli import main

    settings = lake_settings(tmp_path, catalog)
    f.stage(settings, "run-1", reports())
    here = Paused(monkeypatch, settings, "run-1")
    assert terminate(catalog, "catalog")
    here.go()
    assert here.error is not None  # the load failed
    with backend(settings).writer() as con:
        assert load(con, settings, "run-1").articles_new == 3

    def orphans() -> list[Path]:
        with open_store(settings, read_only=True) as con:
            listed = {name for (name,) in con.execute(
                "SELECT path FROM __ducklake_metadata_newsmon_lake.ducklake_data_file").fetchall()}
        return [p for p in (tmp_path / "lake-data").rglob("*.parquet") if p.name not in listed]

    left = orphans()
    assert left, "the failed load left no data file"
    compact = ["compact", "--config", str(lake_config(tmp_path, catalog))]
    assert main(compact) == 0
    assert "0 orphaned files deleted" in capsys.readouterr().out
    assert orphans() == left  # younger than a day: maybe a load in flight
    day_ago = time.time() - 25 * 3600
    for path in left:
        os.utime(path, (day_ago, day_ago))
    assert main(compact) == 0
    assert f"{len(left)} orphaned files deleted" in capsys.readouterr().out
    assert orphans() == []
    assert counts(settings) == {"articles": (3, 3), "entries": (3, 3), "stories": (2, 2)}


class _Watched:
    """A lake connection that calls ``hook`` once, just before its first
    statement that contains ``words`` (DuckDB's connection cannot be patched)."""

    def __init__(self, con: Any, words: str, hook: Any) -> None:
        self.con, self.words, self.hook = con, words, hook

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        if self.hook is not None and self.words in sql:
            hook, self.hook = self.hook, None
            hook()
        return self.con.execute(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.con, name)


def when_lake_runs(monkeypatch: pytest.MonkeyPatch, words: str, hook: Any) -> None:
    """Call ``hook`` once, just before any lake connection of this process
    runs a statement with ``words``."""
    from pipeline.store.lake import LakeBackend

    opened = LakeBackend._open
    pending = [hook]

    def watched(self: LakeBackend, *, read_only: bool) -> Any:
        con = opened(self, read_only=read_only)
        if not pending:
            return con
        return _Watched(con, words, pending.pop())

    monkeypatch.setattr(LakeBackend, "_open", watched)


def compactable(tmp_path: Path, catalog: str) -> Settings:
    """A lake of three loads (small files to merge, snapshots to expire)."""
    from integration.test_lake import batch

    settings = lake_settings(tmp_path, catalog)
    for run in range(3):
        f.stage(settings, f"run-{run}", batch(run))
        with backend(settings).writer() as con:
            assert load(con, settings, f"run-{run}").articles_new == 4
    return settings


def lake_state(settings: Settings, tmp_path: Path) -> dict[str, Any]:
    """The snapshots, the data files on disk and the rows of the lake."""
    with open_store(settings, read_only=True) as con:
        snapshots = {int(sid) for (sid,) in con.execute(
            "SELECT snapshot_id FROM __ducklake_metadata_newsmon_lake.ducklake_snapshot"
        ).fetchall()}
        rows = con.execute("SELECT (SELECT count(*) FROM articles), (SELECT count(DISTINCT id)"
                           " FROM articles), (SELECT count(*) FROM entries), (SELECT count(*)"
                           " FROM runs)").fetchone()
    return {"snapshots": snapshots, "rows": rows,
            "files": {p.name for p in (tmp_path / "lake-data").rglob("*.parquet")}}


@pytest.mark.parametrize("meanwhile", ["another writer commits", "the lock is cut off"])
def test_a_compaction_beside_another_writer_stops_whole_and_says_so(
        tmp_path: Path, catalog: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], meanwhile: str) -> None:
    """`newsmon compact` (and the maintenance DAG's checkpoint, the same code)
    ran DuckLake's merge, expiry and file deletions unfenced: with its writer
    lock's session cut off and another host's writer committing meanwhile, it
    went on and expired snapshots and deleted files beside that writer. Now
    it checks its lock and its fence value before each step: it stops at the
    next one, says so in one sentence (exit 2), the steps after it not begun
    (no snapshot expired, no file deleted, every row there), and run again
    it finishes."""
    from pipeline.cli import main
    from pipeline.store.backend import fenced

    settings = compactable(tmp_path, catalog)
    config = lake_config(tmp_path, catalog)
    before = lake_state(settings, tmp_path)

    def another_writer() -> None:
        if meanwhile == "another writer commits":
            # Another host's writer, its lock taken while this one's was cut off.
            with backend(settings).connect() as other, fenced(other, "the lake"):
                pass
        else:
            assert len(terminate(catalog, "lock")) == 1

    when_lake_runs(monkeypatch, "ducklake_merge_adjacent_files", another_writer)
    capsys.readouterr()
    assert main(["compact", "--config", str(config), "--keep-days", "0"]) == 2
    said = capsys.readouterr().err
    expected = ("newsmon: another writer committed to the lake while it was compacted"
                if meanwhile == "another writer commits" else
                "newsmon: the PostgreSQL session that held this host's writer lock was cut "
                "off while the lake was compacted")
    assert said.startswith(expected), said
    assert "compaction stopped before expiring the old snapshots" in said
    assert said.count("\n") == 1 and "Traceback" not in said
    stopped = lake_state(settings, tmp_path)
    assert before["snapshots"] <= stopped["snapshots"]  # none expired
    assert before["files"] <= stopped["files"]  # none deleted
    assert stopped["rows"] == before["rows"] == (12, 12, 12, 3)

    monkeypatch.undo()
    assert main(["compact", "--config", str(config), "--keep-days", "0"]) == 0
    done = lake_state(settings, tmp_path)
    assert not before["snapshots"] <= done["snapshots"]  # expired this time
    assert done["rows"] == before["rows"]


def test_a_load_that_overlapped_a_compaction_commits_nothing_and_says_so(
        tmp_path: Path, catalog: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A load on this host loses its writer lock's session mid-load; `newsmon
    compact` takes the lock meanwhile and compacts. The load, run beside the
    compaction, commits nothing and says so in one sentence (the
    compaction's first commit is a fence value); run again, it loads whole."""
    from integration.test_lake import batch
    from pipeline.cli import main

    settings = compactable(tmp_path, catalog)
    f.stage(settings, "run-here", batch(9))
    here = Paused(monkeypatch, settings, "run-here")
    assert len(terminate(catalog, "lock")) == 1
    assert main(["compact", "--config", str(lake_config(tmp_path, catalog)),
                 "--keep-days", "0"]) == 0, capsys.readouterr().err
    here.go()
    assert here.result is None
    said = sentence(here.error)
    assert said.startswith("another writer committed to the lake while this one ran"), said
    assert counts(settings)["articles"] == (12, 12)
    with backend(settings).writer() as con:
        assert load(con, settings, "run-here").articles_new == 4
    assert counts(settings)["articles"] == (16, 16)


def lake_tables(catalog: str) -> list[str]:
    """The lake's tables, as its catalog lists them."""
    with psycopg2.connect(catalog) as pg, pg.cursor() as cur:
        cur.execute("SELECT to_regclass('ducklake_table') IS NOT NULL")
        made = bool(cur.fetchone()[0])
        tables: list[str] = []
        if made:
            cur.execute("SELECT table_name FROM ducklake_table WHERE end_snapshot IS NULL"
                        " ORDER BY table_name")
            tables = [name for (name,) in cur.fetchall()]
    pg.close()
    return tables


def meta_rows(settings: Settings) -> list[tuple[object, ...]]:
    with open_store(settings, read_only=True) as con:
        return con.execute("SELECT key, count(*) FROM meta GROUP BY key ORDER BY key").fetchall()


def _first_writer_killed(settings_json: str) -> None:
    """A first writer whose host dies (killed, power) once its tables are
    made, while it adds the columns."""
    import os

    from pipeline.store.lake import LakeBackend

    settings = Settings.model_validate_json(settings_json)
    opened = LakeBackend._open

    def watched(self: LakeBackend, *, read_only: bool) -> Any:
        return _Watched(opened(self, read_only=read_only), "ADD COLUMN IF NOT EXISTS",
                        lambda: os._exit(9))

    LakeBackend._open = watched  # type: ignore[method-assign]
    with backend(settings).writer():
        pass


def test_a_first_writer_killed_while_it_makes_the_lake_leaves_no_half_made_lake(
        tmp_path: Path, catalog: str) -> None:
    """The first writer on an empty catalog made the lake's tables one commit
    each, then its columns and meta rows: a host killed midway left the
    tables without the schema version or the fence row, and the lake counted
    as made (`exists`, so readers went on to it). Now it is one transaction:
    nothing of it is there, and the next writer makes the lake whole."""
    from pipeline.store.lake import LakeBackend

    settings = f.settings(tmp_path, store=lake.store_section(catalog, tmp_path / "lake-data"))
    child = multiprocessing.get_context("spawn").Process(
        target=_first_writer_killed, args=(settings.model_dump_json(),))
    child.start()
    child.join(300)
    assert child.exitcode == 9
    assert lake_tables(catalog) == []  # nothing half-made
    assert not LakeBackend(settings).exists()
    with backend(settings).writer():
        pass
    assert "runs" in lake_tables(catalog) and "meta" in lake_tables(catalog)
    assert meta_rows(settings) == [("schema_version", 1), ("writer_fence", 1)]


def test_a_first_writer_cut_off_while_it_makes_the_lake_says_so_and_leaves_nothing(
        tmp_path: Path, catalog: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL ends the first writer's catalog sessions while it makes the
    lake (a restart, a failover): its one transaction commits nothing, and it
    says so in one sentence (DuckLake's words for a COMMIT whose ROLLBACK
    failed too name no cause); the next writer makes the lake whole."""
    from pipeline.store.lake import LakeBackend

    settings = f.settings(tmp_path, store=lake.store_section(catalog, tmp_path / "lake-data"))
    when_lake_runs(monkeypatch, "ADD COLUMN IF NOT EXISTS",
                   lambda: terminate(catalog, "catalog"))
    with pytest.raises(Exception) as failed, backend(settings).writer():
        pass
    said = str(failed.value)
    assert isinstance(failed.value, store.StoreError), repr(failed.value)
    assert said.startswith("lost the connection to the lake's catalog database ("), said
    assert lake_tables(catalog) == []  # nothing half-made
    assert not LakeBackend(settings).exists()
    monkeypatch.undo()
    with backend(settings).writer():
        pass
    assert "runs" in lake_tables(catalog) and "meta" in lake_tables(catalog)
    assert meta_rows(settings) == [("schema_version", 1), ("writer_fence", 1)]


def _first_writer_elsewhere(settings_json: str) -> list[tuple[object, ...]]:
    settings = Settings.model_validate_json(settings_json)
    with backend(settings).writer() as con:
        return con.execute("SELECT key FROM meta ORDER BY key").fetchall()


def test_two_first_writers_at_once_make_the_lake_once(
        tmp_path: Path, catalog: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Two hosts start on an empty catalog, and the first one's writer lock
    is cut off while it makes the lake: the other host takes the lock and
    makes it too. One of the two makes it, the other commits nothing of its
    own, finds it made and goes on: one schema version and one fence row,
    every table once, no error."""
    settings = f.settings(tmp_path, store=lake.store_section(catalog, tmp_path / "lake-data"))

    def other_host_starts() -> None:
        assert len(terminate(catalog, "lock")) == 1
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            assert pool.apply(_first_writer_elsewhere, (settings.model_dump_json(),)) == [
                ("schema_version",), ("writer_fence",)]

    when_lake_runs(monkeypatch, "ADD COLUMN IF NOT EXISTS", other_host_starts)
    with caplog.at_level("INFO", logger="pipeline.store.lake"), \
            backend(settings).writer() as con:  # goes on with the lake the other host made
        assert con.execute("SELECT count(*) FROM runs").fetchall() == [(0,)]
    # Its own tables were not committed: its commit met the other host's.
    assert "another writer made the lake's schema meanwhile" in caplog.text
    monkeypatch.undo()
    assert meta_rows(settings) == [("schema_version", 1), ("writer_fence", 1)]
    tables = lake_tables(catalog)
    assert len(tables) == len(set(tables)) and "runs" in tables
