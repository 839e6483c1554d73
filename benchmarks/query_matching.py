"""Matching speed of the query language: RuleSet (anchor prefilter) vs evaluating every rule.

Synthetic, deterministic data: a Zipf-distributed vocabulary of made-up words,
articles of a few hundred words, and topic-like rules (ORs of words and
phrases, prefixes, NEAR, title:, ~n, NOT, tag fields). The time per article
includes building its :class:`Document` (folding and tokenising the text).

    python -m benchmarks.query_matching [--articles 10000] [--rules 1000]

Prints a table and the ratio of RuleSet to the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.report import Row, Section, x
from pipeline.query import Document, RuleSet, compile, parse

COMMAND = ".venv/bin/python -m benchmarks.query_matching"

# 85 consonant-vowel syllables and a few closed ones: words of 1-4 syllables
# share beginnings about as often as English words do.
SYLLABLES = [c + v for c in "bcdfghjklmnprstvz" for v in "aeiou"] + [
    "an", "el", "or", "us", "ir", "ost", "ent", "ing", "ers", "ion"
]

COUNTRIES = ["SY", "IQ", "FR", "DE", "US", "GB", "RU", "UA", "CN", "IN", "IR", "IL", "TR", "LB",
             "JO", "EG", "SA", "YE", "AF", "PK"]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4)))] = None
    return list(words)


class Corpus:
    def __init__(self, seed: int, size: int = 30_000) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary(self.rng, size)
        # Zipf weights: a few very common words, a long tail of rare ones.
        self.cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(size)))

    def word(self) -> str:
        return self.rng.choices(self.words, cum_weights=self.cumulative)[0]

    def rare(self) -> str:
        # Rule words are specific (names, places, topic words), not the frequent ones.
        return self.words[self.rng.randint(2_000, len(self.words) - 1)]

    def text(self, n: int) -> str:
        out = []
        for i in range(n):
            w = self.word()
            out.append(w.capitalize() if i % 17 == 0 else w)
            out.append(self.rng.choice([" "] * 12 + [", ", ". ", "-", "; ", "\n"]))
        return "".join(out)

    def article(self) -> dict[str, Any]:
        rng = self.rng
        return {
            "title": self.text(rng.randint(6, 12)),
            "text": self.text(rng.randint(250, 700)),
            "source": f"{self.rare().capitalize()} News",
            "language": rng.choice(["en", "en", "fr", "de"]),
            "countries": tuple(rng.sample(COUNTRIES, rng.randint(0, 2))),
            "people": tuple(f"{self.rare()} {self.rare()}" for _ in range(rng.randint(0, 2))),
        }

    def rule(self) -> str:
        rng, rare = self.rng, self.rare

        def alternatives(n: int) -> str:
            return " OR ".join(
                f'"{rare()} {rare()}"' if rng.random() < 0.3 else rare() for _ in range(n)
            )

        kind = rng.random()
        if kind < 0.40:
            return alternatives(rng.randint(3, 8))
        if kind < 0.55:
            return f'"{self.word()} {rare()}" AND ({alternatives(2)})'
        if kind < 0.65:
            return f"{rare()}* OR {alternatives(2)}"
        if kind < 0.75:
            return f"({alternatives(3)}) NEAR/5 ({alternatives(2)})"
        if kind < 0.85:
            return f"title:({alternatives(3)}) OR {rare()}"
        if kind < 0.90:
            return f'"{rare()} {self.word()}"~3'
        if kind < 0.95:
            return f"({alternatives(4)}) NOT {self.word()}"
        return f"(lang:en AND {rare()}) OR country:SY OR person:{rare()}"


def timed(label: str, articles: Sequence[dict[str, Any]], match: Callable[[Document], Any],
          repeat: int) -> tuple[str, int, float]:
    # The best of a few runs, in CPU time of this process: the machine this runs
    # on is often busy with other work, which inflates wall-clock time and adds
    # noise (the same practice as timeit).
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for fields in articles:
            match(Document(**fields))
        best = min(best, time.process_time() - start)
    return label, len(articles), best


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    rules: int
    articles: int
    words: int  # per article, on average
    matched: float  # rules matched per article
    mismatches: int  # RuleSet against every rule, on the first 200 articles
    rates: dict[str, float]  # engine -> articles per CPU second
    seconds: dict[str, float]
    counts: dict[str, int]
    repeat: int


def measure(*, articles: int, rules: int, baseline_articles: int, seed: int,
            repeat: int) -> Figures:
    corpus = Corpus(seed)
    queries = {f"rule{i}": parse(corpus.rule()) for i in range(rules)}
    docs = [corpus.article() for _ in range(articles)]
    ruleset = RuleSet(queries)
    matchers = [(name, compile(q)) for name, q in queries.items()]

    def naive(doc: Document) -> set[str]:
        return {name for name, m in matchers if m.matches(doc)}

    sample = docs[:baseline_articles]
    mismatches = sum(ruleset.match(Document(**a)) != naive(Document(**a)) for a in sample[:200])
    matched = sum(len(ruleset.match(Document(**a))) for a in sample)

    rows = [
        timed("Document only (tokenise)", docs, lambda doc: None, repeat),
        timed("RuleSet.match", docs, ruleset.match, repeat),
        timed("every rule (baseline)", sample, naive, repeat),
    ]
    words = sum(len(a["text"].split()) + len(a["title"].split()) for a in docs)
    return Figures(
        rules=rules, articles=articles, words=words // len(docs),
        matched=matched / len(sample), mismatches=mismatches,
        rates={label: n / seconds for label, n, seconds in rows},
        seconds={label: seconds for label, _, seconds in rows},
        counts={label: n for label, n, _ in rows}, repeat=repeat,
    )


def main(argv: Sequence[str] | None = None) -> Figures:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--rules", type=int, default=1_000)
    parser.add_argument("--baseline-articles", type=int, default=1_000,
                        help="articles for the evaluate-every-rule baseline (it is slow)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best is kept")
    args = parser.parse_args(argv)
    f = measure(articles=args.articles, rules=args.rules,
                baseline_articles=args.baseline_articles, seed=args.seed, repeat=args.repeat)
    print(f"{f.rules} rules, {f.articles} articles (avg {f.words} words),"
          f" {f.matched:.1f} rules matched per article; "
          f"RuleSet vs baseline on 200 articles: {f.mismatches} differences")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; best of {args.repeat}")
    print(f"{'engine':28} {'articles':>9} {'CPU s':>8} {'articles/s':>11}")
    for label, rate in f.rates.items():
        print(f"{label:28} {f.counts[label]:9d} {f.seconds[label]:8.2f} {rate:11,.0f}")
    ratio = f.rates["RuleSet.match"] / f.rates["every rule (baseline)"]
    print(f"RuleSet / baseline: {ratio:.1f}x")
    return f


if __name__ == "__main__":
    main()


# -- the harness (python -m benchmarks) ----------------------------------------------------

GOAL = 5000.0
# (articles, rules, baseline articles, repeat)
_SIZES = {"tiny": (50, 50, 20, 1), "quick": (2000, 1000, 200, 1),
          "full": (10_000, 1000, 1000, 5)}


def section(size: str) -> Section:
    articles, rules, base, repeat = _SIZES[size]
    started = time.perf_counter()
    f = measure(articles=articles, rules=rules, baseline_articles=base, seed=1, repeat=repeat)
    ours, naive = f.rates["RuleSet.match"], f.rates["every rule (baseline)"]
    rows = [
        Row(measure=f"{rules:,} saved queries against {articles:,} articles: RuleSet.match",
            value=f"{ours:,.0f} articles/s",
            baseline=f"{naive:,.0f} articles/s (every rule on {base:,} articles)",
            ratio=x(ours / naive), goal=f">= {GOAL:,.0f} articles/s", met=ours >= GOAL),
        Row(measure="  of which building the Document (folding, tokenising)",
            value=f"{f.rates['Document only (tokenise)']:,.0f} articles/s alone"),
        Row(measure="RuleSet against every rule: differing answers (first 200 articles)",
            value=str(f.mismatches)),
    ]
    command = (f"{COMMAND} --articles {articles} --rules {rules} --baseline-articles {base} "
               f"--repeat {repeat}")
    return Section(
        key="query_matching", title="Matching saved queries", command=command, rows=rows,
        seconds=time.perf_counter() - started,
        notes=[
            f"Synthetic articles of {f.words} words on average (a Zipf vocabulary of made-up "
            f"words) and topic-like rules; {f.matched:.1f} rules match per article. Rates are "
            f"articles per CPU second of this process, the best of {repeat} runs, and include "
            "building each article's `Document`. The matching code (pipeline/query) belongs "
            "to the query-language issue and is not changed here.",
        ],
    )
