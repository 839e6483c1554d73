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

from pipeline.signal.cluster import Options, StorySignature, StoryState
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


# The saved stories that may be open to an article between the bounds: a report
# within the horizon of them, started no longer than the longest span before.
_OPEN = """SELECT story_id FROM story_state
    WHERE last >= epoch(?::TIMESTAMPTZ) - ? AND first <= epoch(?::TIMESTAMPTZ) + ?
    AND first >= epoch(?::TIMESTAMPTZ) - ?"""


def _open_params(bounds: tuple[datetime, datetime], options: Options) -> list[object]:
    horizon, span = options.horizon.total_seconds(), options.max_span.total_seconds()
    return [bounds[0], horizon, bounds[1], horizon, bounds[0], span]


def read_open(con: duckdb.DuckDBPyConnection, bounds: tuple[datetime, datetime],
              options: Options) -> tuple[list[StoryState], list[StorySignature]]:
    """The saved stories open around ``bounds`` (the new articles' first and last
    times) and their members' signatures."""
    params = _open_params(bounds, options)
    # Without the founders' texts (up to 1,300 characters a story): read only
    # when a report in another language needs them (founder_texts).
    columns = ", ".join("NULL" if c == "founder_text" else c for c in STATE_COLUMNS)
    rows = con.execute(f"SELECT {columns} FROM story_state"
                       f" WHERE story_id IN ({_OPEN})", params).fetchall()
    states = [StoryState(**{c: _tuple(v) for c, v in zip(STATE_COLUMNS, row, strict=True)})
              for row in rows]
    rows = con.execute(f"SELECT {', '.join(SIGNATURE_COLUMNS)} FROM story_signatures"
                       f" WHERE story_id IN ({_OPEN})", params).fetchall()
    signatures = [StorySignature(**dict(zip(SIGNATURE_COLUMNS, row, strict=True)))
                  for row in rows]
    return states, signatures


def founder_texts(con: duckdb.DuckDBPyConnection, story_ids: list[str]) -> dict[str, str]:
    """The stored founder_text of these stories."""
    return dict(con.execute("SELECT story_id, founder_text FROM story_state"
                            " WHERE story_id IN (SELECT unnest(?::VARCHAR[]))",
                            [story_ids]).fetchall())


# Appended to the query of the stored articles to rebuild: only the stories
# with no saved state.
UNSAVED = " AND story_id NOT IN (SELECT story_id FROM story_state)"
