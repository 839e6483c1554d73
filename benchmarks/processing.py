"""Processing throughput: extract + clean + tag on the 181 benchmark pages.

    python -m benchmarks.processing [--data DIR] [--limit N] [--repeat 3]

Measured in the same run, on the same pages (the ScrapingHub set that
:mod:`benchmarks.extraction_quality` scores):

- **trafilatura defaults** (the baseline): ``trafilatura.bare_extraction``
  with its defaults, one page after the other;
- **the stage in one process, by part**: :func:`pipeline.process.process_page`
  split into what it does (charset decoding, our extraction call, cleaning,
  language detection, tagging: countries, people, topics), each timed on its
  own, the best of ``--repeat`` runs in CPU time (the machine is shared);
- **the stage through the pool**: :class:`pipeline.process.Processor` with 1
  worker process and with one per core (``workers=2`` here), wall time from
  the first page to the last, workers already started.

Three goals, and which is which:

1. **our additions**: clean + language + tag (what the stage adds to our own
   extraction call) at most 10% of the time of that call. Also printed: the
   same against trafilatura's defaults, and the whole stage (decode +
   extract + clean + language + tag) against trafilatura's defaults, which
   includes our extraction settings (favor_precision, metadata, a retry:
   see pipeline/content/extract.py and benchmarks/extraction_quality.py).
   Also printed: goal 1's ratio page for page (:func:`additions_side_by_side`:
   each page's extraction call, then its additions, best of ``--repeat``
   per page), steadier than two whole runs under load, and higher.
2. **parallel speed-up**: the pool on all cores at least 1.8x the pool with
   one worker.
3. **the stage's cost** (issue 17): the whole stage in one process
   (:func:`~pipeline.process.process_page`: decode + extract + clean +
   language + tag) at most 1.5 times trafilatura's defaults, page for page:
   each page goes through both, one right after the other, and keeps its
   best time of ``--repeat`` for each (:func:`side_by_side`). Also reported:
   the peak memory (VmHWM) of each worker of the pool, the largest of them.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from benchmarks.extraction_quality import DEFAULT_DATA, Page, load_pages, trafilatura_alone
from benchmarks.memory import worker_peaks_kib
from benchmarks.report import Row, Section, x
from pipeline.charset import utf8_html
from pipeline.config import Settings
from pipeline.content.clean import clean
from pipeline.content.extract import ExtractionError, extract
from pipeline.models import Article, Cleaned, Extracted, FeedEntry, FetchedPage
from pipeline.process import Context, Processor, build_context, process_page
from pipeline.signal.people import tag_people
from pipeline.signal.places import tag_countries
from pipeline.signal.tag import tag

COMMAND = ".venv/bin/python -m benchmarks.processing"
ADDITIONS_GOAL = 0.10
PARALLEL_GOAL = 1.8
STAGE_GOAL = 1.5
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    pages: int
    seconds: dict[str, float]  # part -> CPU seconds for all pages (best of repeats)
    pool_1: float  # wall seconds, Processor(workers=1)
    pool_n: float  # wall seconds, Processor(workers=n)
    workers: int
    repeat: int
    load_average: float
    worker_peak_mib: float  # the largest VmHWM of the pool's workers

    @property
    def additions(self) -> float:
        s = self.seconds
        return s["clean"] + s["language"] + s["tag"]

    @property
    def stage(self) -> float:
        return self.seconds["decode"] + self.seconds["extract"] + self.additions

    @property
    def side_by_side(self) -> float:
        """The stage's cost over trafilatura's defaults, page for page (the goal's figure)."""
        s = self.seconds
        return s["side by side: process_page"] / s["side by side: trafilatura defaults"]

    @property
    def additions_page_for_page(self) -> float:
        """Goal 1's ratio with each page's extraction call and additions timed together."""
        s = self.seconds
        return s["page for page: additions"] / s["page for page: extraction call"]

    def rate(self, seconds: float) -> float:
        return self.pages / seconds if seconds else float("inf")


def fetched(pages: Sequence[Page]) -> list[FetchedPage]:
    now = datetime(2019, 3, 1, tzinfo=UTC)
    return [
        FetchedPage(
            entry=FeedEntry(id=p.id, feed_url="https://bench.example/feed", feed_name="Bench",
                            url=p.url, title="", summary="", published_at=None),
            url=p.url, status=200, content_type="text/html", body=p.html, fetched_at=now,
        )
        for p in pages
    ]


@contextmanager
def _gc_frozen() -> Iterator[None]:
    """Collect, then freeze the heap so no collection falls inside a timing."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _best(repeat: int, run: Callable[[], T]) -> tuple[float, T]:
    """CPU seconds of ``run``, the best of ``repeat``. What the benchmark holds
    (every page, every result so far) is moved out of the collector's sight
    first: a full collection walks every object of the process, and one
    landing inside a part made it up to 2.6 times slower in one run of
    several. The part's own garbage is collected as usual."""
    best, result = float("inf"), None
    for _ in range(repeat):
        with _gc_frozen():
            started = time.process_time()
            result = run()
            best = min(best, time.process_time() - started)
    assert result is not None
    return best, result


def _article(page: FetchedPage, extracted: Extracted, cleaned: Cleaned, language: str | None
             ) -> Article:
    return Article(
        id=page.entry.id, entry_id=page.entry.id, feed_url=page.entry.feed_url, url=page.url,
        canonical_url=page.url, source=extracted.site_name or "", title=extracted.title or "",
        text=cleaned.text, author=extracted.author, published_at=extracted.published,
        fetched_at=page.fetched_at, language=language, removed=cleaned.removed,
    )


def by_part(raw_pages: Sequence[Page], pages: Sequence[FetchedPage], ctx: Context,
            repeat: int) -> dict[str, float]:
    """CPU seconds of each part of process_page over all pages."""
    seconds: dict[str, float] = {}
    seconds["decode"], decoded = _best(repeat, lambda: [
        utf8_html(p.body, p.content_type) for p in pages])

    def extract_all() -> list[Extracted | None]:
        out: list[Extracted | None] = []
        for page, body in zip(pages, decoded, strict=True):
            try:
                out.append(extract(body, url=page.url))
            except ExtractionError:
                out.append(None)
        return out

    seconds["extract"], extracted = _best(repeat, extract_all)
    done = [(p, e) for p, e in zip(pages, extracted, strict=True) if e is not None]
    seconds["clean"], cleaned = _best(repeat, lambda: [
        clean(e.text, title=e.title or "", url=p.url, site_name=e.site_name) for p, e in done])
    texts = [(e, c) for (_, e), c in zip(done, cleaned, strict=True)]
    seconds["language"], languages = _best(repeat, lambda: [
        ctx.language.detect(f"{e.title or ''}\n{c.text}", declared=e.language) for e, c in texts])
    articles = [_article(p, e, c, lang)
                for (p, e), c, lang in zip(done, cleaned, languages, strict=True)]
    seconds["tag"], _ = _best(repeat, lambda: [tag(a, ctx.tagger) for a in articles])
    seconds["tag: countries"], _ = _best(repeat, lambda: [
        tag_countries(title=a.title, text=a.text, gazetteer=ctx.tagger.gazetteer)
        for a in articles])
    seconds["tag: people"], _ = _best(repeat, lambda: [
        tag_people(title=a.title, text=a.text, watchlist=ctx.tagger.watchlist)
        for a in articles])
    seconds["tag: topics and the rest"] = max(
        0.0, seconds["tag"] - seconds["tag: countries"] - seconds["tag: people"])
    seconds["process_page (whole, one process)"], _ = _best(repeat, lambda: [
        process_page(p, ctx) for p in pages])
    seconds["trafilatura defaults (baseline)"], _ = _best(repeat, lambda: [
        trafilatura_alone(p) for p in raw_pages])
    return seconds



def side_by_side(raw_pages: Sequence[Page], pages: Sequence[FetchedPage], ctx: Context,
                 repeat: int) -> tuple[float, float]:
    """CPU seconds of trafilatura's defaults and of :func:`process_page`, page for page.

    Each page is run by both, one right after the other (which goes first
    alternates), ``repeat`` times; each page counts with its best time for
    each. A whole run of one then a whole run of the other lets a burst of
    load on this shared machine fall on one side only: run against run the
    ratio swung from 1.2x to 1.6x on unchanged code. Returns (trafilatura,
    stage) seconds summed over the pages.
    """
    best_base = [float("inf")] * len(pages)
    best_stage = [float("inf")] * len(pages)
    clock = time.process_time
    with _gc_frozen():
        for round_ in range(repeat):
            for i, (raw, page) in enumerate(zip(raw_pages, pages, strict=True)):
                for side in ((0, 1) if (i + round_) % 2 else (1, 0)):
                    started = clock()
                    if side == 0:
                        trafilatura_alone(raw)
                        best_base[i] = min(best_base[i], clock() - started)
                    else:
                        process_page(page, ctx)
                        best_stage[i] = min(best_stage[i], clock() - started)
    return sum(best_base), sum(best_stage)


def additions_side_by_side(pages: Sequence[FetchedPage], ctx: Context, repeat: int
                           ) -> tuple[float, float]:
    """CPU seconds of our extraction call and of our additions (clean + language +
    tag), page for page: each page's call and then its additions, ``repeat`` times,
    each page keeping its best time of each; summed over the pages.

    Goal 1's figure from :func:`by_part` divides two whole runs made at
    different moments, so a burst of load on this shared machine falls on one
    side (it read 9.1% to 11.5% in four runs of unchanged code); here both
    sides of a page are timed within milliseconds of each other.
    """
    best_extract = [float("inf")] * len(pages)
    best_additions = [float("inf")] * len(pages)
    clock = time.process_time
    with _gc_frozen():
        for _ in range(repeat):
            for i, page in enumerate(pages):
                body = utf8_html(page.body, page.content_type)
                started = clock()
                try:
                    e = extract(body, url=page.url)
                except ExtractionError:
                    best_extract[i] = min(best_extract[i], clock() - started)
                    best_additions[i] = 0.0
                    continue
                middle = clock()
                c = clean(e.text, title=e.title or "", url=page.url, site_name=e.site_name)
                language = ctx.language.detect(f"{e.title or ''}\n{c.text}", declared=e.language)
                tag(_article(page, e, c, language), ctx.tagger)
                ended = clock()
                best_extract[i] = min(best_extract[i], middle - started)
                best_additions[i] = min(best_additions[i], ended - middle)
    return sum(best_extract), sum(best_additions)


def pool_seconds(settings: Settings, pages: Sequence[FetchedPage], workers: int
                 ) -> tuple[float, float]:
    """Wall seconds for all pages, and the largest worker's peak memory in MiB."""
    with Processor(settings, workers=workers) as processor:
        list(processor.map(pages[:workers]))  # start every worker: imports are not the stage
        started = time.perf_counter()
        results = list(processor.map(pages))
        seconds = time.perf_counter() - started
        peak_kib = max(worker_peaks_kib(os.getpid()), default=0)
    assert len(results) == len(pages)
    return seconds, peak_kib / 1024


def measure(data: Path, limit: int | None, repeat: int, workers: int | None = None) -> Figures:
    pages = load_pages(data, limit)
    settings = Settings()
    ctx = build_context(settings)
    fetched_pages = fetched(pages)
    process_page(fetched_pages[0], ctx)  # warm up: lazy imports, compiled XPaths
    trafilatura_alone(pages[0])
    seconds = by_part(pages, fetched_pages, ctx, repeat)
    base, stage = side_by_side(pages, fetched_pages, ctx, repeat)
    seconds["side by side: trafilatura defaults"] = base
    seconds["side by side: process_page"] = stage
    call, additions = additions_side_by_side(fetched_pages, ctx, repeat)
    seconds["page for page: extraction call"] = call
    seconds["page for page: additions"] = additions
    n = workers or os.cpu_count() or 1
    pool_1, _ = pool_seconds(settings, fetched_pages, 1)
    pool_n, peak_mib = pool_seconds(settings, fetched_pages, n)
    return Figures(
        pages=len(pages), seconds=seconds, pool_1=pool_1, pool_n=pool_n, workers=n, repeat=repeat,
        load_average=os.getloadavg()[0], worker_peak_mib=peak_mib,
    )


def rows(f: Figures) -> list[tuple[str, float, float]]:
    """(label, seconds, share of trafilatura defaults) per line of the table."""
    base = f.seconds["trafilatura defaults (baseline)"]
    order = ["trafilatura defaults (baseline)", "decode", "extract", "clean", "language", "tag",
             "tag: countries", "tag: people", "tag: topics and the rest",
             "process_page (whole, one process)"]
    return [(label, f.seconds[label], f.seconds[label] / base) for label in order]


def print_table(f: Figures) -> None:
    print(f"{f.pages} pages; CPU seconds, best of repeats; load average {f.load_average:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'part':<36} {'seconds':>8} {'pages/s':>8} {'x trafilatura':>13}")
    for label, seconds, share in rows(f):
        print(f"{label:<36} {seconds:>8.2f} {f.rate(seconds):>8.1f} {share:>12.2f}x")
    extract_s = f.seconds["extract"]
    base = f.seconds["trafilatura defaults (baseline)"]
    print(f"\nour additions (clean + language + tag): {f.additions / extract_s:.1%} of our "
          f"extraction call, {f.additions / base:.1%} of trafilatura defaults "
          f"(goal <= {ADDITIONS_GOAL:.0%} of the extraction call); page for page (each page's "
          f"call and its additions one after the other, best of {f.repeat}): "
          f"{f.additions_page_for_page:.1%}")
    print(f"the stage's cost, page for page (each page through both, one after the other, "
          f"best of {f.repeat}): {f.side_by_side:.2f}x trafilatura defaults (goal <= "
          f"{STAGE_GOAL}x); run after run: the parts summed {f.stage / base:.2f}x, "
          f"process_page as one call {f.seconds['process_page (whole, one process)'] / base:.2f}x")
    print(f"peak memory per worker (largest VmHWM of {f.workers}): {f.worker_peak_mib:.0f} MiB")
    print(f"pool, 1 worker: {f.rate(f.pool_1):.1f} pages/s; {f.workers} workers: "
          f"{f.rate(f.pool_n):.1f} pages/s; speed-up {f.pool_1 / f.pool_n:.2f}x "
          f"(goal >= {PARALLEL_GOAL}x)")


def main(argv: Sequence[str] | None = None) -> Figures:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    figures = measure(args.data, args.limit, args.repeat)
    print_table(figures)
    return figures


if __name__ == "__main__":
    main()



# -- the harness (python -m benchmarks) ----------------------------------------------------

_SIZES = {"tiny": (4, 1), "quick": (60, 1), "full": (None, 3)}  # (pages, repeats)


def section(size: str) -> Section:
    limit, repeat = _SIZES[size]
    started = time.perf_counter()
    f = measure(DEFAULT_DATA, limit, repeat)
    base = f.seconds["trafilatura defaults (baseline)"]
    extract_s = f.seconds["extract"]
    first = "trafilatura defaults (baseline)"
    table = [Row(measure=label, value=f"{f.rate(seconds):,.1f} pages/s",
                 baseline=f"{f.rate(base):.1f} pages/s" if label != first else "",
                 ratio=f"{share:.2f}x the time" if label != first else "")
             for label, seconds, share in rows(f)]
    additions = f.additions / extract_s
    speedup = f.pool_1 / f.pool_n
    table += [
        Row(measure="goal 1: our additions (clean + language + tag) over our extraction call",
            value=f"{additions:.1%} of its time",
            baseline=f"{f.rate(extract_s):.1f} pages/s (our extraction call)",
            goal=f"<= {ADDITIONS_GOAL:.0%}", met=additions <= ADDITIONS_GOAL),
        Row(measure="the same, page for page (each page's call, then its additions; "
                    "best of the repeats per page)",
            value=f"{f.additions_page_for_page:.1%} of its time"),
        Row(measure="our additions over trafilatura defaults (no goal)",
            value=f"{f.additions / base:.1%} of its time"),
        Row(measure="goal 3: whole stage (process_page: decode+extract+clean+language+tag) "
                    "over trafilatura defaults, page for page (side by side)",
            value=f"{f.side_by_side:.2f}x the time",
            baseline=f"{f.rate(f.seconds['side by side: trafilatura defaults']):.1f} pages/s "
            "(trafilatura defaults)", goal=f"<= {STAGE_GOAL}x",
            met=f.side_by_side <= STAGE_GOAL),
        Row(measure="the same, run after run (the parts summed; no goal: load falls unevenly)",
            value=f"{f.stage / base:.2f}x the time"),
        Row(measure="peak memory per worker process (largest VmHWM)",
            value=f"{f.worker_peak_mib:.0f} MiB"),
        Row(measure="Processor, 1 worker process", value=f"{f.rate(f.pool_1):.1f} pages/s"),
        Row(measure=f"goal 2: Processor, {f.workers} worker processes (all cores)",
            value=f"{f.rate(f.pool_n):.1f} pages/s", baseline=f"{f.rate(f.pool_1):.1f} pages/s "
            "(1 worker)", ratio=x(speedup), goal=f">= {PARALLEL_GOAL}x",
            met=speedup >= PARALLEL_GOAL),
    ]
    command = COMMAND + (f" --limit {limit}" if limit else "") + f" --repeat {repeat}"
    return Section(
        key="processing", title=f"Processing throughput ({f.pages} pages: extract, clean, tag)",
        command=command, rows=table, seconds=time.perf_counter() - started,
        notes=[
            "Per part: CPU seconds of this process, the best of the repeats, for all pages "
            "(the machine is shared; CPU time is steadier than wall time). The pool rows are "
            "wall time with the workers already started (each imports trafilatura and builds "
            f"the tagger once, about 3 s). Load average during the run: {f.load_average:.1f} "
            f"on {os.cpu_count()} CPUs.",
            "Goal 1 is about what newsmon adds on top of its own extraction call; goal 3 "
            "about the whole stage against trafilatura's defaults. The extraction call is "
            "trafilatura's precision mode without fallbacks plus readability on the same "
            "tree, and trafilatura's balanced mode on the pages where the two disagree "
            "(`pipeline/content/extract.py`; its quality: the extraction comparison "
            "section). Tagging is the "
            "largest addition; it splits each body into sentences once, shared by countries, "
            "people and topics (it was three times). Language detection is py3langid over "
            "the first 500 characters (`pipeline/content/language.py` SAMPLE_CHARS; "
            "3,000 and then 1,000 before: the same language on all 628 texts checked, both "
            "extraction sets, the seeds and the signal set, at every length from 400 to "
            "3,000). The page is parsed with lxml's element class lookup in C "
            "(`extract.load_html`); `benchmarks/process_outputs.py` shows every output "
            "the same as before these savings.",
        ],
    )

