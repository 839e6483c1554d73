"""Process stage: extract, clean and tag fetched pages; CPU-bound, so it runs in
a process pool when there is more than one core.

Each worker builds its :class:`Tagger` (compiled rules, gazetteer, watchlist)
and language model once, in the pool initializer, and keeps it in a
worker-local slot: rebuilding per page would cost more than extracting it.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

from pipeline import ids
from pipeline.clean import clean
from pipeline.config import Settings
from pipeline.extract import ExtractionError, extract
from pipeline.language import LanguageDetector, load_detector
from pipeline.models import Article, FetchedPage, Rejection, TaggedArticle
from pipeline.tag import Tagger, build_tagger, tag

# Fewer words than this after cleaning is a stub, a paywall or an index page.
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
        extracted = extract(page.body, url=page.url)
    except ExtractionError as exc:
        return reject(str(exc))
    title = (extracted.title or entry.title or "").strip()
    cleaned = clean(extracted.text, title=title, url=page.url, site_name=extracted.site_name)
    words = len(cleaned.text.split())
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
    return tag(article, ctx.tagger)


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
    """Runs :func:`process_page` in-process (1 worker) or in a process pool."""

    def __init__(self, settings: Settings, *, workers: int | None = None) -> None:
        self._workers = workers if workers is not None else worker_count(settings)
        self._pool: Executor | None = None
        self._ctx: Context | None = None
        if self._workers > 1:
            # forkserver: forking a process that runs an event loop and HTTP
            # threads can copy held locks into the child; spawn would re-import
            # trafilatura per worker start for nothing more.
            self._pool = ProcessPoolExecutor(
                self._workers, mp_context=multiprocessing.get_context("forkserver"),
                initializer=_init_worker, initargs=(settings,),
            )
        else:
            self._ctx = build_context(settings)

    def map(self, pages: Iterable[FetchedPage]) -> Iterator[TaggedArticle | Rejection]:
        if self._pool is not None:
            yield from self._pool.map(_run_in_worker, pages, chunksize=4)
        else:
            assert self._ctx is not None
            for page in pages:
                yield process_page(page, self._ctx)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Processor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
