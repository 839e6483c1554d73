"""Clearing and re-running any task of a finished run adds no row and sends no email.

How: one real run of ``news_monitor`` and ``news_alerts`` under ``dag.test()``,
then two kinds of re-run.

1. Each task alone, by calling its TaskFlow callable again with exactly what
   Airflow gives a cleared task: the same Airflow run id (hence the same
   newsmon run id and staging folder), the same ``run_after``, and the
   upstream XComs that run stored in the metadata database. ``dag.test()``
   cannot re-run one task of a finished run (it deletes the run, XComs
   included, and starts over), and a scheduler round per task would cost
   half a minute each; the callable is the code Airflow runs for the task.
2. The whole run, through Airflow: ``dag.test()`` with the run's own logical
   date and ``run_after`` recreates the same run id and runs every task again.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("airflow", reason="needs the airflow extra: pip install -e '.[airflow]'")

from airflow_env import NewsmonEnv, task_states, without_retries, xcoms

from pipeline.demo import SeedServer

SEED_SITE = Path(__file__).resolve().parents[2] / "seeds" / "site"


def _callable(dag: Any, task_id: str) -> Any:
    task = dag.get_task(task_id)
    fn = getattr(task, "python_callable", None)
    return fn if fn is not None else task.partial_kwargs["python_callable"]


def test_rerunning_any_task_of_a_finished_run_changes_nothing(
    airflow_db: Path, dagbag: Any, newsmon_env: NewsmonEnv
) -> None:
    monitor = without_retries(dagbag.dags["news_monitor"])
    alerts = without_retries(dagbag.dags["news_alerts"])
    with SeedServer(SEED_SITE) as site:
        newsmon_env.write(site)
        run = monitor.test()
        assert str(run.state) == "success", task_states(run)
        assert str(alerts.test().state) == "success"
        baseline = newsmon_env.counts()
        assert baseline["articles"] == 5 and baseline["stories"] == 1
        assert len(newsmon_env.inbox.messages) == 1
        staging = newsmon_env.database.parent / "staging"

        stored = xcoms(run)
        polled = stored[("poll", -1)]
        parts = stored[("plan_shards", -1)]
        processed = [stored[("process", i)] for i in range(len(parts))]
        context = {"run_id": run.run_id, "dag_run": SimpleNamespace(run_after=run.run_after)}

        def unchanged(after: str) -> None:
            assert newsmon_env.counts() == baseline, f"after re-running {after}"
            assert len(newsmon_env.inbox.messages) == 1, f"after re-running {after}"

        again = _callable(monitor, "poll")(params={"force": False}, **context)
        # Same run id; the feed is not due at the run's own time, so nothing is polled.
        assert again["run_id"] == polled["run_id"]
        assert again["entries_new"] == 0
        unchanged("poll")

        # Planning reads the staging folder, which the load removed: one idle shard.
        assert _callable(monitor, "plan_shards")(polled) == [
            {"run_id": polled["run_id"], "shard": 0, "shards": 1}]
        unchanged("plan_shards")

        for part in parts:
            result = _callable(monitor, "process")(part)
            assert result["articles"] == 0
        unchanged("process")

        planned = _callable(monitor, "cluster")(polled, processed)
        # The run is loaded: nothing to plan, and no plan written.
        assert planned["already_loaded"] is True and planned["articles"] == 0
        assert not (staging / polled["run_id"]).exists()
        unchanged("cluster")

        events: defaultdict[Any, SimpleNamespace] = defaultdict(SimpleNamespace)
        loaded = _callable(monitor, "load")(polled, planned, dag_run=context["dag_run"],
                                            outlet_events=events)
        # The run id is recorded as loaded: the second load is a no-op.
        assert loaded["already_loaded"] is True
        unchanged("load")

        assert _callable(alerts, "send")() == {"sent": 0, "failed": 0, "pending": 0}
        unchanged("send")

        # The whole run again, through Airflow, under the same run id.
        rerun = monitor.test(logical_date=run.logical_date, run_after=run.run_after)
        assert rerun.run_id == run.run_id
        assert str(rerun.state) == "success", task_states(rerun)
        assert xcoms(rerun)[("load", -1)]["already_loaded"] is True
        assert str(alerts.test().state) == "success"
        unchanged("the whole run")
        assert not staging.exists() or list(staging.iterdir()) == []
