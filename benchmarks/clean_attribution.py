"""Where newsmon's bag-of-words F1 goes on a page set: per cleaner rule, extraction, survivors.

    .venv/bin/python -m benchmarks.clean_attribution [--sets NAME ...] [--half tune]
                                                     [--cache DIR] [--examples N]

Three tables, on one half of each page set (``tune`` = even pages by default,
as in :mod:`benchmarks.extraction_compare`, whose runner and cache it uses):

1. **Per cleaner rule** (:func:`pipeline.content.clean.clean` reports which
   rule removed each line): the tokens its removals took that the gold text
   has (*gold*) and that it lacks (*junk*), counted as a bag of words against
   the page's cleaned text (putting the rule's lines back: how many of their
   tokens would be true positives, how many false positives), and the change
   of the set's BoW F1 (averaged as the benchmark averages) if that rule alone
   had not fired. A rule whose *gold* exceeds its *junk* costs the article
   more than it saves; ``dF1 if off`` > 0 says the set scores better without it.
2. **Extraction against trafilatura's defaults**, before cleaning: the gold
   tokens trafilatura's defaults keep that newsmon's extraction lost (and
   where the lost lines sit in the defaults' text: before, between or after
   the lines both keep), and the junk tokens each keeps that the other does
   not.
3. **Survivors**: lines of newsmon's cleaned text that are not in the gold
   text (their words are not a run of the gold's words), grouped by shape
   (:func:`shape`), with their tokens and pages: the junk no rule caught.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.extraction_compare import NEWSMON, SETS, SetRun, run_set
from benchmarks.scoring import PageScore, summarize
from pipeline.models import Cleaned

_WORDS = re.compile(r"\w+")
BASELINE = "trafilatura defaults"
# survivor shapes, first match wins (see shape())
_DATE = re.compile(
    r"\b(?:\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}-\d{2}-\d{2}|(?:jan|feb|mar|apr|may|jun|jul|aug"
    r"|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}|\d{1,2}(?:st|nd|rd|th)?\s+"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?\s+\d{4})\b",
    re.IGNORECASE,
)
_BYLINE = re.compile(r"^(?:by|par|von|por|posted by|written by|автор)\s", re.IGNORECASE)


def bag(text: str) -> Counter[str]:
    """The benchmark's bag of words (case kept, as :mod:`benchmarks.scoring` counts)."""
    return Counter(_WORDS.findall(text))


def words_in(line: str, truth_words: str) -> bool:
    """Whether the line's words are a run of the gold text's words (``truth_words`` padded)."""
    words = " ".join(_WORDS.findall(line))
    return bool(words) and f" {words} " in truth_words


def padded_words(text: str) -> str:
    return f" {' '.join(_WORDS.findall(text))} "


def page_score(truth: Counter[str], predicted: Counter[str]) -> PageScore:
    tp = (truth & predicted).total()
    return PageScore(tp=tp, fp=predicted.total() - tp, fn=truth.total() - tp)


@dataclass(slots=True)
class RuleTally:
    lines: int = 0
    pages: set[int] = field(default_factory=set)
    gold: int = 0
    junk: int = 0
    examples: list[str] = field(default_factory=list)  # removed lines found in the gold


def rule_attribution(
    truths: Sequence[str], finals: Sequence[str], cleaned: Sequence[Cleaned | None]
) -> tuple[dict[str, RuleTally], dict[str, float], float]:
    """Per rule: tallies, the set's BoW F1 with that rule's lines put back; and the F1 as is."""
    truth_bags = [bag(t) for t in truths]
    final_bags = [bag(t) for t in finals]
    tallies: dict[str, RuleTally] = defaultdict(RuleTally)
    restored: dict[str, dict[int, Counter[str]]] = defaultdict(dict)
    for i, report in enumerate(cleaned):
        if report is None:
            continue
        truth_words = padded_words(truths[i])
        by_rule: dict[str, Counter[str]] = defaultdict(Counter)
        for removed in report.removed:
            tally = tallies[removed.rule]
            tally.lines += 1
            tally.pages.add(i)
            by_rule[removed.rule] += bag(removed.line)
            if words_in(removed.line, truth_words):
                tally.examples.append(removed.line)
        for rule, words in by_rule.items():
            base = page_score(truth_bags[i], final_bags[i])
            back = page_score(truth_bags[i], final_bags[i] + words)
            tallies[rule].gold += back.tp - base.tp
            tallies[rule].junk += back.fp - base.fp
            restored[rule][i] = final_bags[i] + words
    as_is = [page_score(t, f) for t, f in zip(truth_bags, final_bags, strict=True)]
    f1_as_is = summarize(as_is).f1
    f1_off = {}
    for rule, pages in restored.items():
        scores = [page_score(truth_bags[i], pages.get(i, final_bags[i]))
                  for i in range(len(truth_bags))]
        f1_off[rule] = summarize(scores).f1
    return dict(tallies), f1_off, f1_as_is


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractionGap:
    gold_lost: int  # gold tokens the baseline keeps and newsmon's extraction does not
    junk_avoided: int  # junk tokens the baseline keeps and newsmon's extraction does not
    junk_added: int  # junk tokens newsmon's extraction keeps and the baseline does not
    pages_losing: int  # pages losing more than 0.05 recall against the baseline
    # tokens of the baseline's gold lines newsmon lacks, by where they sit in the
    # baseline's text: before the first line both keep (a lead, headline or byline),
    # after the last (the tail), between (a paragraph dropped), or on a page where
    # the two share no line (another block)
    lost_where: dict[str, int]
    examples: list[tuple[int, str]]  # (page, a gold line of the baseline newsmon lacks)


def extraction_gap(
    truths: Sequence[str], extracted: Sequence[str], baseline: Sequence[str], examples: int
) -> ExtractionGap:
    gold_lost = junk_avoided = junk_added = losing = 0
    found: list[tuple[int, int, str]] = []
    where: Counter[str] = Counter()
    for i, (truth, ours, theirs) in enumerate(zip(truths, extracted, baseline, strict=True)):
        t, o, b = bag(truth), bag(ours), bag(theirs)
        gold_lost += ((t & b) - (t & o)).total()
        junk_avoided += ((b - t) - (o - t)).total()
        junk_added += ((o - t) - (b - t)).total()
        total = t.total() or 1
        if ((t & b).total() - (t & o).total()) / total > 0.05:
            losing += 1
        ours_words = padded_words(ours)
        truth_words = padded_words(truth)
        lines = theirs.splitlines()
        shared = [k for k, line in enumerate(lines) if words_in(line, ours_words)]
        for k, line in enumerate(lines):
            if words_in(line, truth_words) and not words_in(line, ours_words):
                found.append((len(_WORDS.findall(line)), i, line))
                if not shared:
                    kind = "another block"
                elif k < shared[0]:
                    kind = "before"
                elif k > shared[-1]:
                    kind = "after"
                else:
                    kind = "between"
                where[kind] += len(_WORDS.findall(line))
    found.sort(reverse=True)
    return ExtractionGap(gold_lost=gold_lost, junk_avoided=junk_avoided, junk_added=junk_added,
                         pages_losing=losing, lost_where=dict(where),
                         examples=[(i, line) for _, i, line in found[:examples]])


def shape(line: str) -> str:
    """A survivor's kind, by what it looks like (first match wins)."""
    words = _WORDS.findall(line)
    stripped = line.strip()
    if _DATE.search(stripped) and len(words) <= 12:
        return "date line (<= 12 words)"
    if _BYLINE.match(stripped) and len(words) <= 8:
        return "byline (<= 8 words)"
    if "©" in stripped or re.search(r"\bcopyright\b|\ball rights reserved\b", stripped, re.I):
        return "copyright"
    if stripped.endswith("?") and len(words) <= 20:
        return "question (<= 20 words)"
    if len(words) <= 3:
        return "1-3 words"
    ends = stripped.rstrip("\"'\u201d\u2019\u00bb)]*")[-1:] in ".!?…:"
    if len(words) <= 12 and not ends:
        return "4-12 words, no sentence end"
    if not ends:
        return "13+ words, no sentence end"
    if len(words) <= 12:
        return "<= 12 words, a sentence end"
    return "13+ words, a sentence end"


@dataclass(slots=True)
class ShapeTally:
    lines: int = 0
    tokens: int = 0
    pages: set[int] = field(default_factory=set)
    examples: Counter[str] = field(default_factory=Counter)


def survivors(truths: Sequence[str], finals: Sequence[str]) -> dict[str, ShapeTally]:
    tallies: dict[str, ShapeTally] = defaultdict(ShapeTally)
    for i, (truth, final) in enumerate(zip(truths, finals, strict=True)):
        if not truth.strip():
            continue
        truth_words = padded_words(truth)
        for line in final.splitlines():
            if not _WORDS.search(line) or words_in(line, truth_words):
                continue
            tally = tallies[shape(line)]
            tally.lines += 1
            tally.tokens += len(_WORDS.findall(line))
            tally.pages.add(i)
            tally.examples[re.sub(r"\d", "0", " ".join(line.split()))[:90]] += 1
    return dict(tallies)


def _half(items: Sequence[object], half: str) -> list[int]:
    if half == "all":
        return list(range(len(items)))
    return list(range(0 if half == "tune" else 1, len(items), 2))


def report(run: SetRun, half: str, examples: int) -> None:
    keep = _half(run.pages, half)
    truths = [run.pages[i].truth for i in keep]
    finals = [run.texts[NEWSMON][i] for i in keep]
    cleaned = [run.cleaned[i] for i in keep]
    extracted = [run.extracted[i] for i in keep]
    baseline = [run.texts[BASELINE][i] for i in keep]
    print(f"\n== {run.name}, {half} half: {len(keep)} pages ==")

    tallies, f1_off, f1_as_is = rule_attribution(truths, finals, cleaned)
    print(f"\n-- 1. per cleaner rule (BoW F1 as is {f1_as_is:.4f}) --")
    print(f"{'rule':<40} {'lines':>5} {'pages':>5} {'gold':>6} {'junk':>6} {'dF1 if off':>10}")
    for rule, tally in sorted(tallies.items(), key=lambda kv: kv[1].junk - kv[1].gold):
        print(f"{rule:<40} {tally.lines:>5} {len(tally.pages):>5} {tally.gold:>6} "
              f"{tally.junk:>6} {f1_off[rule] - f1_as_is:>+10.4f}")
    for rule, tally in sorted(tallies.items()):
        for line in tally.examples[:examples]:
            print(f"   gold removed by {rule}: {line[:100]!r}")

    gap = extraction_gap(truths, extracted, baseline, examples)
    print(f"\n-- 2. extraction (before cleaning) against {BASELINE} --")
    print(f"gold tokens {BASELINE} keeps and newsmon loses: {gap.gold_lost}")
    print(f"junk tokens {BASELINE} keeps and newsmon avoids: {gap.junk_avoided}")
    print(f"junk tokens newsmon keeps and {BASELINE} does not: {gap.junk_added}")
    print(f"pages losing > 0.05 of the gold against {BASELINE}: {gap.pages_losing}")
    print("tokens of its gold lines newsmon lacks, by place: "
          + ", ".join(f"{k} {v}" for k, v in sorted(gap.lost_where.items())))
    for i, line in gap.examples:
        print(f"   {run.pages[keep[i]].id[:12]:<12} {line[:100]!r}")

    print("\n-- 3. survivors: lines newsmon keeps that the gold lacks, by shape --")
    print(f"{'shape':<32} {'lines':>6} {'tokens':>7} {'pages':>6}")
    shapes = survivors(truths, finals)
    for name, shaped in sorted(shapes.items(), key=lambda kv: -kv[1].tokens):
        print(f"{name:<32} {shaped.lines:>6} {shaped.tokens:>7} {len(shaped.pages):>6}")
    for name, shaped in sorted(shapes.items(), key=lambda kv: -kv[1].tokens):
        for line, count in shaped.examples.most_common(examples):
            print(f"   {name[:20]:<20} {count:>3}x {line!r}")


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", choices=SETS, default=["dragnet-dev"])
    parser.add_argument("--half", choices=("tune", "held-out", "all"), default="tune")
    parser.add_argument("--examples", type=int, default=5, help="example lines per table row")
    parser.add_argument("--cache", type=Path, default=None,
                        help="the other systems' texts, as extraction_compare --cache")
    args = parser.parse_args(list(argv) if argv is not None else None)
    for name in args.sets:
        report(run_set(name, None, args.cache), args.half, args.examples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
