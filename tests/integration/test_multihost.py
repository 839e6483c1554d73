"""Several hosts, one lake: worker processes stand in for machines, each with
its own working and staging folders and no shared disk; the catalog is a fresh
PostgreSQL database, the data files and the staging are on a moto S3. The
pipeline's tasks go to hosts at random over several passes, and the lake ends
up with what one host with a DuckDB file stores (issue 15)."""

from __future__ import annotations

import multiprocessing
import random
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import duckdb
import pytest
from support import lake

from pipeline.config import Settings, parse_settings
from pipeline.run import run_pass
from pipeline.store import staging
from pipeline.store.backend import open_store

HOSTS = 3
PASSES = 3
SHARDS = 2  # at most: batches of 3 split the five entries in two
RULE = {"name": "syria-foreign-forces", "query": "topic:syria AND topic:foreign-forces",
        "to": ["analyst@example.org"]}


def base(tmp: Path, site: Any, smtp: Any) -> dict[str, Any]:
    return {"smtp": {"url": smtp.url}, "database": str(tmp / "news.duckdb"),
            "staging_dir": str(tmp / "staging"), "outbox_dir": str(tmp / "outbox"),
            "feeds": [{"url": site.feed_url, "name": "Seed outlets"}], "alerts": [RULE],
            "fetch": {"allow_private": [f"127.0.0.1:{site.port}"]},
            "process": {"workers": 1, "batch_size": 3}}


def on_s3(dsn: str, endpoint: str) -> dict[str, Any]:
    return lake.store_section(dsn, "s3://newsmon/lake/", endpoint=endpoint,
                              staging_url="s3://newsmon/staging/")


def snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """What must match: each article once, the stories as sets of articles, the
    entries and feeds, and one alert per story and rule."""
    articles = con.execute("SELECT canonical_url, title, topics, countries, source"
                           " FROM articles ORDER BY canonical_url").fetchall()
    stories = con.execute("SELECT list(canonical_url ORDER BY canonical_url) FROM articles"
                          " GROUP BY story_id").fetchall()
    return {
        "articles": articles,
        "distinct": con.execute("SELECT count(DISTINCT id) FROM articles").fetchall(),
        "stories": sorted(tuple(s[0]) for s in stories),
        "story_rows": con.execute("SELECT n_articles, n_sources FROM stories").fetchall(),
        "entries": con.execute("SELECT feed_url, id, status FROM entries ORDER BY ALL"
                               ).fetchall(),
        "feeds": con.execute("SELECT url, status, etag IS NOT NULL FROM feeds").fetchall(),
        "alerts": con.execute("SELECT rule, recipient, update_no, status FROM alerts"
                              " ORDER BY ALL").fetchall(),
        "tags": con.execute("SELECT count(*) FROM article_tags").fetchall(),
    }


@pytest.fixture
def hosts() -> Iterator[list[ProcessPoolExecutor]]:
    context = multiprocessing.get_context("spawn")
    with ExitStack() as stack:
        yield [stack.enter_context(ProcessPoolExecutor(1, mp_context=context))
               for _ in range(HOSTS)]


def test_tasks_on_random_hosts_store_what_one_host_stores(
        tmp_path: Path, seed_site: Any, smtp_server: Any,
        hosts: list[ProcessPoolExecutor]) -> None:
    alone = parse_settings(base(tmp_path / "alone", seed_site, smtp_server))
    for _ in range(PASSES):
        run_pass(alone)
    with duckdb.connect(str(alone.database), read_only=True) as con:
        expected = snapshot(con)
    assert len(expected["articles"]) == 5 and len(expected["alerts"]) == 1
    assert len(smtp_server.messages) == 1

    chance = random.Random(15)
    with lake.catalog_database() as dsn, lake.s3_server() as endpoint:
        def host_settings(n: int) -> Settings:
            folder = tmp_path / f"host-{n}"
            return parse_settings({**base(folder, seed_site, smtp_server),
                                   "store": on_s3(dsn, endpoint)})

        settings = [host_settings(n).model_dump_json() for n in range(HOSTS)]

        def on_some_host(task: str, run_id: str, shard: int = 0, shards: int = SHARDS) -> int:
            n = chance.randrange(HOSTS)
            return int(hosts[n].submit(lake.host_task, settings[n], task, run_id, shard,
                                       shards).result(timeout=240))

        loaded = 0
        for number in range(PASSES):
            run_id = f"pass-{number}"
            on_some_host("poll", run_id)
            shards = on_some_host("shards", run_id)
            for shard in range(shards):
                on_some_host("process", run_id, shard, shards)
            on_some_host("cluster", run_id)
            loaded += on_some_host("load", run_id)
            # Two senders at once on two hosts: the alert goes out once.
            two = chance.sample(range(HOSTS), 2)
            sends = [hosts[n].submit(lake.host_task, settings[n], "send", run_id) for n in two]
            sent = sum(int(x.result(timeout=240)) for x in sends)
            assert sent == (1 if number == 0 else 0)
        assert loaded == 5
        assert len(smtp_server.messages) == 2  # one from the single host, one from the lake
        with open_store(host_settings(0), read_only=True) as con:
            got = snapshot(con)
    assert got == expected
    for n in range(HOSTS):  # nothing left on a host, no DuckDB file made anywhere
        assert not (tmp_path / f"host-{n}" / "news.duckdb").exists()
        assert [p.name for p in (tmp_path / f"host-{n}" / "staging").glob("*")
                if not p.name.startswith(".")] == []


def test_a_run_whose_staging_never_reached_s3_is_an_error_not_an_empty_load(
        tmp_path: Path, seed_site: Any, smtp_server: Any,
        hosts: list[ProcessPoolExecutor]) -> None:
    with lake.catalog_database() as dsn, lake.s3_server() as endpoint:
        settings = parse_settings({**base(tmp_path, seed_site, smtp_server),
                                   "store": on_s3(dsn, endpoint)})
        with pytest.raises(staging.StagingError, match="no staging folder for this run"):
            lake.host_task(settings.model_dump_json(), "load", "never-polled")
        with open_store(settings, read_only=True) as con:
            assert con.execute("SELECT count(*) FROM runs").fetchall() == [(0,)]
            assert con.execute("SELECT count(*) FROM feeds").fetchall() == [(0,)]


def _pass_on_host(settings_json: str) -> tuple[int, int]:
    """Articles the pass extracted, and how many of them its loads stored."""
    settings = Settings.model_validate_json(settings_json)
    done = run_pass(settings)
    return done.process.articles, done.load.articles_new


def test_two_hosts_polling_the_same_feed_at_once_store_each_article_once_and_mail_once(
        tmp_path: Path, seed_site: Any, smtp_server: Any,
        hosts: list[ProcessPoolExecutor]) -> None:
    """`newsmon run --once` on two hosts at the same moment, both with the
    same feed: both fetch its five articles, each stages them, the loads take
    turns; the lake keeps each article once and one alert goes out."""
    with lake.catalog_database() as dsn, lake.s3_server() as endpoint:
        settings = [parse_settings({**base(tmp_path / f"host-{n}", seed_site, smtp_server),
                                    "store": on_s3(dsn, endpoint)}) for n in range(2)]
        runs = [hosts[n].submit(_pass_on_host, settings[n].model_dump_json()) for n in range(2)]
        done = [r.result(timeout=300) for r in runs]
        # Overlapping passes, or this test proves nothing: each extracted five.
        assert [extracted for extracted, _ in done] == [5, 5], done
        assert sum(stored for _, stored in done) == 5, done
        with open_store(settings[0], read_only=True) as con:
            got = snapshot(con)
        assert len(got["articles"]) == 5 and got["distinct"] == [(5,)]
        assert len(got["entries"]) == len(set(got["entries"])) == 5
        assert len(got["alerts"]) == 1 and got["alerts"][0][3] == "sent"
    assert len(smtp_server.messages) == 1
