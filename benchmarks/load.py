"""Loading speed: the load stage (staged JSON Lines -> one DuckDB transaction)
against a baseline of row-by-row INSERTs measured in the same run, and the
time of loading the same articles again (a later pass that changes nothing).

    python -m benchmarks.load [--articles 5000]

Synthetic, deterministic articles spread over 30 days (so the clustering
window holds a realistic few hundred articles at a time), with tags,
evidence and removed lines like real ones. The load-stage time includes
clustering, stories, tags, removed lines and the outbox.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline import store
from pipeline.load import load

WORDS = ("government minister talks border troops forces agreement election market oil "
         "protest court ruling summit sanctions ceasefire refugees minister capital army "
         "parliament vote budget energy trade port flood storm drought harvest bank"
         ).split()  # noqa: SIM905
PLACES = ["SY", "IL", "RU", "FR", "DE", "US", "GB", "UA", "TR", "IR", "EG", "IN", "CN"]


def articles(n: int, seed: int = 7) -> list[dict[str, Any]]:
    from support.factories import article  # tests/support: the same records the tests load

    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(250)]
        text = "\n".join(" ".join(words[j:j + 25]).capitalize() + "." for j in range(0, 250, 25))
        out.append(article(
            i, title=" ".join(rng.choice(WORDS) for _ in range(8)).capitalize(), text=text,
            source=f"Outlet {i % 40}", topics=tuple(rng.sample(["syria", "sanctions",
                                                                "elections"], 1)),
            countries=tuple(rng.sample(PLACES, 2)), hours=i * 30 * 24 / n,
            url=f"https://outlet{i % 40}.example.org/{i}",
        ))
    return out


def baseline(records: list[dict[str, Any]], db: Path) -> float:
    """Row-by-row INSERT of the same articles (no clustering, no tags)."""
    with store.connect(db) as con:
        started = time.perf_counter()
        con.execute("BEGIN TRANSACTION")
        for r in records:
            con.execute(
                "INSERT INTO articles (id, url, canonical_url, source, feed_url, entry_id, title,"
                " text, published_at, fetched_at, language, topics, countries, people)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [r["id"], r["url"], r["canonical_url"], r["source"], r["feed_url"],
                 r["entry_id"], r["title"], r["text"], r["published_at"], r["fetched_at"],
                 r["language"], r["topics"], r["countries"], r["people"]])
        con.execute("COMMIT")
        return time.perf_counter() - started


def run(n: int) -> dict[str, float]:
    from support import factories

    records = articles(n)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = factories.settings(root)
        factories.stage(settings, "run-1", records)
        factories.stage(settings, "run-2", records)
        with store.connect(settings.database) as con:
            started = time.perf_counter()
            first = load(con, settings, "run-1")
            t_load = time.perf_counter() - started
            started = time.perf_counter()
            again = load(con, settings, "run-2")
            t_again = time.perf_counter() - started
            assert first.articles_new == n and again.articles_new == 0
        t_base = baseline(records, root / "baseline.duckdb")
    return {"articles": n, "load_s": t_load, "load_rows_per_s": n / t_load,
            "reload_s": t_again, "baseline_s": t_base, "baseline_rows_per_s": n / t_base,
            "ratio": t_base / t_load}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=5000)
    args = parser.parse_args(argv)
    r = run(args.articles)
    print(f"{'method':<34}{'seconds':>10}{'rows/s':>12}")
    print(f"{'row-by-row INSERT (baseline)':<34}{r['baseline_s']:>10.2f}"
          f"{r['baseline_rows_per_s']:>12.0f}")
    print(f"{'load stage (cluster+tags+upsert)':<34}{r['load_s']:>10.2f}"
          f"{r['load_rows_per_s']:>12.0f}")
    print(f"{'load stage, same articles again':<34}{r['reload_s']:>10.2f}{'-':>12}")
    print(f"load stage / baseline speed: {r['ratio']:.1f}x")
    return r


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    main()
