"""Fixtures for the Airflow tests: a throwaway AIRFLOW_HOME, the seed site, a config.

Airflow reads its configuration once, when it is first imported, so the
environment below is set when this conftest is imported: before any test
module here runs ``pytest.importorskip("airflow")``. This conftest itself
never imports Airflow, so without it the tests skip instead of erroring.

No ``__init__.py`` in this folder on purpose: pyproject puts ``tests`` on
sys.path, and a package ``tests/airflow`` would then shadow the real
``airflow`` package (``import airflow`` would import this folder).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_env import SECRET, TEMPLATED, NewsmonEnv

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
SEED_SITE = ROOT / "seeds" / "site"

# What the in-process tests (DagBag, dag.test()) run against: SQLite in a
# fresh folder. The scheduler test starts its own Airflow on PostgreSQL with
# its own environment.
if "airflow.settings" in sys.modules:
    # Too late to point Airflow elsewhere: it would use the caller's
    # AIRFLOW_HOME and metadata database. Refuse rather than write there.
    raise RuntimeError("airflow was imported before tests/airflow/conftest.py; "
                       "run the Airflow tests in a session that imports it here first")
_HOME = Path(tempfile.mkdtemp(prefix="newsmon-airflow-home-"))
# At exit, not in a fixture: the folder exists from collection on, whether or
# not a test here runs (pytest --collect-only, -k selecting none of them).
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ.update({
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    # Tracebacks of DAG import errors belong in the test output, not a log file.
    "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACKS": "True",
})
for _name in ("NEWSMON_CONFIG", "NEWSMON_SCHEDULE", "NEWSMON_MAX_SHARDS",
              "AIRFLOW_CONN_SMTP_DEFAULT", "AIRFLOW_VAR_NEWSMON_CONFIG"):
    os.environ.pop(_name, None)


# Warnings Airflow 3.3.2 raises from its own dependencies, ignored here only
# (pyproject turns every other warning into an error):
_IGNORED_WARNINGS = [
    # dag.test() runs tasks against an in-process execution API built on
    # starlette's TestClient, which warns (a UserWarning subclass) when the
    # installed client is httpx rather than its fork httpx2.
    "ignore:Using `httpx` with `starlette.testclient` is deprecated"
    ":starlette.exceptions.StarletteDeprecationWarning",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            for spec in _IGNORED_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The SQLite metadata database, migrated once per session."""
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"],
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, f"airflow db migrate failed:\n{done.stdout}\n{done.stderr}"
    return _HOME / "airflow.db"


@pytest.fixture(scope="session")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS), safe_mode=False)


@pytest.fixture
def templated_site(tmp_path: Path) -> Path:
    """The seed site with a Jinja expression appended to every article title.

    If anything templated feed text, the email would carry the SMTP password
    (set to SECRET on the connection) instead of the literal expression.
    """
    site = tmp_path / "site"
    shutil.copytree(SEED_SITE, site)
    patterns = [
        re.compile(r"(<title>)(.*?)(</title>)", re.S),
        re.compile(r'(<meta property="og:title" content=")(.*?)(")', re.S),
        re.compile(r"(<h1[^>]*>)(.*?)(</h1>)", re.S),
    ]
    for page in site.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        for pattern in patterns:
            text = pattern.sub(lambda m: f"{m[1]}{m[2]} {TEMPLATED}{m[3]}", text)
        page.write_text(text, encoding="utf-8")
    return site


@pytest.fixture
def newsmon_env(
    tmp_path: Path, smtp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[NewsmonEnv]:
    """Config for the pipeline plus the smtp_default connection, via the environment.

    The test serves a site and then writes the config (``NewsmonEnv.write``),
    once the site's port is known.
    """
    env = NewsmonEnv(root=tmp_path, inbox=smtp_server)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", env.connection_json(SECRET))
    monkeypatch.setenv("NEWSMON_CONFIG", str(env.config))
    yield env

