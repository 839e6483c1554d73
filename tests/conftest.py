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
