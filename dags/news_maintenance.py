"""
### newsmon maintenance (daily)

1. `feed_health`: logs every failing and dead (retired: 410 Gone) feed with
   its last error; returns the counts.
2. `retention`: when the config sets `retention_days`, deletes articles
   fetched before then, with their tags and removed lines, and stories left
   with no article (one transaction), and cancels their pending alerts.
   Off when `retention_days` is absent. In lake mode the same deletes in
   one lake transaction, then the alerts cancelled in the delivery table
   (PostgreSQL); a retry finishes what a failed try left.
3. `checkpoint`: DuckDB `CHECKPOINT`, after the deletes. In lake mode
   `newsmon compact`'s compaction (`pipeline.store.lake.compact_lake`: merge,
   expire, clean up, under the writer lock and fenced like a load).
4. `prune_staging`: removes staging folders of runs that never loaded
   (untouched for 3 days).

The DuckDB tasks share the one-slot pool `newsmon_duckdb` with the load and
the alert sender, so they never contend for the file. Functions live in
`pipeline/store/maintenance.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

DUCKDB_POOL = "newsmon_duckdb"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "newsmon",
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    # A multiplier in Airflow 3.3, a bool before: 2.0 doubles the delay in both.
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
}


@dag(
    dag_id="news_maintenance",
    schedule="@daily",
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsmon", "maintenance"],
    doc_md=__doc__,
)
def news_maintenance() -> None:
    # multiple_outputs=False: one small dict per task, not one XCom row per key.
    @task(pool=DUCKDB_POOL, multiple_outputs=False)
    def feed_health() -> dict[str, int]:
        from pipeline.airflow_support import settings_from_airflow
        from pipeline.store.backend import open_store
        from pipeline.store.maintenance import feed_health

        # The configured store: the DuckDB file, or the lake (a connection to
        # settings.database in lake mode made a new, empty file on the worker).
        with open_store(settings_from_airflow()) as con:
            return feed_health(con).counts()

    @task(pool=DUCKDB_POOL, multiple_outputs=False)
    def retention(dag_run: Any = None) -> dict[str, Any]:
        from pipeline import store
        from pipeline.airflow_support import run_time, settings_from_airflow
        from pipeline.store.maintenance import apply_lake_retention, apply_retention

        settings = settings_from_airflow()
        if settings.retention_days is None:
            return {"retention_days": None}
        if settings.store.mode == "lake":
            # The lake's deletes under its writer lock, then the alerts
            # cancelled in its delivery table (PostgreSQL); a retry finishes
            # what a failed try left (apply_lake_retention).
            from pipeline.store.lake import LakeBackend

            result = apply_lake_retention(LakeBackend(settings), settings.retention_days,
                                          now=run_time(dag_run))
        else:
            with store.connect(settings.database) as con:
                result = apply_retention(con, settings.retention_days, now=run_time(dag_run))
        return {"retention_days": settings.retention_days, **result.counts()}

    @task(pool=DUCKDB_POOL)
    def checkpoint(dag_run: Any = None) -> None:
        from datetime import timedelta

        from pipeline.airflow_support import run_time, settings_from_airflow
        from pipeline.store.backend import backend
        from pipeline.store.maintenance import checkpoint

        settings = settings_from_airflow()
        if settings.store.mode == "lake":
            # `newsmon compact`'s code: under the writer lock, fenced, and
            # checked before each step (pipeline.store.lake.compact_lake).
            from pipeline.store.lake import LakeBackend, compact_lake

            compact_lake(LakeBackend(settings), now=run_time(dag_run), keep=timedelta(days=7))
        else:
            with backend(settings).writer() as con:
                checkpoint(con)

    @task
    def prune_staging(dag_run: Any = None) -> int:
        from pipeline.airflow_support import run_time, settings_from_airflow
        from pipeline.store.maintenance import prune_staging

        return prune_staging(settings_from_airflow().staging, now=run_time(dag_run),
                             max_age=timedelta(days=3))

    feed_health() >> retention() >> checkpoint()
    prune_staging()


news_maintenance()
