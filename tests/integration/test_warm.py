"""The warm clusterer (pipeline/store/warm.py): a sequence of plans and loads that
goes on from one plan's clusterer to the next stores exactly what plans that
each restore the open stories from the database store."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import duckdb
import pytest
from support import factories as f

from pipeline import alert, store
from pipeline.config import Settings
from pipeline.store import story_state
from pipeline.store.load import load
from pipeline.store.plan import plan
from pipeline.store.warm import WarmClusterer
from tests.integration.test_stories import FOLLOW_UP, SHOOTING

# Everything the clusterer's decisions leave in the database.
_TABLES = {
    "articles": "SELECT id, story_id FROM articles",
    "story_state": "SELECT * EXCLUDE (founder_text) FROM story_state",
    "founders": "SELECT story_id, coalesce(founder_text, '') FROM story_state",
    "story_signatures": "SELECT * FROM story_signatures",
    "term_stats": "SELECT * FROM term_stats",
    "story_links": "SELECT story_id, other_story_id, article_id, round(score, 12)"
                   " FROM story_links",
    "stories": "SELECT id, title, lead_article_id, n_articles FROM stories",
}


def dump(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    with duckdb.connect(str(settings.database), read_only=True) as con:
        return {name: sorted(con.execute(sql).fetchall(), key=repr)
                for name, sql in _TABLES.items()}


def newsroom(n: int, *, seed: int = 5, hours: float = 0.0) -> list[dict[str, Any]]:
    from benchmarks.synthetic import Newsroom

    out = []
    for a in Newsroom(seed, articles_per_hour=6.0).articles(n):
        record = f.article(a.n, title=a.title, text=a.text, source=a.source,
                           countries=a.countries, people=a.people)
        record["published_at"] = a.published_at + timedelta(hours=hours)
        record["fetched_at"] = record["published_at"] + timedelta(minutes=5)
        out.append(record)
    return sorted(out, key=lambda r: (r["published_at"], r["id"]))


def batches(articles: list[dict[str, Any]], size: int, *, seed: int = 1, jitter: float = 2.5
            ) -> list[list[dict[str, Any]]]:
    """Micro-batches as a stream makes them: in arrival order, which is not quite
    time order (a batch may hold reports older than stories already stored)."""
    rng = random.Random(seed)
    order = sorted(range(len(articles)),
                   key=lambda i: i + rng.uniform(-jitter * size, jitter * size))
    shuffled = [articles[i] for i in order]
    return [shuffled[k:k + size] for k in range(0, len(shuffled), size)]


def plan_and_load(settings: Settings, run_id: str, articles: list[dict[str, Any]],
                  warm: WarmClusterer | None) -> None:
    """As the pipelined pass does it: a read-only plan, then the load."""
    f.stage(settings, run_id, articles)
    with store.connect(settings.database):
        pass  # the schema, before the first read-only plan
    with store.connect(settings.database, read_only=True) as con:
        plan(con, settings, run_id, warm=warm)
    with store.connect(settings.database) as con:
        load(con, settings, run_id, warm=warm)


def both(tmp_path: Path, **cluster: Any) -> tuple[Settings, Settings]:
    overrides = {"cluster": cluster} if cluster else {}
    return (f.settings(tmp_path / "warm", **overrides),
            f.settings(tmp_path / "cold", **overrides))


def test_warm_plans_store_what_cold_plans_store(tmp_path: Path) -> None:
    warm_settings, cold_settings = both(tmp_path)
    warm = WarmClusterer()
    for k, batch in enumerate(batches(newsroom(160), 12)):
        plan_and_load(warm_settings, f"run-{k:03d}", batch, warm)
        plan_and_load(cold_settings, f"run-{k:03d}", batch, None)
    assert warm.reused >= 10 and warm.restored == 1  # only the first plan restored
    got, expected = dump(warm_settings), dump(cold_settings)
    assert got == expected
    assert len({s for _, s in got["articles"]}) < 160 * 0.8  # real choices: stories joined


def test_warm_plans_forget_the_stories_the_horizon_leaves(tmp_path: Path) -> None:
    # Six hours of reach (a two-hour horizon, three with a rare word shared) over
    # ~30 hours of reports: stories close between plans.
    warm_settings, cold_settings = both(tmp_path, horizon_hours=2, max_span_days=0.5)
    warm = WarmClusterer()
    for k, batch in enumerate(batches(newsroom(180, seed=9), 10, jitter=0.0)):
        plan_and_load(warm_settings, f"run-{k:03d}", batch, warm)
        plan_and_load(cold_settings, f"run-{k:03d}", batch, None)
    # Warm plans closed stories as the horizon moved on; once most of what it
    # held was closed, the clusterer was given up and a plan restored afresh.
    assert warm.reused >= 3 and warm.restored >= 2
    assert dump(warm_settings) == dump(cold_settings)


def test_a_load_by_another_writer_makes_the_next_plan_restore(tmp_path: Path) -> None:
    warm_settings, cold_settings = both(tmp_path)
    warm = WarmClusterer()
    parts = batches(newsroom(120), 10)
    for k, batch in enumerate(parts):
        if k == 5:  # another process plans and loads, without the warm clusterer
            plan_and_load(warm_settings, f"run-{k:03d}", batch, None)
        else:
            plan_and_load(warm_settings, f"run-{k:03d}", batch, warm)
        plan_and_load(cold_settings, f"run-{k:03d}", batch, None)
    assert warm.restored == 2  # the first plan, and the one after the other writer
    assert dump(warm_settings) == dump(cold_settings)


def test_a_failed_or_abandoned_load_drops_the_warm_clusterer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warm_settings, cold_settings = both(tmp_path)
    warm = WarmClusterer()
    parts = batches(newsroom(120), 10)
    for k in range(4):
        plan_and_load(warm_settings, f"run-{k:03d}", parts[k], warm)
        plan_and_load(cold_settings, f"run-{k:03d}", parts[k], None)
    # A load that fails after its writes: rolled back, and the clusterer that
    # planned it (ahead of the database now) is not used again.
    f.stage(warm_settings, "run-004", parts[4])
    with store.connect(warm_settings.database, read_only=True) as con:
        plan(con, warm_settings, "run-004", warm=warm)
    real_queue = alert.queue

    def failing(*args: Any, **kwargs: Any) -> int:
        real_queue(*args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(alert, "queue", failing)
    with store.connect(warm_settings.database) as con, pytest.raises(OSError):
        load(con, warm_settings, "run-004", warm=warm)
    monkeypatch.setattr(alert, "queue", real_queue)
    restored = warm.restored
    # An abandoned plan: planned warm, then its run is loaded by a plan made
    # elsewhere (the load plans again); then the runs go on.
    f.stage(warm_settings, "run-005", parts[5])
    with store.connect(warm_settings.database, read_only=True) as con:
        plan(con, warm_settings, "run-005", warm=warm)
    with store.connect(warm_settings.database) as con:
        load(con, warm_settings, "run-004", warm=warm)  # its plan is stale: planned again
        load(con, warm_settings, "run-005", warm=warm)  # stale too: another load came between
    plan_and_load(cold_settings, "run-004", parts[4], None)
    plan_and_load(cold_settings, "run-005", parts[5], None)
    for k in range(6, len(parts)):
        plan_and_load(warm_settings, f"run-{k:03d}", parts[k], warm)
        plan_and_load(cold_settings, f"run-{k:03d}", parts[k], None)
    assert warm.restored >= restored + 2  # run-005's plan and run-006's restored
    assert dump(warm_settings) == dump(cold_settings)


class _Recorded:
    """A connection that keeps the SQL of every statement run through it."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con, self.sql = con, list[str]()

    def execute(self, sql: str, *params: Any) -> duckdb.DuckDBPyConnection:
        self.sql.append(" ".join(sql.split()))
        return self.con.execute(sql, *params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.con, name)


def test_a_warm_plan_skips_the_reads_that_find_nothing(tmp_path: Path) -> None:
    """Issue 13: a micro-batch's plan is mostly fixed work. With every stored
    story saved and no saved search, a warm plan asks the catalog nothing,
    does not look for members of unsaved stories (its clusterer's first plan
    found none in the whole store, and its loads save every story they give
    an article) and reads no story's stored texts for the alert candidates;
    it stores what a restoring plan stores
    (test_warm_plans_store_what_cold_plans_store)."""
    settings = f.settings(tmp_path)
    assert not settings.alerts
    warm = WarmClusterer()
    parts = batches(newsroom(72), 12)
    for k, batch in enumerate(parts[:-1]):
        plan_and_load(settings, f"run-{k:03d}", batch, warm)
    f.stage(settings, "last", parts[-1])
    reused = warm.reused
    with store.connect(settings.database, read_only=True) as con:
        recorded = _Recorded(con)
        result = plan(cast(duckdb.DuckDBPyConnection, recorded), settings, "last", warm=warm)
    assert result.articles == len(parts[-1]) and warm.reused == reused + 1
    assert not [sql for sql in recorded.sql if "information_schema" in sql]
    unsaved = " ".join(story_state.UNSAVED.split())
    assert not [sql for sql in recorded.sql if unsaved in sql]
    assert not [sql for sql in recorded.sql if "loaded_at FROM (" in sql]
    with store.connect(settings.database) as con:
        loaded = load(con, settings, "last", warm=warm)
    assert loaded.articles_new == len(parts[-1])


def test_warm_plans_rebuild_the_unsaved_stories_they_come_to(tmp_path: Path) -> None:
    """A store from before the saved states: the warm clusterer's first plan
    finds unsaved stories in the store, so the plans that go on from it still
    look for the ones in their reach (here hours later, out of the first
    plan's) and rebuild them from their members, as restoring plans do."""
    warm_settings, cold_settings = both(tmp_path, horizon_hours=2, max_span_days=0.5)
    parts = batches(newsroom(180, seed=9), 10, jitter=0.0)
    for settings in (warm_settings, cold_settings):
        for k in range(0, len(parts), 2):  # the whole day, every other batch
            plan_and_load(settings, f"run-{k:03d}", parts[k], None)
        with store.connect(settings.database) as con:  # as a database from before the tables
            con.execute("DELETE FROM story_state")
            con.execute("DELETE FROM story_signatures")
    warm = WarmClusterer()
    for k in range(1, len(parts), 2):
        plan_and_load(warm_settings, f"run-{k:03d}", parts[k], warm)
        plan_and_load(cold_settings, f"run-{k:03d}", parts[k], None)
    assert warm.reused >= 3
    assert dump(warm_settings) == dump(cold_settings)


def test_a_follow_up_two_weeks_later_is_placed_alike_warm_cold_and_in_one_pass(
        tmp_path: Path) -> None:
    shooting = f.article(0, title=SHOOTING[0], text=SHOOTING[1], source="Beacon")
    market = f.article(2, title="Grain prices steady", source="Farm Journal", hours=24 * 10,
                       text="Grain and cattle prices held steady at the weekly market in "
                       "Wooster on Wednesday, traders said, as the weather stayed mild.")
    follow_up = f.article(1, title=FOLLOW_UP[0], text=FOLLOW_UP[1], source="Gazette",
                          hours=24 * 14)
    other = f.article(3, title=FOLLOW_UP[0], source="Herald", hours=24 * 16,
                      text=FOLLOW_UP[1].replace("Ronald Roberts", "Tyrell Mason")
                      .replace("Kimlyn Circle", "Dayton Avenue"))
    warm_settings, cold_settings = both(tmp_path)
    one_settings = f.settings(tmp_path / "one")
    warm = WarmClusterer()
    for k, batch in enumerate([[shooting], [market], [follow_up], [other]]):
        plan_and_load(warm_settings, f"run-{k}", batch, warm)
        plan_and_load(cold_settings, f"run-{k}", batch, None)
    plan_and_load(one_settings, "run-0", [shooting, market, follow_up, other], None)
    assert warm.reused >= 2
    warm_dump, cold_dump, one_dump = dump(warm_settings), dump(cold_settings), dump(one_settings)
    assert warm_dump == cold_dump
    stories = dict(cold_dump["articles"])
    assert stories == dict(one_dump["articles"])
    assert stories[follow_up["id"]] == stories[shooting["id"]]
