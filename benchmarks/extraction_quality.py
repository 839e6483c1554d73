"""Extraction quality on the ScrapingHub article-extraction benchmark.

    .venv/bin/python -m benchmarks.extraction_quality [--data DIR] [--limit N] [--audit]

``--data ../shared/benchmarks/dragnet-dev`` runs it on the Dragnet pages
(the goals below are the ScrapingHub set's).

Compares, on the same pages and in the same run:

- trafilatura alone: ``bare_extraction`` with its defaults (the baseline; the
  one place outside pipeline/content/extract.py that imports trafilatura, because
  measuring the dependency itself is the point);
- newsmon extract: :func:`pipeline.content.extract.extract` with our settings;
- newsmon extract+clean: the same, then :func:`pipeline.content.clean.clean`.

It prints precision, recall and F1 (see :mod:`benchmarks.scoring`), pages per
second, and our time as a multiple of trafilatura's. The project's goals are
checked at the end: the cleaner raises precision and costs at most 0.005 of
recall, and extract+clean reaches F1 >= 0.970. ``--audit`` lists the lines the
cleaner removed that the hand-made body does contain: the cleaner's mistakes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trafilatura
from trafilatura.settings import Document

from benchmarks.report import Row, Section
from benchmarks.scoring import PageScore, Summary, score_page, summarize
from pipeline.content.clean import clean
from pipeline.content.extract import ExtractionError, extract
from pipeline.models import Cleaned, Extracted

DEFAULT_DATA = Path(
    os.environ.get(
        "NEWSMON_EXTRACTION_BENCHMARK",
        Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "article-extraction",
    )
)
F1_GOAL = 0.970
MAX_RECALL_COST = 0.005
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    id: str
    url: str
    html: bytes
    truth: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    name: str
    texts: tuple[str, ...]
    seconds: float

    def summary(self, pages: Sequence[Page]) -> Summary:
        return summarize(self.scores(pages))

    def scores(self, pages: Sequence[Page]) -> list[PageScore]:
        pairs = zip(pages, self.texts, strict=True)
        return [score_page(truth=page.truth, predicted=text) for page, text in pairs]


def read_pages(data: Path) -> Iterator[tuple[str, bytes, dict[str, Any]]]:
    """Each page of a set as (key, html, its ground-truth entry): ``html/*.html.gz``
    keyed by stem (ScrapingHub) or ``html/*.html`` by name (Dragnet)."""
    truth = json.loads((data / "ground-truth.json").read_text("utf-8"))
    for path in sorted((data / "html").iterdir()):
        if path.name.endswith(".html.gz"):
            key, html = path.name.split(".")[0], gzip.decompress(path.read_bytes())
        elif path.name.endswith(".html"):
            key, html = path.name, path.read_bytes()
        else:
            continue
        yield key, html, truth[key]


def load_pages(data: Path, limit: int | None) -> list[Page]:
    pages = [Page(id=key, url=entry.get("url") or "https://unknown.example/", html=html,
                  truth=entry.get("articleBody") or "") for key, html, entry in read_pages(data)]
    return pages[:limit]


def trafilatura_alone(page: Page) -> str:
    document = trafilatura.bare_extraction(page.html, url=page.url)
    return (document.text or "") if isinstance(document, Document) else ""


def newsmon_extract(page: Page) -> Extracted | None:
    try:
        return extract(page.html, url=page.url)
    except ExtractionError:
        return None


def newsmon_clean(page: Page, extracted: Extracted | None) -> Cleaned | None:
    if extracted is None:
        return None
    return clean(extracted.text, title=extracted.title, url=page.url, site_name=extracted.site_name)


def run_all(pages: Sequence[Page]) -> tuple[Run, Run, Run, list[Cleaned | None]]:
    # Warm up both paths (lazy imports, compiled XPaths, the rules file) so the
    # first page's one-off costs do not land on whichever system runs first.
    trafilatura_alone(pages[0])
    newsmon_clean(pages[0], newsmon_extract(pages[0]))

    base_texts, base_time = [], 0.0
    ours_texts, ours_time = [], 0.0
    clean_texts, clean_time = [], 0.0
    cleaned_all: list[Cleaned | None] = []
    for page in pages:
        start = time.perf_counter()
        text = trafilatura_alone(page)
        middle = time.perf_counter()
        extracted = newsmon_extract(page)
        after_extract = time.perf_counter()
        cleaned = newsmon_clean(page, extracted)
        end = time.perf_counter()
        base_time += middle - start
        ours_time += after_extract - middle
        clean_time += end - after_extract
        base_texts.append(text)
        ours_texts.append(extracted.text if extracted else "")
        clean_texts.append(cleaned.text if cleaned else "")
        cleaned_all.append(cleaned)
    return (
        Run(name="trafilatura alone (defaults)", texts=tuple(base_texts), seconds=base_time),
        Run(name="newsmon extract", texts=tuple(ours_texts), seconds=ours_time),
        Run(
            name="newsmon extract+clean",
            texts=tuple(clean_texts),
            seconds=ours_time + clean_time,
        ),
        cleaned_all,
    )


def print_table(pages: Sequence[Page], runs: Sequence[Run]) -> list[Summary]:
    baseline = runs[0].seconds
    print(f"{len(pages)} pages\n")
    header = f"{'system':<30} {'precision':>9} {'recall':>7} {'F1':>6} {'pages/s':>8} {'time':>6}"
    print(header)
    print("-" * len(header))
    summaries = []
    for run in runs:
        s = run.summary(pages)
        summaries.append(s)
        rate = len(pages) / run.seconds if run.seconds else float("inf")
        print(
            f"{run.name:<30} {s.precision:>9.4f} {s.recall:>7.4f} {s.f1:>6.4f} "
            f"{rate:>8.1f} {run.seconds / baseline:>5.2f}x"
        )
    return summaries


def print_goals(extract_only: Summary, cleaned: Summary) -> bool:
    gained = cleaned.precision - extract_only.precision
    lost = extract_only.recall - cleaned.recall
    checks = [
        (f"cleaner raises precision ({gained:+.4f})", gained > 0),
        (f"cleaner costs <= {MAX_RECALL_COST} recall ({lost:.4f})", lost <= MAX_RECALL_COST),
        (f"extract+clean F1 >= {F1_GOAL} ({cleaned.f1:.4f})", cleaned.f1 >= F1_GOAL),
    ]
    print()
    for label, ok in checks:
        print(f"[{'ok' if ok else 'MISSED'}] {label}")
    return all(ok for _, ok in checks)


def print_audit(pages: Sequence[Page], cleaned_all: Sequence[Cleaned | None]) -> None:
    """Removed lines whose words all appear, in order, in the true body."""
    print("\nremoved lines found in the hand-made body (the cleaner's mistakes):")
    mistakes = 0
    for page, cleaned in zip(pages, cleaned_all, strict=True):
        if cleaned is None:
            continue
        truth = " ".join(_WORDS.findall(page.truth))
        for removed in cleaned.removed:
            words = " ".join(_WORDS.findall(removed.line))
            if words and f" {words} " in f" {truth} ":
                mistakes += 1
                print(f"  {page.id[:8]} {removed.rule:<28} {removed.line[:90]!r}")
    print(f"  {mistakes} line(s)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="benchmark folder")
    parser.add_argument("--limit", type=int, default=None, help="only the first N pages")
    parser.add_argument("--audit", action="store_true", help="list the cleaner's false removals")
    args = parser.parse_args(argv)
    if not (args.data / "ground-truth.json").is_file():
        parser.error(f"no ground-truth.json in {args.data} (set --data)")
    pages = load_pages(args.data, args.limit)
    if not pages:
        parser.error(f"no pages in {args.data / 'html'}")
    base, ours, ours_clean, cleaned_all = run_all(pages)
    summaries = print_table(pages, (base, ours, ours_clean))
    print(f"\ntrafilatura {trafilatura.__version__}; our time / trafilatura's time in 'time'")
    met = print_goals(summaries[1], summaries[2])
    if args.audit:
        print_audit(pages, cleaned_all)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())


# -- the harness (python -m benchmarks) ----------------------------------------------------

_LIMITS = {"tiny": 3, "quick": None, "full": None}


def section(size: str) -> Section:
    """The figures for BENCHMARKS.md; ``tiny`` scores only the first 3 pages."""
    limit = _LIMITS[size]
    if not (DEFAULT_DATA / "ground-truth.json").is_file():
        raise FileNotFoundError(f"no ground-truth.json in {DEFAULT_DATA} "
                                "(set NEWSMON_EXTRACTION_BENCHMARK)")
    started = time.perf_counter()
    pages = load_pages(DEFAULT_DATA, limit)
    runs = run_all(pages)[:3]
    summaries = [run.summary(pages) for run in runs]
    base_seconds = runs[0].seconds
    rows = []
    for run, s in zip(runs, summaries, strict=True):
        rows.append(Row(
            measure=f"{run.name}: precision {s.precision:.4f}, recall {s.recall:.4f}",
            value=f"F1 {s.f1:.4f}, {len(pages) / run.seconds:.1f} pages/s",
            baseline="" if run is runs[0] else f"{len(pages) / base_seconds:.1f} pages/s",
            ratio="" if run is runs[0] else f"{run.seconds / base_seconds:.2f}x the time",
        ))
    extract_only, cleaned = summaries[1], summaries[2]
    gained = cleaned.precision - extract_only.precision
    lost = extract_only.recall - cleaned.recall
    rows += [
        Row(measure="extract+clean F1", value=f"{cleaned.f1:.4f}",
            baseline=f"{summaries[0].f1:.4f} (trafilatura defaults)",
            goal=f">= {F1_GOAL:.3f}", met=cleaned.f1 >= F1_GOAL),
        Row(measure="the cleaner's precision gain", value=f"{gained:+.4f}", goal="> 0",
            met=gained > 0),
        Row(measure="the cleaner's recall cost", value=f"{lost:.4f}",
            goal=f"<= {MAX_RECALL_COST}", met=lost <= MAX_RECALL_COST),
    ]
    command = ".venv/bin/python -m benchmarks.extraction_quality"
    if limit:
        command += f" --limit {limit}"
    return Section(
        key="extraction_quality",
        title=f"Extraction quality ({len(pages)} pages of the ScrapingHub benchmark)",
        command=command, rows=rows, seconds=time.perf_counter() - started,
        notes=[
            "Shingle precision, recall and F1 against the hand-made bodies (see "
            "`benchmarks/scoring.py`). Scores are deterministic; pages/s depends on the "
            "machine's load. `newsmon extract` runs more than one extractor (trafilatura's "
            "precision mode and readability, and trafilatura's balanced mode on the pages "
            "where those two disagree: `pipeline/content/extract.py`) and extracts the "
            "metadata; the per-part costs are in the processing section, the comparison "
            "with other extractors on two page sets in the next section.",
        ],
    )
