"""
### newsmon: poll feeds, process new articles, load them, send alerts

Two DAGs that run the same stage functions as the `newsmon run` command
(`pipeline/run.py`):

**news_monitor** (every 5 minutes; `NEWSMON_SCHEDULE` overrides it, `none` turns
it off for trigger-only use):

1. `poll`: conditional GET of the feeds that are due; new entries go to the
   run's staging folder. Returns counts.
2. `plan_shards`: how many process shards the new entries fill.
3. `process` (dynamically mapped, one task per shard, never one per article):
   fetch, extract, clean and tag; each shard writes its own staging file.
4. `cluster`: story ids for the new articles and the alert outbox's candidates,
   planned beside the staging; reads DuckDB (read-only), writes nothing to it.
5. `load`: the single DuckDB writer. One short transaction: articles with
   their story ids, stories, alert outbox (it plans again itself if another
   run was loaded after `cluster`). Updates the asset `duckdb://newsmon/articles`.

`poll`, `cluster` and `load` open the DuckDB file, so they queue for the
one-slot pool `newsmon_duckdb`.

**news_alerts** (whenever that asset is updated): delivers pending alerts
through the Airflow connection `smtp_default`. The outbox is keyed by
(rule, story, recipient), so a retried or concurrent run never sends twice.

Only run ids and counts travel in XCom; article text stays in staging files
and DuckDB. The config is the YAML file named by `NEWSMON_CONFIG` (or the
Variable `newsmon_config`), read when a task runs, never at parse time.

Manual trigger with `{"force": true}` polls every feed, due or not.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, Param, dag, task

# The one slot every task that opens the DuckDB file queues for: DuckDB lets
# one process hold the file at a time, readers included.
DUCKDB_POOL = "newsmon_duckdb"
ARTICLES = Asset(name="newsmon_articles", uri="duckdb://newsmon/articles")


def _schedule() -> str | None:
    # An environment variable, not a Variable: reading one at parse time
    # costs nothing, a Variable would query the metadata DB on every parse.
    value = os.environ.get("NEWSMON_SCHEDULE", "*/5 * * * *").strip()
    return None if value.lower() in ("", "none") else value


DEFAULT_ARGS: dict[str, Any] = {
    "owner": "newsmon",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    # Airflow 3.3 takes a multiplier (2.0: 30, 60, 120 s, each plus up to as much
    # again: tests/airflow/test_dag_integrity.py); Airflow 3.1 and
    # 3.2 took a bool, and 2.0 is truthy there, so both double the delay.
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}


@dag(
    dag_id="news_monitor",
    schedule=_schedule(),
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsmon"],
    doc_md=__doc__,
    params={"force": Param(False, type="boolean",
                           description="Poll every feed, due or not (newsmon run --all)")},
)
def news_monitor() -> None:
    # multiple_outputs=False: a task annotated "-> dict" would otherwise also
    # push every key as its own XCom row; one small dict per task is enough.
    @task(pool=DUCKDB_POOL, multiple_outputs=False)
    def poll(run_id: str | None = None, dag_run: Any = None, params: Any = None) -> dict[str, Any]:
        from pipeline.airflow_support import (
            as_xcom,
            pipeline_run_id,
            run_time,
            settings_from_airflow,
            worker_processes_allowed,
        )
        from pipeline.run import poll_stage

        with worker_processes_allowed():
            summary = poll_stage(settings_from_airflow(), pipeline_run_id(run_id or ""),
                                 now=run_time(dag_run), force=bool(params and params["force"]))
        return as_xcom(summary)

    @task
    def plan_shards(polled: dict[str, Any]) -> list[dict[str, Any]]:
        from pipeline.airflow_support import as_xcom, max_shards, settings_from_airflow
        from pipeline.run import shard_parts

        return [as_xcom(part)
                for part in shard_parts(settings_from_airflow(), polled["run_id"], max_shards())]

    @task(multiple_outputs=False,
          map_index_template="shard {{ task.op_kwargs['part']['shard'] }}")
    def process(part: dict[str, Any]) -> dict[str, Any]:
        from pipeline.airflow_support import (
            as_xcom,
            settings_from_airflow,
            worker_processes_allowed,
        )
        from pipeline.run import ShardPart, process_stage

        settings, shard = settings_from_airflow(), ShardPart(**part)
        # The shards are the parallelism here; more than one worker process
        # per shard only when the config asks for it (process.workers).
        with worker_processes_allowed():
            summary = process_stage(settings, shard.run_id, shard=shard.shard,
                                    shards=shard.shards, workers=settings.process.workers or 1)
        return as_xcom(summary)

    @task(pool=DUCKDB_POOL, multiple_outputs=False)
    def cluster(polled: dict[str, Any], processed: Any) -> dict[str, Any]:
        from pipeline.airflow_support import as_xcom, settings_from_airflow
        from pipeline.run import cluster_stage

        result = cluster_stage(settings_from_airflow(), polled["run_id"])
        return {**as_xcom(result), "shards": len(processed)}

    @task(pool=DUCKDB_POOL, outlets=[ARTICLES], multiple_outputs=False)
    def load(polled: dict[str, Any], planned: dict[str, Any], dag_run: Any = None,
             outlet_events: Any = None) -> dict[str, Any]:
        from pipeline.airflow_support import as_xcom, run_time, settings_from_airflow
        from pipeline.run import load_stage

        result = load_stage(settings_from_airflow(), polled["run_id"],
                            started_at=run_time(dag_run))
        counts = {**as_xcom(result), "shards": planned["shards"]}
        if outlet_events is not None:
            outlet_events[ARTICLES].extra = counts
        return counts

    polled = poll()
    parts = plan_shards(polled)
    processed = process.expand(part=parts)
    load(polled, cluster(polled, processed))


@dag(
    dag_id="news_alerts",
    schedule=[ARTICLES],
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsmon", "alerts"],
    doc_md=__doc__,
)
def news_alerts() -> None:
    @task(pool=DUCKDB_POOL, multiple_outputs=False)
    def send() -> dict[str, Any]:
        from pipeline.airflow_support import (
            SEND_XCOM,
            as_xcom,
            connection_mailer,
            settings_from_airflow,
        )
        from pipeline.run import send_stage

        settings = settings_from_airflow()
        result = send_stage(settings, connection_mailer(settings))
        counts = as_xcom(result, only=SEND_XCOM)
        if result.undelivered:
            # The outbox already recorded each error and when to try again;
            # failing the task makes it visible, and Airflow's retry (after
            # the backoff) is the next attempt.
            raise RuntimeError(f"{result.undelivered} alert(s) not delivered ({result.failed}"
                               f" refused for good, {result.retry} to retry; see the alerts"
                               f" table, column error): {counts}")
        return counts

    send()


news_monitor()
news_alerts()
