"""``dag.test()`` end to end: the seed site on 127.0.0.1, a DuckDB file in tmp_path,
alert emails delivered to aiosmtpd through the ``smtp_default`` connection.

``dag.test()`` runs every task in this process against a real (SQLite)
metadata database, with XCom, dynamic task mapping and the asset outlet going
through Airflow's own code. What it does not do is react to the asset event:
``news_alerts`` is run by hand after ``news_monitor`` here (test_scheduler.py
has the scheduler do it).
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow", reason="needs the airflow extra: pip install -e '.[airflow]'")

import duckdb
from airflow_env import (
    RULE,
    SECRET,
    TEMPLATED,
    NewsmonEnv,
    smtp_connection_json,
    task_states,
    without_retries,
    xcoms,
)
from support import factories
from support.smtp import free_port

from pipeline import store
from pipeline.demo import SeedServer
from pipeline.store.load import load


def test_news_monitor_and_alerts_under_dag_test(
    airflow_db: Path, dagbag: Any, newsmon_env: NewsmonEnv, templated_site: Path
) -> None:
    monitor = without_retries(dagbag.dags["news_monitor"])
    alerts = without_retries(dagbag.dags["news_alerts"])
    with SeedServer(templated_site) as site:
        newsmon_env.write(site)

        run = monitor.test()
        states = task_states(run)
        assert str(run.state) == "success", states
        sent = alerts.test()
        assert str(sent.state) == "success", task_states(sent)

        # Two shards for five entries at three per batch: mapped, not one task per article.
        assert sorted(k for k in states if k[0] == "process") == [("process", 0), ("process", 1)]
        assert {ti.rendered_map_index for ti in run.get_task_instances()
                if ti.task_id == "process"} == {"shard 0", "shard 1"}
        assert set(states.values()) == {"success"}

        counts = newsmon_env.counts()
        assert counts["articles"] == 5
        assert counts["stories"] == 1
        assert counts["rejected"] == 0
        assert len(newsmon_env.inbox.messages) == 1
        message = newsmon_env.inbox.messages[0]
        assert message["To"] == "analyst@example.org"

        # Feed text is never templated: the Jinja expression in the titles
        # arrives literally, and the connection's password appears nowhere.
        assert TEMPLATED in str(message["Subject"])
        assert TEMPLATED in str(message.get_body(preferencelist=("plain",)).get_content())
        assert SECRET not in message.as_string()

        # XCom carries ids and counts, never article text.
        values = xcoms(run)
        assert set(values) == {("poll", -1), ("plan_shards", -1), ("process", 0),
                               ("process", 1), ("cluster", -1), ("load", -1)}
        payload = json.dumps({f"{t}[{i}]": v for (t, i), v in values.items()})
        assert len(payload) < 2000, payload
        with duckdb.connect(str(newsmon_env.database), read_only=True) as con:
            titles = [r[0] for r in con.execute("SELECT title FROM articles").fetchall()]
        for title in titles:
            assert title.split(TEMPLATED)[0].strip() not in payload
        polled = values[("poll", -1)]
        assert polled["entries_new"] == 5
        assert "/" not in polled["run_id"] and not polled["run_id"].startswith(".")
        assert values[("load", -1)]["run_id"] == polled["run_id"]
        assert values[("load", -1)]["articles_new"] == 5
        # The cluster task planned the run: 5 articles, 1 story, 1 alert candidate.
        assert {k: values[("cluster", -1)][k] for k in ("articles", "stories", "candidates")} == {
            "articles": 5, "stories": 1, "candidates": 1}
        assert [values[("process", i)]["articles"] for i in range(2)] == [3, 2]

        # A second run, every feed polled and its stored ETag dropped so the
        # feed is parsed again: nothing new is stored and no email is sent.
        with duckdb.connect(str(newsmon_env.database)) as con:
            con.execute("UPDATE feeds SET etag = NULL, last_modified = NULL,"
                        " content_hash = NULL")
        before = newsmon_env.counts()
        again = monitor.test(run_conf={"force": True})
        assert str(again.state) == "success", task_states(again)
        assert str(alerts.test().state) == "success"
        second = xcoms(again)
        assert second[("poll", -1)]["feeds_polled"] == 1
        assert second[("poll", -1)]["entries_new"] == 0
        assert second[("poll", -1)]["run_id"] != polled["run_id"]
        assert second[("load", -1)]["articles_new"] == 0
        after = newsmon_env.counts()
        assert after.pop("runs") == before.pop("runs") + 1
        assert after == before
        assert len(newsmon_env.inbox.messages) == 1


def test_news_maintenance_under_dag_test(
    airflow_db: Path, dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Articles fetched in 2019 (the factories' clock), retention of 30 days:
    # whatever the day the test runs, they are all past it.
    settings = factories.settings(tmp_path, alerts=[RULE], retention_days=30)
    text = ("Israel and Russia agreed to set up a working group on the withdrawal of "
            "foreign forces from Syria, officials said after the talks. ") * 3
    factories.stage(settings, "run-1", [
        factories.article(i, title=f"Report {i} on the working group", text=text,
                          source=f"Outlet {i}", topics=("syria", "foreign-forces"), hours=i)
        for i in range(3)])
    with store.connect(settings.database) as con:
        load(con, settings, "run-1")
        con.execute("INSERT INTO feeds (url, name, status, error_count, last_error) VALUES"
                    " ('https://gone.example/rss', 'Gone', 'retired', 3, 'HTTP 410 Gone'),"
                    " ('https://flaky.example/rss', 'Flaky', 'failing', 4, 'timed out'),"
                    " ('https://fine.example/rss', 'Fine', 'active', 0, NULL)")
    stale = settings.staging / "af-stale-run"
    stale.mkdir(parents=True)
    config = tmp_path / "newsmon.yaml"
    config.write_text(json.dumps({"database": str(settings.database),
                                  "staging_dir": str(settings.staging),
                                  "alerts": [RULE], "retention_days": 30}), encoding="utf-8")
    monkeypatch.setenv("NEWSMON_CONFIG", str(config))
    old = (factories.T0 - timedelta(days=10)).timestamp()
    os.utime(stale, (old, old))

    run = without_retries(dagbag.dags["news_maintenance"]).test()
    assert str(run.state) == "success", task_states(run)
    values = xcoms(run)
    assert values[("feed_health", -1)] == {"total": 3, "active": 1, "failing": 1, "dead": 1}
    assert values[("retention", -1)]["articles"] == 3
    assert values[("retention", -1)]["stories_deleted"] == 1
    assert values[("retention", -1)]["alerts_cancelled"] == 1
    assert values[("prune_staging", -1)] == 1
    assert not stale.exists()
    with duckdb.connect(str(settings.database), read_only=True) as con:
        left = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                for t in ("articles", "article_tags", "removed_lines", "stories")}
        outbox = con.execute("SELECT status, error FROM alerts").fetchall()
    assert left == {"articles": 0, "article_tags": 0, "removed_lines": 0, "stories": 0}
    assert outbox == [("failed", "story removed by retention (articles older than 30 days)")]


def test_news_alerts_fails_visibly_then_delivers_once(
    airflow_db: Path, dagbag: Any, tmp_path: Path, smtp_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = factories.settings(tmp_path, alerts=[RULE])
    text = ("Israel and Russia agreed to set up a working group on the withdrawal of "
            "foreign forces from Syria, officials said after the talks. ") * 3
    factories.stage(settings, "run-1", [factories.article(
        1, title="Working group on foreign forces in Syria", text=text, source="Outlet 1",
        topics=("syria", "foreign-forces"))])
    with store.connect(settings.database) as con:
        load(con, settings, "run-1")
    config = tmp_path / "newsmon.yaml"
    config.write_text(json.dumps({"database": str(settings.database), "alerts": [RULE]}),
                      encoding="utf-8")
    monkeypatch.setenv("NEWSMON_CONFIG", str(config))
    alerts = without_retries(dagbag.dags["news_alerts"])

    # SMTP down: the run fails (visible in Airflow), the alert stays pending with why.
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection_json(
        "127.0.0.1", free_port(), "unused"))
    assert str(alerts.test().state) == "failed"
    with duckdb.connect(str(settings.database), read_only=True) as con:
        ((status, error),) = con.execute("SELECT status, error FROM alerts").fetchall()
    assert status == "pending" and "cannot reach SMTP server" in error

    # SMTP back, the outbox's backoff over: delivered once, and only once.
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection_json(
        smtp_server.host, smtp_server.port, "unused"))
    with duckdb.connect(str(settings.database)) as con:
        con.execute("UPDATE alerts SET next_attempt_at = NULL")
    assert str(alerts.test().state) == "success"
    assert str(alerts.test().state) == "success"
    assert len(smtp_server.messages) == 1
    with duckdb.connect(str(settings.database), read_only=True) as con:
        assert con.execute("SELECT status FROM alerts").fetchall() == [("sent",)]
