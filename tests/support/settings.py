"""Settings for a pipeline against a FeedServer on 127.0.0.1, in a test's folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.config import Settings, parse_settings
from support.feedserver import FeedServer


def feed_settings(tmp_path: Path, server: FeedServer, paths: list[str],
                  **overrides: Any) -> Settings:
    """The database, staging and outbox in ``tmp_path``; a feed per path on
    ``server`` (or per full URL); the server allowed, one extraction worker.
    ``fetch`` and ``process`` overrides are merged into those; others replace."""
    fetch = {"allow_private": [server.host_port], **overrides.pop("fetch", {})}
    return parse_settings({
        "database": str(tmp_path / "news.duckdb"), "staging_dir": str(tmp_path / "staging"),
        "outbox_dir": str(tmp_path / "outbox"),
        "feeds": [{"url": p if p.startswith("http") else server.url(p)} for p in paths],
        "fetch": fetch, "process": {"workers": 1, **overrides.pop("process", {})},
        **overrides,
    })
