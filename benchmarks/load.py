"""Loading speed: the load stage (staged JSON Lines -> one DuckDB transaction)
against a baseline of row-by-row INSERTs measured in the same run, and the
time of loading the same articles again (a later pass that changes nothing).

    python -m benchmarks.load [--articles 5000]

The articles are :mod:`benchmarks.synthetic` reports: distinct events, each
told by one to four outlets in their own words, over a vocabulary of
thousands of words, 100 articles an hour (so the 72-hour clustering window
holds a few thousand), with tags, evidence and removed lines like real ones.
(Before issue 7 they were drawn from 40 words, so every article looked like
every other and they formed a few giant stories: clustering then cost
quadratic time that production never sees.)

The load-stage time includes everything the stage does: feed state, entries,
rejections, clustering into stories, articles, tags, removed lines, stories
and the alert outbox; it is also printed part by part. The baseline inserts
the same articles' rows one ``INSERT`` at a time (no clustering, no tags).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb

from benchmarks.report import Row, Section, x
from benchmarks.synthetic import Newsroom
from pipeline import ids, staging, store
from pipeline import load as load_module
from pipeline.config import Settings, parse_settings
from pipeline.load import load

COMMAND = ".venv/bin/python -m benchmarks.load"
SPEEDUP_GOAL = 50.0
CODES = {"Syria": "SY", "Israel": "IL", "Russia": "RU", "France": "FR", "Germany": "DE",
         "Turkey": "TR", "Iran": "IR", "Egypt": "EG", "India": "IN", "China": "CN",
         "Japan": "JP", "Brazil": "BR", "Nigeria": "NG", "Kenya": "KE", "Mexico": "MX",
         "Canada": "CA", "Ukraine": "UA", "Poland": "PL", "Spain": "ES", "Italy": "IT",
         "Pakistan": "PK", "Indonesia": "ID", "Vietnam": "VN", "Argentina": "AR",
         "Algeria": "DZ", "Iraq": "IQ", "Jordan": "JO", "Lebanon": "LB", "Venezuela": "VE",
         "Ethiopia": "ET"}
TOPICS = ("elections", "sanctions", "protests", "conflict", "economy", "disasters")


def records(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` staged article records, as the process stage writes them."""
    out = []
    for a in Newsroom(seed).articles(n):
        url = f"https://outlet{a.outlet}.example.org/news/{a.n}"
        canonical = ids.canonical_url(url)
        countries = [CODES[c] for c in a.countries]
        topics = [TOPICS[a.event % len(TOPICS)]] if a.event % 3 else []
        evidence = ([{"kind": "country", "tag": c, "evidence": a.paragraphs[0][:200]}
                     for c in countries]
                    + [{"kind": "person", "tag": p, "evidence": a.paragraphs[0][:200]}
                       for p in a.people]
                    + [{"kind": "topic", "tag": t, "evidence": a.title} for t in topics])
        out.append({
            "id": ids.article_id(canonical), "entry_id": url,
            "feed_url": f"https://outlet{a.outlet}.example.org/feed.xml", "url": url,
            "canonical_url": canonical, "source": a.source, "title": a.title, "text": a.text,
            "author": None, "published_at": a.published_at,
            "fetched_at": a.published_at + timedelta(minutes=5), "language": "en",
            "topics": topics, "countries": countries, "people": list(a.people),
            "evidence": evidence,
            "removed": [{"position": len(a.paragraphs), "line": "Share on Facebook",
                         "rule": "share_buttons"}],
        })
    return out


def stage(settings: Settings, run_id: str, rows: list[dict[str, Any]]) -> None:
    with staging.StagingWriter(staging.run_dir(settings.staging, run_id), "p000") as writer:
        for r in rows:
            writer.write("articles", r)
            writer.write("entries", {
                "feed_url": r["feed_url"], "id": r["entry_id"], "url": r["url"],
                "title": r["title"], "published_at": r["published_at"], "status": "stored",
                "attempts": 1, "article_id": r["id"]})


def baseline(rows: list[dict[str, Any]], db: Path) -> float:
    """Row-by-row INSERT of the same articles (no clustering, no tags)."""
    with store.connect(db) as con:
        started = time.perf_counter()
        con.execute("BEGIN TRANSACTION")
        for r in rows:
            con.execute(
                "INSERT INTO articles (id, url, canonical_url, source, feed_url, entry_id, title,"
                " text, published_at, fetched_at, language, topics, countries, people)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [r["id"], r["url"], r["canonical_url"], r["source"], r["feed_url"],
                 r["entry_id"], r["title"], r["text"], r["published_at"], r["fetched_at"],
                 r["language"], r["topics"], r["countries"], r["people"]])
        con.execute("COMMIT")
        return time.perf_counter() - started


class _Parts:
    """Times the load stage's steps, by wrapping the module's functions for one call."""

    STEPS = ("_load_feeds", "_load_entries", "_load_rejected", "_stage_articles", "_cluster",
             "_insert_articles", "_upsert_stories")

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._saved: dict[str, Callable[..., Any]] = {}

    def __enter__(self) -> _Parts:
        for name in self.STEPS:
            original = getattr(load_module, name)
            self._saved[name] = original

            def timed(*args: Any, _f: Callable[..., Any] = original, _n: str = name) -> Any:
                started = time.perf_counter()
                try:
                    return _f(*args)
                finally:
                    self.seconds[_n] = self.seconds.get(_n, 0.0) + time.perf_counter() - started

            setattr(load_module, name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, original in self._saved.items():
            setattr(load_module, name, original)


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    articles: int
    stories: int
    load_s: float
    reload_s: float
    baseline_s: float
    parts: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.baseline_s / self.load_s

    @property
    def rows_per_s(self) -> float:
        return self.articles / self.load_s

    @property
    def baseline_rows_per_s(self) -> float:
        return self.articles / self.baseline_s


def measure(n: int) -> Figures:
    rows = records(n)
    with tempfile.TemporaryDirectory(prefix="newsmon-bench-load-") as tmp:
        root = Path(tmp)
        settings = parse_settings({"database": str(root / "news.duckdb"),
                                   "staging_dir": str(root / "staging"),
                                   "outbox_dir": str(root / "outbox")})
        stage(settings, "run-1", rows)
        stage(settings, "run-2", rows)
        with store.connect(settings.database) as con:
            with _Parts() as parts:
                started = time.perf_counter()
                first = load(con, settings, "run-1")
                t_load = time.perf_counter() - started
            started = time.perf_counter()
            again = load(con, settings, "run-2")
            t_again = time.perf_counter() - started
        if first.articles_new != n or again.articles_new != 0:
            raise RuntimeError(f"loaded {first.articles_new} then {again.articles_new}")
        with duckdb.connect(str(settings.database), read_only=True) as con:
            row = con.execute("SELECT count(*) FROM stories").fetchone()
        t_base = baseline(rows, root / "baseline.duckdb")
    return Figures(articles=n, stories=int(row[0]) if row else 0, load_s=t_load,
                   reload_s=t_again, baseline_s=t_base, parts=parts.seconds)


def print_table(f: Figures) -> None:
    print(f"{f.articles} articles, {f.stories} stories")
    print(f"{'method':<40}{'seconds':>10}{'rows/s':>12}")
    print(f"{'row-by-row INSERT (baseline)':<40}{f.baseline_s:>10.2f}"
          f"{f.baseline_rows_per_s:>12,.0f}")
    print(f"{'load stage (all of it)':<40}{f.load_s:>10.2f}{f.rows_per_s:>12,.0f}")
    for name, seconds in f.parts.items():
        print(f"{'  ' + name:<40}{seconds:>10.2f}")
    print(f"{'load stage, same articles again':<40}{f.reload_s:>10.2f}{'-':>12}")
    print(f"load stage / baseline speed: {f.ratio:.1f}x (goal >= {SPEEDUP_GOAL:.0f}x)")


def main(argv: Sequence[str] | None = None) -> Figures:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=5000)
    args = parser.parse_args(argv)
    figures = measure(args.articles)
    print_table(figures)
    return figures


if __name__ == "__main__":
    main()


# -- the harness (python -m benchmarks) ----------------------------------------------------

_SIZES = {"tiny": 200, "quick": 2000, "full": 5000}


def section(size: str) -> Section:
    n = _SIZES[size]
    started = time.perf_counter()
    f = measure(n)
    clustering = f.parts.get("_cluster", 0.0)
    without = f.load_s - clustering
    rows = [
        Row(measure=f"load stage, {n:,} new articles (everything, clustering included)",
            value=f"{f.rows_per_s:,.0f} rows/s ({f.load_s:.2f} s)",
            baseline=f"{f.baseline_rows_per_s:,.0f} rows/s (row-by-row INSERT)",
            ratio=x(f.ratio), goal=f">= {SPEEDUP_GOAL:.0f}x", met=f.ratio >= SPEEDUP_GOAL),
        Row(measure="  of which clustering (pipeline/cluster.py)",
            value=f"{clustering:.2f} s ({clustering / f.load_s:.0%})"),
        Row(measure="load stage without clustering (no goal of its own)",
            value=f"{n / without:,.0f} rows/s ({without:.2f} s)",
            baseline=f"{f.baseline_rows_per_s:,.0f} rows/s", ratio=x(f.baseline_s / without)),
        Row(measure="the same batch loaded again (changes nothing)", value=f"{f.reload_s:.2f} s"),
        Row(measure="stories formed", value=f"{f.stories:,} from {n:,} articles"),
    ]
    parts = ", ".join(f"{k.lstrip('_')} {v:.2f} s" for k, v in f.parts.items())
    return Section(
        key="load", title=f"Loading ({n:,} articles into DuckDB)", command=f"{COMMAND} "
        f"--articles {n}", rows=rows, seconds=time.perf_counter() - started,
        notes=[
            f"Part by part: {parts}.",
            "The goal is missed because of clustering, which runs inside the load step "
            "(it needs the stored articles) and is being rewritten in its own issue "
            "(pipeline/cluster.py is not touched here). What it costs: an article is compared "
            "with every article in the window that shares a term whose document frequency is "
            "at most max(20, 0.1 x window): with realistic text (Zipf-distributed words) that is "
            "hundreds of candidates per article, so the time grows about as n^1.9 (measured for "
            "issue 7: 1,000 "
            "articles 4 s, 5,000 articles ~105 s). The change wanted: `CANDIDATE_DF_SHARE` "
            "0.1 -> 0.02 (or candidates only through each article's ~10 rarest terms); on "
            "2,000 of these articles that is 12.5 s -> 4.7 s with the same stories (pairwise "
            "precision 0.928 -> 0.931, recall 1.000 against the generator's events).",
            "Everything else (feeds, entries, rejections, articles, tags, removed lines, "
            "stories, outbox) is DuckDB reading the staged JSON Lines itself; the row-by-row "
            "baseline pays DuckDB's Python binding per value (about 0.2 ms each: it tries to "
            "import pandas for every bound value).",
        ],
    )
