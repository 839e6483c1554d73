"""Process stage: extract, clean and tag fetched pages, in worker processes.

:class:`Processor` turns a page into a tagged article (or why not) in a
worker; the pipelined pass (:mod:`pipeline.stream`) hands it each page as it
arrives, and :func:`process_stage`, one Airflow task per shard, fetches and
processes a run's staged entries with it.

Each worker builds its :class:`Tagger` (compiled rules, gazetteer, watchlist)
and language model once, in the pool initializer, and keeps it in a
worker-local slot: rebuilding per page would cost more than extracting it.

Every page runs under ``process.extract_timeout``: trafilatura has no time
limit of its own, and a page that overruns is rejected ("extraction took
longer than N s") and its worker killed and replaced (see
:mod:`pipeline.workers`). So even one worker is a child process: a limit
cannot be enforced on work running in our own process. That costs about 1 s
per stage over the former in-process mode (the child imports trafilatura
again; both build the tagger once).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from pipeline import ids
from pipeline.charset import utf8_html
from pipeline.config import Settings
from pipeline.content.clean import clean
from pipeline.content.extract import ExtractionError, extract
from pipeline.content.language import LanguageDetector, load_detector
from pipeline.content.words import count as word_count
from pipeline.http import Fetcher
from pipeline.models import Article, FeedEntry, FetchedPage, Rejection, TaggedArticle
from pipeline.signal.cluster import staged_features
from pipeline.signal.tag import Tagger, build_tagger, tag
from pipeline.sources.pages import fetch
from pipeline.stages import (
    Progress,
    deadline_of,
    deferred_record,
    entry_from,
    fetch_limits,
    quiet,
    record_outcome,
)
from pipeline.store import shared_staging, staging
from pipeline.workers import TimeLimitExceeded, WorkerDied, WorkerPool

# Fewer words than this after cleaning is a stub, a paywall or an index page (words
# as pipeline.content.words counts them: Chinese and Japanese by their characters).
MIN_WORDS = 40


@dataclass(frozen=True, slots=True)
class Context:
    tagger: Tagger
    language: LanguageDetector


def build_context(settings: Settings) -> Context:
    return Context(tagger=build_tagger(settings), language=load_detector())


def process_page(page: FetchedPage, ctx: Context) -> TaggedArticle | Rejection:
    entry = page.entry

    def reject(reason: str) -> Rejection:
        return Rejection(url=entry.url, feed_url=entry.feed_url, stage="extract", reason=reason)

    try:
        # Decoded with the charset the server or the page declares: see pipeline.charset.utf8_html.
        extracted = extract(utf8_html(page.body, page.content_type), url=page.url)
    except ExtractionError as exc:
        return reject(str(exc))
    title = (extracted.title or entry.title or "").strip()
    cleaned = clean(extracted.text, title=title, url=page.url, site_name=extracted.site_name)
    words = word_count(cleaned.text)
    if words < MIN_WORDS:
        return reject(f"too little text after cleaning ({words} words; at least {MIN_WORDS})")
    canonical = ids.canonical_url(page.url)
    source = extracted.site_name or entry.feed_name or urlsplit(page.url).hostname or ""
    article = Article(
        id=ids.article_id(canonical), entry_id=entry.id, feed_url=entry.feed_url, url=page.url,
        canonical_url=canonical,
        source=source.strip(),
        title=title, text=cleaned.text, author=extracted.author,
        published_at=extracted.published or entry.published_at, fetched_at=page.fetched_at,
        language=ctx.language.detect(f"{title}\n{cleaned.text}", declared=extracted.language),
        removed=cleaned.removed,
    )
    tagged = tag(article, ctx.tagger)
    # Here, in the worker processes, not in the cluster stage: one process for
    # the whole pipeline (pipeline.signal.cluster, "features computed where the
    # article is made").
    return replace(tagged, cluster_features=staged_features(
        article.id, article.title, article.text, tagged.countries, tagged.people,
        article.language))


# -- the pool ------------------------------------------------------------------------------

_worker_context: Context | None = None  # one per worker process, set by the initializer


def _init_worker(settings: Settings) -> None:
    global _worker_context
    _worker_context = build_context(settings)


def _run_in_worker(page: FetchedPage) -> TaggedArticle | Rejection:
    if _worker_context is None:
        raise RuntimeError("process pool worker was not initialised")
    return process_page(page, _worker_context)


def worker_count(settings: Settings) -> int:
    configured = settings.process.workers
    return configured if configured > 0 else (os.cpu_count() or 1)


class Processor:
    """Runs :func:`process_page` in ``workers`` worker processes, each page under
    ``process.extract_timeout``. Workers start on the first page."""

    def __init__(self, settings: Settings, *, workers: int | None = None) -> None:
        self._workers = max(1, workers if workers is not None else worker_count(settings))
        self._timeout = settings.process.extract_timeout
        self._pool: WorkerPool[FetchedPage, TaggedArticle | Rejection] | None = WorkerPool(
            _run_in_worker, workers=self._workers, initializer=_init_worker,
            initargs=(settings,),
        )
        # One thread per worker feeds it pages and waits on its pipe.
        self._threads = ThreadPoolExecutor(self._workers) if self._workers > 1 else None

    def start(self) -> None:
        """Start the workers now (each builds its tagger): the pipelined pass
        does it while the feeds are polled, not when the first page arrives."""
        if self._pool is not None:
            self._pool.start()

    def process(self, page: FetchedPage) -> TaggedArticle | Rejection:
        """One page, in the next free worker (thread-safe: call it from several threads)."""
        if self._pool is None:
            raise RuntimeError("Processor is closed")
        entry = page.entry
        try:
            return self._pool.call(page, timeout=self._timeout)
        except TimeLimitExceeded:
            reason = f"extraction took longer than {self._timeout:g} s"
        except WorkerDied as exc:
            # A crash in C code (lxml), or the OOM killer or an operator ending
            # the worker for reasons of their own: tried again on later passes
            # (MAX_PAGE_ATTEMPTS in all), so a page that was only in the way
            # is not lost, and one that crashes every time is still refused.
            return Rejection(url=entry.url, feed_url=entry.feed_url, stage="extract",
                             reason=f"extraction crashed its worker: {exc}", transient=True)
        return Rejection(url=entry.url, feed_url=entry.feed_url, stage="extract", reason=reason)

    def map(self, pages: Iterable[FetchedPage]) -> Iterator[TaggedArticle | Rejection]:
        """Results in the order of ``pages``."""
        if self._threads is not None:
            yield from self._threads.map(self.process, pages)
        else:
            for page in pages:
                yield self.process(page)

    def abort(self) -> None:
        """Kill the workers now, from any thread (Ctrl-C, SIGTERM): a start or a
        page under way ends at once (see :meth:`WorkerPool.abort`)."""
        pool = self._pool
        if pool is not None:
            pool.abort()

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
            self._threads = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> Processor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- the stage over a run's staged entries (one Airflow task per shard) -------------------

# Below this many pages a process pool costs more to start (each worker
# imports trafilatura and compiles the tagger) than it saves.
SMALL_SHARD = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessSummary:
    run_id: str
    shard: int
    entries: int
    articles: int
    rejected: int
    retry: int
    deferred: int = 0  # not reached within the time budget: left for the next pass


def shard_count(settings: Settings, run_id: str, max_shards: int) -> int:
    """How many process shards this run's entries fill (at least 1)."""
    with shared_staging.workspace(settings, run_id) as local:
        n = sum(1 for _ in staging.read(staging.run_dir(local.staging, run_id), "polled"))
    return max(1, min(max_shards, -(-n // settings.process.batch_size)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardPart:
    """One process shard of a run: what each mapped ``process`` task is given."""

    run_id: str
    shard: int
    shards: int


def shard_parts(settings: Settings, run_id: str, max_shards: int) -> list[ShardPart]:
    """The run's process shards (at least one, see :func:`shard_count`)."""
    n = shard_count(settings, run_id, max_shards)
    return [ShardPart(run_id=run_id, shard=i, shards=n) for i in range(n)]


def _batches(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(islice(items, size)):
        yield batch


def _shard_records(directory: Path, shard: int, shards: int) -> Iterator[dict[str, Any]]:
    """This shard's polled entries, each (feed, entry id) once: an article a
    feed lists twice (common in real feeds) is one entry, the first copy. Every
    shard drops the same copies, so the n-th distinct entry goes to shard n mod
    ``shards`` whichever shard reads it."""
    seen: set[tuple[str, str]] = set()
    for r in staging.read(directory, "polled"):
        key = (r["feed_url"], r["id"])
        if key in seen:
            continue
        seen.add(key)
        if (len(seen) - 1) % shards == shard:
            yield r


def process_stage(
    settings: Settings, run_id: str, *, shard: int = 0, shards: int = 1,
    workers: int | None = None, progress: Progress = quiet, deadline: float | None = None,
) -> ProcessSummary:
    """:func:`_process_shard`; with staging on S3 (lake mode), on the run's folder
    from there, the shard sent back."""
    with shared_staging.workspace(settings, run_id) as local:
        summary = _process_shard(local, run_id, shard=shard, shards=shards, workers=workers,
                                 progress=progress, deadline=deadline)
        shared_staging.push(local, run_id, staging.process_shard(shard))
    return summary


def _process_shard(
    settings: Settings, run_id: str, *, shard: int = 0, shards: int = 1,
    workers: int | None = None, progress: Progress = quiet, deadline: float | None = None,
) -> ProcessSummary:
    """Fetch, extract, clean and tag this shard's entries; stage the results.

    Fetching and extraction overlap: pages go from the fetcher into a queue
    (at most ``process.batch_size`` waiting, so memory does not grow with
    the shard) and each extraction worker takes the next one as soon as it
    is free. Fetching batch by batch and then extracting it left the workers
    idle while a batch downloaded, and the network idle while it was
    extracted (benchmarks/end_to_end.py).

    Entries whose page is not fetched and extracted by ``deadline`` (default:
    ``fetch.pass_budget_seconds`` from now) are staged as ``retry`` without
    counting an attempt, so the next pass picks them up.
    """
    directory = staging.run_dir(settings.staging, run_id)
    records = _shard_records(directory, shard, shards)
    total = sum(1 for _ in _shard_records(directory, shard, shards))
    counts = {"entries": 0, "articles": 0, "rejected": 0, "retry": 0, "deferred": 0}
    if total == 0:
        # The completion record still says this shard finished (with nothing).
        staging.StagingWriter(directory, staging.process_shard(shard), of=shards).commit()
        return ProcessSummary(run_id=run_id, shard=shard, **counts)
    until = deadline_of(settings, deadline)
    if workers is None and total < SMALL_SHARD:
        workers = 1
    parallel = workers if workers is not None else worker_count(settings)
    now = datetime.now(UTC)
    with Processor(settings, workers=workers) as processor, \
            ThreadPoolExecutor(parallel, thread_name_prefix="newsmon-extract") as threads, \
            staging.StagingWriter(directory, staging.process_shard(shard),
                                  of=shards) as writer:

        def defer(later: Iterable[dict[str, Any]]) -> None:
            for r in later:
                writer.write("entries", deferred_record(entry_from(r), int(r["attempts"])))
                counts["deferred"] += 1

        def record(entry: FeedEntry, row: dict[str, Any],
                   outcome: TaggedArticle | Rejection) -> None:
            record_outcome(writer, entry, outcome, int(row["attempts"]) + 1, counts, now)
            progress("process", counts["entries"] + counts["deferred"], total)

        Waiting = asyncio.Queue[tuple[FetchedPage, dict[str, Any]] | None]

        async def download(queue: Waiting) -> None:
            async with Fetcher(fetch_limits(settings)) as fetcher:
                for batch in _batches(records, settings.process.batch_size):
                    await _download(batch, fetcher, until, queue, record, defer)
            for _ in range(parallel):
                await queue.put(None)  # no more pages (after an error, asyncio.run cancels all)

        async def extract(queue: Waiting) -> None:
            loop = asyncio.get_running_loop()
            while (item := await queue.get()) is not None:
                page, row = item
                if time.monotonic() >= until:
                    defer([row])
                    continue
                outcome = await loop.run_in_executor(threads, processor.process, page)
                record(page.entry, row, outcome)

        async def go() -> None:
            # Pages fetched and waiting for a worker; None: no more pages.
            queue: Waiting = asyncio.Queue(maxsize=settings.process.batch_size)
            await asyncio.gather(download(queue), *(extract(queue) for _ in range(parallel)))

        asyncio.run(go())
    return ProcessSummary(run_id=run_id, shard=shard, **counts)


async def _download(
    batch: list[dict[str, Any]], fetcher: Fetcher, until: float,
    queue: asyncio.Queue[tuple[FetchedPage, dict[str, Any]] | None],
    record: Callable[[FeedEntry, dict[str, Any], TaggedArticle | Rejection], None],
    defer: Callable[[Iterable[dict[str, Any]]], None],
) -> None:
    """Fetch one batch: pages into ``queue``, failures recorded, the rest deferred.
    Each (feed, entry id) is in a batch once (:func:`_shard_records`)."""
    unfetched = {(r["feed_url"], r["id"]): r for r in batch}
    if time.monotonic() >= until:
        defer(unfetched.values())
        return
    budget = asyncio.timeout_at(until)  # loop.time() is time.monotonic()
    try:
        async with budget:
            async for entry, result in fetch([entry_from(r) for r in batch], fetcher=fetcher):
                key = (entry.feed_url, entry.id)
                row = unfetched[key]
                if isinstance(result, FetchedPage):
                    await queue.put((result, row))
                else:
                    record(entry, row, result)
                del unfetched[key]  # only once handed on: a page cut off here is deferred
    except TimeoutError:
        if not budget.expired():
            raise
    defer(unfetched.values())  # not fetched in time
