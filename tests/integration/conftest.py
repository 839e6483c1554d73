"""Fixtures for the integration tests: real servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.badserver import BadServer
from support.demo_run import DemoRun, run_demo


@pytest.fixture
def anyio_backend() -> str:
    # The pipeline runs on asyncio (poll uses asyncio.gather); test there only.
    return "asyncio"


@pytest.fixture(scope="session")
def bad_server() -> Iterator[BadServer]:
    with BadServer() as server:
        yield server


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One real ``newsmon demo`` for the session; tests only read what it made."""
    return run_demo(tmp_path_factory.mktemp("demo"))
