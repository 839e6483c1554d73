"""``dag.test()`` of news_monitor and news_alerts in lake mode: the catalog a
fresh PostgreSQL database, data files and staging on a moto S3 (issue 15).
The DAGs are the same; every task works on the lake and the shared staging."""

from __future__ import annotations

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
        assert values[("retention", -1)] == {
            "retention_days": 365, "skipped": "not built for lake mode yet"}

        settings = load_settings(newsmon_env.config)
        with open_store(settings, read_only=True) as con:
            counted = con.execute(
                "SELECT (SELECT count(*) FROM articles), (SELECT count(DISTINCT id) FROM"
                " articles), (SELECT count(*) FROM stories), (SELECT count(*) FROM alerts"
                " WHERE status = 'sent'), (SELECT count(*) FROM runs)").fetchone()
    assert counted == (5, 5, 1, 1, 1)
    assert len(newsmon_env.inbox.messages) == 1
    assert not newsmon_env.database.exists()  # no DuckDB file made on the side
