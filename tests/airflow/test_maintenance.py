"""pipeline.store.maintenance on real DuckDB files (no Airflow needed; the DAG is
exercised in test_dag_run.py)."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support import factories as f
from support.retention import SYRIA, TOPICS, rates, stage_three_reports

from pipeline import store
from pipeline.store.load import load
from pipeline.store.maintenance import apply_retention, checkpoint, feed_health, prune_staging

RATES = rates("analyst@example.org")


def _loaded(tmp_path: Path) -> Any:
    """Story A: two reports two days apart; story B: one old report. Alerts pending."""
    settings = f.settings(tmp_path, alerts=[SYRIA, RATES], topics=TOPICS)
    stage_three_reports(settings)
    with store.connect(settings.database) as con:
        load(con, settings, "run-1")
    return settings


def _table(con: Any, sql: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = con.execute(sql).fetchall()
    return rows


def test_retention_deletes_old_articles_their_rows_and_empty_stories(tmp_path: Path) -> None:
    settings = _loaded(tmp_path)
    with store.connect(settings.database) as con:
        stories = dict(_table(con, "SELECT lead_article_id, id FROM stories"))
        assert len(stories) == 2
        a3 = _table(con, "SELECT id FROM articles WHERE source = 'Outlet 3'")[0][0]
        (story_a,) = _table(con, f"SELECT story_id FROM articles WHERE id = '{a3}'")[0]
        # Cut-off one day after T0: reports 1 and 2 go, report 3 (T0 + 48 h) stays.
        result = apply_retention(con, 2, now=f.T0 + timedelta(days=3))
        assert result.cutoff == f.T0 + timedelta(days=1)
        assert (result.articles, result.stories_deleted, result.stories_updated,
                result.alerts_cancelled) == (2, 1, 1, 1)
        assert result.article_tags == 2 and result.removed_lines == 2
        assert _table(con, "SELECT id FROM articles") == [(a3,)]
        assert _table(con, "SELECT DISTINCT article_id FROM article_tags") == [(a3,)]
        assert _table(con, "SELECT DISTINCT article_id FROM removed_lines") == [(a3,)]
        # Story A keeps its remaining report, recounted, led by it.
        assert _table(con, "SELECT id, n_articles, n_sources, lead_article_id, title"
                           " FROM stories") == [
            (story_a, 1, 1, a3, "Israel, Russia working group on foreign forces in Syria")]
        # Story B's pending alert has nothing left to send; story A's still waits.
        assert sorted(_table(con, "SELECT rule, status, error FROM alerts")) == [
            ("rates", "failed", "story removed by retention (articles older than 2 days)"),
            ("syria", "pending", None)]
        again = apply_retention(con, 2, now=f.T0 + timedelta(days=3))
        assert again.counts() == dict.fromkeys(again.counts(), 0)


def test_retention_keeps_everything_newer_than_the_cutoff(tmp_path: Path) -> None:
    settings = _loaded(tmp_path)
    with store.connect(settings.database) as con:
        before = _table(con, "SELECT count(*) FROM articles")
        assert apply_retention(con, 30, now=f.T0 + timedelta(days=3)).articles == 0
        assert _table(con, "SELECT count(*) FROM articles") == before
        with pytest.raises(ValueError, match="at least 1 day"):
            apply_retention(con, 0, now=f.T0)


def test_feed_health_counts_and_logs_the_problem_feeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = f.settings(tmp_path)
    with store.connect(settings.database) as con:
        con.execute("INSERT INTO feeds (url, name, status, error_count, last_error) VALUES"
                    " ('https://gone.example/rss', 'Gone', 'retired', 3, 'HTTP 410 Gone'),"
                    " ('https://flaky.example/rss', 'Flaky', 'failing', 4, 'timed out'),"
                    " ('https://ok.example/rss', 'Fine', 'active', 0, NULL)")
        with caplog.at_level(logging.INFO, logger="pipeline.store.maintenance"):
            health = feed_health(con)
    assert health.counts() == {"total": 3, "active": 1, "failing": 1, "dead": 1}
    assert [p.url for p in health.dead] == ["https://gone.example/rss"]
    assert [p.last_error for p in health.failing] == ["timed out"]
    assert "HTTP 410 Gone" in caplog.text and "timed out" in caplog.text


def test_checkpoint_folds_the_wal_into_the_file(tmp_path: Path) -> None:
    settings = _loaded(tmp_path)
    wal = Path(f"{settings.database}.wal")
    with store.connect(settings.database) as con:
        con.execute("DELETE FROM removed_lines")
        assert wal.exists() and wal.stat().st_size > 0
        checkpoint(con)
        assert not wal.exists() or wal.stat().st_size == 0


def test_prune_staging_removes_only_stale_run_folders(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    old, fresh = staging / "af-old", staging / "af-fresh"
    for folder in (old, fresh):
        folder.mkdir(parents=True)
        (folder / "polled-poll.jsonl").write_text("{}\n", encoding="utf-8")
    now = f.T0 + timedelta(days=10)
    for path in (old, old / "polled-poll.jsonl"):
        stamp = (now - timedelta(days=4)).timestamp()
        os.utime(path, (stamp, stamp))
    for path in (fresh, fresh / "polled-poll.jsonl"):
        stamp = (now - timedelta(hours=1)).timestamp()
        os.utime(path, (stamp, stamp))
    assert prune_staging(staging, now=now, max_age=timedelta(days=3)) == 1
    assert sorted(p.name for p in staging.iterdir()) == ["af-fresh"]
    assert prune_staging(tmp_path / "missing", now=now, max_age=timedelta(days=3)) == 0
