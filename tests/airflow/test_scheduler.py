"""The real thing: Airflow's own scheduler, DAG processor and API server as subprocesses.

PostgreSQL on 127.0.0.1:5432 holds the metadata (a database created for this
test and dropped after it), LocalExecutor runs the tasks, the DAGs folder is
the repo's ``dags/``. The test creates the pool, unpauses both DAGs, triggers
``news_monitor`` and waits for the scheduler to run it and then, on the asset
event its load emits, ``news_alerts``. Then it clears the finished run's load
task and waits for the scheduler to run it (and the alerts) again: nothing
may change.

Every component is started in a session of its own; afterwards, on failure
too, its process group gets SIGTERM, and whatever is still in the session
20 s later gets SIGKILL (task runners have process groups of their own). Without
PostgreSQL, or without the drivers Airflow needs for it, the test skips and
says why.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

pytest.importorskip("airflow", reason="needs the airflow extra: pip install -e '.[airflow]'")

import httpx
from airflow_env import TABLES, NewsmonEnv
from support import lake
from support.smtp import free_port

from pipeline.config import load_settings
from pipeline.demo import SeedServer
from pipeline.store.backend import open_store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(280)]

ROOT = Path(__file__).resolve().parents[2]
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
# The whole wait for both DAGs, and again after clearing a task.
RUN_DEADLINE = 120.0
# The console script, as deployments start Airflow (and not `python -m
# airflow`): task processes then have the script as their __main__, which is
# what multiprocessing children of a task must cope with.
_SCRIPT = Path(sys.executable).with_name("airflow")
AIRFLOW = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "airflow"]


@pytest.fixture
def metadata_db() -> Iterator[str]:
    psycopg2 = pytest.importorskip(
        "psycopg2", reason="psycopg2 is needed for Airflow's PostgreSQL metadata database")
    pytest.importorskip("asyncpg", reason="Airflow 3's API server reaches PostgreSQL "
                                          "through asyncpg, which is not installed")
    try:
        admin = psycopg2.connect(dbname="postgres", connect_timeout=3, **PG)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is not reachable ({exc}); the scheduler "
                    "test keeps Airflow's metadata there")
    admin.autocommit = True
    # One database per test process: two test runs on one machine do not collide.
    name = f"newsmon_airflow_test_{os.getpid()}"
    try:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cur.execute(f"CREATE DATABASE {name}")
    except psycopg2.Error as exc:
        admin.close()
        pytest.skip(f"cannot create a PostgreSQL database for Airflow: {exc}")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@dataclass
class Stack:
    """Airflow components as subprocesses, each the leader of its own process group."""

    home: Path
    env: dict[str, str]
    api: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: list[IO[bytes]] = field(default_factory=list)

    def airflow(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run([*AIRFLOW, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, name: str, *args: str) -> None:
        log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.logs.append(log)
        self.procs[name] = subprocess.Popen(
            [*AIRFLOW, *args], env=self.env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, (
                f"airflow {name} exited ({proc.returncode})\n{self.report()}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        # Then SIGKILL whatever is left of each session, leader gone or not:
        # task runners put themselves in process groups of their own (Airflow's
        # supervisor calls setpgid), but they stay in the session.
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGKILL)
            for pid in _session_members(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=10)
        for log in self.logs:
            log.close()

    def report(self, lines: int = 40) -> str:
        """The tail of every component's log and every task log, for a failure message."""
        out = []
        paths = sorted(self.home.glob("*.log")) + sorted((self.home / "logs").rglob("*.log"))
        for path in paths:
            text = path.read_text(encoding="utf-8", errors="replace").splitlines()
            out.append(f"--- {path.relative_to(self.home)}\n" + "\n".join(text[-lines:]))
        return "\n".join(out)


def _session_members(sid: int) -> list[int]:
    """Processes of the session ``sid`` (Linux /proc; elsewhere none are found)."""
    members = []
    proc_dir = Path("/proc")
    for entry in proc_dir.iterdir() if proc_dir.is_dir() else []:
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry.name)) == sid:
                    members.append(int(entry.name))
    return members


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)  # the group id is the leader's pid (start_new_session)


def _wait(what: str, check: Callable[[], bool], stack: Stack, deadline: float) -> None:
    while time.monotonic() < deadline:
        stack.check_alive()
        if check():
            return
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}\n{stack.report()}")


@pytest.fixture
def stack(tmp_path: Path, metadata_db: str) -> Iterator[Stack]:
    home = tmp_path / "airflow"
    home.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        # Two cores: a few task processes at once is plenty.
        "AIRFLOW__CORE__PARALLELISM": "4",
        # Task processes report to the API server's execution API; both sides
        # must agree on the token secret.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),  # 64 bytes: HS512's minimum
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        # The test drives the REST API without logging in (127.0.0.1 only).
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # Trigger-only: a cron schedule would add a run of its own on unpause.
        "NEWSMON_SCHEDULE": "none",
    })
    stack = Stack(home=home, env=env, api=f"http://127.0.0.1:{port}")
    try:
        stack.airflow("db", "migrate", timeout=180)
        # What deploy's init service does: the one-slot pool for DuckDB.
        stack.airflow("pools", "set", "newsmon_duckdb", "1", "DuckDB file: one process at a time")
        yield stack
    finally:
        stack.stop()


def _rows(env: NewsmonEnv, sql: str) -> list[tuple[Any, ...]]:
    """What the configured store holds (the DuckDB file, or the lake)."""
    with open_store(load_settings(env.config), read_only=True) as con:
        return con.execute(sql).fetchall()


def _counts(env: NewsmonEnv) -> dict[str, int]:
    return {t: int(_rows(env, f"SELECT count(*) FROM {t}")[0][0]) for t in TABLES}


@contextlib.contextmanager
def _store(mode: str, stack: Stack) -> Iterator[dict[str, Any]]:
    """The config's store section: the file (none), or a lake on a fresh
    PostgreSQL catalog with data and staging on a moto S3 (issue 15)."""
    if mode == "file":
        yield {}
        return
    with lake.catalog_database() as dsn, lake.s3_server() as endpoint:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            stack.env[key] = os.environ[key]  # the task processes reach the S3 too
        yield {"store": lake.store_section(dsn, "s3://newsmon/lake/", endpoint=endpoint,
                                           staging_url="s3://newsmon/staging/")}


@pytest.mark.parametrize("mode", ["file", "lake"])
def test_news_monitor_and_alerts_on_the_real_scheduler(
    stack: Stack, tmp_path: Path, smtp_server: Any, mode: str
) -> None:
    env = NewsmonEnv(root=tmp_path, inbox=smtp_server)
    with SeedServer(ROOT / "seeds" / "site") as site, _store(mode, stack) as store_config:
        env.write(site, **store_config)
        stack.env["NEWSMON_CONFIG"] = str(env.config)
        stack.env["AIRFLOW_CONN_SMTP_DEFAULT"] = env.connection_json("unused-password")
        stack.start("api-server", "api-server")
        stack.start("scheduler", "scheduler")
        stack.start("dag-processor", "dag-processor")

        # 30 s a request: the API server (one worker) also answers the task
        # processes' execution API, and at load ~13 a read took more than 10 s
        # (BENCHMARKS.md, session 26). What the test times is the runs, below.
        client = httpx.Client(base_url=stack.api + "/api/v2", timeout=30)
        deadline = time.monotonic() + 90

        def ok(path: str) -> bool:
            try:
                return client.get(path).status_code == 200
            except httpx.TransportError:
                return False

        _wait("the API server", lambda: ok("/monitor/health"), stack, deadline)
        for dag_id in ("news_monitor", "news_alerts"):
            _wait(f"{dag_id} to be parsed", lambda d=dag_id: ok(f"/dags/{d}"), stack, deadline)
            client.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        trigger = client.post("/dags/news_monitor/dagRuns", json={"logical_date": None})
        trigger.raise_for_status()
        run_id = trigger.json()["dag_run_id"]

        def run_state() -> str:
            return str(client.get(f"/dags/news_monitor/dagRuns/{run_id}").json()["state"])

        def alert_runs() -> list[dict[str, Any]]:
            runs: list[dict[str, Any]] = client.get("/dags/news_alerts/dagRuns").json()[
                "dag_runs"]
            return runs

        def finished(n_alert_runs: int) -> bool:
            state = run_state()
            assert state != "failed", stack.report()
            alert_states = [r["state"] for r in alert_runs()]
            assert "failed" not in alert_states, stack.report()
            return state == "success" and alert_states.count("success") >= n_alert_runs

        _wait("news_monitor and then news_alerts", lambda: finished(1), stack,
              time.monotonic() + RUN_DEADLINE)

        # Whatever went wrong inside the tasks shows in the feeds table and in
        # the poll's XCom before it shows in the counts.
        feed_errors = _rows(env, "SELECT url, last_error FROM feeds"
                                 " WHERE last_error IS NOT NULL")
        assert feed_errors == [], f"{feed_errors}\n{stack.report()}"
        polled = client.get(f"/dags/news_monitor/dagRuns/{run_id}/taskInstances/poll"
                            "/xcomEntries/return_value").json()["value"]
        assert polled["entries_new"] == 5, polled

        tis = {(ti["task_id"], ti["map_index"]): ti for ti in client.get(
            f"/dags/news_monitor/dagRuns/{run_id}/taskInstances").json()["task_instances"]}
        assert sorted(k for k in tis if k[0] == "process") == [("process", 0), ("process", 1)]
        assert tis[("load", -1)]["pool"] == "newsmon_duckdb"
        assert tis[("poll", -1)]["pool"] == "newsmon_duckdb"
        (alert_run,) = alert_runs()
        assert alert_run["run_type"] == "asset_triggered"

        first = _counts(env)
        assert first["articles"] == 5
        assert first["stories"] == 1
        assert len(smtp_server.messages) == 1
        assert smtp_server.messages[0]["To"] == "analyst@example.org"

        # Clear the finished run's load: the scheduler runs it again under the
        # same run id, its asset event starts news_alerts again. Nothing changes.
        client.post("/dags/news_monitor/clearTaskInstances", json={
            "dag_run_id": run_id, "task_ids": ["load"], "dry_run": False,
            "only_failed": False, "reset_dag_runs": True,
        }).raise_for_status()

        def load_tries() -> int:
            ti = client.get(f"/dags/news_monitor/dagRuns/{run_id}/taskInstances/load").json()
            return int(ti["try_number"]) if ti["state"] == "success" else 0

        _wait("the cleared load to run again",
              lambda: load_tries() >= 2 and finished(2), stack,
              time.monotonic() + RUN_DEADLINE)
        assert _counts(env) == first
        assert len(smtp_server.messages) == 1
        client.close()
        # A lake run leaves no DuckDB file on the side.
        assert env.database.exists() == (mode == "file")
