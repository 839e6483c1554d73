from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.store import staging


def test_files_appear_only_when_committed(tmp_path: Path) -> None:
    writer = staging.StagingWriter(tmp_path, "p000")
    writer.write("articles", {"id": "a", "at": datetime(2019, 3, 1, tzinfo=UTC)})
    assert staging.files(tmp_path, "articles") == []
    writer.commit()
    assert [r["id"] for r in staging.read(tmp_path, "articles")] == ["a"]
    assert next(staging.read(tmp_path, "articles"))["at"] == "2019-03-01T00:00:00+00:00"


def test_failed_writer_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), staging.StagingWriter(tmp_path, "p001") as writer:
        writer.write("entries", {"id": "x"})
        raise RuntimeError("crash mid-shard")
    assert list(tmp_path.iterdir()) == []


def test_rerun_of_a_shard_replaces_its_output(tmp_path: Path) -> None:
    for value in ("first", "second"):
        with staging.StagingWriter(tmp_path, "p000") as writer:
            writer.write("entries", {"id": value})
    assert [r["id"] for r in staging.read(tmp_path, "entries")] == ["second"]


def test_run_dir_refuses_path_tricks(tmp_path: Path) -> None:
    for bad in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(ValueError):
            staging.run_dir(tmp_path, bad)
