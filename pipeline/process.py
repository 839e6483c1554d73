"""Process stage: extract, clean and tag fetched pages, in worker processes.

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

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

from pipeline import ids
from pipeline.config import Settings
from pipeline.content.clean import clean
from pipeline.content.extract import ExtractionError, extract
from pipeline.content.language import LanguageDetector, load_detector
from pipeline.models import Article, FetchedPage, Rejection, TaggedArticle
from pipeline.signal.tag import Tagger, build_tagger, tag
from pipeline.sources.pages import utf8_html
from pipeline.workers import TimeLimitExceeded, WorkerDied, WorkerPool

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
        # Decoded with the charset the server or the page declares: see fetch.utf8_html.
        extracted = extract(utf8_html(page.body, page.content_type), url=page.url)
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
        except WorkerDied as exc:  # a crash in C code (lxml) or the OOM killer
            reason = f"extraction crashed its worker: {exc}"
        return Rejection(url=entry.url, feed_url=entry.feed_url, stage="extract", reason=reason)

    def map(self, pages: Iterable[FetchedPage]) -> Iterator[TaggedArticle | Rejection]:
        """Results in the order of ``pages``."""
        if self._threads is not None:
            yield from self._threads.map(self.process, pages)
        else:
            for page in pages:
                yield self.process(page)

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
