"""Shingle scoring of an extracted article body against a hand-made one.

The convention of the ScrapingHub article-extraction benchmark (its
``evaluate.py``), re-implemented so the figures we print are comparable with
the ones published upstream:

- a text is split into ``\\w+`` tokens; each run of 4 consecutive tokens is a
  shingle, counted as a multiset (a text shorter than 4 tokens is one shingle);
- per page, TP/FP/FN are the overlap, the surplus and the shortfall of the
  predicted multiset against the true one;
- precision and recall are averaged over pages (a page whose prediction is
  empty does not count for precision; one whose truth is empty does not
  count for recall), and F1 is the harmonic mean of the two averages, not the
  mean of per-page F1s.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import fmean

_TOKEN = re.compile(r"\w+")
SHINGLE_SIZE = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class PageScore:
    """Shingle counts for one page (raw counts, not normalised)."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float | None:
        """None when nothing was predicted: upstream leaves such pages out."""
        if self.tp + self.fp == 0:
            return None
        if self.fp == self.fn == 0:
            return 1.0
        return self.tp / (self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        """None when the truth is empty: upstream leaves such pages out."""
        if self.tp + self.fn == 0:
            return None
        if self.fp == self.fn == 0:
            return 1.0
        return self.tp / (self.tp + self.fn)


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    precision: float
    recall: float
    f1: float
    pages: int


def shingles(text: str, size: int = SHINGLE_SIZE) -> Counter[tuple[str, ...]]:
    """The multiset of overlapping ``size``-token shingles of ``text``."""
    tokens = _TOKEN.findall(text)
    if not tokens:
        return Counter()
    # Upstream keeps one short shingle for texts under `size` tokens, so a
    # two-word body still scores instead of vanishing.
    last = max(1, len(tokens) - size + 1)
    return Counter(tuple(tokens[i : i + size]) for i in range(last))


def score_page(*, truth: str, predicted: str, size: int = SHINGLE_SIZE) -> PageScore:
    """``size`` 1 is the bag of words (the metric of Bevendorff et al., 2023)."""
    true_sh, pred_sh = shingles(truth, size), shingles(predicted, size)
    tp = sum((true_sh & pred_sh).values())
    return PageScore(
        tp=tp,
        fp=sum(pred_sh.values()) - tp,
        fn=sum(true_sh.values()) - tp,
    )


def summarize(scores: Iterable[PageScore]) -> Summary:
    """Average precision and recall over pages; F1 of the two averages."""
    scores = list(scores)
    precisions = [p for s in scores if (p := s.precision) is not None]
    recalls = [r for s in scores if (r := s.recall) is not None]
    precision = fmean(precisions) if precisions else 0.0
    recall = fmean(recalls) if recalls else 0.0
    total = precision + recall
    f1 = 2 * precision * recall / total if total else 0.0
    return Summary(precision=precision, recall=recall, f1=f1, pages=len(scores))
