"""benchmarks.cluster_speed --keep: the pipelined pass's stored horizon (minutes
to build at 50,000 articles) is built once, kept, and copied by the next run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import cluster_speed


def test_the_stored_horizon_is_kept_and_used_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    staged: list[str] = []
    real_stage = cluster_speed._stage

    def stage(settings: object, run_id: str, records: list[dict[str, Any]]) -> None:
        staged.append(run_id)
        real_stage(settings, run_id, records)

    monkeypatch.setattr(cluster_speed, "_stage", stage)
    first = cluster_speed.measure_stream(200, 100, cold_batches=1, keep=tmp_path / "kept")
    assert "stored" in staged
    (kept,) = (tmp_path / "kept").glob("cluster-speed-200-*.duckdb")
    staged.clear()
    second = cluster_speed.measure_stream(200, 100, cold_batches=1, keep=tmp_path / "kept")
    assert "stored" not in staged and staged  # the batches only: the horizon was copied
    assert first.same and second.same and first.batches == second.batches == 2
    # Another size is another file: never the wrong horizon.
    staged.clear()
    cluster_speed.measure_stream(100, 50, cold_batches=1, keep=tmp_path / "kept")
    assert "stored" in staged
    assert len(list((tmp_path / "kept").glob("cluster-speed-*.duckdb"))) == 2
    assert kept.exists()
