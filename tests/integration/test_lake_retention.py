"""Retention on a lake (pipeline.store.maintenance.apply_lake_retention): the
file's rules on the lake's tables, the pending alerts of deleted stories
cancelled in the delivery table (PostgreSQL). Real catalog, real data files."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from support import factories as f
from support import lake
from support.retention import SYRIA, TOPICS, rates, stage_three_reports

from pipeline.config import Settings
from pipeline.store import delivery, maintenance
from pipeline.store.backend import backend, open_store
from pipeline.store.lake import LakeBackend
from pipeline.store.load import load

RATES = rates("analyst@example.org", "desk@example.org")
NOW = f.T0 + timedelta(days=3)  # two days of retention: reports 1 and 2 expire, 3 stays
WHY = "story removed by retention (articles older than 2 days)"


@pytest.fixture
def catalog() -> Iterator[str]:
    with lake.catalog_database() as dsn:
        yield dsn


def _loaded(tmp_path: Path, dsn: str) -> Settings:
    """Story A: two reports two days apart; story B: one old report. One of
    story B's two alerts already copied to the delivery table by a sender."""
    settings = f.settings(tmp_path, alerts=[SYRIA, RATES], topics=TOPICS,
                          store=lake.store_section(dsn, tmp_path / "lake-data"))
    stage_three_reports(settings)
    with backend(settings).writer() as con:
        assert load(con, settings, "run-1").alerts_queued == 3
        copied = [r for r in delivery.lake_outbox_rows(con) if r[2] == "desk@example.org"]
    pg = delivery.connect(dsn)
    try:
        assert delivery.PgOutbox(pg).add(copied) == 1
    finally:
        pg.close()
    return settings


def _rows(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    with open_store(settings, read_only=True) as con:
        return sorted(con.execute(sql).fetchall())


def test_lake_retention_deletes_what_file_retention_does_and_cancels_alerts_in_postgres(
        tmp_path: Path, catalog: str) -> None:
    settings = _loaded(tmp_path, catalog)
    (a3, story_a), = _rows(settings, "SELECT id, story_id FROM articles WHERE source = 'Outlet 3'")
    result = maintenance.apply_lake_retention(LakeBackend(settings), 2, now=NOW)
    assert result.cutoff == f.T0 + timedelta(days=1)
    # The file's report on the same data (tests/airflow/test_maintenance.py),
    # with story B's two alerts cancelled.
    assert result.counts() == {"articles": 2, "article_tags": 2, "removed_lines": 2,
                               "stories_deleted": 1, "stories_updated": 1,
                               "alerts_cancelled": 2}
    assert _rows(settings, "SELECT id FROM articles") == [(a3,)]
    assert _rows(settings, "SELECT DISTINCT article_id FROM article_tags") == [(a3,)]
    assert _rows(settings, "SELECT DISTINCT article_id FROM removed_lines") == [(a3,)]
    assert _rows(settings, "SELECT DISTINCT article_id FROM story_signatures") == [(a3,)]
    assert _rows(settings, "SELECT story_id FROM story_state") == [(story_a,)]
    assert _rows(settings, "SELECT id, n_articles, n_sources, lead_article_id, title"
                           " FROM stories") == [
        (story_a, 1, 1, a3, "Israel, Russia working group on foreign forces in Syria")]
    # Both of story B's alerts failed (the copied one and the one no sender had
    # copied yet), in PostgreSQL; story A's still waits.
    assert _rows(settings, "SELECT rule, recipient, status, error FROM alerts") == [
        ("rates", "analyst@example.org", "failed", WHY),
        ("rates", "desk@example.org", "failed", WHY),
        ("syria", "analyst@example.org", "pending", None)]
    with psycopg2.connect(catalog) as pg, pg.cursor() as cur:
        cur.execute(f"SELECT rule, recipient, status FROM {delivery.TABLE} ORDER BY 2")
        assert cur.fetchall() == [("rates", "analyst@example.org", "failed"),
                                  ("rates", "desk@example.org", "failed")]
    again = maintenance.apply_lake_retention(LakeBackend(settings), 2, now=NOW)
    assert again.counts() == dict.fromkeys(again.counts(), 0)


class _Down(Exception):
    """PostgreSQL going away between the lake's commit and the cancelling."""


def test_a_retry_after_a_failure_between_the_two_commits_cancels_the_alerts(
        tmp_path: Path, catalog: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _loaded(tmp_path, catalog)
    real = delivery.cancel_orphans

    def down(*args: Any, **kwargs: Any) -> int:
        raise _Down

    monkeypatch.setattr(delivery, "cancel_orphans", down)
    with pytest.raises(_Down):
        maintenance.apply_lake_retention(LakeBackend(settings), 2, now=NOW)
    assert len(_rows(settings, "SELECT id FROM articles")) == 1  # the deletes committed
    assert _rows(settings, "SELECT status FROM alerts") == [("pending",)] * 3
    monkeypatch.setattr(delivery, "cancel_orphans", real)
    retried = maintenance.apply_lake_retention(LakeBackend(settings), 2, now=NOW)
    assert (retried.articles, retried.alerts_cancelled) == (0, 2)
    assert _rows(settings, "SELECT rule, status FROM alerts") == [
        ("rates", "failed"), ("rates", "failed"), ("syria", "pending")]


def test_lake_retention_with_nothing_old_commits_nothing(tmp_path: Path, catalog: str) -> None:
    settings = _loaded(tmp_path, catalog)
    with psycopg2.connect(catalog) as pg, pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM ducklake_snapshot")
        before = cur.fetchone()[0]
    result = maintenance.apply_lake_retention(LakeBackend(settings), 30, now=NOW)
    assert result.counts() == dict.fromkeys(result.counts(), 0)
    with psycopg2.connect(catalog) as pg, pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM ducklake_snapshot")
        assert cur.fetchone()[0] == before
    with pytest.raises(ValueError, match="at least 1 day"):
        maintenance.apply_lake_retention(LakeBackend(settings), 0, now=NOW)
