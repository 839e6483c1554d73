"""DAG integrity: the files parse, follow the best-practice rules, and do nothing at import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow", reason="needs the airflow extra: pip install -e '.[airflow]'")

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_IDS = {"news_monitor", "news_alerts", "news_maintenance"}
POOL = "newsmon_duckdb"
# Every task that opens the DuckDB file; DuckDB lets one process hold it.
DUCKDB_TASKS = {("news_monitor", "poll"), ("news_monitor", "cluster"), ("news_monitor", "load"),
                ("news_alerts", "send"), ("news_maintenance", "feed_health"),
                ("news_maintenance", "retention"), ("news_maintenance", "checkpoint")}


@pytest.fixture(scope="module")
def dagbag() -> Any:
    """The DAG files as the DAG processor parses them, in a DagBag of this
    module's own. The session's (conftest) is shared with the dag.test()
    tests, which set retries to 0 on its tasks (without_retries): after them,
    the rules below read 0 retries and failed."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS), safe_mode=False)


def test_dags_folder_imports_without_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == DAG_IDS


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_dag_follows_the_rules(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.tags and "newsmon" in dag.tags
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.doc_md and len(dag.doc_md) > 200
    # Static and tz-aware: a start_date computed from now() moves at every parse.
    assert dag.start_date == datetime(2025, 1, 1, tzinfo=UTC)
    assert dag.start_date.utcoffset() == timedelta(0)
    for task in dag.tasks:
        assert task.retries > 0, task.task_id
        assert task.retry_exponential_backoff >= 2, task.task_id  # doubling or more
        assert task.max_retry_delay is not None, task.task_id
        expected = POOL if (dag_id, task.task_id) in DUCKDB_TASKS else "default_pool"
        assert task.pool == expected, task.task_id


def test_news_monitor_shape(dagbag: Any) -> None:
    dag = dagbag.dags["news_monitor"]
    assert set(dag.task_ids) == {"poll", "plan_shards", "process", "cluster", "load"}
    assert dag.get_task("plan_shards").upstream_task_ids == {"poll"}
    assert dag.get_task("process").upstream_task_ids == {"plan_shards"}
    assert dag.get_task("cluster").upstream_task_ids == {"poll", "process"}
    assert dag.get_task("load").upstream_task_ids == {"poll", "cluster"}
    # Dynamic task mapping over shards.
    assert type(dag.get_task("process")).__name__ == "DecoratedMappedOperator"
    assert dag.timetable.expression == "*/5 * * * *"
    assert "force" in dag.params


def test_alerts_are_data_aware_on_the_loads_asset(dagbag: Any) -> None:
    load = dagbag.dags["news_monitor"].get_task("load")
    (outlet,) = load.outlets
    assert outlet.uri == "duckdb://newsmon/articles"
    alerts = dagbag.dags["news_alerts"]
    assert set(alerts.task_ids) == {"send"}
    condition = alerts.timetable.asset_condition
    assert [a.uri for a in condition.objects] == [outlet.uri]


def test_maintenance_shape(dagbag: Any) -> None:
    dag = dagbag.dags["news_maintenance"]
    assert set(dag.task_ids) == {"feed_health", "retention", "checkpoint", "prune_staging"}
    assert dag.get_task("checkpoint").upstream_task_ids == {"retention"}
    assert dag.get_task("retention").upstream_task_ids == {"feed_health"}
    assert dag.timetable.expression == "0 0 * * *"


# -- nothing happens at import ---------------------------------------------------------------

# Runs in a fresh interpreter. An audit hook records every file opened under
# the test's folder (the config, the DuckDB file) from the start. Then each
# DAG file is executed twice: the first time warms Airflow's own lazy imports
# (croniter, for one, runs `file` through platform.architecture() when first
# imported), the second time with every open, connect, DNS lookup and
# subprocess recorded, so whatever is recorded is the DAG files' own doing.
PROBE = r"""
import importlib.util, json, os, sys

watched = os.environ["PROBE_WATCH"]
record = {"watched_opens": [], "events": []}
recording = False
CODE = (".py", ".pyc", ".so")

def hook(event, args):
    if event == "open" and isinstance(args[0], str):
        if args[0].startswith(watched):
            record["watched_opens"].append(args[0])
        if recording and not args[0].endswith(CODE):
            record["events"].append([event, args[0]])
    elif recording and event in ("socket.connect", "socket.getaddrinfo", "subprocess.Popen",
                                 "os.system", "sqlite3.connect"):
        record["events"].append([event, repr(args)[:200]])

sys.addaudithook(hook)

def run(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

files = sys.argv[1:]
before = set(sys.modules)
for i, path in enumerate(files):
    run(path, f"warm_{i}")
record["modules"] = sorted(m for m in set(sys.modules) - before
                           if m.split(".")[0] in ("duckdb", "trafilatura", "pipeline",
                                                  "feedparser"))
recording = True
for i, path in enumerate(files):
    run(path, f"again_{i}")
recording = False
print(json.dumps(record))
"""


def _probe(tmp_path: Path, **env: str) -> dict[str, Any]:
    config = tmp_path / "newsmon.yaml"
    config.write_text(json.dumps({"database": str(tmp_path / "news.duckdb")}), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *(str(p) for p in sorted(DAGS.glob("*.py")))],
        env={**os.environ, "NEWSMON_CONFIG": str(config), "PROBE_WATCH": str(tmp_path),
             **env},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    record: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    record["files"] = sorted(p.name for p in tmp_path.iterdir())
    return record


def test_importing_the_dag_files_does_no_work(tmp_path: Path) -> None:
    record = _probe(tmp_path)
    # Heavy libraries and the pipeline itself are imported inside the tasks only.
    assert record["modules"] == []
    # No config read, no database opened or created, no socket, no subprocess.
    assert record["watched_opens"] == []
    assert record["events"] == []
    assert record["files"] == ["newsmon.yaml"]


def test_the_probe_would_see_work_done_at_import(tmp_path: Path) -> None:
    # The same probe over a DAG file that breaks the rules: if this test did
    # not see it, the one above would prove nothing.
    bad = tmp_path / "dags"
    bad.mkdir()
    (bad / "bad.py").write_text(
        "import os, socket\n"
        "from pipeline import store\n"
        "open(os.environ['NEWSMON_CONFIG']).read()\n"
        "socket.socket().connect_ex(('127.0.0.1', 9))\n",
        encoding="utf-8",
    )
    config = tmp_path / "newsmon.yaml"
    config.write_text("{}", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(bad / "bad.py")],
        env={**os.environ, "NEWSMON_CONFIG": str(config), "PROBE_WATCH": str(tmp_path)},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert "pipeline.store" in record["modules"] and "duckdb" in record["modules"]
    assert str(config) in record["watched_opens"]
    assert [e[0] for e in record["events"]] == ["open", "socket.connect"]


def test_schedule_comes_from_the_environment() -> None:
    # One interpreter, three parses: the DAG file reads NEWSMON_SCHEDULE when
    # it is executed, and DagBag executes it anew each time.
    script = (
        "import json, os, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "out = {}\n"
        "for value in ['', '*/15 * * * *', 'none']:\n"
        "    os.environ.pop('NEWSMON_SCHEDULE', None)\n"
        "    if value:\n"
        "        os.environ['NEWSMON_SCHEDULE'] = value\n"
        f"    t = DagBag(dag_folder={str(DAGS)!r}).dags['news_monitor'].timetable\n"
        "    out[value] = [type(t).__name__, getattr(t, 'expression', None)]\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "": ["CronTriggerTimetable", "*/5 * * * *"],
        "*/15 * * * *": ["CronTriggerTimetable", "*/15 * * * *"],
        "none": ["NullTimetable", None],
    }


# -- retry delays, as the scheduler computes them ----------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"
# What the README says each DAG's retries wait, in seconds: (at least, less than) per try.
RETRY_WAITS = {
    "news_monitor": [(30, 60), (60, 120), (120, 240)],
    "news_alerts": [(30, 60), (60, 120), (120, 240)],
    "news_maintenance": [(60, 120), (120, 240), (240, 480)],
}


def test_retry_waits_are_what_the_readme_says(dagbag: Any) -> None:
    # Airflow 3.3 waits retry_delay * 2**(try - 1), then adds a per-task-instance
    # share of that again (a hash of dag, task, date and try): the README once
    # gave the lower bounds alone as the waits.
    from airflow.models.taskinstance import TaskInstance

    text = " ".join(README.read_text("utf-8").split())
    assert ("the first retry waits 30 to 60 s, the second 1 to 2 minutes, the third 2 to 4 "
            "minutes (the maintenance tasks: 1 to 2, 2 to 4 and 4 to 8 minutes)") in text
    end = datetime(2026, 1, 1, tzinfo=UTC)
    for dag_id, waits in RETRY_WAITS.items():
        for task in dagbag.dags[dag_id].tasks:
            assert task.retries == len(waits), task.task_id
            seen = []
            for try_number, (low, high) in enumerate(waits, start=1):
                ti = TaskInstance(task=task, run_id="scheduled__2026-01-01", dag_version_id=None)
                ti.try_number, ti.end_date = try_number, end
                wait = (ti.next_retry_datetime() - end).total_seconds()
                assert low <= wait < high, (dag_id, task.task_id, try_number, wait)
                seen.append(wait)
            assert seen == sorted(seen), (dag_id, task.task_id, seen)
