"""Cluster and load stages: story ids planned beside the staging, then the single
DuckDB writer.

:func:`plan` (the cluster stage) gives the run's new articles their story ids
and works out the alert outbox's candidates (which saved search fires on which
story, and on which article), reading what is stored but writing nothing to the
database: the plan goes beside the run's staging files, tagged with a snapshot
of what it read (the loaded runs, the stored articles, the clustering and alert
settings).

:func:`load` ingests one run's staging files in ONE transaction: feed state,
entries, rejections, articles with their story ids, tags, removed lines,
stories, and the alert outbox rows. It uses the plan when its snapshot still
matches the database, and plans again inside the transaction when it does not
(another run was loaded in between, retention deleted articles, the settings
changed) or when there is no plan, so the outcome never depends on the plan
being there or current. A run id that was already loaded is skipped, so
retrying the load (an Airflow retry, a crash after commit) changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np

from pipeline import __version__, alert, store
from pipeline.alert import StoryArticle
from pipeline.config import Settings
from pipeline.signal.cluster import (
    ClusterDoc,
    Clusterer,
    StorySignature,
    StoryState,
    TermStats,
    cluster,
)
from pipeline.signal.embed import Encoder
from pipeline.store import staging, story_state

log = logging.getLogger(__name__)

_ARTICLE_COLUMNS = {
    "id": "VARCHAR", "entry_id": "VARCHAR", "feed_url": "VARCHAR", "url": "VARCHAR",
    "canonical_url": "VARCHAR", "source": "VARCHAR", "title": "VARCHAR", "text": "VARCHAR",
    "author": "VARCHAR", "published_at": "TIMESTAMPTZ", "fetched_at": "TIMESTAMPTZ",
    "language": "VARCHAR", "topics": "VARCHAR[]", "countries": "VARCHAR[]",
    "people": "VARCHAR[]",
    "evidence": "STRUCT(kind VARCHAR, tag VARCHAR, evidence VARCHAR)[]",
    "removed": "STRUCT(position INTEGER, line VARCHAR, rule VARCHAR)[]",
}


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


def _quoted(path: Path) -> str:
    """A path inside a single-quoted SQL string."""
    return str(path).replace("'", "''")


def _json_source(paths: list[Path], columns: dict[str, str]) -> str:
    spec = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
    files = ", ".join(f"'{_quoted(p)}'" for p in paths)
    return f"read_json([{files}], format='newline_delimited', columns={{{spec}}})"


_FEED_COLUMNS = {
    "url": "VARCHAR", "name": "VARCHAR", "status": "VARCHAR", "last_polled_at": "TIMESTAMPTZ",
    "last_success_at": "TIMESTAMPTZ", "next_poll_at": "TIMESTAMPTZ", "etag": "VARCHAR",
    "last_modified": "VARCHAR", "content_hash": "VARCHAR", "error_count": "INTEGER",
    "last_error": "VARCHAR", "new_entries": "BIGINT", "fetch_url": "VARCHAR",
    "poll_interval_minutes": "DOUBLE", "item_hashes": "VARCHAR",
}


def _load_feeds(con: duckdb.DuckDBPyConnection, directory: Path) -> int:
    # fetch_url and poll_interval_minutes: absent from staging written before
    # them, so NULL, and the stored value stays (coalesce below).
    n = _staged(con, directory, "feeds", _FEED_COLUMNS, key="url",
                latest_first="last_polled_at DESC")
    # origin is not touched: a row made by `newsmon feeds add` stays 'added'.
    con.execute(
        """INSERT INTO feeds (url, name, status, last_polled_at, last_success_at, next_poll_at,
            etag, last_modified, content_hash, error_count, last_error, entries_seen,
            fetch_url, poll_interval_minutes, item_hashes)
        SELECT url, name, status, last_polled_at, last_success_at, next_poll_at, etag,
            last_modified, content_hash, error_count, last_error, new_entries, fetch_url,
            poll_interval_minutes, item_hashes
        FROM staged_feeds
        ON CONFLICT (url) DO UPDATE SET status = excluded.status,
            -- an added feed's name is the user's (feeds rename, even mid-pass)
            name = CASE WHEN feeds.origin = 'added' THEN coalesce(feeds.name, excluded.name)
                        ELSE excluded.name END,
            last_polled_at = excluded.last_polled_at, last_success_at = excluded.last_success_at,
            next_poll_at = excluded.next_poll_at, etag = excluded.etag,
            last_modified = excluded.last_modified, content_hash = excluded.content_hash,
            error_count = excluded.error_count, last_error = excluded.last_error,
            entries_seen = feeds.entries_seen + excluded.entries_seen,
            fetch_url = coalesce(excluded.fetch_url, feeds.fetch_url),
            poll_interval_minutes = coalesce(excluded.poll_interval_minutes,
                                             feeds.poll_interval_minutes),
            item_hashes = excluded.item_hashes
        -- A run loaded late (its first load failed) never puts back older state.
        WHERE feeds.last_polled_at IS NULL OR excluded.last_polled_at IS NULL
            OR excluded.last_polled_at >= feeds.last_polled_at"""
    )
    return n


def _staged(
    con: duckdb.DuckDBPyConnection, directory: Path, kind: staging.Kind,
    columns: dict[str, str], *, key: str, latest_first: str,
) -> int:
    """Read one kind of staged records into ``staged_<kind>``, one row per key.

    DuckDB reads the JSON Lines itself: binding rows as Python parameters
    costs ~150 us a value here (DuckDB's Python binding tries to import
    pandas for every value), reading the file ~10 us a row (benchmarks/load.py).
    """
    con.execute(f"DROP TABLE IF EXISTS staged_{kind}")
    paths = staging.files(directory, kind)
    if not paths:
        spec = ", ".join(f"NULL::{t} AS {c}" for c, t in columns.items())
        con.execute(f"CREATE TEMP TABLE staged_{kind} AS SELECT {spec} LIMIT 0")
        return 0
    con.execute(
        f"""CREATE TEMP TABLE staged_{kind} AS SELECT * FROM {_json_source(paths, columns)}
        QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {latest_first}) = 1"""
    )
    row = con.execute(f"SELECT count(*) FROM staged_{kind}").fetchone()
    return int(row[0]) if row else 0


def _load_entries(con: duckdb.DuckDBPyConnection, directory: Path, now: datetime) -> int:
    n = _staged(con, directory, "entries", {
        "feed_url": "VARCHAR", "id": "VARCHAR", "url": "VARCHAR", "title": "VARCHAR",
        "published_at": "TIMESTAMPTZ", "status": "VARCHAR", "attempts": "INTEGER",
        "article_id": "VARCHAR",
    }, key="feed_url, id", latest_first="attempts DESC, status = 'stored' DESC")
    con.execute(
        """INSERT INTO entries (feed_url, id, url, title, published_at, first_seen, status,
            attempts, article_id)
        SELECT feed_url, id, url, title, published_at, ?, status, attempts, article_id
        FROM staged_entries
        ON CONFLICT (feed_url, id) DO UPDATE SET status = excluded.status,
            attempts = excluded.attempts, article_id = excluded.article_id""",
        [now],
    )
    return n


def _load_rejected(con: duckdb.DuckDBPyConnection, directory: Path) -> int:
    n = _staged(con, directory, "rejected", {
        "url": "VARCHAR", "feed_url": "VARCHAR", "stage": "VARCHAR", "reason": "VARCHAR",
        "seen_at": "TIMESTAMPTZ",
    }, key="url, stage", latest_first="seen_at DESC")
    con.execute(
        """INSERT INTO rejected (url, feed_url, stage, reason, seen_at)
        SELECT url, feed_url, stage, reason, seen_at FROM staged_rejected
        ON CONFLICT (url, stage) DO UPDATE SET reason = excluded.reason,
            seen_at = excluded.seen_at, attempts = rejected.attempts + 1"""
    )
    return n


def _stage_articles(con: duckdb.DuckDBPyConnection, directory: Path, copied: Path) -> int:
    """``new_articles``: this run's staged articles, each id once and none already
    stored; how many. ``copied``: the file behind it (the caller deletes it).

    A view, not a table: a pass's articles are never all held in memory. The
    staged JSON Lines are copied once into a Parquet file of small row groups
    (DuckDB writes it streaming); a temp table keeps only the row numbers of
    the copies to use, found reading the three columns the choice needs; each
    statement that reads the view then streams the file, columns it does not
    use unread. (A temp table of the whole rows was ~140 MB at 20,000 articles.)
    """
    paths = staging.files(directory, "articles")
    _drop_new_articles(con)
    if not paths:
        columns = ", ".join(f"NULL::{kind} AS {name}" for name, kind in _ARTICLE_COLUMNS.items())
        con.execute(f"CREATE TEMP VIEW new_articles AS SELECT {columns} LIMIT 0")
        return 0
    con.execute(f"COPY (SELECT * FROM {_json_source(paths, _ARTICLE_COLUMNS)}) TO "
                f"'{_quoted(copied)}' (FORMAT parquet, ROW_GROUP_SIZE {_ROW_GROUP})")
    rows = f"read_parquet('{_quoted(copied)}', file_row_number = true)"
    # The same page can arrive through two feeds (or twice in one feed): keep
    # the first copy, and nothing already stored.
    con.execute(
        f"""CREATE TEMP TABLE new_rows AS
        SELECT s.file_row_number FROM {rows} s
        WHERE NOT EXISTS (SELECT 1 FROM articles a WHERE a.id = s.id)
        QUALIFY row_number() OVER (
            PARTITION BY s.id ORDER BY s.fetched_at, s.url, s.file_row_number) = 1"""
    )
    con.execute(f"""CREATE TEMP VIEW new_articles AS SELECT * EXCLUDE (file_row_number)
        FROM {rows} WHERE file_row_number IN (SELECT file_row_number FROM new_rows)""")
    row = con.execute("SELECT count(*) FROM new_rows").fetchone()
    return int(row[0]) if row else 0


def _new_articles_file(directory: Path) -> Path:
    # Each planning its own file: two planners of one run (a retry beside a
    # task thought dead, on this host or another) never read each other's.
    return directory / f".new-articles.{uuid.uuid4().hex}.parquet"


def _drop_new_articles(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP VIEW IF EXISTS new_articles")
    con.execute("DROP TABLE IF EXISTS new_rows")


def _plan_new(con: duckdb.DuckDBPyConnection, settings: Settings, directory: Path,
              snapshot: str) -> tuple[int, int, int]:
    """Stage the new articles and plan them; (articles, stories, candidates)."""
    copied = _new_articles_file(directory)
    try:
        articles = _stage_articles(con, directory, copied)
        stories, candidates = _make_plan(con, settings, directory, snapshot)
        _drop_new_articles(con)  # not on an error: in an aborted transaction it would fail too
    finally:
        copied.unlink(missing_ok=True)
    return articles, stories, candidates


# Rows per row group of the Parquet files the stages write: DuckDB buffers a
# row group before writing it, and its default (122,880 rows) is a whole pass.
_ROW_GROUP = 2048


def _docs(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()
          ) -> Iterator[ClusterDoc]:
    """The query's articles, a batch at a time (run when first iterated: the
    clusterer reads one query to the end before it starts the next)."""
    cursor = con.execute(sql, params)
    while rows := cursor.fetchmany(_BATCH):
        for r in rows:
            yield ClusterDoc(
                id=str(r[0]), time=r[1], title=str(r[2] or ""), text=str(r[3] or ""),
                source=str(r[4] or ""), countries=tuple(r[5] or ()), people=tuple(r[6] or ()),
                language=str(r[7] or ""), story_id=r[8],
                embedding=None if r[9] is None else np.asarray(r[9], dtype=np.float32))


def _term_stats(con: duckdb.DuckDBPyConnection, keys: set[str]) -> TermStats:
    """The stored document frequencies of ``keys`` (only those: the table holds
    the archive's whole vocabulary) and the number of articles counted."""
    con.execute("CREATE OR REPLACE TEMP TABLE wanted_terms AS SELECT unnest(?::VARCHAR[]) AS term",
                [sorted(keys | {""})])
    df = dict(con.execute("SELECT s.term, s.df FROM term_stats s"
                          " JOIN wanted_terms w USING (term)").fetchall())
    con.execute("DROP TABLE wanted_terms")
    n = int(df.pop("", 0))
    return TermStats(df, n)


_BATCH = 1000


# The language lets the clusterer join reports of one event in two languages
# (pipeline/cluster.py, "Different languages").
_DOC_COLUMNS = (
    "id, coalesce(published_at, fetched_at), title, left(text, 3000), source, countries, people,"
    " language"
)


_PLAN = "plan.json"
_PLAN_ARTICLES = "plan-articles.parquet"
_PLAN_TABLES: dict[str, dict[str, str]] = {
    "assigned": {"id": "VARCHAR", "story_id": "VARCHAR", "embedding": "FLOAT[]"},
    "terms": {"term": "VARCHAR", "df": "BIGINT"},  # added to term_stats ('': articles)
    "links": {"story_id": "VARCHAR", "other_story_id": "VARCHAR", "article_id": "VARCHAR",
              "score": "DOUBLE"},
    "story_heads": {"story_id": "VARCHAR", "lead_article_id": "VARCHAR", "title": "VARCHAR"},
    "states": story_state.STATE_COLUMNS,  # the stories that changed, saved by the load
    "signatures": story_state.SIGNATURE_COLUMNS,
    "outbox": {"rule": "VARCHAR", "story_id": "VARCHAR", "recipient": "VARCHAR",
               "first_match": "VARCHAR", "latest": "VARCHAR"},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanResult:
    run_id: str
    already_loaded: bool
    articles: int  # new articles planned
    stories: int  # stories they go to (new or stored)
    candidates: int  # (rule, story, recipient) outbox candidates


def _snapshot(con: duckdb.DuckDBPyConnection, settings: Settings, directory: Path) -> str:
    """What a plan depends on: the stored articles, the run's staged articles (a
    process shard run again after the plan rewrites its file), the settings and
    the code (a deploy between the two stages)."""
    row = con.execute(
        "SELECT (SELECT count(*) FROM runs WHERE loaded_at IS NOT NULL),"
        " count(*), max(loaded_at), min(loaded_at) FROM articles"
    ).fetchone()
    staged = []
    for path in staging.files(directory, "articles"):
        stat = path.stat()
        staged.append((path.name, stat.st_ino, stat.st_size, stat.st_mtime_ns))
    used = json.dumps([settings.cluster.model_dump(mode="json"),
                       [rule.model_dump(mode="json") for rule in settings.alerts]],
                      sort_keys=True, default=str)
    # A database from before the clusterer's tables, read by the cluster stage
    # read-only, is planned without them; the load adds them, and plans again.
    ready = store.has_story_statistics(con)
    return hashlib.sha256(f"{__version__}|{row}|{staged}|{used}|{ready}".encode()).hexdigest()


def _write_jsonl(path: Path, columns: dict[str, str], rows: Iterable[tuple[object, ...]]
                 ) -> None:
    tmp = _tmp(path)
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(dict(zip(columns, row, strict=True)), default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _tmp(path: Path) -> Path:
    """A temporary name beside ``path``, this process's own (two planners of one
    run, a retry beside a task thought dead, never write into each other's file)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _plan_file(directory: Path, table: str) -> Path:
    return directory / f"plan-{table}.jsonl"


def _make_plan(
    con: duckdb.DuckDBPyConnection, settings: Settings, directory: Path, snapshot: str
) -> tuple[int, int]:
    """Cluster ``new_articles`` and write the plan files; (stories, candidates)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / _PLAN).unlink(missing_ok=True)  # written last: the plan's commit mark
    assignments: dict[str, str] = {}
    heads: list[tuple[object, ...]] = []
    embeddings: dict[str, list[float]] = {}
    terms: list[tuple[object, ...]] = []
    links: list[tuple[object, ...]] = []
    saved: tuple[list[StoryState], list[StorySignature]] = ([], [])
    clusterer: Clusterer | None = None
    bounds = con.execute(
        "SELECT min(coalesce(published_at, fetched_at)), max(coalesce(published_at, fetched_at))"
        " FROM new_articles"
    ).fetchone()
    if bounds is not None and bounds[0] is not None:
        options = settings.cluster.options()
        ready = store.has_story_statistics(con)
        # The open stories as saved (story_state), and the ones saved before that
        # table rebuilt from their members: streamed, the clusterer keeps each
        # article's features, not its text; every member of the stories with a
        # report in the horizon around the new articles (a story is rebuilt
        # whole, as it was when it grew), back to the longest span a story may have.
        states, signatures = (story_state.read_open(con, (bounds[0], bounds[1]), options)
                              if ready else ([], []))
        assignments, clusterer = cluster(
            _docs(con, f"SELECT {_DOC_COLUMNS}, NULL, NULL FROM new_articles"),
            # The bounds in SQL: DuckDB's timestamps go beyond Python's year
            # 9999, which a feed's bad date can reach.
            _docs(con, f"SELECT {_DOC_COLUMNS}, story_id,"
                       f" {'embedding' if ready else 'NULL'} FROM articles"
                       " WHERE story_id IN (SELECT story_id FROM articles"
                       "   WHERE coalesce(published_at, fetched_at)"
                       "   BETWEEN ?::TIMESTAMPTZ - ? AND ?::TIMESTAMPTZ + ?)"
                       " AND coalesce(published_at, fetched_at) >= ?::TIMESTAMPTZ - ?"
                       + (story_state.UNSAVED if ready else ""),
                  [bounds[0], options.horizon, bounds[1], options.horizon,
                   bounds[0], options.max_span]),
            options=options,
            stats=(lambda keys: _term_stats(con, keys)) if ready else TermStats(),
            embedder=Encoder() if settings.cluster.embeddings else None,
            states=states, signatures=signatures,
            founder_texts=lambda ids: story_state.founder_texts(con, ids),
        )
        del states, signatures
        saved = clusterer.saved()
        embeddings = {k: v.tolist() for k, v in clusterer.embeddings.items()}
        # What the stage holds follows the horizon, not the archive: these counts say so.
        log.info("clustered", extra={"new": len(assignments), "stored_read": clusterer.known,
                                     "stories_restored": clusterer.restored,
                                     "embedded": clusterer.embedded,
                                     "embed_seconds": round(clusterer.embed_seconds, 3)})
        added = clusterer.stats.added
        terms = [("", clusterer.stats.added_n), *sorted(added.items())]
        links = [(x.story_id, x.other_story_id, x.article_id, x.score) for x in clusterer.links]
    _write_jsonl(_plan_file(directory, "assigned"), _PLAN_TABLES["assigned"],
                 ((k, v, embeddings.get(k)) for k, v in assignments.items()))
    _plan_table(con, directory, "assigned")
    if clusterer is not None:
        # The titles: the members of the restored stories new articles joined too.
        clusterer.add_members(_docs(
            con, f"SELECT {_DOC_COLUMNS}, story_id, NULL FROM articles"
                 " WHERE story_id IN (SELECT story_id FROM assigned)"))
        for story in sorted(set(assignments.values())):
            doc = clusterer.representative(story)
            if doc is not None:
                heads.append((story, doc.id, doc.title))
    _write_jsonl(_plan_file(directory, "story_heads"), _PLAN_TABLES["story_heads"], heads)
    _write_jsonl(_plan_file(directory, "terms"), _PLAN_TABLES["terms"], terms)
    _write_jsonl(_plan_file(directory, "links"), _PLAN_TABLES["links"], links)
    _write_jsonl(_plan_file(directory, "states"), _PLAN_TABLES["states"],
                 story_state.plan_rows(saved[0]))
    _write_jsonl(_plan_file(directory, "signatures"), _PLAN_TABLES["signatures"],
                 story_state.plan_rows(saved[1]))
    candidates = [
        (c.rule, c.story_id, c.recipient, c.first_match, c.latest)
        for c in alert.candidates(settings.alerts, _story_articles(con))
    ]
    _write_jsonl(_plan_file(directory, "outbox"), _PLAN_TABLES["outbox"], candidates)
    # The new articles as the load will insert them, in a columnar file DuckDB
    # reads ~10x faster than the JSON Lines (the load holds the write lock).
    articles = directory / _PLAN_ARTICLES
    tmp = _tmp(articles)
    con.execute(f"""COPY (SELECT n.*, a.story_id, a.embedding
        FROM new_articles n JOIN assigned a USING (id))
        TO '{_quoted(tmp)}' (FORMAT parquet, ROW_GROUP_SIZE {_ROW_GROUP})""")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, articles)
    _write_jsonl(directory / _PLAN, {"snapshot": "VARCHAR", "files": "JSON"},
                 [(snapshot, _plan_files(directory))])
    return len(heads), len(candidates)


def _story_articles(con: duckdb.DuckDBPyConnection
                    ) -> Iterator[tuple[str, list[StoryArticle]]]:
    """The articles of each story in ``assigned``, stored ones and this run's, one
    story at a time (in time order within it)."""
    cursor = con.execute(
        """SELECT story_id, id, title, url, source, text, language, topics, countries, people,
            published_at, loaded_at, t FROM (
            SELECT story_id, id, title, url, source, text, language, topics, countries,
                people, published_at, loaded_at, coalesce(published_at, fetched_at) AS t
            FROM articles WHERE story_id IN (SELECT story_id FROM assigned)
            UNION ALL
            SELECT a.story_id, n.id, n.title, n.url, n.source, n.text, n.language, n.topics,
                n.countries, n.people, n.published_at, NULL::TIMESTAMPTZ,
                coalesce(n.published_at, n.fetched_at)
            FROM new_articles n JOIN assigned a USING (id))
        ORDER BY story_id, t, id"""
    )
    story, articles = "", list[StoryArticle]()
    while rows := cursor.fetchmany(_BATCH):
        for r in rows:
            if r[0] != story:
                if articles:
                    yield story, articles
                story, articles = r[0], []
            articles.append(alert.story_article(r[1:12]))
    if articles:
        yield story, articles


def _plan_table(con: duckdb.DuckDBPyConnection, directory: Path, table: str) -> None:
    con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM "
                f"{_json_source([_plan_file(directory, table)], _PLAN_TABLES[table])}")


def _plan_files(directory: Path) -> dict[str, dict[str, object]]:
    """Size and SHA-256 of each plan file: the commit mark lists them, so a plan
    file cut short or damaged after it was written is noticed, not read as
    fewer alerts or stories (the load then plans again)."""
    listed: dict[str, dict[str, object]] = {}
    for name in [_PLAN_ARTICLES, *(_plan_file(directory, t).name for t in _PLAN_TABLES)]:
        digest = hashlib.sha256()
        with open(directory / name, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        listed[name] = {"bytes": (directory / name).stat().st_size,
                        "sha256": digest.hexdigest()}
    return listed


def _current_plan(directory: Path, snapshot: str) -> bool:
    try:
        with open(directory / _PLAN, encoding="utf-8") as handle:
            mark = json.loads(handle.readline())
        if mark.get("snapshot") != snapshot:
            return False
        if mark.get("files") != _plan_files(directory):
            log.warning("plan files in %s differ from their commit mark (cut short or "
                        "damaged); planning again in the load", directory)
            return False
        return True
    except (OSError, ValueError, AttributeError):
        return False


def plan(con: duckdb.DuckDBPyConnection, settings: Settings, run_id: str) -> PlanResult:
    """The cluster stage: plan story ids and outbox candidates for ``run_id``'s load."""
    directory = staging.run_dir(settings.staging, run_id)
    if _loaded(con, run_id) is not None:
        return PlanResult(run_id=run_id, already_loaded=True, articles=0, stories=0,
                          candidates=0)
    staging.verify(directory)
    # The snapshot first: a shard rewritten while this reads it makes the plan stale.
    snapshot = _snapshot(con, settings, directory)
    articles, stories, candidates = _plan_new(con, settings, directory, snapshot)
    log.info("planned run", extra={"run_id": run_id, "articles": articles, "stories": stories})
    return PlanResult(run_id=run_id, already_loaded=False, articles=articles, stories=stories,
                      candidates=candidates)


def _drop_unreadable_plan(con: duckdb.DuckDBPyConnection, directory: Path) -> None:
    """Forget a plan whose files cannot be read (a crash or a full disk while it
    was written): the load then plans again. Checked before the transaction,
    because an error inside it would abort the load."""
    if not (directory / _PLAN).exists():
        return
    try:
        con.execute("SELECT count(*) FROM read_parquet("
                    f"'{_quoted(directory / _PLAN_ARTICLES)}')").fetchall()
        for table, columns in _PLAN_TABLES.items():
            con.execute(f"SELECT count(*) FROM "
                        f"{_json_source([_plan_file(directory, table)], columns)}").fetchall()
    except duckdb.Error as exc:
        log.warning("plan unreadable, planning again in the load",
                    extra={"directory": str(directory), "error": str(exc)})
        (directory / _PLAN).unlink(missing_ok=True)


def _use_plan(con: duckdb.DuckDBPyConnection, settings: Settings, directory: Path
              ) -> tuple[int, int, int]:
    """The plan as temp tables and the view ``planned_articles`` (planned here if
    there is none or it is stale); (new articles, stories touched, new stories)."""
    snapshot = _snapshot(con, settings, directory)
    if not _current_plan(directory, snapshot):
        _plan_new(con, settings, directory, snapshot)
    # A view: each statement reads only the columns it needs from the file.
    con.execute("CREATE OR REPLACE TEMP VIEW planned_articles AS SELECT * FROM read_parquet("
                f"'{_quoted(directory / _PLAN_ARTICLES)}')")
    row = con.execute("SELECT count(*) FROM planned_articles").fetchone()
    articles = int(row[0]) if row else 0
    for table in _PLAN_TABLES:
        _plan_table(con, directory, table)
    row = con.execute(
        "SELECT count(DISTINCT story_id), count(DISTINCT story_id) FILTER (WHERE story_id"
        " NOT IN (SELECT id FROM stories)) FROM assigned"
    ).fetchone()
    return (articles, int(row[0]), int(row[1])) if row else (articles, 0, 0)


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
    con.execute(
        """INSERT INTO term_stats SELECT term, df FROM terms
        ON CONFLICT (term) DO UPDATE SET df = term_stats.df + excluded.df"""
    )
    con.execute("INSERT INTO story_links SELECT * FROM links ON CONFLICT DO NOTHING")
    story_state.save(con)
    con.execute(
        """INSERT INTO article_tags
        SELECT id, e.kind, e.tag, first(e.evidence)
        FROM (SELECT id, unnest(evidence) AS e FROM planned_articles)
        GROUP BY ALL ON CONFLICT DO NOTHING"""
    )
    con.execute(
        """INSERT INTO removed_lines
        SELECT id, r.position, r.line, r.rule FROM (SELECT id, unnest(removed) AS r
        FROM planned_articles) ON CONFLICT DO NOTHING"""
    )


def _upsert_stories(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """INSERT INTO stories (id, title, first_seen, last_seen, n_articles, n_sources,
            lead_article_id)
        SELECT a.story_id, any_value(h.title), min(coalesce(a.published_at, a.fetched_at)),
            max(coalesce(a.published_at, a.fetched_at)), count(*), count(DISTINCT a.source),
            any_value(h.lead_article_id)
        FROM articles a JOIN story_heads h ON h.story_id = a.story_id
        GROUP BY a.story_id
        ON CONFLICT (id) DO UPDATE SET title = excluded.title, first_seen = excluded.first_seen,
            last_seen = excluded.last_seen, n_articles = excluded.n_articles,
            n_sources = excluded.n_sources, lead_article_id = excluded.lead_article_id"""
    )


def _loaded(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[int, ...] | None:
    row = con.execute(
        "SELECT feeds_polled, entries_new, articles_new, rejected, stories_new, alerts_queued"
        " FROM runs WHERE id = ? AND loaded_at IS NOT NULL", [run_id],
    ).fetchone()
    return tuple(row) if row is not None else None


def load(
    con: duckdb.DuckDBPyConnection, settings: Settings, run_id: str, *,
    now: datetime | None = None, started_at: datetime | None = None,
) -> LoadResult:
    """Ingest the staging files of ``run_id`` in one transaction."""
    now = now or datetime.now(UTC)
    directory = staging.run_dir(settings.staging, run_id)
    done = _loaded(con, run_id)
    if done is not None:
        return LoadResult(run_id=run_id, already_loaded=True, feeds=done[0], entries=done[1],
                          articles_new=done[2], rejected=done[3], stories_new=done[4],
                          stories_touched=0, alerts_queued=done[5])
    staging.verify(directory)  # missing, cut short or damaged: an error, never fewer rows
    _drop_unreadable_plan(con, directory)
    con.execute("BEGIN TRANSACTION")
    try:
        feeds = _load_feeds(con, directory)
        entries = _load_entries(con, directory, now)
        rejected = _load_rejected(con, directory)
        articles_new, touched, stories_new = _use_plan(con, settings, directory)
        _insert_articles(con, run_id, now)
        _upsert_stories(con)
        queued = alert.queue(con, settings.alerts, "outbox", now=now)
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, started_at or now, now, feeds, entries, articles_new, rejected,
             stories_new, queued],
        )
        con.execute("COMMIT")
    except BaseException:
        # A COMMIT that failed (a full disk) has ended the transaction already.
        with contextlib.suppress(duckdb.TransactionException):
            con.execute("ROLLBACK")
        raise
    log.info("loaded run", extra={"run_id": run_id, "articles": articles_new})
    return LoadResult(run_id=run_id, already_loaded=False, feeds=feeds, entries=entries,
                      articles_new=articles_new, rejected=rejected, stories_new=stories_new,
                      stories_touched=touched, alerts_queued=queued)
