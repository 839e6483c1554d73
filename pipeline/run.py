"""The orchestrator: the only module that knows the order of the stages.

    poll each feed -> fetch each page -> extract, clean, tag (worker processes)
        -> micro-batch -> cluster (stories, outbox plan) -> load (one transaction) -> send

``newsmon run --once`` is :func:`run_pass`: the staging left by an earlier
pass is loaded first, then the pipelined pass of :mod:`pipeline.stream` runs
over the due feeds. ``newsmon run`` is :func:`run_continuous`: the same
pipeline kept running, each feed polled when it is due, its config file read
again when edited or on SIGHUP (:mod:`pipeline.reload`). The Airflow DAG runs
the stages as tasks of their own (:mod:`pipeline.stages`, re-exported here);
a micro-batch is planned and loaded by the very ``plan`` and ``load`` the
DAG's ``cluster_stage`` and ``load_stage`` call, on one writer's connection
(``plan_and_load_stage``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from pipeline import alert
from pipeline.config import Settings
from pipeline.interrupts import terminated_as_interrupt
from pipeline.process import ProcessSummary, ShardPart, process_stage, shard_count, shard_parts
from pipeline.reload import ConfigWatch
from pipeline.stages import (
    MAX_PAGE_ATTEMPTS,
    PollSummary,
    Progress,
    cluster_stage,
    explained,
    load_stage,
    new_run_id,
    poll_stage,
    quiet,
    send_stage,
)
from pipeline.store import staging
from pipeline.store.backend import backend, open_store
from pipeline.store.load import LoadResult
from pipeline.store.plan import LoadedShards, PlanResult, loaded_runs
from pipeline.stream import Batching, BatchResult, StreamResult, stream_pass

__all__ = [
    "MAX_PAGE_ATTEMPTS", "PassResult", "PollSummary", "ProcessSummary", "ShardPart",
    "cluster_stage", "load_stage", "new_run_id", "pass_lock", "poll_stage", "process_stage",
    "run_continuous", "run_pass", "send_stage", "shard_count", "shard_parts", "tidy_staging",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class PassResult:
    poll: PollSummary
    process: ProcessSummary
    cluster: PlanResult  # the batches' plans, summed
    load: LoadResult  # the batches' loads, summed
    send: alert.SendResult  # the batches' send rounds as one (the outbox as left)
    leftovers: tuple[LoadResult, ...] = ()  # earlier passes' runs loaded first
    pruned: int = 0  # staging folders removed (loaded or abandoned)
    batches: int = 0  # micro-batches loaded


# An incomplete run folder untouched this long is abandoned (a pass killed
# mid-way; its entries were never stored, so the feeds deliver them again).
ABANDONED_AFTER = timedelta(hours=1)


def _loaded_runs(settings: Settings, run_ids: list[str]) -> dict[str, LoadedShards]:
    if not run_ids or not backend(settings).exists():
        return {}
    with open_store(settings, read_only=True) as con:
        return loaded_runs(con, run_ids)


def _unloaded(folder: Path, done: LoadedShards) -> bool:
    """Whether a loaded run's folder holds a shard its loads did not take (an
    unreadable completion record counts as one: the folder is then verified
    as any run's, and kept or removed as abandoned)."""
    try:
        return bool(done.missing(staging.finished(folder)))
    except staging.StagingError:
        return True


def tidy_staging(settings: Settings, *, now: datetime | None = None
                 ) -> tuple[list[str], int]:
    """Sort the staging folder out before a pass: the runs ready to load (every
    stage before the load finished, not loaded yet: a pass whose load failed),
    oldest first; and remove the folders of runs already loaded or abandoned.
    Returns (runs to load, folders removed)."""
    root = settings.staging
    if not root.is_dir():
        return [], 0
    now = now or datetime.now(UTC)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loaded = _loaded_runs(settings, [p.name for p in folders])
    abandoned_before = (now - max(ABANDONED_AFTER, 2 * timedelta(
        seconds=settings.fetch.pass_budget_seconds))).timestamp()
    ready: list[str] = []
    removed = 0
    for folder in folders:
        # A loaded run's folder may hold shards its load did not take (staged
        # beside it by a stream that took the load for failed): loaded next.
        if folder.name in loaded and not _unloaded(folder, loaded[folder.name]):
            staging.remove(folder)
            removed += 1
            continue
        try:
            staging.verify(folder)
            ready.append(folder.name)
        except staging.StagingError as exc:
            newest = max((q.stat().st_mtime for q in folder.rglob("*")),
                         default=folder.stat().st_mtime)
            if newest < abandoned_before:
                log.warning("removing abandoned staging folder %s: %s", folder, exc)
                staging.remove(folder)
                removed += 1
    return ready, removed


# How a continuous run names itself in the lock file: one never finishes, so
# a pass that finds it there stops instead of waiting.
_CONTINUOUS = "continuous newsmon run"


_LOCK_POLL = 0.5  # seconds between looks at a held pass lock


class PassRunning(staging.StagingError):
    """A continuous run holds the staging folder: waiting for it would be for ever."""


@contextmanager
def pass_lock(settings: Settings, *, continuous: bool = False,
              stop: threading.Event | None = None) -> Iterator[None]:
    """One pass at a time on a staging folder: a second ``newsmon run`` waits
    (saying for whom) instead of fetching every page again beside the first;
    beside a continuous run (``continuous``), which never ends, it stops with
    :class:`PassRunning`. ``stop`` set while it waits (Ctrl-C, SIGTERM) ends
    the wait with KeyboardInterrupt."""
    path = settings.staging / ".pass.lock"
    try:
        settings.staging.mkdir(parents=True, exist_ok=True)
        opened = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise staging.StagingError(
            f"cannot use the staging folder {settings.staging}: {exc.strerror or exc}; set "
            "`staging_dir:` (or `database:`, whose folder holds it by default) to a place "
            "newsmon can write") from None
    with opened as handle:
        waited = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            # Looked at again while waiting: a continuous run may take the
            # lock from the pass this one waited for.
            if holder.startswith(_CONTINUOUS):
                who = holder.removeprefix(_CONTINUOUS).split(",")[0].strip()
                raise PassRunning(
                    f"a {_CONTINUOUS} {who} polls these feeds already (staging folder "
                    f"{settings.staging}); stop it first (Ctrl-C or SIGTERM) to run another "
                    "pass") from None
            if not waited:
                log.warning("another newsmon pass is running (%s); waiting for it to finish",
                            holder)
                waited = True
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            time.sleep(_LOCK_POLL)
        handle.seek(0)
        handle.truncate()
        who = f"{_CONTINUOUS} (process {os.getpid()})" if continuous else \
            f"process {os.getpid()}"
        handle.write(f"{who}, since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _pass_result(streamed: StreamResult, leftovers: list[LoadResult], pruned: int
                 ) -> PassResult:
    return PassResult(poll=streamed.poll, process=streamed.process, cluster=streamed.plan,
                      load=streamed.load, send=streamed.send, leftovers=tuple(leftovers),
                      pruned=pruned, batches=streamed.batches)


def _load_leftovers(settings: Settings) -> tuple[list[LoadResult], int]:
    """Load what an earlier pass staged but did not load (its load failed), oldest
    first, so its entries count as seen before the feeds are polled again."""
    ready, pruned = tidy_staging(settings)
    leftovers = []
    for old in ready:
        with explained(settings.database):
            cluster_stage(settings, old)
            leftovers.append(load_stage(settings, old))
    return leftovers, pruned


def run_pass(
    settings: Settings, *, force: bool = False, workers: int | None = None,
    progress: Progress = quiet, mailer: alert.Mailer | None = None,
    batching: Batching | None = None,
) -> PassResult:
    """One pass over the due feeds, pipelined (:mod:`pipeline.stream`): each
    micro-batch of finished articles is loaded and alerted while slower feeds
    and pages are still in flight.

    Runs left ready by an earlier pass whose load failed are loaded first; a
    batch that cannot be staged ends the pass and leaves nothing behind (its
    entries were not stored, so they come back), a load that fails keeps its
    batch, and the rest of the pass beside it, for the next pass.

    Ctrl-C (KeyboardInterrupt) or SIGTERM (:class:`~pipeline.interrupts.Terminated`)
    stops it within a second, whatever it is doing but a load (a transaction,
    let finish): the extraction workers are killed, starting or not. What was
    loaded stays; what was not is fetched again by the next pass."""
    with terminated_as_interrupt(), pass_lock(settings):
        leftovers, pruned = _load_leftovers(settings)
        deadline = time.monotonic() + settings.fetch.pass_budget_seconds
        streamed = stream_pass(settings, force=force, workers=workers, progress=progress,
                               mailer=mailer, batching=batching, deadline=deadline)
    return _pass_result(streamed, leftovers, pruned)


@contextmanager
def _handled_signals(stop: threading.Event, watch: ConfigWatch | None) -> Iterator[None]:
    """SIGINT (Ctrl-C) and SIGTERM set ``stop`` once: what is in flight
    finishes and is loaded. A second signal interrupts at once. SIGHUP, with a
    config file to watch, has it read again between two polls (without one it
    ends the process, as by default)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only; the caller sets ``stop``
        return
    # A SIGINT ignored when the process started (nohup, `newsmon run &` in a
    # script) stays ignored, as Python and asyncio leave it.
    handled = tuple(sig for sig in (signal.SIGINT, signal.SIGTERM)
                    if signal.getsignal(sig) is not signal.SIG_IGN) \
        + ((signal.SIGHUP,) if watch else ())
    previous = {sig: signal.getsignal(sig) for sig in handled}

    def handle(signum: int, frame: FrameType | None) -> None:
        # Nothing is logged here: the handler runs between two bytecodes of the
        # main thread, which may be writing to stderr (a buffered write entered
        # again raises "reentrant call") or hold the logging lock. The loop
        # that sees ``stop`` says it (pipeline.stream._keep_polling).
        if signum == signal.SIGHUP and watch is not None:
            watch.request()
            return
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_continuous(
    settings: Settings, *, force: bool = False, workers: int | None = None,
    progress: Progress = quiet, mailer: alert.Mailer | None = None,
    stop: threading.Event | None = None, on_batch: Callable[[BatchResult], None] | None = None,
    config: Path | None = None,
) -> PassResult:
    """Keep the pipeline running: each feed polled when it is due, each batch
    loaded and alerted as it fills, until ``stop`` is set (or SIGINT / SIGTERM
    in the main thread). Returns the whole run's counts.

    ``config``: the file ``settings`` were loaded from, read again when it is
    edited or on SIGHUP (:mod:`pipeline.reload`), its changes taken between
    two polls."""
    stop = stop or threading.Event()
    watch = ConfigWatch(config) if config is not None else None
    # The signals first: SIGHUP's default action would end a run that waits
    # for a pass (a cron job's) and has said it reads its config on SIGHUP.
    with _handled_signals(stop, watch), pass_lock(settings, continuous=True, stop=stop):
        leftovers, pruned = _load_leftovers(settings)
        streamed = stream_pass(settings, force=force, workers=workers, progress=progress,
                               mailer=mailer, stop=stop, on_batch=on_batch, watch=watch)
    return _pass_result(streamed, leftovers, pruned)

