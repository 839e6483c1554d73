"""``dag.test()`` of news_monitor and news_alerts in lake mode: the catalog a
fresh PostgreSQL database, data files and staging on a moto S3 (issue 15).
The DAGs are the same; every task works on the lake and the shared staging."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow", reason="needs the airflow extra: pip install -e '.[airflow]'")

from airflow_env import NewsmonEnv, task_states, without_retries, xcoms
from support import lake

from pipeline.config import load_settings
from pipeline.demo import SeedServer
from pipeline.store.backend import open_store


def test_the_dags_run_against_a_lake(
    airflow_db: Path, dagbag: Any, newsmon_env: NewsmonEnv, templated_site: Path
) -> None:
    monitor = without_retries(dagbag.dags["news_monitor"])
    alerts = without_retries(dagbag.dags["news_alerts"])
    maintenance = without_retries(dagbag.dags["news_maintenance"])
    with lake.catalog_database() as dsn, lake.s3_server() as endpoint, \
            SeedServer(templated_site) as site:
        newsmon_env.write(site, store=lake.store_section(
            dsn, "s3://newsmon/lake/", endpoint=endpoint, staging_url="s3://newsmon/staging/"),
            retention_days=365)
        run = monitor.test()
        assert str(run.state) == "success", task_states(run)
        assert sorted(k for k in task_states(run) if k[0] == "process") == [
            ("process", 0), ("process", 1)]
        sent = alerts.test()
        assert str(sent.state) == "success", task_states(sent)
        again = alerts.test()  # nothing left to send
        assert str(again.state) == "success", task_states(again)

        # The maintenance DAG works on the lake too: the feeds it reports are
        # the lake's (it once opened a new DuckDB file at `database` on the
        # worker, reported 0 feeds and "applied" retention to that file).
        kept = maintenance.test()
        assert str(kept.state) == "success", task_states(kept)
        values = xcoms(kept)
        assert values[("feed_health", -1)]["total"] == 1
        # Retention ran on the lake (it once only logged that it was not
        # built for lake mode): nothing there is a year old.
        assert values[("retention", -1)] == {
            "retention_days": 365, "articles": 0, "article_tags": 0, "removed_lines": 0,
            "stories_deleted": 0, "stories_updated": 0, "alerts_cancelled": 0}

        settings = load_settings(newsmon_env.config)
        with open_store(settings, read_only=True) as con:
            counted = con.execute(
                "SELECT (SELECT count(*) FROM articles), (SELECT count(DISTINCT id) FROM"
                " articles), (SELECT count(*) FROM stories), (SELECT count(*) FROM alerts"
                " WHERE status = 'sent'), (SELECT count(*) FROM runs)").fetchone()
        # A run a year and a day later (the run's own clock, run_after)
        # deletes it all: the five reports, their story; its alert was sent.
        later = maintenance.test(run_after=run.run_after + timedelta(days=366),
                                 logical_date=run.run_after + timedelta(days=366))
        assert str(later.state) == "success", task_states(later)
        removed = xcoms(later)[("retention", -1)]
        assert (removed["articles"], removed["stories_deleted"], removed["stories_updated"],
                removed["alerts_cancelled"]) == (5, 1, 0, 0)
        with open_store(settings, read_only=True) as con:
            left = con.execute(
                "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM stories),"
                " (SELECT count(*) FROM article_tags), (SELECT count(*) FROM alerts"
                " WHERE status = 'sent')").fetchone()
    assert counted == (5, 5, 1, 1, 1)
    assert left == (0, 0, 0, 1)  # the sent alert's row stays, as in a file
    assert len(newsmon_env.inbox.messages) == 1
    assert not newsmon_env.database.exists()  # no DuckDB file made on the side
