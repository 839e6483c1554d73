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

Two stages are timed, part by part: the cluster stage (``pipeline.store.plan.plan``:
story ids for the new articles against the stored window, and the alert
outbox's candidates, written beside the staging) and the load stage (one
transaction: feed state, entries, rejections, articles with their story ids,
tags, removed lines, stories, outbox rows). The load is also timed without a
plan (it then clusters inside its transaction, as when another run was loaded
in between). The baseline inserts the same articles' rows one ``INSERT`` at a
time (no clustering, no tags).
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
from pipeline import alert, ids, store
from pipeline.config import Settings, parse_settings
from pipeline.signal import cluster
from pipeline.store import load as load_module
from pipeline.store import plan as plan_module
from pipeline.store import staging
from pipeline.store.load import load

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
# A few saved searches, as a deployment has: the outbox is written in the load.
ALERT_RULES = [
    {"name": "syria", "query": "country:SY", "to": ["desk@example.org"]},
    {"name": "sanctions", "query": "topic:sanctions OR sanctions", "to": ["a@example.org"]},
    {"name": "elections-fr", "query": "topic:elections AND country:FR",
     "to": ["b@example.org", "c@example.org"]},
]


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
    """Times the stages' steps, by wrapping the functions ``plan`` and ``load`` call."""

    # (module, name, label): each function is wrapped where its caller looks it up.
    STEPS = ((load_module, "_load_feeds", "_load_feeds"),
             (load_module, "_load_entries", "_load_entries"),
             (load_module, "_load_rejected", "_load_rejected"),
             (plan_module, "_stage_articles", "_stage_articles"),
             (plan_module, "_make_plan", "_make_plan"), (plan_module, "cluster", "cluster"),
             (load_module, "use_plan", "_use_plan"),
             (load_module, "_insert_articles", "_insert_articles"),
             (load_module, "_upsert_stories", "_upsert_stories"))

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._saved: list[tuple[object, str, Callable[..., Any]]] = []

    def _wrap(self, owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)
        self._saved.append((owner, name, original))

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + (
                    time.perf_counter() - started)

        setattr(owner, name, timed)

    def __enter__(self) -> _Parts:
        for owner, name, label in self.STEPS:
            self._wrap(owner, name, label)
        self._wrap(alert, "candidates", "alert.candidates")
        self._wrap(alert, "queue", "alert.queue")
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)

    def table(self) -> dict[str, float]:
        """Each step's own time: ``_make_plan`` without the clusterer, ``_use_plan``
        without the planning it may do."""
        out = dict(self.seconds)
        if "_make_plan" in out:
            out["_make_plan"] -= out.get("cluster", 0.0)
        if "_use_plan" in out:
            out["_use_plan"] -= out.get("_make_plan", 0.0) + out.get("cluster", 0.0)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    articles: int
    stories: int
    plan_s: float
    load_s: float
    unplanned_s: float
    reload_s: float
    baseline_s: float
    together_s: float  # the cluster and load stages of one run
    plan_parts: dict[str, float]
    load_parts: dict[str, float]
    alerts: int
    repeat: int

    @property
    def ratio(self) -> float:
        return self.baseline_s / self.load_s

    @property
    def rows_per_s(self) -> float:
        return self.articles / self.load_s

    @property
    def baseline_rows_per_s(self) -> float:
        return self.articles / self.baseline_s


def _settings(root: Path) -> Settings:
    return parse_settings({"database": str(root / "news.duckdb"),
                           "staging_dir": str(root / "staging"),
                           "outbox_dir": str(root / "outbox"), "alerts": ALERT_RULES})


def measure(n: int, repeat: int = 3) -> Figures:
    """The cluster and load stages on ``n`` new articles, and the row-by-row
    baseline, each the best of ``repeat`` runs into a fresh database (a load
    takes a fraction of a second, and one run on a shared machine can be off
    by half; the best is how fast the code is, as timeit reports). The load
    without a plan runs once."""
    rows = records(n)
    plans: list[tuple[float, dict[str, float]]] = []
    loads: list[tuple[float, dict[str, float]]] = []
    together: list[float] = []  # cluster + load of one run
    reloads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="newsmon-bench-load-") as tmp:
        root = Path(tmp)
        for k in range(repeat):
            settings = _settings(root / f"run{k}")
            for run_id in ("run-1", "run-2"):
                stage(settings, run_id, rows)
            with store.connect(settings.database) as con:
                with _Parts() as plan_parts:
                    started = time.perf_counter()
                    plan_module.plan(con, settings, "run-1")
                    t_plan = time.perf_counter() - started
                with _Parts() as load_parts:
                    started = time.perf_counter()
                    first = load(con, settings, "run-1")
                    t_load = time.perf_counter() - started
                if load_parts.seconds.get("_make_plan"):
                    raise RuntimeError("the load planned again: the plan was not used")
                plan_module.plan(con, settings, "run-2")
                started = time.perf_counter()
                again = load(con, settings, "run-2")
                t_again = time.perf_counter() - started
            if first.articles_new != n or again.articles_new != 0:
                raise RuntimeError(f"loaded {first.articles_new} then {again.articles_new}")
            plans.append((t_plan, plan_parts.table()))
            loads.append((t_load, load_parts.table()))
            together.append(t_plan + t_load)
            reloads.append(t_again)
        with duckdb.connect(str(settings.database), read_only=True) as con:
            row = con.execute("SELECT count(*) FROM stories").fetchone()
        # The same load with no plan: it clusters inside its transaction.
        unplanned = _settings(root / "unplanned")
        stage(unplanned, "run-1", rows)
        with store.connect(unplanned.database) as con:
            started = time.perf_counter()
            load(con, unplanned, "run-1")
            t_unplanned = time.perf_counter() - started
        t_base = min(baseline(rows, root / f"baseline{k}.duckdb") for k in range(repeat))
    (t_plan, plan_table), (t_load, load_table) = (min(plans, key=lambda p: p[0]),
                                                  min(loads, key=lambda p: p[0]))
    return Figures(articles=n, stories=int(row[0]) if row else 0, plan_s=t_plan, load_s=t_load,
                   unplanned_s=t_unplanned, reload_s=min(reloads), baseline_s=t_base,
                   together_s=min(together),
                   plan_parts=plan_table, load_parts=load_table,
                   alerts=first.alerts_queued, repeat=repeat)


def print_table(f: Figures) -> None:
    print(f"{f.articles} articles, {f.stories} stories, {f.alerts} alerts queued")
    print(f"{'method':<40}{'seconds':>10}{'rows/s':>12}")
    print(f"{'row-by-row INSERT (baseline)':<40}{f.baseline_s:>10.2f}"
          f"{f.baseline_rows_per_s:>12,.0f}")
    print(f"{'cluster stage (plan)':<40}{f.plan_s:>10.2f}{f.articles / f.plan_s:>12,.0f}")
    for name, seconds in f.plan_parts.items():
        print(f"{'  ' + name:<40}{seconds:>10.2f}")
    print(f"{'load stage (with the plan)':<40}{f.load_s:>10.2f}{f.rows_per_s:>12,.0f}")
    for name, seconds in f.load_parts.items():
        print(f"{'  ' + name:<40}{seconds:>10.2f}")
    print(f"{'load stage without a plan':<40}{f.unplanned_s:>10.2f}"
          f"{f.articles / f.unplanned_s:>12,.0f}")
    print(f"{'load stage, same articles again':<40}{f.reload_s:>10.2f}{'-':>12}")
    print(f"load stage / baseline speed: {f.ratio:.1f}x (goal >= {SPEEDUP_GOAL:.0f}x)")


def main(argv: Sequence[str] | None = None) -> Figures:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of the stages and of the baseline; the best of each counts")
    args = parser.parse_args(argv)
    figures = measure(args.articles, args.repeat)
    print_table(figures)
    return figures


if __name__ == "__main__":
    main()


# -- the harness (python -m benchmarks) ----------------------------------------------------

_SIZES = {"tiny": (200, 1), "quick": (2000, 2), "full": (5000, 3)}


def section(size: str) -> Section:
    n, repeat = _SIZES[size]
    started = time.perf_counter()
    f = measure(n, repeat)
    clustering = f.plan_parts.get("cluster", 0.0)
    candidates = f.plan_parts.get("alert.candidates", 0.0)
    rows = [
        Row(measure=f"load stage, {n:,} new articles (one transaction, with the plan)",
            value=f"{f.rows_per_s:,.0f} rows/s ({f.load_s:.2f} s)",
            baseline=f"{f.baseline_rows_per_s:,.0f} rows/s (row-by-row INSERT)",
            ratio=x(f.ratio), goal=f">= {SPEEDUP_GOAL:.0f}x", met=f.ratio >= SPEEDUP_GOAL),
        Row(measure="  of which the alert outbox (rows from the planned candidates)",
            value=f"{f.load_parts.get('alert.queue', 0.0):.2f} s ({f.alerts:,} alerts)"),
        Row(measure=f"cluster stage, {n:,} new articles (no goal of its own)",
            value=f"{n / f.plan_s:,.0f} articles/s ({f.plan_s:.2f} s)"),
        Row(measure="  of which clustering (pipeline/signal/cluster.py `cluster`)",
            value=f"{clustering:.2f} s ({clustering / f.plan_s:.0%})"),
        Row(measure=f"  of which matching {len(ALERT_RULES)} saved searches "
                    "(`alert.candidates`)",
            value=f"{candidates:.2f} s ({candidates / f.plan_s:.0%})"),
        Row(measure="cluster + load stages together",
            value=f"{n / f.together_s:,.0f} rows/s ({f.together_s:.2f} s)",
            baseline=f"{f.baseline_rows_per_s:,.0f} rows/s",
            ratio=x(f.baseline_s / f.together_s)),
        Row(measure="load stage without a plan (clusters inside its transaction)",
            value=f"{n / f.unplanned_s:,.0f} rows/s ({f.unplanned_s:.2f} s)"),
        Row(measure="the same batch loaded again (changes nothing)", value=f"{f.reload_s:.2f} s"),
        Row(measure="stories formed", value=f"{f.stories:,} from {n:,} articles"),
    ]
    plan_parts = ", ".join(f"`{k}` {v:.2f} s" for k, v in f.plan_parts.items())
    load_parts = ", ".join(f"`{k}` {v:.2f} s" for k, v in f.load_parts.items())
    return Section(
        key="load", title=f"Loading ({n:,} articles into DuckDB)", command=f"{COMMAND} "
        f"--articles {n} --repeat {repeat}", rows=rows, seconds=time.perf_counter() - started,
        notes=[
            f"The cluster stage, the load stage, the two together and the row-by-row baseline "
            f"are each the best of {f.repeat} runs, each into a fresh database (a load takes a "
            "fraction of a second, and one run on this shared machine can be off by half: "
            "48.7x and 74.4x within the same hour, one run each); the load without a plan runs "
            "once. Runs after the first are in a warm process (modules imported); an Airflow "
            "task starts a fresh one and pays the imports once. Part by part (the functions "
            f"of `pipeline/store/load.py`, in the best runs): cluster stage {plan_parts}; "
            f"load stage {load_parts}.",
            "The cluster stage (`pipeline.store.plan.plan`, its own Airflow task before `load`) "
            "reads the stored window and this run's staged articles, and writes the story ids, "
            "the story titles and the outbox candidates beside the staging, tagged with a "
            "snapshot of what it read. The load uses them when the snapshot still matches and "
            "clusters inside its own transaction when not (the `without a plan` row), so the "
            "stored result is the same either way. Clustering is Python work per article "
            f"(each article is compared with the {cluster.CANDIDATE_STORIES} open stories "
            f"sharing the most weight of its {cluster.CANDIDATE_TERMS} highest tf-idf terms, "
            "plus the stories its near-duplicate bands find; the sentence embedding is "
            "computed there too, for each article that is not a copy; see "
            "`benchmarks.cluster_speed` for the clustering alone): that is what the cluster "
            "stage's time is.",
            "The load itself is DuckDB reading the staged JSON Lines (`read_json`): feeds, "
            "entries, rejections, articles, tags, removed lines, stories, and the outbox rows "
            "(one INSERT ... SELECT from the candidates against the alerts already stored). "
            "The row-by-row baseline pays DuckDB's Python binding per value (about 0.2 ms "
            "each: it tries to import pandas for every bound value).",
        ],
    )
