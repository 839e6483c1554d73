"""Review of the held micro-batch path (pipeline.store.plan._hold_articles) and
the open-stories window as literals (story_state.read_open): the held and
streamed paths plan the same, copies with missing keys included; a plan that
failed on a connection leaves nothing the other path trips on; a restore reads
exactly the stories the warm clusterer keeps open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import factories as f

from integration.test_load import reports, table
from pipeline import store
from pipeline.config import Settings
from pipeline.signal.cluster import Options, _seconds, open_window
from pipeline.store import plan as plan_module
from pipeline.store import staging, story_state
from pipeline.store.load import load
from pipeline.store.plan import plan


def _stage_copies(settings: Settings, run_id: str) -> None:
    """Run 0 stores the third report; the run then stages the first report
    three times (two with keys of the tie-break missing: the entries a load
    stores need a feed and an entry id), the second twice,
    the stored one again."""
    first, second, third = reports()
    copies = [{**first, "feed_url": "https://c-feed.example", "fetched_at": None},
              {**first, "feed_url": "https://b-feed.example"},
              {**first, "feed_url": "https://a-feed.example", "url": None}]
    f.stage(settings, run_id, [copies[0], second, third], shard="p000")
    f.stage(settings, run_id, [copies[1], {**second, "url": None}], shard="p001")
    f.stage(settings, run_id, [copies[2]], shard="p002")


def _planned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: bool
             ) -> tuple[int, list[tuple[object, ...]], list[tuple[object, ...]]]:
    monkeypatch.setattr(plan_module, "_HELD_BYTES", 1 << 30 if held else 0)
    settings = f.settings(tmp_path / ("held" if held else "streamed"))
    f.stage(settings, "run-0", [reports()[2]])
    with store.connect(settings.database) as con:
        load(con, settings, "run-0")
    _stage_copies(settings, "run-1")
    directory = staging.run_dir(settings.staging, "run-1")
    with store.connect(settings.database) as con:
        articles = plan(con, settings, "run-1").articles
        rows = table(con, f"SELECT * EXCLUDE (story_id) FROM read_parquet("
                          f"'{directory / 'plan-articles.parquet'}') ORDER BY id")
        assert load(con, settings, "run-1").articles_new == articles == 2
        stored = table(con, "SELECT id, url, feed_url, entry_id, fetched_at FROM articles"
                            " ORDER BY id")
    return articles, rows, stored


def test_held_and_streamed_runs_keep_the_same_copies_with_keys_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NULLs sort last in both (DuckDB's default order, one ORDER BY text)."""
    held = _planned(tmp_path, monkeypatch, held=True)
    assert held == _planned(tmp_path, monkeypatch, held=False)
    kept = [row for row in held[2] if row[0] == reports()[0]["id"]]
    assert [row[2] for row in kept] == ["https://b-feed.example"]  # a url and a fetched_at


@pytest.mark.parametrize("first_held", [True, False], ids=["held-then-streamed",
                                                           "streamed-then-held"])
def test_a_plan_that_failed_midway_leaves_nothing_the_next_trips_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_held: bool) -> None:
    """No drop at the start any more: the objects of a failed plan are replaced
    (OR REPLACE) or dropped by the next plan, whichever path it takes; the
    load's re-plan inside its transaction too."""
    settings = f.settings(tmp_path)
    f.stage(settings, "run-0", [reports()[2]])
    with store.connect(settings.database) as con:
        load(con, settings, "run-0")
    _stage_copies(settings, "run-1")
    real = plan_module._make_plan

    def midway(*args: object, **kwargs: object) -> tuple[int, int]:
        raise RuntimeError("midway")

    with store.connect(settings.database) as con:
        monkeypatch.setattr(plan_module, "_HELD_BYTES", 1 << 30 if first_held else 0)
        monkeypatch.setattr(plan_module, "_make_plan", midway)
        with pytest.raises(RuntimeError, match="midway"):
            plan(con, settings, "run-1")
        monkeypatch.setattr(plan_module, "_make_plan", real)
        monkeypatch.setattr(plan_module, "_HELD_BYTES", 0 if first_held else 1 << 30)
        assert plan(con, settings, "run-1").articles == 2
        temp = ("SELECT table_name FROM duckdb_tables() WHERE temporary"
                " AND table_name LIKE 'new_%'")
        assert table(con, temp) == []
        # Stale: the load plans again, in its transaction, by the first path.
        (staging.run_dir(settings.staging, "run-1") / "plan.json").unlink()
        monkeypatch.setattr(plan_module, "_HELD_BYTES", 1 << 30 if first_held else 0)
        assert load(con, settings, "run-1").articles_new == 2
        assert table(con, "SELECT count(*) FROM articles") == [(3,)]
        assert table(con, temp) == []


def test_a_restore_reads_the_stories_the_warm_clusterer_keeps_open_to_the_bit(
        tmp_path: Path) -> None:
    """A story whose last report is one reach before the batch's first: the
    warm clusterer (Clusterer.narrow, open_window) and the restore
    (read_open) must agree. Before, read_open drew the line with DuckDB's
    epoch(), which is not correctly rounded (1 ulp off for about a quarter of
    times), and left out some of the stories narrow kept open."""
    options = Options()
    start = datetime(2024, 10, 23, 14, 2, 55, 255581, tzinfo=UTC)
    batch = [start + timedelta(seconds=7 * i, microseconds=37 * i) for i in range(200)]
    with store.connect(tmp_path / "news.duckdb") as con:
        for i, t in enumerate(batch):
            last = _seconds(t - options.reach)
            con.execute("INSERT INTO story_state (story_id, first, last, size, terms, weights,"
                        " names, name_counts, languages, language_counts, main_language,"
                        " embedding, embedded, founder_text) VALUES (?, ?, ?, 1, '', '', [], [],"
                        " [], [], '', NULL, 0, '')", [f"s{i}", last, last])
        differ = []
        for t in batch:
            last_from, first_to, first_from = open_window(t, t, options.reach,
                                                          options.max_span)
            kept = {f"s{j}" for j, u in enumerate(batch)
                    if last_from <= _seconds(u - options.reach) <= first_to
                    and _seconds(u - options.reach) >= first_from}
            read = set(story_state.read_open(con, (t, t), options).story_ids)
            if read != kept:
                differ.append(t)
        assert differ == []
