"""The single writer: one transaction per run, idempotent, clustering on load."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from support import factories as f

from pipeline import store
from pipeline.load import load

EVENT = ("Israel and Russia agreed to set up a working group on the withdrawal of foreign "
         "forces from Syria, Prime Minister Benjamin Netanyahu said after meeting President "
         "Vladimir Putin in Moscow. ")
OTHER = ("Floods in southern Spain forced 3,000 people from their homes as the Guadalquivir "
         "burst its banks near Seville, regional officials said on Tuesday. ")


def reports() -> list[dict[str, object]]:
    return [
        f.article(1, title="Israel, Russia to form group on foreign forces in Syria",
                  text=EVENT * 3, source="Outlet One", topics=("syria",),
                  countries=("IL", "RU", "SY")),
        f.article(2, title="Netanyahu: Russia and Israel agree on Syria pullout group",
                  text=EVENT * 2, source="Outlet Two", topics=("syria",),
                  countries=("IL", "RU", "SY"), hours=5),
        f.article(3, title="Thousands flee floods in southern Spain", text=OTHER * 3,
                  source="Outlet Three", countries=("ES",), hours=6),
    ]


def table(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[object, ...]]:
    return con.execute(sql).fetchall()


def test_load_clusters_and_counts(tmp_path: Path) -> None:
    settings = f.settings(tmp_path)
    f.stage(settings, "run-1", reports())
    with store.connect(settings.database) as con:
        result = load(con, settings, "run-1")
        assert result.articles_new == 3
        assert result.stories_new == 2
        stories = table(con, "SELECT n_articles, n_sources FROM stories ORDER BY n_articles")
        assert stories == [(1, 1), (2, 2)]
        tags = table(con, "SELECT count(*) FROM article_tags")
        removed = table(con, "SELECT count(*) FROM removed_lines")
    assert tags == [(2,)] and removed == [(3,)]


def test_reloading_a_run_or_the_same_articles_changes_nothing(tmp_path: Path) -> None:
    settings = f.settings(tmp_path)
    f.stage(settings, "run-1", reports())
    with store.connect(settings.database) as con:
        load(con, settings, "run-1")
        snapshot = table(con, "SELECT id, story_id, title FROM articles ORDER BY id")
        again = load(con, settings, "run-1")
        assert again.already_loaded
        f.stage(settings, "run-2", reports())  # the same pages in a later pass
        later = load(con, settings, "run-2")
        assert later.articles_new == 0 and later.stories_new == 0
        assert table(con, "SELECT id, story_id, title FROM articles ORDER BY id") == snapshot
        assert table(con, "SELECT count(*) FROM entries") == [(3,)]


def test_the_same_page_in_two_feeds_is_one_article(tmp_path: Path) -> None:
    settings = f.settings(tmp_path)
    one = reports()[0]
    twin = {**one, "feed_url": "https://other-feed.example", "url": one["url"] + "?utm_source=x"}
    f.stage(settings, "run-1", [one], shard="p000")
    f.stage(settings, "run-1", [twin], shard="p001")
    with store.connect(settings.database) as con:
        assert load(con, settings, "run-1").articles_new == 1


def test_a_failing_load_rolls_back_everything(tmp_path: Path) -> None:
    settings = f.settings(tmp_path)
    f.stage(settings, "run-1", reports())
    broken = tmp_path / "staging" / "run-1" / "articles-p999.jsonl"
    broken.write_text('{"id": "x", "published_at": "not a date"}\n', encoding="utf-8")
    with store.connect(settings.database) as con:
        with pytest.raises(duckdb.Error):
            load(con, settings, "run-1")
        assert table(con, "SELECT count(*) FROM articles") == [(0,)]
        assert table(con, "SELECT count(*) FROM entries") == [(0,)]
        assert table(con, "SELECT count(*) FROM runs") == [(0,)]


def test_a_locked_database_is_reported_in_one_sentence(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    db = tmp_path / "news.duckdb"
    with store.connect(db):
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb,time; c=duckdb.connect({str(db)!r}); print('ok', flush=True); "
         "time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        started = time.monotonic()
        retry = store.LockRetry(attempts=3, first_delay=0.05)
        with pytest.raises(store.DatabaseLocked) as err, store.connect(db, retry=retry):
            pass
        assert time.monotonic() - started < 5
        assert f"locked by process {holder.pid}" in str(err.value)
        assert "close that session" in str(err.value)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
