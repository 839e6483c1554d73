"""How much of extraction's gap is in choosing a candidate, and can a learned chooser close it.

    .venv/bin/python -m benchmarks.extraction_choice [--limit N]

On both page sets of :mod:`benchmarks.extraction_compare`, every page gets the
three candidates that :func:`pipeline.content.extract.extract` may weigh
(:func:`pipeline.content.extract.evidence`: trafilatura's precision mode,
readability, trafilatura's balanced mode), each cleaned as the process stage
would. Printed, as bag-of-words F1 on the whole set, the tuning half (even
pages) and the held-out half (odd pages), and as 4-gram F1 on the whole set:

- each candidate on its own;
- ``newsmon``: the rule extract() applies (the primary unless readability
  disagrees, then :func:`~pipeline.content.extract.choose`), which must match
  the newsmon row of extraction_compare;
- two oracles that know the gold text and take, per page, the better of
  newsmon and readability, or the best of the three candidates: the ceiling
  of any chooser over these candidates;
- ``learned``: a logistic regression that decides, per page, between
  newsmon's choice and readability from features of the two texts
  (agreement, containment each way, length ratio, link-text share, the
  description's overlap, words per line, lines ending a sentence), trained
  on the even pages of both sets only, weighted by how much F1 the decision
  is worth. The held-out column says whether it generalises; extract() uses
  it only if it does (it did not: see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from benchmarks.extraction_compare import SETS, Page, load_set
from benchmarks.scoring import PageScore, score_page, summarize
from pipeline.content.clean import clean
from pipeline.content.extract import (
    DOUBT_BELOW,
    MIN_WORDS,
    Evidence,
    agreement,
    choose,
    evidence,
    refuse_form_lines,
    refuse_teaser_cards,
)

_WORD = re.compile(r"\w+")
_ENDS_SENTENCE = re.compile(r"[.!?\u2026\"'\u201d\u2019)]$")
# Decisions worth less than this much F1 are left out of training: noise.
MIN_GAIN = 0.01
L2 = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Scored:
    """One page: its gold text, newsmon's choice and each candidate, cleaned."""

    page: Page
    evidence: Evidence | None
    newsmon: str
    cleaned: dict[str, str]


def _clean(text: str, ev: Evidence, url: str) -> str:
    return clean(text, title=ev.title, url=url, site_name=ev.site_name).text if text else ""


def newsmon_choice(ev: Evidence) -> str:
    """The candidate text extract() keeps ("" when it rejects the page as too short)."""
    primary, second, third = ev.candidates
    chosen = primary
    if agreement(primary.text, second.text) < DOUBT_BELOW:
        chosen = choose([primary, second, third], links=ev.links, description=ev.description,
                        descriptions=ev.descriptions)
    text = refuse_teaser_cards(refuse_form_lines(chosen.text, ev.tree), ev.tree)
    return text if len(text.split()) >= MIN_WORDS else ""


def score_set(name: str, limit: int | None) -> list[Scored]:
    out = []
    for page in load_set(name, limit):
        url = page.url or "https://unknown.example/"
        ev = evidence(page.html, url=url)
        if ev is None:
            out.append(Scored(page=page, evidence=None, newsmon="", cleaned={}))
            continue
        cleaned = {c.name: _clean(c.text, ev, url) for c in ev.candidates}
        out.append(Scored(page=page, evidence=ev, newsmon=_clean(newsmon_choice(ev), ev, url),
                          cleaned=cleaned))
    return out


def _f1(score: PageScore) -> float:
    p, r = score.precision or 0.0, score.recall or 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def _page_f1(page: Page, text: str) -> float:
    return _f1(score_page(truth=page.truth, predicted=text, size=1))


# -- the learned chooser ---------------------------------------------------------------


def features(ours: str, theirs: str, ev: Evidence) -> list[float]:
    """Newsmon's choice (``ours``) against readability's text (``theirs``)."""
    a, b = _bag(ours), _bag(theirs)
    na, nb, shared = a.total(), b.total(), (a & b).total()
    description = _bag(ev.description or "")
    nd = description.total()
    ratio = math.log((nb + 1) / (na + 1))
    a_in_b, b_in_a = shared / na if na else 0.0, shared / nb if nb else 0.0
    agree = shared / max(na, nb) if max(na, nb) else 0.0
    return [
        agree, a_in_b, b_in_a, ratio,
        _link_share(ours, ev.links), _link_share(theirs, ev.links),
        ((description & a).total() - (description & b).total()) / nd if nd >= 5 else 0.0,
        math.log(na / max(1, len(ours.splitlines())) + 1),
        math.log(nb / max(1, len(theirs.splitlines())) + 1),
        _sentence_share(ours), _sentence_share(theirs),
        ratio * ratio, ratio * agree, a_in_b * b_in_a, math.log(na + 1),
    ]


def _bag(text: str) -> Counter[str]:
    return Counter(w.casefold() for w in _WORD.findall(text))


def _link_share(text: str, links: frozenset[str]) -> float:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    total = sum(len(line) for line in lines)
    return sum(len(line) for line in lines if line in links) / total if total else 1.0


def _sentence_share(text: str) -> float:
    lines = text.splitlines()
    return sum(1 for line in lines if _ENDS_SENTENCE.search(line)) / len(lines) if lines else 0.0


Matrix = npt.NDArray[np.float64]


def fit(x: Matrix, y: Matrix, weight: Matrix) -> Matrix:
    """Weighted logistic regression with an L2 penalty (not on the bias), by Newton's method."""
    x = np.hstack([x, np.ones((len(x), 1))])
    penalty = L2 * np.diag(np.r_[np.ones(x.shape[1] - 1), 0.0])
    beta = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ beta))
        gradient = x.T @ (weight * (p - y)) + penalty @ beta
        hessian = (x * (weight * p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if float(np.abs(step).max()) < 1e-9:
            break
    return beta


def learned_chooser(sets: dict[str, list[Scored]]) -> Callable[[Scored], str]:
    rows, labels, weights = [], [], []
    for scored in sets.values():
        for item in scored[0::2]:  # the tuning half only
            if item.evidence is None or not item.newsmon or not item.cleaned["readability"]:
                continue
            gain = (_page_f1(item.page, item.cleaned["readability"])
                    - _page_f1(item.page, item.newsmon))
            if abs(gain) < MIN_GAIN:
                continue
            rows.append(features(item.newsmon, item.cleaned["readability"], item.evidence))
            labels.append(1.0 if gain > 0 else 0.0)
            weights.append(abs(gain))
    x = np.array(rows)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    w = np.array(weights)
    beta = fit((x - mean) / scale, np.array(labels), w / w.mean())

    def decide(item: Scored) -> str:
        theirs = item.cleaned.get("readability", "")
        if item.evidence is None or not item.newsmon or not theirs:
            return item.newsmon
        z = float(np.r_[(np.array(features(item.newsmon, theirs, item.evidence)) - mean) / scale,
                        1.0] @ beta)
        return theirs if z > 0 else item.newsmon

    return decide


# -- the table ---------------------------------------------------------------------------


def _row(label: str, scored: Sequence[Scored], texts: Sequence[str]) -> str:
    cells = []
    for size in (1, 4):
        scores = [score_page(truth=s.page.truth, predicted=t, size=size)
                  for s, t in zip(scored, texts, strict=True)]
        halves = (scores, scores[0::2], scores[1::2]) if size == 1 else (scores,)
        cells += [f"{summarize(h).f1:.4f}" for h in halves]
    return f"  {label:<34} " + "  ".join(f"{c:>8}" for c in cells)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N pages per set")
    args = parser.parse_args(argv)
    sets = {name: score_set(name, args.limit) for name in SETS}
    decide = learned_chooser(sets)
    for name, scored in sets.items():
        print(f"\n== {name}: {len(scored)} pages ==")
        print(f"  {'':<34} {'BoW F1':>8}  {'tune':>8}  {'held-out':>8}  {'4-gram':>8}")

        def best(item: Scored, names: Sequence[str]) -> str:
            options = [item.newsmon, *(item.cleaned.get(n, "") for n in names)]
            return max(options, key=lambda text: _page_f1(item.page, text))

        for candidate in ("precision", "readability", "balanced"):
            texts = [s.cleaned.get(candidate, "") for s in scored]
            print(_row(f"{candidate} alone", scored, texts))
        print(_row("newsmon (extract's rule)", scored, [s.newsmon for s in scored]))
        print(_row("oracle: newsmon or readability", scored,
                   [best(s, ("readability",)) for s in scored]))
        print(_row("oracle: best of the three", scored,
                   [best(s, ("precision", "readability", "balanced")) for s in scored]))
        print(_row("learned: newsmon or readability", scored, [decide(s) for s in scored]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
