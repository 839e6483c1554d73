"""The clusterer's saved stories: read the open ones for a plan, stage the plan's
changes, save them in the load's transaction.

A plan restores each open story from its row of ``story_state`` (centroid,
names, languages, embedding) and its members' MinHash signatures
(``story_signatures``) instead of reading and re-tokenising every member: what
a plan reads follows the stories open in the horizon, one row a story, never
the archive. A story with no saved state (loaded before these tables) is
rebuilt from its articles once and saved by that load.

The records are :class:`pipeline.signal.cluster.StoryState` and
:class:`~pipeline.signal.cluster.StorySignature`; the table columns, the plan
files' columns and the rows are all derived from their fields.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import duckdb
import numpy as np

from pipeline.signal.cluster import (
    MINHASHES,
    Options,
    SavedStories,
    StorySignature,
    StoryState,
    open_window,
)
from pipeline.store.backend import upsert

# The plan's JSON Lines carry bytes as base64 (decoded by the load's INSERT).
_JSON_TYPES = {"str": "VARCHAR", "str | None": "VARCHAR", "float": "DOUBLE", "int": "BIGINT",
               "bytes": "VARCHAR", "bytes | None": "VARCHAR", "tuple[str, ...]": "VARCHAR[]",
               "tuple[int, ...]": "BIGINT[]"}


def _columns(record: type) -> dict[str, str]:
    return {f.name: _JSON_TYPES[str(f.type)] for f in dataclasses.fields(record)}


STATE_COLUMNS = _columns(StoryState)
SIGNATURE_COLUMNS = _columns(StorySignature)
_BYTES = {f.name for r in (StoryState, StorySignature) for f in dataclasses.fields(r)
          if str(f.type).startswith("bytes")}


def plan_rows(records: Iterable[StoryState | StorySignature]) -> Iterable[tuple[object, ...]]:
    """Rows for the plan's JSON Lines, in the records' field order."""
    for record in records:
        yield tuple(_plain(getattr(record, f.name)) for f in dataclasses.fields(record))


def _plain(value: object) -> object:
    return base64.b64encode(value).decode() if isinstance(value, bytes) else value


def _tuple(value: Any) -> Any:
    """DuckDB's lists as the records' tuples."""
    return tuple(value) if isinstance(value, list) else value


def _select(columns: dict[str, str]) -> str:
    return ", ".join(f"from_base64({c})" if c in _BYTES else c for c in columns)


def save(con: duckdb.DuckDBPyConnection) -> None:
    """Upsert the plan's ``states`` and add its ``signatures`` (temp tables)."""
    # founder_text NULL: the plan did not read it (it is as stored).
    updates = ", ".join(
        f"{c} = coalesce(excluded.{c}, story_state.{c})" if c == "founder_text"
        else f"{c} = excluded.{c}" for c in STATE_COLUMNS if c != "story_id")
    # upsert: ON CONFLICT in the file, MERGE INTO in a lake (no keys there).
    upsert(con, "story_state", tuple(STATE_COLUMNS),
           f"SELECT {_select(STATE_COLUMNS)} FROM states", key=("story_id",), update=updates)
    upsert(con, "story_signatures", tuple(SIGNATURE_COLUMNS),
           f"SELECT {_select(SIGNATURE_COLUMNS)} FROM signatures", key=("article_id",))


def _open_where(bounds: tuple[datetime, datetime], options: Options) -> str:
    """The saved stories that may be open to an article between the bounds: a
    report within the reach of them (Options.reach), started no longer than the
    longest span before (:func:`~pipeline.signal.cluster.open_window`, as the
    warm clusterer selects them). The values as literals, not parameters: a
    bound parameter costs ~0.2 ms, this statement's six were half its time."""
    last_from, first_to, first_from = open_window(bounds[0], bounds[1], options.reach,
                                                  options.max_span)
    return (f"last >= {_double(last_from)} AND first <= {_double(first_to)}"
            f" AND first >= {_double(first_from)}")


def _double(value: float) -> str:
    """A DOUBLE literal of ``value``, to the bit: repr gives the shortest text
    that reads back as the same float, and DuckDB reads text correctly rounded."""
    return f"'{value!r}'::DOUBLE"


def read_open(con: duckdb.DuckDBPyConnection, bounds: tuple[datetime, datetime],
              options: Options, *, since: tuple[datetime, datetime] | None = None
              ) -> SavedStories:
    """The saved stories open around ``bounds`` (the new articles' first and last
    times) and their members' signatures, column-wise. ``since``: the bounds of
    a plan whose open stories the caller holds already; only the others are read.

    Each column comes as one numpy array or list (a story's names and languages
    unnested, one row each): no Python record a story, which at 50,000 stored
    articles cost more than the clusterer's restore itself."""
    # The predicate inline, not as a story_id IN (...) join: one filtered scan.
    where = f"({_open_where(bounds, options)})"
    if since is not None:
        where += f" AND NOT ({_open_where(since, options)})"
        # A warm plan's usual case: no story opened since its last plan (one
        # narrow scan, not the five statements below: ~6 ms a micro-batch).
        found = con.execute(f"SELECT EXISTS (SELECT 1 FROM story_state WHERE {where})"
                            ).fetchone()
        if not (found and found[0]):
            return SavedStories.of(())
    con.execute("CREATE OR REPLACE TEMP TABLE open_stories AS SELECT story_id, first, last,"
                " size, terms, weights, names, name_counts, languages, language_counts,"
                " main_language, embedding, embedded, row_number() OVER"
                " (ORDER BY first, story_id) - 1 AS position"
                f" FROM story_state WHERE {where}")
    try:
        # Without the founders' texts (up to 1,300 characters a story): read only
        # when a report in another language needs them (founder_texts).
        rows = con.execute("SELECT story_id, first, last, size, terms, weights, main_language,"
                           " embedding, embedded FROM open_stories ORDER BY position"
                           ).fetchnumpy()
        names = con.execute("SELECT position, unnest(names) AS name,"
                            " unnest(name_counts) AS n FROM open_stories ORDER BY position"
                            ).fetchnumpy()
        languages = con.execute("SELECT position, unnest(languages) AS language,"
                                " unnest(language_counts) AS n FROM open_stories"
                                " ORDER BY position").fetchnumpy()
        sigs = con.execute("SELECT g.story_id, g.article_id, g.seconds, g.signature"
                           " FROM story_signatures g JOIN open_stories USING (story_id)"
                           " ORDER BY g.seconds, g.article_id").fetchnumpy()
    finally:
        con.execute("DROP TABLE open_stories")
    n = len(rows["story_id"])
    weights = rows["weights"].tolist()
    return SavedStories(
        story_ids=rows["story_id"].tolist(),
        first=np.asarray(rows["first"], dtype=np.float64),
        last=np.asarray(rows["last"], dtype=np.float64),
        size=np.asarray(rows["size"], dtype=np.int64),
        terms=rows["terms"].tolist(),
        weights=np.frombuffer(b"".join(weights), dtype=np.float64) if weights
        else np.zeros(0, dtype=np.float64),
        name_story=np.asarray(names["position"], dtype=np.int64),
        names=names["name"].tolist(),
        name_counts=np.asarray(names["n"], dtype=np.int64),
        language_story=np.asarray(languages["position"], dtype=np.int64),
        languages=languages["language"].tolist(),
        language_counts=np.asarray(languages["n"], dtype=np.int64),
        main_language=rows["main_language"].tolist(),
        embeddings=[None if e is None or e is np.ma.masked else bytes(e)
                    for e in _column(rows["embedding"])],
        embedded=np.asarray(_column(rows["embedded"]), dtype=np.int64),
        founder_texts=[None] * n,
        sig_story_ids=sigs["story_id"].tolist(),
        sig_article_ids=sigs["article_id"].tolist(),
        sig_seconds=np.asarray(sigs["seconds"], dtype=np.float64),
        signatures=np.frombuffer(b"".join(sigs["signature"].tolist()), dtype=np.uint64
                                 ).reshape(len(sigs["story_id"]), MINHASHES))


def _column(values: np.ndarray) -> list[Any]:
    """A column that may hold NULLs (a masked array) as a list with None."""
    if isinstance(values, np.ma.MaskedArray):
        return [None if m else v for v, m in
                zip(values.data.tolist(), np.ma.getmaskarray(values).tolist(), strict=True)]
    return list(values.tolist())


def founder_texts(con: duckdb.DuckDBPyConnection, story_ids: list[str]) -> dict[str, str]:
    """The stored founder_text of these stories."""
    return dict(con.execute("SELECT story_id, founder_text FROM story_state"
                            " WHERE story_id IN (SELECT unnest(?::VARCHAR[]))",
                            [story_ids]).fetchall())


# Appended to the query of the stored articles to rebuild: only the stories
# with no saved state.
UNSAVED = " AND story_id NOT IN (SELECT story_id FROM story_state)"
