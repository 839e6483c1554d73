"""The cluster stage: story ids and alert candidates planned beside a run's staging.

:func:`plan` gives the run's new articles their story ids and works out the
alert outbox's candidates (which saved search fires on which story, and on
which article), reading what is stored but writing nothing to the database:
the plan goes beside the run's staging files (the new articles as Parquet,
the rest as JSON Lines), with a commit mark tagged with a snapshot of what it
read (the loaded runs, the stored articles, the staged files, the clustering
and alert settings, the code). The load (:mod:`pipeline.store.load`) applies
a plan whose snapshot still matches, and plans again inside its transaction
(:func:`use_plan`) when it does not, so the outcome never depends on the plan
being there or current.

File paths go to DuckDB as parameters; only a view's definition and a COPY's
target, which DuckDB 1.x cannot take as parameters (a COPY whose query has
one fails inside DuckDB), hold one as a quoted literal (:func:`_literal`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import duckdb
import numpy as np

from pipeline import __version__, alert, store
from pipeline.alert import StoryArticle
from pipeline.config import Settings
from pipeline.models import ArticleRecord
from pipeline.signal.cluster import (
    PLAN_TEXT_CHARS,
    ClusterDoc,
    Clusterer,
    Link,
    StagedFeatures,
    StorySignature,
    StoryState,
    TermStats,
    cluster,
    features_of,
)
from pipeline.signal.embed import Encoder
from pipeline.store import staging, story_state
from pipeline.store.warm import WarmClusterer, version

log = logging.getLogger(__name__)


def _literal(path: Path) -> str:
    """A path as a single-quoted SQL string: for a view's definition or a COPY's
    target only."""
    return "'" + str(path).replace("'", "''") + "'"


_ARTICLE_COLUMNS = staging.columns(ArticleRecord)


def json_source(columns: dict[str, str]) -> str:
    """``read_json`` of the JSON Lines files the statement gets as its parameter
    (a list of paths), with these columns."""
    spec = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
    return f"read_json(?, format='newline_delimited', columns={{{spec}}})"


def paths(files: Iterable[Path]) -> list[str]:
    """Files as a list parameter of :func:`json_source`."""
    return [str(f) for f in files]


# Rows per row group of the Parquet files the stages write: DuckDB buffers a
# row group before writing it, and its default (122,880 rows) is a whole pass.
_ROW_GROUP = 2048


_BATCH = 1000


def _stage_articles(con: duckdb.DuckDBPyConnection, directory: Path, copied: Path,
                    shards: Collection[str]) -> tuple[int, _Bounds | None]:
    """``new_articles``: this run's staged articles, each id once and none already
    stored; how many, and their first and last time when already known (None:
    not asked). ``copied``: the file behind it, if any (the caller deletes it).

    A view. A run of up to _HELD_BYTES staged (a micro-batch) is read once into
    a temp table: the plan reads it four times. A larger one (a pass) is never
    all held in memory: the staged JSON Lines are copied once into a Parquet
    file of small row groups (DuckDB writes it streaming), a temp table keeps
    only the row numbers of the copies to use, found reading the columns the
    choice needs, and each statement that reads the view streams the file,
    columns it does not use unread. (A temp table of the whole rows was ~140 MB
    at 20,000 articles.)
    """
    # Each made with OR REPLACE: what a plan that failed on this connection
    # left is replaced, with no statement to drop it first (_plan_new drops
    # them once planned).
    staged = staging.files(directory, "articles", shards)
    if not staged:
        columns = ", ".join(f"NULL::{kind} AS {name}" for name, kind in _ARTICLE_COLUMNS.items())
        con.execute(f"CREATE OR REPLACE TEMP VIEW new_articles AS SELECT {columns} LIMIT 0")
        return 0, (None, None)
    if sum(path.stat().st_size for path in staged) <= _HELD_BYTES:
        return _hold_articles(con, staged)
    con.execute(f"COPY (SELECT * FROM {json_source(_ARTICLE_COLUMNS)}) TO {_literal(copied)}"
                f" (FORMAT parquet, ROW_GROUP_SIZE {_ROW_GROUP})", [paths(staged)])
    con.execute(f"""CREATE OR REPLACE TEMP TABLE new_rows AS
        SELECT s.file_row_number FROM read_parquet(?, file_row_number = true) s
        WHERE NOT EXISTS (SELECT 1 FROM articles a WHERE a.id = s.id)
        QUALIFY row_number() OVER (PARTITION BY s.id ORDER BY {_FIRST}, s.file_row_number) = 1""",
                [str(copied)])
    con.execute(f"""CREATE OR REPLACE TEMP VIEW new_articles AS SELECT * EXCLUDE (file_row_number)
        FROM read_parquet({_literal(copied)}, file_row_number = true)
        WHERE file_row_number IN (SELECT file_row_number FROM new_rows)""")
    row = con.execute("SELECT count(*) FROM new_rows").fetchone()
    return (int(row[0]) if row else 0), None


# The first and last time of the new articles (None, None: there are none).
_Bounds = tuple[Any, Any]
_TIME = "coalesce(published_at, fetched_at)"


# The same page can arrive through two feeds (or twice in one feed): the copy
# kept is the first in this order, whatever order the shards were staged in
# (rows equal in all four are one fetch of one entry, staged twice).
_FIRST = "s.fetched_at, s.url, s.feed_url, s.entry_id"

# Staged JSON Lines up to this size (~1,000 articles: a micro-batch of 50 is
# ~200 KiB) are held in memory while planned; more are streamed from their
# Parquet copy (see _stage_articles).
_HELD_BYTES = 4 << 20


def _hold_articles(con: duckdb.DuckDBPyConnection, staged: list[Path]
                   ) -> tuple[int, _Bounds | None]:
    """``new_articles`` over a temp table of the staged rows (see
    _stage_articles). Copies and stored pages are rare in a micro-batch: they
    are looked for first (one query, which also reads the rows' first and
    last time: theirs when none goes), and deleted only when found (a window
    over the rows and an anti-join cost ~3x reading them)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE new_held AS SELECT * FROM"
                f" {json_source(_ARTICLE_COLUMNS)}", [paths(staged)])
    con.execute("CREATE OR REPLACE TEMP VIEW new_articles AS SELECT * FROM new_held")
    # The stored ones found from the batch's side: a scan of the stored ids
    # against ~50, not a table of every stored id built to find none.
    row = con.execute(f"SELECT count(*), count(DISTINCT id), (SELECT count(*) FROM articles"
                      f" WHERE id IN (SELECT id FROM new_held)), min({_TIME}), max({_TIME})"
                      " FROM new_held").fetchone()
    rows, ids, stored = (int(v) for v in row[:3]) if row else (0, 0, 0)
    bounds: _Bounds | None = (row[3], row[4]) if row else (None, None)
    if stored:
        bounds = None
        con.execute("DELETE FROM new_held WHERE id IN"
                    " (SELECT id FROM articles WHERE id IN (SELECT id FROM new_held))")
    if ids < rows:
        bounds = None
        con.execute(f"""DELETE FROM new_held WHERE rowid IN (SELECT s.rowid FROM new_held s
            QUALIFY row_number() OVER (PARTITION BY s.id ORDER BY {_FIRST}, s.rowid) > 1)""")
    return ids - stored, bounds


def _new_articles_file(directory: Path) -> Path:
    # Each planning its own file: two planners of one run (a retry beside a
    # task thought dead, on this host or another) never read each other's.
    return directory / f".new-articles.{uuid.uuid4().hex}.parquet"


def _drop_new_articles(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP VIEW IF EXISTS new_articles; DROP TABLE IF EXISTS new_rows;"
                " DROP TABLE IF EXISTS new_held")


def _plan_new(con: duckdb.DuckDBPyConnection, settings: Settings, directory: Path,
              snapshot: _Snapshot, shards: Collection[str], warm: WarmClusterer | None = None
              ) -> tuple[int, int, int]:
    """Stage the new articles of ``shards`` and plan them; (articles, stories,
    candidates)."""
    copied = _new_articles_file(directory)
    try:
        articles, bounds = _stage_articles(con, directory, copied, shards)
        stories, candidates = _make_plan(con, settings, directory, snapshot, warm,
                                         staged=lambda: _staged_features(directory, shards),
                                         bounds=bounds)
        _drop_new_articles(con)  # not on an error: in an aborted transaction it would fail too
    finally:
        copied.unlink(missing_ok=True)
    return articles, stories, candidates


def _staged_features(directory: Path, shards: Collection[str]) -> StagedFeatures:
    """The features the process stage staged for ``shards``' articles, by id
    and the digest of what they were made of (pipeline.signal.cluster.staged_features),
    read as the clusterer holds them (~1 KB an article, a fifth of the parsed
    record). Read here, not through DuckDB: the clusterer is their only
    reader. None staged (a stage from before them): an empty mapping, and the
    clusterer computes them."""
    staged: StagedFeatures = {}
    for path in staging.files(directory, "features", shards):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                staged[(str(record["id"]), int(record["crc"]))] = features_of(record)
    return staged


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
    # One string, split in SQL: a list parameter is converted an element at a time
    # (~0.4 ms each: most of a warm micro-batch's plan).
    con.execute("CREATE OR REPLACE TEMP TABLE wanted_terms AS"
                " SELECT unnest(string_split(?, chr(31))) AS term",
                ["\x1f".join(sorted(keys | {""}))])
    df = dict(con.execute("SELECT s.term, s.df FROM term_stats s"
                          " JOIN wanted_terms w USING (term)").fetchall())
    con.execute("DROP TABLE wanted_terms")
    n = int(df.pop("", 0))
    return TermStats(df, n)


# The language lets the clusterer join reports of one event in two languages
# (pipeline/cluster.py, "Different languages").
_DOC_COLUMNS = (
    f"id, coalesce(published_at, fetched_at), title, left(text, {PLAN_TEXT_CHARS}), source,"
    " countries, people, language"
)


_PLAN = "plan.json"


_PLAN_ARTICLES = "plan-articles.parquet"


@dataclass(frozen=True, slots=True, kw_only=True)
class Assignment:
    """A new article's story (and its embedding, kept with it in ``articles``)."""

    id: str
    story_id: str
    embedding: Annotated[tuple[float, ...] | None, "FLOAT[]"] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TermCount:
    """Added to ``term_stats`` by the load (term '': how many articles)."""

    term: str
    df: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoryHead:
    story_id: str
    lead_article_id: str
    title: str


# The plan's rows, one file each: the records the clusterer and the saved
# searches make (Link, Candidate) or this module does; their columns derive
# from them (staging.columns).
_PLAN_TABLES: dict[str, dict[str, str]] = {
    "assigned": staging.columns(Assignment), "terms": staging.columns(TermCount),
    "links": staging.columns(Link), "story_heads": staging.columns(StoryHead),
    "outbox": staging.columns(alert.Candidate),
    # The stories that changed and their new members' signatures, saved by the load.
    "states": story_state.STATE_COLUMNS, "signatures": story_state.SIGNATURE_COLUMNS,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanResult:
    run_id: str
    already_loaded: bool
    articles: int  # new articles planned
    stories: int  # stories they go to (new or stored)
    candidates: int  # (rule, story, recipient) outbox candidates


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """A plan's snapshot (``digest``) and what it was made of that the plan
    uses again: the store's version and whether it has the clusterer's tables."""

    digest: str
    version: str
    ready: bool


def _snapshot(con: duckdb.DuckDBPyConnection, settings: Settings, directory: Path,
              shards: Collection[str], warm: WarmClusterer | None = None) -> _Snapshot:
    """What a plan depends on: the stored articles, the run's staged articles (a
    process shard run again after the plan rewrites its file), the settings and
    the code (a deploy between the two stages)."""
    row = version(con)
    staged = []
    for path in staging.files(directory, "articles", shards):
        stat = path.stat()
        staged.append((path.name, stat.st_ino, stat.st_size, stat.st_mtime_ns))
    used = json.dumps([settings.cluster.model_dump(mode="json"),
                       [rule.model_dump(mode="json") for rule in settings.alerts]],
                      sort_keys=True, default=str)
    # A database from before the clusterer's tables, read by the cluster stage
    # read-only, is planned without them; the load adds them, and plans again.
    # A warm clusterer held for this version of the store says it has them (it
    # is held for no other), without the catalog read.
    ready = (warm is not None and warm.holds(row)) or store.has_story_statistics(con)
    digest = hashlib.sha256(f"{__version__}|{row}|{staged}|{used}|{ready}".encode()).hexdigest()
    return _Snapshot(digest=digest, version=row, ready=ready)


# One encoder for every row (json.dumps with ``default`` makes one a call).
_ENCODE = json.JSONEncoder(default=str).encode


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    _write_lines(path, (_ENCODE(row) + "\n" for row in rows))


# A JSON string (quoted, escaped): the encoder's own C function.
_STRING: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    tmp = _tmp(path)
    # Not synced: the commit mark lists every file's size and SHA-256, and the
    # load checks them before it uses the plan, so a file a crash cut short or
    # lost is noticed and the load plans again (an fsync a file cost ~2 ms).
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
    os.replace(tmp, path)


def _write_plan_rows(directory: Path, table: str, rows: Iterable[Any]) -> None:
    _write_jsonl(_plan_file(directory, table), (staging.record(r) for r in rows))


def _tmp(path: Path) -> Path:
    """A temporary name beside ``path``, this process's own (two planners of one
    run, a retry beside a task thought dead, never write into each other's file)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _plan_file(directory: Path, table: str) -> Path:
    return directory / f"plan-{table}.jsonl"


def _warm_key(settings: Settings) -> str:
    """What a warm clusterer must have been made with to be used again."""
    return f"{__version__}|{json.dumps(settings.cluster.model_dump(mode='json'), sort_keys=True)}"


def _make_plan(
    con: duckdb.DuckDBPyConnection, settings: Settings, directory: Path, snapshot: _Snapshot,
    warm: WarmClusterer | None = None,
    staged: Callable[[], StagedFeatures] | None = None,
    bounds: _Bounds | None = None,
) -> tuple[int, int]:
    """Cluster ``new_articles`` and write the plan files; (stories, candidates).
    ``staged``: reads the features the process stage staged for them;
    ``bounds``: their first and last time, when known (read otherwise)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / _PLAN).unlink(missing_ok=True)  # written last: the plan's commit mark
    assignments: dict[str, str] = {}
    heads: list[StoryHead] = []
    embeddings: dict[str, tuple[float, ...]] = {}
    terms: list[tuple[str, int]] = []
    links: list[Link] = []
    saved: tuple[list[StoryState], list[StorySignature]] = ([], [])
    clusterer: Clusterer | None = None
    if bounds is None:
        bounds = con.execute(f"SELECT min({_TIME}), max({_TIME}) FROM new_articles").fetchone()
    ready = snapshot.ready
    all_saved = False
    # The clusterer of this process's last plan, when the store is as its load
    # left it (no other writer since): it holds the open stories already.
    key, store_version = _warm_key(settings), snapshot.version
    taken = warm.take(store_version, key) if warm is not None and ready else None
    if bounds is not None and bounds[0] is not None:
        options = settings.cluster.options()
        went_on: Clusterer | None = None
        since: tuple[Any, Any] | None = None
        if taken is not None and taken[0].narrow(bounds[0], bounds[1]):
            went_on, since, all_saved = taken
        elif warm is not None and taken is not None:
            warm.unusable()
        # The open stories as saved (story_state), and the ones saved before that
        # table rebuilt from their members: streamed, the clusterer keeps each
        # article's features, not its text; every member of the stories with a
        # report in the horizon around the new articles (a story is rebuilt
        # whole, as it was when it grew), back to the longest span a story may have.
        saved_stories = (story_state.read_open(con, (bounds[0], bounds[1]), options,
                                               since=since) if ready else None)
        # The bounds in SQL: DuckDB's timestamps go beyond Python's year 9999,
        # which a feed's bad date can reach.
        members = ("FROM articles WHERE story_id IN (SELECT story_id FROM articles"
                   "   WHERE coalesce(published_at, fetched_at)"
                   "   BETWEEN ?::TIMESTAMPTZ - ? AND ?::TIMESTAMPTZ + ?)"
                   " AND coalesce(published_at, fetched_at) >= ?::TIMESTAMPTZ - ?"
                   + (story_state.UNSAVED if ready else ""))
        params = [bounds[0], options.reach, bounds[1], options.reach,
                  bounds[0], options.max_span]
        # Going on from a clusterer whose store had every story saved: so has
        # this one (only its loads wrote since), and nothing is to be rebuilt.
        unsaved = not (went_on is not None and all_saved) and _any(con, members, params)
        if warm is not None and ready and went_on is None:
            # Kept with the clusterer for the plans that go on from it.
            all_saved = not unsaved and not _any(con, _UNSAVED_ANYWHERE, [])
        assignments, clusterer = cluster(
            _docs(con, f"SELECT {_DOC_COLUMNS}, NULL, NULL FROM new_articles"),
            _docs(con, f"SELECT {_DOC_COLUMNS}, story_id,"
                       f" {'embedding' if ready else 'NULL'} {members}", params)
            if unsaved else iter(()),
            options=options,
            stats=(lambda keys: _term_stats(con, keys)) if ready else TermStats(),
            embedder=(went_on.embedder if went_on is not None
                      else Encoder() if settings.cluster.embeddings else None),
            saved=saved_stories, warm=went_on,
            founder_texts=lambda ids: story_state.founder_texts(con, ids),
            staged=staged() if staged is not None else None,
        )
        del saved_stories
        saved = clusterer.saved()
        embeddings = {k: tuple(v.tolist()) for k, v in clusterer.embeddings.items()}
        # What the stage holds follows the horizon, not the archive: these counts say so.
        log.info("clustered", extra={"new": len(assignments), "stored_read": clusterer.known,
                                     "stories_restored": clusterer.restored,
                                     "warm": went_on is not None,
                                     "features_staged": clusterer.features_staged,
                                     "embedded": clusterer.embedded,
                                     "embed_seconds": round(clusterer.embed_seconds, 3)})
        added = clusterer.stats.added
        terms = [("", clusterer.stats.added_n), *sorted(added.items())]
        links = list(clusterer.links)
    _write_plan_rows(directory, "assigned", (
        Assignment(id=k, story_id=v, embedding=embeddings.get(k))
        for k, v in assignments.items()))
    _plan_table(con, directory, "assigned")
    if clusterer is not None:
        # The titles: the members of the restored stories new articles joined too,
        # read only when not held already (a warm clusterer holds most).
        held = clusterer.held_members()
        partly = clusterer.partly_held(sorted(set(assignments.values())))
        wanted = [str(r[0]) for r in con.execute(
            "SELECT id FROM articles WHERE story_id IN (SELECT unnest(string_split(?, chr(31))))",
            ["\x1f".join(partly)]).fetchall() if r[0] not in held] if partly else []
        clusterer.add_members(_docs(
            con, f"SELECT {_DOC_COLUMNS}, story_id, NULL FROM articles"
                 " WHERE id IN (SELECT unnest(string_split(?, chr(31))))",
            ["\x1f".join(wanted)]) if wanted else iter(()), stories=set(assignments.values()))
        for story in sorted(set(assignments.values())):
            doc = clusterer.representative(story)
            if doc is not None:
                heads.append(StoryHead(story_id=story, lead_article_id=doc.id, title=doc.title))
    _write_plan_rows(directory, "story_heads", heads)
    _write_plan_rows(directory, "links", links)
    # Rows as tuples in their table's column order (the terms: ~1,500 a
    # micro-batch, cheaper than a TermCount each through staging.record; and
    # as text at once: 4.4 -> ~1 ms a micro-batch through the encoder's dicts).
    assert tuple(_PLAN_TABLES["terms"]) == ("term", "df")
    _write_lines(_plan_file(directory, "terms"),
                 (f'{{"term":{_STRING(t)},"df":{int(n)}}}\n' for t, n in terms))
    for table, rows in (("states", story_state.plan_rows(saved[0])),
                        ("signatures", story_state.plan_rows(saved[1]))):
        columns = _PLAN_TABLES[table]
        _write_jsonl(_plan_file(directory, table),
                     (dict(zip(columns, row, strict=True)) for row in rows))
    # No saved search: no candidate, and the stories' stored texts go unread.
    candidates = (list(alert.candidates(settings.alerts, _story_articles(con)))
                  if settings.alerts else [])
    _write_plan_rows(directory, "outbox", candidates)
    # The new articles as the load will insert them, in a columnar file DuckDB
    # reads ~10x faster than the JSON Lines (the load holds the write lock).
    articles = directory / _PLAN_ARTICLES
    tmp = _tmp(articles)
    con.execute(f"""COPY (SELECT n.*, a.story_id, a.embedding
        FROM new_articles n JOIN assigned a USING (id))
        TO {_literal(tmp)} (FORMAT parquet, ROW_GROUP_SIZE {_ROW_GROUP})""")
    os.replace(tmp, articles)  # not synced either: listed in the commit mark
    _write_jsonl(directory / _PLAN, [{"snapshot": snapshot.digest,
                                      "files": _plan_files(directory)}])
    if warm is not None and ready:
        # Held until the load commits this plan (an empty plan changes no story:
        # the clusterer taken goes on as it was).
        if clusterer is not None and bounds is not None:
            warm.planned(clusterer, key=key, bounds=(bounds[0], bounds[1]),
                         store_version=store_version, run_id=directory.name,
                         snapshot=snapshot.digest, all_saved=all_saved)
        elif taken is not None:
            warm.planned(taken[0], key=key, bounds=taken[1], store_version=store_version,
                         run_id=directory.name, snapshot=snapshot.digest,
                         all_saved=taken[2])
    return len(heads), len(candidates)


# The stored articles whose story has no saved state, at any time (see _any).
_UNSAVED_ANYWHERE = "FROM articles WHERE story_id IS NOT NULL" + story_state.UNSAVED


def _any(con: duckdb.DuckDBPyConnection, rows: str, params: Sequence[object]) -> bool:
    """Whether ``SELECT ... {rows}`` finds a row: read on the narrow columns its
    WHERE uses, so a query that finds nothing never reads the texts (a warm
    micro-batch's stored stories are all saved: ~60 ms a plan, on a fresh
    connection, to find no row)."""
    row = con.execute(f"SELECT EXISTS (SELECT 1 {rows})", params).fetchone()
    return bool(row and row[0])


def _story_articles(con: duckdb.DuckDBPyConnection
                    ) -> Iterator[tuple[str, list[StoryArticle]]]:
    """The articles of each story in ``assigned``, stored ones and this run's, one
    story at a time (in time order within it)."""
    cursor = con.execute(
        """SELECT story_id, id, title, url, source, text, language, topics, countries, people,
            published_at, loaded_at FROM (
            SELECT story_id, id, title, url, source, text, language, topics, countries,
                people, published_at, loaded_at, coalesce(published_at, fetched_at) AS t
            FROM articles WHERE story_id IN (SELECT story_id FROM assigned)
            UNION ALL
            SELECT a.story_id, n.id, n.title, n.url, n.source, n.text, n.language, n.topics,
                n.countries, n.people, n.published_at, NULL::TIMESTAMPTZ AS loaded_at,
                coalesce(n.published_at, n.fetched_at)
            FROM new_articles n JOIN assigned a USING (id))
        ORDER BY story_id, t, id"""
    )
    story, articles = "", list[StoryArticle]()
    while rows := cursor.fetchmany(_BATCH):
        for row in alert.named_rows(cursor, rows):
            if row["story_id"] != story:
                if articles:
                    yield story, articles
                story, articles = row["story_id"], []
            articles.append(alert.story_article(row))
    if articles:
        yield story, articles


def _plan_table(con: duckdb.DuckDBPyConnection, directory: Path, table: str) -> None:
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM "
                f"{json_source(_PLAN_TABLES[table])}", [paths([_plan_file(directory, table)])])


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


@dataclass(frozen=True, slots=True)
class LoadedShards:
    """The staging shards the loads of a run took (``whole``: a run loaded
    before they were recorded, which counts as loaded whole)."""

    shards: frozenset[str]
    whole: bool = False

    def missing(self, shards: Iterable[str]) -> tuple[str, ...]:
        return () if self.whole else tuple(s for s in shards if s not in self.shards)


def loaded_runs(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]
                ) -> dict[str, LoadedShards]:
    """The runs of ``run_ids`` that are loaded, with the shards their loads took."""
    rows = con.execute("SELECT id FROM runs WHERE loaded_at IS NOT NULL"
                       " AND list_contains(?, id)", [list(run_ids)]).fetchall()
    loaded = [str(r[0]) for r in rows]
    shards: dict[str, set[str]] = {}
    # A database from before the table, opened read-only, has none (the next
    # writer adds it); asked only when a run is loaded (a catalog read ~10 ms).
    if loaded and store.has_run_shards(con):
        for run_id, shard in con.execute("SELECT run_id, shard FROM run_shards"
                                          " WHERE list_contains(?, run_id)", [loaded]).fetchall():
            shards.setdefault(str(run_id), set()).add(str(shard))
    return {r: LoadedShards(frozenset(shards.get(r, ())), whole=r not in shards) for r in loaded}


def run_loaded(con: duckdb.DuckDBPyConnection, run_id: str,
               shards: Iterable[str] = ()) -> tuple[int, ...] | None:
    """The counts the loads of ``run_id`` stored, when it is loaded with each of
    ``shards``; None otherwise."""
    row = con.execute(
        "SELECT feeds_polled, entries_new, articles_new, rejected, stories_new, alerts_queued"
        " FROM runs WHERE id = ? AND loaded_at IS NOT NULL", [run_id],
    ).fetchone()
    if row is None:
        return None
    wanted = tuple(shards)
    if wanted and loaded_runs(con, [run_id])[run_id].missing(wanted):
        return None
    return tuple(row)


def shards_to_load(con: duckdb.DuckDBPyConnection, directory: Path, run_id: str
                   ) -> tuple[tuple[str, ...], LoadedShards | None]:
    """The shards of ``run_id``'s staging folder to load, and what its loads
    took so far (None: not loaded). A run not loaded: all of them, the folder
    verified first (missing, incomplete or damaged: StagingError). A loaded
    run: those its loads did not take, which a stream stages beside a run
    whose load it took for failed (the commit went through, the error came
    after it, and the read-back could not tell); none when it is loaded whole,
    so an Airflow retry of the load, or a stage run again after it, loads
    nothing twice."""
    done = loaded_runs(con, [run_id]).get(run_id)
    if done is None:
        return staging.verify(directory).shards, None
    rest = done.missing(staging.finished(directory))
    if rest:
        staging.verify(directory)
    return rest, done


def plan(con: duckdb.DuckDBPyConnection, settings: Settings, run_id: str, *,
         warm: WarmClusterer | None = None) -> PlanResult:
    """The cluster stage: plan story ids and outbox candidates for ``run_id``'s load
    (going on from ``warm``'s clusterer when the store is as it left it); of its
    shards not loaded yet, when it is loaded (:func:`shards_to_load`)."""
    directory = staging.run_dir(settings.staging, run_id)
    shards, _ = shards_to_load(con, directory, run_id)
    if not shards:
        return PlanResult(run_id=run_id, already_loaded=True, articles=0, stories=0,
                          candidates=0)
    # The snapshot first: a shard rewritten while this reads it makes the plan stale.
    snapshot = _snapshot(con, settings, directory, shards, warm)
    articles, stories, candidates = _plan_new(con, settings, directory, snapshot, shards, warm)
    log.info("planned run", extra={"run_id": run_id, "articles": articles, "stories": stories})
    return PlanResult(run_id=run_id, already_loaded=False, articles=articles, stories=stories,
                      candidates=candidates)


def drop_unreadable_plan(con: duckdb.DuckDBPyConnection, directory: Path) -> None:
    """Forget a plan whose files cannot be read (a crash or a full disk while it
    was written): the load then plans again. Checked before the transaction,
    because an error inside it would abort the load."""
    if not (directory / _PLAN).exists():
        return
    try:
        con.execute("SELECT count(*) FROM read_parquet(?)",
                    [str(directory / _PLAN_ARTICLES)]).fetchall()
        for table, columns in _PLAN_TABLES.items():
            con.execute(f"SELECT count(*) FROM {json_source(columns)}",
                        [paths([_plan_file(directory, table)])]).fetchall()
    except duckdb.Error as exc:
        log.warning("plan unreadable, planning again in the load",
                    extra={"directory": str(directory), "error": str(exc)})
        (directory / _PLAN).unlink(missing_ok=True)


def use_plan(con: duckdb.DuckDBPyConnection, settings: Settings, directory: Path,
             shards: Collection[str], *, warm: WarmClusterer | None = None
             ) -> tuple[int, int, int]:
    """The plan of ``shards`` as temp tables and the view ``planned_articles``
    (planned here if there is none or it is stale); (new articles, stories
    touched, new stories). ``warm`` is dropped unless the plan used is the one
    its clusterer made."""
    snapshot = _snapshot(con, settings, directory, shards, warm)
    current = _current_plan(directory, snapshot.digest)
    if warm is not None and not (current and warm.applies(directory.name, snapshot.digest)):
        warm.drop()
    if not current:
        _plan_new(con, settings, directory, snapshot, shards)
    # A view: each statement reads only the columns it needs from the file.
    con.execute("CREATE OR REPLACE TEMP VIEW planned_articles AS SELECT * FROM read_parquet("
                f"{_literal(directory / _PLAN_ARTICLES)})")
    row = con.execute("SELECT count(*) FROM planned_articles").fetchone()
    articles = int(row[0]) if row else 0
    for table in _PLAN_TABLES:
        _plan_table(con, directory, table)
    row = con.execute(
        "SELECT count(DISTINCT story_id), count(DISTINCT story_id) FILTER (WHERE story_id"
        " NOT IN (SELECT id FROM stories)) FROM assigned"
    ).fetchone()
    return (articles, int(row[0]), int(row[1])) if row else (articles, 0, 0)
