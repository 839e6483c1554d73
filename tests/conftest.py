"""Fixtures shared by every test folder: real servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.smtp import Inbox, free_port, serving

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"


@pytest.fixture
def smtp_server() -> Iterator[Inbox]:
    with serving(Inbox(host="127.0.0.1", port=free_port())) as inbox:
        yield inbox


@pytest.fixture
def seed_site() -> Iterator[Any]:
    from pipeline.demo import SeedServer

    with SeedServer(SEEDS / "site") as server:
        yield server



# -- Two workers, when asked (pytest-xdist: make test PYTEST_ARGS="-n 2") ------------------
#
# Nothing here changes what a test does: only which worker runs it, and when.
# A file's tests share its module- and session-scoped fixtures: a group below
# runs in one worker, so each is built once (the Airflow metadata database
# migrated, the DAG bag parsed, `newsmon demo` run), and the real-scheduler
# tests never run while another Airflow test does (two Airflow stacks at once
# would load two cores past what their deadlines were measured under). Every
# other test is sent on its own to whichever worker is free. Groups go out
# first (largest first), then the longest single tests, so that neither
# worker starts a minute-long test when the other has nothing left.
_GROUPS = {
    **dict.fromkeys(("tests/airflow/test_scheduler.py", "tests/airflow/test_dag_run.py",
                     "tests/airflow/test_dag_lake.py", "tests/airflow/test_retry_safety.py",
                     "tests/airflow/test_dag_integrity.py"), "airflow"),
    **dict.fromkeys(("tests/integration/test_readme.py", "tests/integration/test_browser.py",
                     "tests/integration/test_cli_browse.py"), "demo_run"),
    **{path: path for path in (
        "tests/airflow/test_compose.py", "tests/airflow/test_compose_lake.py",
        "tests/integration/test_hostile_feeds.py", "tests/integration/test_poll.py",
        "tests/integration/test_feedparser_corpus.py", "tests/unit/test_language.py",
        "tests/unit/test_readme.py")},
}
# Each a minute or more on the 2-core machine: started before the rest.
_LONG = (
    "tests/unit/test_bench_smoke.py::",
    "tests/integration/test_stream.py::test_an_analysts_session_held_open_does_not_stall",
    "tests/integration/test_stream.py::test_a_load_retried_while_a_session_is_held_open_does",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the order the controller hands out
        items.sort(key=lambda item: not item.nodeid.startswith(_LONG))


class _GroupedScheduling:
    """An xdist plugin: the groups above go to one worker each, whole."""

    @staticmethod
    def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") != "load":  # -n alone; another --dist as asked
            return None
        from xdist.scheduler import LoadScopeScheduling

        class Grouped(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return _GROUPS.get(nodeid.split("::", 1)[0], nodeid)

        return Grouped(config, log)


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_GroupedScheduling(), "newsmon-grouped-scheduling")
