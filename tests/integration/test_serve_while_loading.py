"""``newsmon serve`` (a real process) keeps answering while a real pass loads the
same database, and the pass is never kept out of it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.webserver import serve_process

from pipeline import store
from pipeline.config import load_settings
from pipeline.run import run_pass

SEED_TITLE = "Russia And Israel To Form Working Group On Withdrawal Of Foreign Forces From Syria"


@dataclass(frozen=True, slots=True)
class Answer:
    path: str
    status: int
    seconds: float
    stale: bool
    updating: bool


@pytest.fixture
def config(tmp_path: Path, seed_site: Any) -> Path:
    file = tmp_path / "newsmon.yaml"
    file.write_text(yaml.safe_dump({
        "database": "news.duckdb",
        "feeds": [{"url": seed_site.feed_url, "name": "Seed outlets"}],
        "alerts": [{"name": "syria", "query": "topic:syria", "to": ["analyst@example.org"]}],
        "fetch": {"allow_private": [f"127.0.0.1:{seed_site.port}"]},
        "process": {"workers": 1},
    }), encoding="utf-8")
    return file


@pytest.fixture
def server(config: Path) -> Iterator[str]:
    with store.connect(load_settings(config).database):
        pass  # an empty database: serve refuses a missing one
    with serve_process(config) as base:
        yield base


def test_pages_answer_during_a_pass_and_show_it_after(config: Path, server: str) -> None:
    answers: list[Answer] = []
    stop = threading.Event()

    def keep_asking() -> None:
        with httpx.Client(base_url=server, timeout=10) as client:
            while not stop.is_set():
                for path in ("/", "/feeds", "/alerts"):
                    started = time.monotonic()
                    page = client.get(path)
                    answers.append(Answer(path, page.status_code, time.monotonic() - started,
                                          'id="stale"' in page.text, 'id="updating"' in page.text))

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        started = time.monotonic()
        result = run_pass(load_settings(config))
        pass_seconds = time.monotonic() - started
    finally:
        stop.set()
        asker.join(timeout=30)

    # Shown with -s: how the pages fared (the figures in the report of issue 18).
    print(f"pass {pass_seconds:.1f} s; {len(answers)} pages, "
          f"{sum(a.stale for a in answers)} from the last copy, "
          f"{sum(a.updating for a in answers)} updating, "
          f"slowest {max(a.seconds for a in answers):.2f} s")
    assert result.load.articles_new == 5 and result.load.stories_new == 1
    assert len(answers) >= 20, f"only {len(answers)} pages in a {pass_seconds:.1f} s pass"
    for a in answers:
        assert a.status == 200 or (a.status == 503 and a.updating), a
        assert a.seconds < 5, a
    # Once the pass is over, the next pages show what it loaded.
    deadline = time.monotonic() + 10
    while SEED_TITLE not in (page := httpx.get(server + "/", timeout=10)).text:
        assert time.monotonic() < deadline, "the loaded story never appeared"
        time.sleep(0.2)
    assert "5</b> outlets" in page.text and 'id="stale"' not in page.text
