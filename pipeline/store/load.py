"""The load stage: the single DuckDB writer.

:func:`load` ingests one run's staging files in ONE transaction: feed state,
entries, rejections, articles with their story ids, tags, removed lines,
stories, and the alert outbox rows. The story ids and alert candidates come
from the run's plan (:mod:`pipeline.store.plan`, the cluster stage), used when
its snapshot still matches the database and made again inside the transaction
when it does not (another run was loaded in between, retention deleted
articles, the settings changed) or when there is none, so the outcome never
depends on the plan being there or current. A run is loaded once: the load
records the staging shards it took (``run_shards``), and a run already loaded
is skipped, so retrying the load (an Airflow retry, a crash after commit)
changes nothing; only shards staged beside it after its load (a stream that
took a load that went through for failed) are loaded, once, as its own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipeline import alert
from pipeline.config import Settings
from pipeline.models import EntryOutcome, FeedUpdate
from pipeline.store import staging, story_state
from pipeline.store.backend import fence, upsert
from pipeline.store.plan import (
    drop_unreadable_plan,
    json_source,
    paths,
    run_loaded,
    shards_to_load,
    use_plan,
)
from pipeline.store.warm import WarmClusterer, version

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadResult:
    run_id: str
    already_loaded: bool
    feeds: int
    entries: int
    articles_new: int
    rejected: int
    stories_new: int
    stories_touched: int
    alerts_queued: int


_FEED_COLUMNS = staging.columns(FeedUpdate)


def _load_feeds(con: duckdb.DuckDBPyConnection, directory: Path, shards: Collection[str]
                ) -> int:
    # fetch_url and poll_interval_minutes: absent from staging written before
    # them, so NULL, and the stored value stays (coalesce below).
    n = _staged(con, directory, "feeds", _FEED_COLUMNS, key="url",
                latest_first="last_polled_at DESC", shards=shards)
    # origin is not touched: a row made by `newsmon feeds add` stays 'added'.
    upsert(
        con, "feeds", ("url", "name", "status", "last_polled_at", "last_success_at",
                       "next_poll_at", "etag", "last_modified", "content_hash", "error_count",
                       "last_error", "entries_seen", "fetch_url", "poll_interval_minutes",
                       "item_hashes"),
        """SELECT url, name, status, last_polled_at, last_success_at, next_poll_at, etag,
            last_modified, content_hash, error_count, last_error, 0, fetch_url,
            poll_interval_minutes, item_hashes
        FROM staged_feeds""", key=("url",),
        update="""status = excluded.status,
            -- an added feed's name is the user's (feeds rename, even mid-pass)
            name = CASE WHEN feeds.origin = 'added' THEN coalesce(feeds.name, excluded.name)
                        ELSE excluded.name END,
            last_polled_at = excluded.last_polled_at, last_success_at = excluded.last_success_at,
            next_poll_at = excluded.next_poll_at, etag = excluded.etag,
            last_modified = excluded.last_modified, content_hash = excluded.content_hash,
            error_count = excluded.error_count, last_error = excluded.last_error,
            fetch_url = coalesce(excluded.fetch_url, feeds.fetch_url),
            poll_interval_minutes = coalesce(excluded.poll_interval_minutes,
                                             feeds.poll_interval_minutes),
            item_hashes = excluded.item_hashes""",
        # A run loaded late (its first load failed) never puts back older state.
        where="""feeds.last_polled_at IS NULL OR excluded.last_polled_at IS NULL
            OR excluded.last_polled_at >= feeds.last_polled_at""",
    )
    return n


def _staged(
    con: duckdb.DuckDBPyConnection, directory: Path, kind: staging.Kind,
    columns: dict[str, str], *, key: str, latest_first: str, shards: Collection[str],
) -> int:
    """Read one kind of staged records into ``staged_<kind>``, one row per key.

    DuckDB reads the JSON Lines itself: binding rows as Python parameters
    costs ~150 us a value here (DuckDB's Python binding tries to import
    pandas for every value), reading the file ~10 us a row (benchmarks/load.py).
    """
    con.execute(f"DROP TABLE IF EXISTS staged_{kind}")
    staged = staging.files(directory, kind, shards)
    if not staged:
        spec = ", ".join(f"NULL::{t} AS {c}" for c, t in columns.items())
        con.execute(f"CREATE TEMP TABLE staged_{kind} AS SELECT {spec} LIMIT 0")
        return 0
    con.execute(
        f"""CREATE TEMP TABLE staged_{kind} AS SELECT * FROM {json_source(columns)}
        QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {latest_first}) = 1""",
        [paths(staged)],
    )
    row = con.execute(f"SELECT count(*) FROM staged_{kind}").fetchone()
    return int(row[0]) if row else 0


def _load_entries(con: duckdb.DuckDBPyConnection, directory: Path, now: datetime,
                  shards: Collection[str]) -> int:
    n = _staged(con, directory, "entries", staging.columns(EntryOutcome),
                key="feed_url, id", latest_first="attempts DESC, status = 'stored' DESC",
                shards=shards)
    upsert(
        con, "entries", ("feed_url", "id", "url", "title", "published_at", "first_seen",
                         "status", "attempts", "article_id"),
        """SELECT feed_url, id, url, title, published_at, ?, status, attempts, article_id
        FROM staged_entries""", key=("feed_url", "id"),
        update="""status = excluded.status,
            attempts = excluded.attempts, article_id = excluded.article_id""",
        params=[now],
    )
    return n


def _count_entries_seen(con: duckdb.DuckDBPyConnection) -> None:
    """Each feed this load touched: ``entries_seen`` counted from ``entries``.

    Not added up from the staged feed states: a feed's state is staged with the
    batch that settles its last new entry, so the batches of a pass killed
    before that one were stored but never counted, and two passes that fetched
    the same entries (two staging folders) counted them twice."""
    con.execute("""UPDATE feeds SET entries_seen = c.n
        FROM (SELECT feed_url, count(*) AS n FROM entries
              WHERE feed_url IN (SELECT feed_url FROM staged_entries UNION
                                 SELECT url FROM staged_feeds)
              GROUP BY feed_url) c
        WHERE feeds.url = c.feed_url""")


def _load_rejected(con: duckdb.DuckDBPyConnection, directory: Path, shards: Collection[str]
                   ) -> int:
    n = _staged(con, directory, "rejected", {
        "url": "VARCHAR", "feed_url": "VARCHAR", "stage": "VARCHAR", "reason": "VARCHAR",
        "seen_at": "TIMESTAMPTZ",
    }, key="url, stage", latest_first="seen_at DESC", shards=shards)
    upsert(
        con, "rejected", ("url", "feed_url", "stage", "reason", "seen_at"),
        "SELECT url, feed_url, stage, reason, seen_at FROM staged_rejected",
        key=("url", "stage"), update="""reason = excluded.reason,
            seen_at = excluded.seen_at, attempts = rejected.attempts + 1""",
    )
    return n


def _insert_articles(con: duckdb.DuckDBPyConnection, run_id: str, now: datetime) -> None:
    con.execute(
        """INSERT INTO articles (id, url, canonical_url, source, feed_url, entry_id, title, text,
            author, published_at, fetched_at, language, topics, countries, people, story_id,
            run_id, loaded_at, embedding)
        SELECT n.id, n.url, n.canonical_url, n.source, n.feed_url, n.entry_id, n.title, n.text,
            n.author, n.published_at, n.fetched_at, n.language, n.topics, n.countries, n.people,
            n.story_id, ?, ?, n.embedding
        FROM planned_articles n""",
        [run_id, now],
    )
    # The clusterer's statistics grow with what is loaded, in this transaction.
    upsert(con, "term_stats", ("term", "df"), "SELECT term, df FROM terms", key=("term",),
           update="df = term_stats.df + excluded.df")
    upsert(con, "story_links", ("story_id", "other_story_id", "article_id", "score"),
           "SELECT * FROM links", key=("story_id", "other_story_id", "article_id"))
    story_state.save(con)
    upsert(con, "article_tags", ("article_id", "kind", "tag", "evidence"),
           """SELECT id, e.kind, e.tag, first(e.evidence)
        FROM (SELECT id, unnest(evidence) AS e FROM planned_articles)
        GROUP BY ALL""", key=("article_id", "kind", "tag"))
    upsert(con, "removed_lines", ("article_id", "position", "line", "rule"),
           """SELECT id, r.position, r.line, r.rule FROM (SELECT id, unnest(removed) AS r
        FROM planned_articles)""", key=("article_id", "position"))


def _upsert_stories(con: duckdb.DuckDBPyConnection) -> None:
    upsert(
        con, "stories", ("id", "title", "first_seen", "last_seen", "n_articles", "n_sources",
                         "lead_article_id"),
        """SELECT a.story_id, any_value(h.title), min(coalesce(a.published_at, a.fetched_at)),
            max(coalesce(a.published_at, a.fetched_at)), count(*), count(DISTINCT a.source),
            any_value(h.lead_article_id)
        FROM articles a JOIN story_heads h ON h.story_id = a.story_id
        GROUP BY a.story_id""", key=("id",),
        update="""title = excluded.title, first_seen = excluded.first_seen,
            last_seen = excluded.last_seen, n_articles = excluded.n_articles,
            n_sources = excluded.n_sources, lead_article_id = excluded.lead_article_id""",
    )


def _log_further_shards(run_id: str, shards: Sequence[str]) -> None:
    log.warning("run %s is loaded, but not its shards %s (staged beside it after a load"
                " that went through but was taken for failed): loading them now", run_id,
                ", ".join(shards), extra={"run_id": run_id})


def loaded_run(con: duckdb.DuckDBPyConnection, run_id: str, shards: Iterable[str] = ()
               ) -> LoadResult | None:
    """What the loads of ``run_id`` stored, read back (``already_loaded``), when
    it is loaded with each of ``shards``; None otherwise."""
    done = run_loaded(con, run_id, shards)
    if done is None:
        return None
    return LoadResult(run_id=run_id, already_loaded=True, feeds=done[0], entries=done[1],
                      articles_new=done[2], rejected=done[3], stories_new=done[4],
                      stories_touched=0, alerts_queued=done[5])


def load(
    con: duckdb.DuckDBPyConnection, settings: Settings, run_id: str, *,
    now: datetime | None = None, started_at: datetime | None = None,
    warm: WarmClusterer | None = None,
) -> LoadResult:
    """Ingest the staging files of ``run_id`` in one transaction (``warm``: the
    process's warm clusterer, kept for the next plan once this commits its plan)."""
    now = now or datetime.now(UTC)
    directory = staging.run_dir(settings.staging, run_id)
    # Missing, cut short or damaged: an error, never fewer rows (verified).
    shards, before = shards_to_load(con, directory, run_id)
    if not shards:
        done = loaded_run(con, run_id)
        assert done is not None  # nothing to load: a run loaded whole
        return done
    if before is not None:
        _log_further_shards(run_id, shards)
    drop_unreadable_plan(con, directory)
    con.execute("BEGIN TRANSACTION")
    try:
        fence(con)
        feeds = _load_feeds(con, directory, shards)
        entries = _load_entries(con, directory, now, shards)
        _count_entries_seen(con)
        rejected = _load_rejected(con, directory, shards)
        articles_new, touched, stories_new = use_plan(con, settings, directory, shards,
                                                      warm=warm)
        _insert_articles(con, run_id, now)
        _upsert_stories(con)
        queued = alert.queue(con, settings.alerts, "outbox", now=now)
        counts = [feeds, entries, articles_new, rejected, stories_new, queued]
        if before is None:
            con.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [run_id, started_at or now, now, *counts])
        else:
            con.execute(
                """UPDATE runs SET loaded_at = ?, feeds_polled = feeds_polled + ?,
                    entries_new = entries_new + ?, articles_new = articles_new + ?,
                    rejected = rejected + ?, stories_new = stories_new + ?,
                    alerts_queued = alerts_queued + ? WHERE id = ?""", [now, *counts, run_id])
        con.execute("INSERT INTO run_shards SELECT ?, unnest(?::VARCHAR[]), ?",
                    [run_id, list(shards), now])
        store_version = version(con) if warm is not None else ""
        con.execute("COMMIT")
    except BaseException:
        if warm is not None:
            warm.drop()
        # A COMMIT that failed (a full disk) has ended the transaction already;
        # a lake whose catalog session was cut off cannot roll back either (its
        # transaction went with the session): the first error is the one to say.
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    if warm is not None:
        warm.loaded(directory.name, store_version)
    log.info("loaded run", extra={"run_id": run_id, "articles": articles_new})
    return LoadResult(run_id=run_id, already_loaded=False, feeds=feeds, entries=entries,
                      articles_new=articles_new, rejected=rejected, stories_new=stories_new,
                      stories_touched=touched, alerts_queued=queued)
