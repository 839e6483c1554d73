"""The single writer: one transaction per run, idempotent, stories from the cluster
stage's plan (or made in the load when the plan is missing or stale)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from support import factories as f

from pipeline import store
from pipeline.models import FeedUpdate
from pipeline.store import staging
from pipeline.store.load import load
from pipeline.store.plan import _plan_files, plan

EVENT = ("Israel and Russia agreed to set up a working group on the withdrawal of foreign "
         "forces from Syria, Prime Minister Benjamin Netanyahu said after meeting President "
         "Vladimir Putin in Moscow. ")
OTHER = ("Floods in southern Spain forced 3,000 people from their homes as the Guadalquivir "
         "burst its banks near Seville, regional officials said on Tuesday. ")


def reports() -> list[dict[str, object]]:
    return [
        f.article(1, title="Israel, Russia to form group on foreign forces in Syria",
                  text=EVENT * 3, source="Outlet One", topics=("syria",),
                  countries=("IL", "RU", "SY")),
        f.article(2, title="Netanyahu: Russia and Israel agree on Syria pullout group",
                  text=EVENT * 2, source="Outlet Two", topics=("syria",),
                  countries=("IL", "RU", "SY"), hours=5),
        f.article(3, title="Thousands flee floods in southern Spain", text=OTHER * 3,
                  source="Outlet Three", countries=("ES",), hours=6),
    ]


def table(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[object, ...]]:
    return con.execute(sql).fetchall()


def test_load_clusters_and_counts(tmp_path: Path) -> None:
    settings = f.settings(tmp_path)
    f.stage(settings, "run-1", reports())
    with store.connect(settings.database) as con:
        result = load(con, settings, "run-1")
        assert result.articles_new == 3
        assert result.stories_new == 2
        stories = table(con, "SELECT n_articles, n_sources FROM stories ORDER BY n_articles")
        assert stories == [(1, 1), (2, 2)]
        tags = table(con, "SELECT count(*) FROM article_tags")
        removed = table(con, "SELECT count(*) FROM removed_lines")
    assert tags == [(2,)] and removed == [(3,)]


def test_reloading_a_run_or_the_same_articles_changes_nothing(tmp_path: Path) -> None:
    settings = f.settings(tmp_path)
    f.stage(settings, "run-1", reports())
    with store.connect(settings.database) as con:
        load(con, settings, "run-1")
        snapshot = table(con, "SELECT id, story_id, title FROM articles ORDER BY id")
        again = load(con, settings, "run-1")
        assert again.already_loaded
        f.stage(settings, "run-2", reports())  # the same pages in a later pass
        later = load(con, settings, "run-2")
        assert later.articles_new == 0 and later.stories_new == 0
        assert table(con, "SELECT id, story_id, title FROM articles ORDER BY id") == snapshot
        assert table(con, "SELECT count(*) FROM entries") == [(3,)]


def _feed_state(url: str, **older: object) -> dict[str, object]:
    """A staged feed state; ``older``: fields a staged file of an older version holds."""
    when = datetime(2019, 3, 1, tzinfo=UTC)
    return {"url": url, "fetch_url": url, "name": "Feed", "status": "active",
            "last_polled_at": when, "last_success_at": when, "next_poll_at": when,
            "poll_interval_minutes": 15.0, "etag": None, "last_modified": None,
            "content_hash": None, "error_count": 0, "last_error": None, **older}


def test_a_staged_feed_state_holds_only_what_the_load_keeps(tmp_path: Path) -> None:
    # Each field of the staged record is the new value of the feeds column of its
    # name. Before: new_entries, written on every poll and read by nothing (the
    # load counts entries_seen from the entries table).
    with store.connect(tmp_path / "news.duckdb") as con:
        kept = {str(r[0]) for r in con.execute("SELECT name FROM pragma_table_info('feeds')")
                .fetchall()}
    assert set(staging.columns(FeedUpdate)) - kept == set()


def test_a_feed_state_staged_by_an_older_version_still_loads(tmp_path: Path) -> None:
    # Its new_entries field is no longer read: the file loads, the field ignored.
    settings = f.settings(tmp_path)
    feed = "https://feed.example.org/rss"
    f.stage(settings, "old", [{**reports()[0], "feed_url": feed}])
    with staging.StagingWriter(staging.run_dir(settings.staging, "old"), "poll") as w:
        w.write("feeds", _feed_state(feed, new_entries=7, etag='"v1"'))
    with store.connect(settings.database) as con:
        load(con, settings, "old")
        assert table(con, f"SELECT etag, entries_seen FROM feeds WHERE url = '{feed}'") == [
            ('"v1"', 1)]


def test_entries_seen_counts_the_stored_entries_whatever_batch_carries_the_feed_state(
        tmp_path: Path) -> None:
    # A pass's micro-batches store entries before the batch that carries the
    # feed's state (which says how many were new); a pass killed in between,
    # then run again, delivered only the rest as new. And a second pass with
    # its own staging folder fetches the same entries again. Before: 1, then 2.
    settings = f.settings(tmp_path)
    feed = "https://feed.example.org/rss"
    first, second, third = ({**r, "feed_url": feed} for r in reports())
    f.stage(settings, "batch-1", [first, second])  # killed before the state's batch
    f.stage(settings, "batch-2", [third])
    with staging.StagingWriter(staging.run_dir(settings.staging, "batch-2"), "poll") as w:
        w.write("feeds", _feed_state(feed))  # the state, with the last batch
    f.stage(settings, "again", [third])  # another pass, another staging folder
    with staging.StagingWriter(staging.run_dir(settings.staging, "again"), "poll") as w:
        w.write("feeds", _feed_state(feed))
    with store.connect(settings.database) as con:
        counts = []
        for run_id in ("batch-1", "batch-2", "again"):
            load(con, settings, run_id)
            counts.append(table(con, f"SELECT entries_seen FROM feeds WHERE url = '{feed}'"))
        stored = table(con, f"SELECT count(*) FROM entries WHERE feed_url = '{feed}'")
    assert stored == [(3,)]
    assert counts == [[], [(3,)], [(3,)]]


def test_the_same_page_in_two_feeds_is_one_article(tmp_path: Path) -> None:
    settings = f.settings(tmp_path)
    one = reports()[0]
    twin = {**one, "feed_url": "https://other-feed.example", "url": one["url"] + "?utm_source=x"}
    f.stage(settings, "run-1", [one], shard="p000")
    f.stage(settings, "run-1", [twin], shard="p001")
    with store.connect(settings.database) as con:
        assert load(con, settings, "run-1").articles_new == 1


@pytest.mark.parametrize("held", [True, False], ids=["held", "streamed"])
def test_the_copy_kept_of_a_page_staged_twice_does_not_depend_on_staging_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: bool) -> None:
    """One fetch of a page listed by two feeds is staged twice. The copy kept
    is the same whichever shard came first, and whether the run is held in
    memory (a micro-batch) or streamed from its copy (a pass); a page stored
    by an earlier run is not stored again."""
    from pipeline.store import plan as plan_module

    monkeypatch.setattr(plan_module, "_HELD_BYTES", 1 << 30 if held else 0)
    kept = []
    for order in ("ab", "ba"):
        settings = f.settings(tmp_path / order)
        first, second, third = reports()
        f.stage(settings, "run-0", [third])
        with store.connect(settings.database) as con:
            load(con, settings, "run-0")
        copies = {name: {**first, "feed_url": f"https://{name}-feed.example"} for name in "ab"}
        f.stage(settings, "run-1", [copies[order[0]], second], shard="p000")
        f.stage(settings, "run-1", [copies[order[1]], third], shard="p001")
        with store.connect(settings.database) as con:
            assert plan(con, settings, "run-1").articles == 2
            assert load(con, settings, "run-1").articles_new == 2
            kept.append(table(con, f"SELECT feed_url FROM articles WHERE id = '{first['id']}'"))
            assert table(con, "SELECT count(*) FROM articles") == [(3,)]
    assert kept == [[("https://a-feed.example",)]] * 2


def test_a_failing_load_rolls_back_everything(tmp_path: Path) -> None:
    settings = f.settings(tmp_path)
    f.stage(settings, "run-1", reports())
    # A whole file (with its completion record) that DuckDB fails on mid-load.
    with staging.StagingWriter(tmp_path / "staging" / "run-1", "p999") as writer:
        writer.write("articles", {"id": "x", "published_at": "not a date"})
    with store.connect(settings.database) as con:
        with pytest.raises(duckdb.Error):
            load(con, settings, "run-1")
        assert table(con, "SELECT count(*) FROM articles") == [(0,)]
        assert table(con, "SELECT count(*) FROM entries") == [(0,)]
        assert table(con, "SELECT count(*) FROM runs") == [(0,)]


@contextmanager
def held(db: Path, *, read_only: bool = False) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``db`` open (read-only: an analyst's session)
    for the block."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb,time; c=duckdb.connect({str(db)!r}, read_only={read_only}); "
         "print('ok', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_a_locked_database_is_reported_in_one_sentence(tmp_path: Path) -> None:
    import time

    db = tmp_path / "news.duckdb"
    with store.connect(db):
        pass
    with held(db) as holder:
        started = time.monotonic()
        retry = store.LockRetry(attempts=3, first_delay=0.05)
        with pytest.raises(store.DatabaseLocked) as err, store.connect(db, retry=retry):
            pass
        assert time.monotonic() - started < 5
        assert f"locked by process {holder.pid}" in str(err.value)
        assert "close that session" in str(err.value)


def test_a_brief_writer_gives_up_on_a_read_only_session_in_a_second_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer a continuous run's load tried again opens (``brief``): it
    waits for an analyst's read-only session about 0.3 s, not ~18 s, and the
    "waiting for it" warning is left to its caller (said once, not per try);
    the first load's writer still says it."""
    import logging
    import time

    from pipeline.config import parse_settings
    from pipeline.store.backend import backend

    db = tmp_path / "news.duckdb"
    with store.connect(db):
        pass
    settings = parse_settings({"database": str(db), "staging_dir": str(tmp_path / "staging"),
                               "feeds": []})
    with held(db, read_only=True) as holder:
        with caplog.at_level(logging.WARNING):
            started = time.monotonic()
            with pytest.raises(store.DatabaseLocked) as err, \
                    backend(settings).writer(checkpoint=False, brief=True):
                pass
            waited = time.monotonic() - started
        assert waited < 2, waited
        assert f"locked by process {holder.pid}" in str(err.value)
        assert "open read-only" in str(err.value)
        assert [r for r in caplog.records if "waiting for it" in r.getMessage()] == []


# -- the cluster stage's plan ----------------------------------------------------------------

ALERT = {"name": "syria", "query": "country:SY", "to": ["desk@example.org"]}


def stored(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[object, ...]]]:
    return {
        "articles": table(con, "SELECT id, story_id FROM articles ORDER BY id"),
        "stories": table(con, "SELECT id, title, n_articles, n_sources, lead_article_id"
                              " FROM stories ORDER BY id"),
        "alerts": table(con, "SELECT rule, story_id, recipient, update_no, article_id"
                             " FROM alerts ORDER BY ALL"),
    }


def test_a_planned_load_stores_what_an_unplanned_one_does(tmp_path: Path) -> None:
    results = []
    for planned in (False, True):
        settings = f.settings(tmp_path / str(planned), alerts=[ALERT])
        f.stage(settings, "run-1", reports())
        if planned:  # the cluster stage, read-only as the pipeline runs it
            with store.connect(settings.database):
                pass
            with store.connect(settings.database, read_only=True) as con:
                result = plan(con, settings, "run-1")
            assert (result.articles, result.stories, result.candidates) == (3, 2, 1)
            assert (staging.run_dir(settings.staging, "run-1") / "plan.json").exists()
        with store.connect(settings.database) as con:
            loaded = load(con, settings, "run-1")
            assert (loaded.articles_new, loaded.stories_new, loaded.alerts_queued) == (3, 2, 1)
            results.append(stored(con))
    assert results[0] == results[1]
    assert len(results[0]["alerts"]) == 1


def test_dates_at_the_ends_of_the_calendar_plan_and_load(tmp_path: Path) -> None:
    """A feed's bad date (year 1 or 9999) is stored like any other: the window
    around the new articles must not step past what Python's datetime holds."""
    settings = f.settings(tmp_path)
    far = [{**a, "published_at": when, "fetched_at": when}
           for a, when in zip(reports()[:2], [datetime(9999, 12, 31, 23, tzinfo=UTC),
                                               datetime(1, 1, 1, 1, tzinfo=UTC)], strict=True)]
    f.stage(settings, "run-1", [*far, reports()[2]])
    with store.connect(settings.database) as con:
        assert plan(con, settings, "run-1").articles == 3
        loaded = load(con, settings, "run-1")
        assert (loaded.articles_new, loaded.stories_new) == (3, 3)
        assert table(con, "SELECT min(published_at), max(published_at) FROM articles") == [
            (datetime(1, 1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, tzinfo=UTC))]


def test_planning_leaves_no_copy_of_the_articles_behind(tmp_path: Path) -> None:
    settings = f.settings(tmp_path)
    f.stage(settings, "run-1", reports())
    directory = staging.run_dir(settings.staging, "run-1")
    with store.connect(settings.database) as con:
        plan(con, settings, "run-1")
        assert not list(directory.glob(".new-articles.*"))
        assert table(con, "SELECT count(*) FROM duckdb_views() WHERE view_name = "
                          "'new_articles'") == [(0,)]
        assert table(con, "SELECT table_name FROM duckdb_tables() WHERE temporary"
                          " AND table_name LIKE 'new_%'") == []


def test_the_load_uses_a_current_plan(tmp_path: Path) -> None:
    settings = f.settings(tmp_path)
    f.stage(settings, "run-1", reports())
    with store.connect(settings.database) as con:
        plan(con, settings, "run-1")
        # Rewrite the plan's story ids: the load must take them as they are.
        path = staging.run_dir(settings.staging, "run-1") / "plan-assigned.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({**r, "story_id": "s-planned"}) + "\n"
                                for r in rows))
        con.execute(f"COPY (SELECT * REPLACE ('s-planned' AS story_id) FROM read_parquet("
                    f"'{path.parent / 'plan-articles.parquet'}')) TO "
                    f"'{path.parent / 'plan-articles.parquet'}.new' (FORMAT parquet)")
        (path.parent / "plan-articles.parquet.new").replace(path.parent / "plan-articles.parquet")
        # ... and vouch for the rewritten files in the plan's commit mark, as the
        # planner does (an unvouched change is a damaged plan: next test).
        mark = json.loads((path.parent / "plan.json").read_text())
        mark["files"] = _plan_files(path.parent)
        (path.parent / "plan.json").write_text(json.dumps(mark) + "\n")
        load(con, settings, "run-1")
        assert table(con, "SELECT DISTINCT story_id FROM articles") == [("s-planned",)]


@pytest.mark.parametrize("cut", ["line", "mid-line"])
def test_a_plan_file_cut_short_is_made_again_not_read_short(tmp_path: Path, cut: str) -> None:
    settings = f.settings(tmp_path, alerts=[{"name": "syria", "query": "topic:syria",
                                             "to": ["a@example.org"]}])
    f.stage(settings, "run-1", reports())
    with store.connect(settings.database) as con:
        plan(con, settings, "run-1")
        directory = staging.run_dir(settings.staging, "run-1")
        for name in ("plan-outbox.jsonl", "plan-assigned.jsonl"):
            data = (directory / name).read_bytes()
            assert data.count(b"\n") >= 1, name
            # "line": the last line gone, the file still ends in a newline.
            keep = data[: data.rfind(b"\n", 0, len(data) - 1) + 1] if cut == "line" \
                else data[: len(data) // 2]
            (directory / name).write_bytes(keep)
        result = load(con, settings, "run-1")
        assert result.articles_new == 3
        assert table(con, "SELECT count(*) FROM articles WHERE story_id IN "
                          "(SELECT id FROM stories)") == [(3,)]
        assert table(con, "SELECT count(*) FROM alerts") == [(1,)]


def test_a_stale_plan_is_made_again_inside_the_load(tmp_path: Path) -> None:
    """Run 2 is planned, then run 1 (the same event, earlier) is loaded: run 2's
    plan, made before that, would start a new story; the load must join run 1's."""
    settings = f.settings(tmp_path, alerts=[ALERT])
    first, second, _ = reports()
    f.stage(settings, "run-1", [first])
    f.stage(settings, "run-2", [second])
    with store.connect(settings.database) as con:
        plan(con, settings, "run-2")
        assert (staging.run_dir(settings.staging, "run-2") / "plan.json").exists()
        load(con, settings, "run-1")
        later = load(con, settings, "run-2")
        assert later.stories_new == 0
        assert table(con, "SELECT count(DISTINCT story_id) FROM articles") == [(1,)]
        # One alert for the one story, though each run's plan saw it as new.
        assert table(con, "SELECT count(*) FROM alerts") == [(1,)]


def test_changed_settings_make_the_plan_stale(tmp_path: Path) -> None:
    settings = f.settings(tmp_path)
    f.stage(settings, "run-1", reports())
    with store.connect(settings.database) as con:
        plan(con, settings, "run-1")
        # A one-hour horizon: the second report (5 hours later) is outside it.
        stricter = f.settings(tmp_path, cluster={"horizon_hours": 1})
        load(con, stricter, "run-1")
        assert table(con, "SELECT count(DISTINCT story_id) FROM articles") == [(3,)]


def test_a_shard_processed_again_after_the_plan_makes_it_stale(tmp_path: Path) -> None:
    settings = f.settings(tmp_path)
    first, second, third = reports()
    f.stage(settings, "run-1", [first, second], shard="p000")
    with store.connect(settings.database) as con:
        plan(con, settings, "run-1")
        # The shard is run again (an Airflow clear) and now holds one more article.
        f.stage(settings, "run-1", [first, second, third], shard="p000")
        assert load(con, settings, "run-1").articles_new == 3
        assert table(con, "SELECT count(*) FROM articles") == [(3,)]


def test_an_unreadable_plan_is_made_again(tmp_path: Path) -> None:
    settings = f.settings(tmp_path)
    f.stage(settings, "run-1", reports())
    with store.connect(settings.database) as con:
        plan(con, settings, "run-1")
        # A torn file that plan.json vouches for (a crash before it reached the disk).
        (staging.run_dir(settings.staging, "run-1") / "plan-articles.parquet").write_bytes(
            b"PAR1 torn")
        assert load(con, settings, "run-1").articles_new == 3
        assert table(con, "SELECT count(*) FROM stories") == [(2,)]


def test_a_load_that_leaves_its_commit_in_the_log_loses_nothing(tmp_path: Path) -> None:
    """``load_stage(checkpoint=False)``, a stream's load with more behind it: the
    commit stays in ``news.duckdb.wal``, every connection reads it, a second
    load goes on from it, and :func:`store.checkpoint` leaves the file alone
    holding both."""
    from pipeline.stages import checkpoint_stage, load_stage

    settings = f.settings(tmp_path)
    wal = settings.database.with_name(settings.database.name + ".wal")
    first, second = reports()[:2], reports()[2:]
    f.stage(settings, "run-1", first)
    load_stage(settings, "run-1", checkpoint=False)
    assert wal.exists() and wal.stat().st_size > 0
    with duckdb.connect(str(settings.database), read_only=True) as con:
        assert table(con, "SELECT count(*) FROM articles") == [(2,)]
    f.stage(settings, "run-2", second)
    load_stage(settings, "run-2", checkpoint=False)
    checkpoint_stage(settings)
    assert not wal.exists() or wal.stat().st_size == 0
    with duckdb.connect(str(settings.database), read_only=True) as con:
        assert table(con, "SELECT count(*) FROM articles") == [(3,)]
        assert table(con, "SELECT count(*) FROM runs") == [(2,)]
    # The default folds at once: nothing is left beside the file.
    f.stage(settings, "run-3",
            [f.article(9, title="Later report", text=OTHER * 3, source="Outlet Nine")])
    load_stage(settings, "run-3")
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_pass_that_only_sends_leaves_no_commit_in_the_log(tmp_path: Path) -> None:
    """A pass with nothing new whose send round delivers earlier alerts (their
    backoff ended): the sent marks are folded into the file as the loads' are,
    not left in ``news.duckdb.wal`` for a copy of the file to miss."""
    from pipeline.stages import load_stage
    from pipeline.stream import stream_pass

    settings = f.settings(tmp_path, alerts=[
        {"name": "syria", "query": "topic:syria", "to": ["analyst@example.org"]}])
    wal = settings.database.with_name(settings.database.name + ".wal")
    f.stage(settings, "run-1", reports())
    assert load_stage(settings, "run-1").alerts_queued == 1
    assert not wal.exists() or wal.stat().st_size == 0

    result = stream_pass(settings, workers=1)
    assert result.batches == 0 and result.send.sent == 1
    assert not wal.exists() or wal.stat().st_size == 0
    with duckdb.connect(str(settings.database), read_only=True) as con:
        assert table(con, "SELECT status FROM alerts") == [("sent",)]


def _load_that_commits_then_says(error: Exception, calls: list[str]) -> Any:
    """The real load, which commits, then ``error``: what DuckDB does when it
    reports a full disk after the commit reached its write-ahead log (seen in
    a tmpfs-full stream test, one run in two), or a lake's catalog session
    dropped after the commit."""
    real = load

    def committed_then_failed(*args: Any, **kwargs: Any) -> Any:
        calls.append("load")
        real(*args, **kwargs)
        raise error

    return committed_then_failed


@pytest.mark.parametrize("both", [False, True], ids=["load_stage", "plan_and_load_stage"])
def test_a_load_whose_commit_went_through_before_its_error_is_loaded_not_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        both: bool) -> None:
    """Taken for a failure, the run was kept and tried again, found loaded,
    and what had been staged beside it meanwhile (further shards of the run)
    was discarded with it: those entries' records lost. The stage now reads
    back whether its run is loaded: it is, so it is the stage's result."""
    from pipeline import stages

    settings = f.settings(tmp_path)
    f.stage(settings, "run-1", reports())
    calls: list[str] = []
    full = store.DiskFull("disk full at /data (writing news.duckdb.wal): free some space")
    monkeypatch.setattr(stages, "load", _load_that_commits_then_says(full, calls))
    with caplog.at_level("WARNING"):
        if both:
            planned, result = stages.plan_and_load_stage(settings, "run-1", checkpoint=False)
            assert planned.articles == 3
        else:
            stages.cluster_stage(settings, "run-1")
            result = stages.load_stage(settings, "run-1")
    assert calls == ["load"]
    assert (result.already_loaded, result.articles_new, result.stories_new) == (False, 3, 2)
    assert not (tmp_path / "staging" / "run-1").exists()  # done with, as after any load
    (warning,) = [r.getMessage() for r in caplog.records
                  if "but the run is loaded" in r.getMessage()]
    assert "disk full at /data" in warning and "stored once, going on" in warning
    with store.connect(settings.database, read_only=True) as con:
        assert table(con, "SELECT count(*) FROM articles") == [(3,)]


def test_a_load_that_failed_before_its_commit_still_fails_and_keeps_its_staging(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The read-back finds the run not loaded: the load's own error, its
    staging kept for the next pass."""
    from pipeline import stages

    settings = f.settings(tmp_path)
    f.stage(settings, "run-1", reports())

    def fails(*args: Any, **kwargs: Any) -> Any:
        raise store.DiskFull("disk full at /data (writing news.duckdb.wal): free some space")

    monkeypatch.setattr(stages, "load", fails)
    with pytest.raises(store.DiskFull, match="disk full at /data"):
        stages.plan_and_load_stage(settings, "run-1", checkpoint=False)
    with pytest.raises(store.DiskFull, match="disk full at /data"):
        stages.load_stage(settings, "run-1")
    assert (tmp_path / "staging" / "run-1").is_dir()
    with store.connect(settings.database, read_only=True) as con:
        assert table(con, "SELECT count(*) FROM runs WHERE loaded_at IS NOT NULL") == [(0,)]


def test_the_read_back_of_a_failed_load_asks_for_the_file_briefly(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The read-back runs on a stream's database thread, which the polls
    share: with the file held read-write by another process it gives up in
    about 0.3 s, without the lock's "waiting for it" warning, and the load's
    own error stands (it waited the writer's ~18 s, warning, before)."""
    import time

    from pipeline import stages

    settings = f.settings(tmp_path)
    with store.connect(settings.database):
        pass
    full = store.DiskFull("disk full at /data (writing news.duckdb.wal): free some space")
    with held(settings.database), caplog.at_level("WARNING"):
        started = time.monotonic()
        with pytest.raises(store.DiskFull, match="disk full at /data"):
            stages._committed_anyway(settings, "run-1", full)
        waited = time.monotonic() - started
    assert waited < 3, waited
    assert [r for r in caplog.records if "waiting for it" in r.getMessage()] == []


def _first_load_taken_for_failed(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """run-1's first batch (p000: reports 1 and 2) loads, its commit goes
    through and DiskFull comes after it, and the read-back cannot say (the
    file held read-write by another process at that moment): the run counts
    as failed and its staging is kept, as a stream keeps it."""
    from pipeline import stages

    f.stage(settings, "run-1", reports()[:2])
    full = store.DiskFull("disk full at /data (writing news.duckdb.wal): free some space")
    calls: list[str] = []
    read_back = stages._committed_anyway

    def held_while_read_back(*args: Any, **kwargs: Any) -> Any:
        with held(settings.database):
            return read_back(*args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(stages, "load", _load_that_commits_then_says(full, calls))
        patched.setattr(stages, "_committed_anyway", held_while_read_back)
        with pytest.raises(store.DiskFull, match="disk full at /data"):
            stages.plan_and_load_stage(settings, "run-1", checkpoint=False)
    assert calls == ["load"]
    assert (settings.staging / "run-1").is_dir()


@pytest.mark.parametrize("again", ["stream", "next_pass"])
def test_shards_staged_beside_a_run_whose_load_went_through_unseen_are_loaded_not_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, again: str) -> None:
    """A stream stages its later batches beside a run whose load it took for
    failed, as further shards of that run (p001), and tries the run again;
    the next pass loads what a pass left. The run was loaded (the read-back
    could not say), and the try again found it loaded and discarded the
    whole folder, the later shard's articles and entries never stored.
    Now the load records the shards it took, and a run found loaded loads
    the ones it did not, once."""
    from pipeline import run, stages

    settings = f.settings(tmp_path)
    _first_load_taken_for_failed(settings, monkeypatch)
    f.stage(settings, "run-1", reports()[2:], shard=staging.process_shard(1))
    if again == "stream":
        planned, loaded = stages.plan_and_load_stage(settings, "run-1", checkpoint=False)
        assert planned.articles == 1
        assert (loaded.already_loaded, loaded.articles_new, loaded.entries) == (False, 1, 1)
    else:
        leftovers, _ = run._load_leftovers(settings)
        assert [(r.already_loaded, r.articles_new) for r in leftovers] == [(False, 1)]
    assert not (tmp_path / "staging" / "run-1").exists()
    with store.connect(settings.database, read_only=True) as con:
        assert table(con, "SELECT count(*) FROM articles") == [(3,)]
        assert table(con, "SELECT count(*) FROM entries WHERE status = 'stored'") == [(3,)]
        assert table(con, "SELECT articles_new, entries_new FROM runs") == [(3, 3)]
        assert table(con, "SELECT shard FROM run_shards ORDER BY shard") == [("p000",),
                                                                               ("p001",)]
        # Each article once, the flood report in a story of its own.
        assert table(con, "SELECT n_articles FROM stories ORDER BY 1") == [(1,), (2,)]


def test_a_retried_load_of_a_loaded_run_is_a_no_op_even_with_its_staging_back(
        tmp_path: Path) -> None:
    """An Airflow retry of the load task (or of a process task after the
    load: its shard written again, under the same name) changes nothing:
    every shard of the run was loaded, none is loaded twice."""
    from pipeline import stages

    settings = f.settings(tmp_path)
    f.stage(settings, "run-1", reports())
    stages.cluster_stage(settings, "run-1")
    first = stages.load_stage(settings, "run-1")
    assert (first.already_loaded, first.articles_new) == (False, 3)
    again = stages.load_stage(settings, "run-1")  # staging gone: as before
    assert (again.already_loaded, again.articles_new) == (True, 3)
    rerun = [f.article(9, title="A later page", text=OTHER, source="Outlet Nine")]
    f.stage(settings, "run-1", rerun)  # p000 again, under the same name
    assert stages.cluster_stage(settings, "run-1").already_loaded
    f.stage(settings, "run-1", rerun)
    again = stages.load_stage(settings, "run-1")
    assert (again.already_loaded, again.articles_new) == (True, 3)
    assert not (tmp_path / "staging" / "run-1").exists()
    with store.connect(settings.database, read_only=True) as con:
        assert table(con, "SELECT count(*) FROM articles") == [(3,)]
        assert table(con, "SELECT count(*), sum(articles_new) FROM runs") == [(1, 3)]


def test_a_run_loaded_before_shards_were_recorded_counts_as_loaded_whole(
        tmp_path: Path) -> None:
    """A database whose runs were loaded before ``run_shards``: such a run,
    its folder left behind, is not loaded again."""
    from pipeline import run, stages

    settings = f.settings(tmp_path)
    f.stage(settings, "run-1", reports())
    stages.load_stage(settings, "run-1")
    with store.connect(settings.database) as con:
        con.execute("DROP TABLE run_shards")
    f.stage(settings, "run-1", reports(), shard=staging.process_shard(1))
    assert run.tidy_staging(settings) == ([], 1)
    f.stage(settings, "run-1", reports(), shard=staging.process_shard(1))
    again = stages.load_stage(settings, "run-1")  # the writer adds the table back
    assert again.already_loaded
    with store.connect(settings.database, read_only=True) as con:
        assert table(con, "SELECT count(*) FROM articles") == [(3,)]
        assert table(con, "SELECT count(*) FROM run_shards") == [(0,)]
