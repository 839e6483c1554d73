"""The clusterer kept warm between one process's plans.

Every plan restores the stories open around its new articles before the first
one (:mod:`pipeline.store.story_state`): with 50,000 articles in the horizon
that is seconds, paid again by each micro-batch of the pipelined pass. Once a
plan is loaded, though, the clusterer that made it holds exactly what the
database holds: the stories it restored, the decisions the load saved. The
next plan in the same process goes on from it when nothing else has been
written since, and restores otherwise.

"Nothing else written since" is a version of the store that every load
advances, read inside the plan (:func:`version`): the load reads it in its
own transaction after its writes, and the clusterer is kept for that version
only once the transaction commits with the plan the clusterer made (not one
made again inside the load). A plan that fails, a load that fails, is never
made, or plans again, drops it: the clusterer is never ahead of the database.

The clusterer is given back only to a plan with the same settings and code,
and only while most of what it holds is still open; past that a restore
starts afresh, so what a long run holds follows the horizon, not the archive.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import duckdb

from pipeline.signal.cluster import Clusterer

log = logging.getLogger(__name__)

# More of the stories held closed than this share: restore instead (the
# closed ones are memory the next restore gives back).
MAX_CLOSED = 0.5


def version(con: duckdb.DuckDBPyConnection) -> str:
    """What every load changes: the loaded runs, and the stored articles (which
    retention deletes). Read inside a plan's read, or a load's transaction; the
    times as numbers, the same whatever the connection's time zone."""
    row = con.execute(
        "SELECT (SELECT count(*) FROM runs WHERE loaded_at IS NOT NULL),"
        " count(*), epoch_us(max(loaded_at)), epoch_us(min(loaded_at)) FROM articles"
    ).fetchone()
    return repr(row)


@dataclass(slots=True)
class _Held:
    clusterer: Clusterer
    key: str  # the settings and code it was made with
    bounds: tuple[datetime, datetime]  # its last plan's new articles' times
    version: str  # of the store it matches (planned: the store it read)
    run_id: str = ""
    snapshot: str = ""  # the plan's (planned, not loaded yet)
    # Every stored article's story had its saved state (story_state) in the
    # store it read: still so after its load, which saves the state of every
    # story it gives an article, so the plans it goes on to need not look for
    # stories to rebuild from their members.
    all_saved: bool = False


class WarmClusterer:
    """One process's warm clusterer: :meth:`take` before a plan, :meth:`planned`
    after it, :meth:`loaded` once its load has committed; :meth:`drop` on any
    failure. Used by one thread at a time (the one that plans and loads)."""

    __slots__ = ("_loaded", "_planned", "restored", "reused")

    def __init__(self) -> None:
        self._loaded: _Held | None = None
        self._planned: _Held | None = None
        self.reused = 0  # plans that went on from the warm clusterer
        self.restored = 0  # plans that restored (none held, or it did not match)

    def take(self, store_version: str, key: str
             ) -> tuple[Clusterer, tuple[datetime, datetime], bool] | None:
        """The clusterer, its last plan's bounds and whether every stored story
        has its saved state, when it matches this version of the store and
        these settings; it is no longer held either way (the plan hands it back
        with :meth:`planned`)."""
        held, self._loaded, self._planned = self._loaded, None, None
        if held is None or held.version != store_version or held.key != key:
            self.restored += 1
            return None
        self.reused += 1
        return held.clusterer, held.bounds, held.all_saved

    def holds(self, store_version: str) -> bool:
        """Whether a clusterer is held for this version of the store (loaded, or
        planned and not loaded yet). One is held only for a store with the
        clusterer's tables (``store.has_story_statistics``): a plan that finds
        one for its version need not read the catalog to know it has them."""
        return any(held is not None and held.version == store_version
                   for held in (self._loaded, self._planned))

    def holds_any(self) -> bool:
        """Whether a clusterer is held at all (the next plan may go on from
        it); False: the next plan restores the open stories."""
        return self._loaded is not None or self._planned is not None

    def unusable(self) -> None:
        """The clusterer taken could not go on (a story it closed is needed):
        the plan restores."""
        self.reused -= 1
        self.restored += 1

    def planned(self, clusterer: Clusterer, *, key: str, bounds: tuple[datetime, datetime],
                store_version: str, run_id: str, snapshot: str, all_saved: bool = False
                ) -> None:
        """A plan was made with ``clusterer``: held until its load commits.
        ``all_saved``: no stored article's story lacked its saved state in the
        store the plan read."""
        self._loaded = None
        if clusterer.closed_share() > MAX_CLOSED:
            self._planned = None
            return
        self._planned = _Held(clusterer=clusterer, key=key, bounds=bounds,
                              version=store_version, run_id=run_id, snapshot=snapshot,
                              all_saved=all_saved)

    def applies(self, run_id: str, snapshot: str) -> bool:
        """Whether the load of ``run_id`` uses the held plan (same snapshot)."""
        held = self._planned
        return held is not None and held.run_id == run_id and held.snapshot == snapshot

    def loaded(self, run_id: str, store_version: str) -> None:
        """The load of ``run_id`` committed the held plan; the store is now at
        ``store_version`` (read in the load's transaction)."""
        held, self._planned = self._planned, None
        if held is None or held.run_id != run_id:
            return
        held.version, held.run_id, held.snapshot = store_version, "", ""
        self._loaded = held

    def drop(self) -> None:
        self._loaded = self._planned = None
