"""Lake mode (pipeline.store.lake): DuckLake on a real PostgreSQL catalog, data in
a folder; the same load as the DuckDB file, MERGE INTO instead of ON CONFLICT,
loads serialized across processes by the catalog's advisory lock."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT
from support import factories as f
from support import lake

from integration.test_load import reports
from pipeline import store
from pipeline.config import Settings
from pipeline.store.backend import backend, open_store
from pipeline.store.lake import LakeBackend
from pipeline.store.load import load

TABLES = {
    "articles": "SELECT id, story_id, title, source, topics, run_id FROM articles",
    "stories": "SELECT title, n_articles, n_sources, lead_article_id FROM stories",
    "entries": "SELECT feed_url, id, status, attempts, article_id FROM entries",
    "article_tags": "SELECT * FROM article_tags",
    "removed_lines": "SELECT * FROM removed_lines",
    "term_stats": "SELECT * FROM term_stats",
    "runs": "SELECT id, articles_new, stories_new FROM runs",
}


@pytest.fixture
def catalog() -> Iterator[str]:
    with lake.catalog_database() as dsn:
        yield dsn


def lake_settings(tmp_path: Path, dsn: str, **overrides: Any) -> Settings:
    return f.settings(tmp_path, store=lake.store_section(dsn, tmp_path / "lake-data"),
                      **overrides)


def contents(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    with open_store(settings, read_only=True) as con:
        return {name: sorted(con.execute(sql).fetchall(), key=repr)
                for name, sql in TABLES.items()}


def test_a_lake_load_stores_what_the_file_stores(tmp_path: Path, catalog: str) -> None:
    in_file = f.settings(tmp_path / "file")
    in_lake = lake_settings(tmp_path / "lake", catalog)
    for settings in (in_file, in_lake):
        f.stage(settings, "run-1", reports())
        with backend(settings).writer() as con:
            first = load(con, settings, "run-1")
            assert (first.articles_new, first.stories_new) == (3, 2)
        f.stage(settings, "run-2", reports())  # the same pages in a later pass
        with backend(settings).writer() as con:
            assert load(con, settings, "run-1").already_loaded
            later = load(con, settings, "run-2")
        assert (later.articles_new, later.stories_new) == (0, 0)
    assert not (tmp_path / "lake" / "news.duckdb").exists()  # no file made beside the lake
    assert contents(in_lake) == contents(in_file)
    assert len(contents(in_lake)["articles"]) == 3


def test_a_lake_of_a_newer_newsmon_is_refused_and_its_version_kept(
    tmp_path: Path, catalog: str
) -> None:
    """Before, a writer wrote its own schema version back over the newer one's
    and went on, as the DuckDB file no longer does."""
    settings = lake_settings(tmp_path, catalog)
    newer = str(store.SCHEMA_VERSION + 1)
    with backend(settings).writer() as con:
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [newer])
    with pytest.raises(store.StoreError) as err, backend(settings).writer():
        pass
    assert str(err.value) == (
        f"the lake (catalog {catalog!r}) was written by a newer newsmon (schema version"
        f" {newer}; this one knows up to {store.SCHEMA_VERSION}): upgrade newsmon to use it,"
        " or point store.catalog at another lake; nothing was changed")
    with open_store(settings, read_only=True) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                           ).fetchone() == (newer,)


def _load_in_process(settings_json: str, run_id: str) -> int:
    settings = Settings.model_validate_json(settings_json)
    with backend(settings).writer() as con:
        return load(con, settings, run_id).articles_new


def test_two_concurrent_loads_of_the_same_pages_store_each_once(
        tmp_path: Path, catalog: str) -> None:
    settings = lake_settings(tmp_path, catalog)
    with backend(settings).writer():
        pass  # the schema, so both loads start from the same empty lake
    runs = [f"run-{i}" for i in range(4)]
    for run_id in runs:
        f.stage(settings, run_id, reports())
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(runs)) as pool:
        new = pool.starmap(_load_in_process, [(settings.model_dump_json(), r) for r in runs])
    assert sorted(new) == [0, 0, 0, 3]  # one load stored them; the others found them stored
    with open_store(settings, read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT id) FROM articles").fetchall() == [
            (3, 3)]
        assert con.execute("SELECT count(*), count(DISTINCT (feed_url, id)) FROM entries"
                           ).fetchall() == [(3, 3)]
        assert con.execute("SELECT count(*) FROM runs").fetchall() == [(4,)]
        # term_stats counted every article once: '' holds how many were counted
        assert con.execute("SELECT df FROM term_stats WHERE term = ''").fetchall() == [(3,)]


def test_a_writer_waits_for_the_lock_then_says_who_to_wait_for(
        tmp_path: Path, catalog: str) -> None:
    lake_backend = LakeBackend(lake_settings(tmp_path, catalog))
    with lake_backend.writer_lock(), pytest.raises(store.DatabaseLocked) as caught, \
            lake_backend.writer_lock(wait=0.2):
        pass
    assert "another host has held the lake's writer lock for over 0 s" in str(caught.value)
    with lake_backend.writer_lock(wait=0.2):  # released with its session
        pass


def test_a_brief_writer_gives_up_on_the_lock_in_a_second_without_a_warning(
        tmp_path: Path, catalog: str, caplog: pytest.LogCaptureFixture) -> None:
    """The writer a continuous run's load tried again opens (``brief``) waits
    for another host's lock 1 s, not 10 minutes, and leaves the "waiting for
    it" warning to its caller (said once, not per try)."""
    import logging
    import time

    lake_backend = LakeBackend(lake_settings(tmp_path, catalog))
    with lake_backend.writer():  # the lake made
        pass
    with caplog.at_level(logging.WARNING), lake_backend.writer_lock():
        started = time.monotonic()
        with pytest.raises(store.DatabaseLocked) as caught, \
                lake_backend.writer(checkpoint=False, brief=True):
            pass
        waited = time.monotonic() - started
    assert waited < 5, waited
    assert "another host has held the lake's writer lock for over 1 s" in str(caught.value)
    assert [r for r in caplog.records if "waiting for it" in r.getMessage()] == []


def test_a_brief_writers_message_counts_the_wait_so_far_and_it_holds_nothing_after(
        tmp_path: Path, catalog: str) -> None:
    """A continuous run's load waiting for another host asks for the writer
    briefly again and again (the stream's _when_free): each try's message
    says how long the load has waited in all, not the try's second; a try
    that found the lock free and ended leaves it free for the next."""
    lake_backend = LakeBackend(lake_settings(tmp_path, catalog))
    with lake_backend.writer():  # the lake made
        pass
    with lake_backend.writer_lock(), pytest.raises(store.DatabaseLocked) as caught, \
            lake_backend.writer(checkpoint=False, brief=True, waited=42.0):
        pass
    assert "another host has held the lake's writer lock for over 42 s" in str(caught.value)
    with lake_backend.writer(checkpoint=False, brief=True):
        pass
    with lake_backend.writer_lock(wait=0.2):  # the writer holds nothing after
        pass


def test_an_unreachable_catalog_is_one_sentence(tmp_path: Path) -> None:
    settings = lake_settings(tmp_path, "dbname=nowhere host=127.0.0.1 port=1 user=postgres")
    with pytest.raises(store.StoreError) as caught, open_store(settings):
        pass
    assert str(caught.value).startswith("cannot reach the lake's catalog database")
    assert "check store.catalog" in str(caught.value)


def test_reading_a_lake_that_was_never_written_says_what_to_do(
        tmp_path: Path, catalog: str) -> None:
    with pytest.raises(store.StoreError, match=r"no lake here yet; run `newsmon run --once`"), \
            open_store(lake_settings(tmp_path, catalog), read_only=True):
        pass


def test_sql_and_search_work_on_the_lake(tmp_path: Path, catalog: str) -> None:
    settings = lake_settings(tmp_path, catalog)
    f.stage(settings, "run-1", reports())
    with backend(settings).writer() as con:
        load(con, settings, "run-1")
    config = tmp_path / "newsmon.yaml"
    config.write_text(yaml.safe_dump({
        "database": "news.duckdb", "staging_dir": "staging",
        "store": lake.store_section(catalog, tmp_path / "lake-data")}), encoding="utf-8")

    def newsmon(command: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pipeline.cli", command, "--config",
                               str(config), *args], capture_output=True, text=True,
                              timeout=120, check=False, cwd=tmp_path)

    counted = newsmon("sql", "--csv", "SELECT count(*) AS n FROM articles")
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.split() == ["n", "3"]
    found = newsmon("search", "--csv", "floods AND Spain")
    assert found.returncode == 0, found.stderr
    assert "Thousands flee floods in southern Spain" in found.stdout
    assert "Syria" not in found.stdout
    wrong = newsmon("sql", "SELECT * FROM article")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert wrong.stderr.startswith("newsmon: SQL error: Catalog Error")
    assert not (tmp_path / "news.duckdb").exists()


def batch(run: int, n: int = 4) -> list[dict[str, Any]]:
    """``n`` articles of their own for run ``run``."""
    return [f.article(100 * run + i, title=f"Report {run}-{i} on the floods",
                      text=f"Report {run}-{i}. " + reports()[2]["text"], source=f"Outlet {i}",
                      countries=("ES",), hours=i) for i in range(n)]


def _task_in_process(settings_json: str, task: str) -> int:
    from datetime import UTC, datetime, timedelta

    from pipeline.store.lake import compact_lake

    settings = Settings.model_validate_json(settings_json)
    if task == "compact":  # what `newsmon compact` and the maintenance DAG run
        return compact_lake(LakeBackend(settings), now=datetime.now(UTC),
                            keep=timedelta(0)).files_after
    with backend(settings).writer() as con:
        return load(con, settings, task).articles_new


def test_compaction_merges_files_and_keeps_every_row_even_beside_loads(
        tmp_path: Path, catalog: str) -> None:
    settings = lake_settings(tmp_path, catalog)
    for run in range(3):
        f.stage(settings, f"run-{run}", batch(run))
        with backend(settings).writer() as con:
            load(con, settings, f"run-{run}")
    before = contents(settings)
    for run in range(3, 6):
        f.stage(settings, f"run-{run}", batch(run))
    tasks = ["run-3", "compact", "run-4", "compact", "run-5", "compact"]
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        done = pool.starmap(_task_in_process, [(settings.model_dump_json(), t) for t in tasks])
    assert [done[i] for i in (0, 2, 4)] == [4, 4, 4]
    config = tmp_path / "newsmon.yaml"
    config.write_text(yaml.safe_dump(json.loads(settings.model_dump_json())), encoding="utf-8")
    cli = subprocess.run([sys.executable, "-m", "pipeline.cli", "compact", "--config",
                          str(config), "--keep-days", "0"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith("data files ")
    files_before, files_after = (int(x) for x in cli.stdout.split(";")[0][11:].split(" -> "))
    assert files_after <= files_before
    after = contents(settings)
    assert len(after["articles"]) == 24 == len({a[0] for a in after["articles"]})
    assert all(article in after["articles"] for article in before["articles"])
    with open_store(settings, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM entries").fetchall() == [(24,)]
        assert con.execute("SELECT count(*), count(DISTINCT id) FROM runs").fetchall() == [
            (6, 6)]
        files = con.execute("SELECT count(*) FROM __ducklake_metadata_newsmon_lake"
                            ".ducklake_data_file WHERE end_snapshot IS NULL").fetchone()
    # merged: fewer live files than the loads wrote (each load adds several per table)
    assert files is not None and files[0] == files_after < 6 * 5


def test_a_reading_stage_on_a_new_lake_creates_it_without_holding_the_lock(
        tmp_path: Path, catalog: str) -> None:
    settings = lake_settings(tmp_path, catalog)
    lake_backend = LakeBackend(settings)
    assert not lake_backend.exists()
    with open_store(settings) as con:  # the poll's connection on a first run
        assert con.execute("SELECT count(*) FROM feeds").fetchall() == [(0,)]
        with lake_backend.writer_lock(wait=0.5):  # a load elsewhere is not held up
            pass
    assert lake_backend.exists()


def test_feeds_are_added_paused_and_listed_in_the_lake(tmp_path: Path, catalog: str) -> None:
    config = tmp_path / "newsmon.yaml"
    config.write_text(yaml.safe_dump({
        "database": "news.duckdb",
        "store": lake.store_section(catalog, tmp_path / "lake-data")}), encoding="utf-8")

    def newsmon(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "pipeline.cli", "feeds", "--config",
                               str(config), *args], capture_output=True, text=True,
                              timeout=120, check=False, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done

    newsmon("add", "https://news.example.org/feed.xml")
    newsmon("pause", "https://news.example.org/feed.xml")
    listed = newsmon("list", "--csv").stdout
    assert "https://news.example.org/feed.xml" in listed and ",added," in listed
    with open_store(lake_settings(tmp_path, catalog), read_only=True) as con:
        assert con.execute("SELECT url, origin, paused_at IS NOT NULL FROM feeds").fetchall() == [
            ("https://news.example.org/feed.xml", "added", True)]
    assert not (tmp_path / "news.duckdb").exists()


class _ProbeMailer:
    """Delivers nowhere; while each email is "on its way", checks that another
    host could take the lake's writer lock (a load would not wait for it)."""

    def __init__(self, lake_backend: LakeBackend) -> None:
        self.lake_backend = lake_backend
        self.sent: list[str] = []

    def send(self, message: Any) -> None:
        with self.lake_backend.writer_lock(wait=2):
            self.sent.append(str(message["Subject"]))

    def close(self) -> None:
        pass


def test_the_sender_does_not_hold_the_writer_lock_while_an_email_is_on_its_way(
        tmp_path: Path, catalog: str) -> None:
    from pipeline.run import send_stage

    settings = lake_settings(tmp_path, catalog, alerts=[
        {"name": "syria", "query": "topic:syria", "to": ["analyst@example.org"]}])
    f.stage(settings, "run-1", reports())
    with backend(settings).writer() as con:
        assert load(con, settings, "run-1").alerts_queued == 1
    mailer = _ProbeMailer(LakeBackend(settings))
    assert send_stage(settings, mailer).sent == 1
    assert len(mailer.sent) == 1 and "Syria" in mailer.sent[0]
    assert send_stage(settings, _ProbeMailer(LakeBackend(settings))).sent == 0  # sent once
    with open_store(settings, read_only=True) as con:
        assert con.execute("SELECT status, attempts, message_id IS NOT NULL FROM alerts"
                           ).fetchall() == [("sent", 1, True)]


def test_an_object_store_that_does_not_answer_is_one_sentence_and_loses_nothing(
        tmp_path: Path, catalog: str) -> None:
    """Data files on S3 and the S3 server down: `newsmon run` says so in one
    sentence (exit 2; it was a DuckDB traceback), keeps the staged run, and
    loads it once the store is back."""
    with lake.s3_server() as endpoint:
        def config(at: str) -> Path:
            path = tmp_path / "newsmon.yaml"
            path.write_text(yaml.safe_dump({
                "database": "news.duckdb", "staging_dir": "staging",
                # a feed that does not answer: the pass has one, and adds nothing
                "feeds": [{"url": "http://127.0.0.1:9/feed.xml"}],
                "fetch": {"allow_private": ["127.0.0.1:9"]},
                "store": lake.store_section(catalog, "s3://newsmon/lake/", endpoint=at)}),
                encoding="utf-8")
            return path

        def newsmon(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=tmp_path,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)},
                                  capture_output=True, text=True, timeout=300, check=False)

        settings = f.settings(tmp_path, store=lake.store_section(
            catalog, "s3://newsmon/lake/", endpoint=endpoint))
        f.stage(settings, "run-1", reports()[:1])
        with backend(settings).writer() as con:
            load(con, settings, "run-1")
        f.stage(settings, "run-2", reports()[1:])  # a pass's batch whose load did not happen
        down = newsmon("run", "--once", "--config", str(config(f"127.0.0.1:{lake.free_port()}")))
        assert down.returncode == 2, down.stderr
        assert "Traceback" not in down.stderr
        assert down.stderr.startswith("newsmon: cannot reach the lake's data files ("), \
            down.stderr
        assert "check store.data_path and store.s3" in down.stderr
        assert (settings.staging / "run-2").is_dir()
        back = newsmon("run", "--once", "--config", str(config(endpoint)))
        assert back.returncode == 0, back.stderr
        with open_store(settings, read_only=True) as con:
            assert con.execute("SELECT count(*) FROM articles").fetchall() == [(3,)]


def test_a_damaged_data_file_of_the_lake_is_one_sentence(tmp_path: Path, catalog: str) -> None:
    """A data file the catalog lists, cut short (a disk that lost its tail, a
    copy that stopped): `newsmon run` names it in one sentence, exit 2, as a
    damaged DuckDB file is named (it was a DuckDB traceback)."""
    settings = lake_settings(tmp_path, catalog)
    f.stage(settings, "run-1", reports())
    with backend(settings).writer() as con:
        load(con, settings, "run-1")
    damaged = next((tmp_path / "lake-data").rglob("entries/*.parquet"))
    damaged.write_bytes(damaged.read_bytes()[:-100])
    config = tmp_path / "newsmon.yaml"
    config.write_text(yaml.safe_dump({
        "database": "news.duckdb", "staging_dir": "staging",
        "feeds": [{"url": "http://127.0.0.1:9/feed.xml"}],
        "fetch": {"allow_private": ["127.0.0.1:9"]},
        "store": lake.store_section(catalog, tmp_path / "lake-data")}), encoding="utf-8")
    f.stage(settings, "run-2", batch(2))  # left by a pass: the next one loads it first
    ran = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--once", "--config",
                          str(config)], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=300, check=False)
    assert ran.returncode == 2, ran.stderr
    assert "Traceback" not in ran.stderr
    assert ran.stderr.startswith("newsmon: a data file of the lake is damaged ("), ran.stderr
    assert str(damaged) in ran.stderr
    assert "restore it from a backup of store.data_path" in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1


def test_a_lake_load_that_went_through_unseen_loads_the_shards_staged_beside_it_later(
        tmp_path: Path, catalog: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the file's (test_load): the lake's catalog session cut off after the
    commit, and the catalog unreachable for the read-back at that moment, so
    the run counts as failed; a later batch is staged beside it (p001) and
    the run is tried again: its shard is loaded, the first one not again.
    The lake was made before ``run_shards``: the writer adds the table."""
    from integration.test_load import _load_that_commits_then_says
    from pipeline import stages

    settings = lake_settings(tmp_path, catalog)
    with backend(settings).writer() as con:
        con.execute("DROP TABLE run_shards")
    f.stage(settings, "run-1", reports()[:2])
    lost = store.StoreError("lost the connection to the lake's catalog database (server "
                            "closed the connection unexpectedly)")

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise store.StoreError("cannot reach the lake's catalog database")

    with monkeypatch.context() as patched:
        patched.setattr(stages, "load", _load_that_commits_then_says(lost, []))
        patched.setattr(stages, "open_store", unreachable)
        with pytest.raises(store.StoreError, match="server closed the connection"):
            stages.plan_and_load_stage(settings, "run-1", checkpoint=False)
    f.stage(settings, "run-1", reports()[2:], shard="p001")
    planned, loaded = stages.plan_and_load_stage(settings, "run-1", checkpoint=False)
    assert (planned.articles, loaded.already_loaded, loaded.articles_new) == (1, False, 1)
    assert stages.load_stage(settings, "run-1").already_loaded  # an Airflow retry
    with open_store(settings, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM articles").fetchall() == [(3,)]
        assert con.execute("SELECT articles_new FROM runs").fetchall() == [(3,)]
        assert sorted(con.execute("SELECT shard FROM run_shards").fetchall()) == [
            ("p000",), ("p001",)]
