"""The benchmark's shingle scoring, on cases small enough to check by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# benchmarks/ is not part of the installed distribution; `python -m pytest`
# from the repo root finds it, the bare `pytest` entry point does not. (A
# `pythonpath = ["."]` in pyproject's pytest options would make this moot.)
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks.scoring import PageScore, score_page, shingles, summarize  # noqa: E402


def test_shingles_are_overlapping_runs_of_four_tokens() -> None:
    assert shingles("The cat, sat on the mat!") == {
        ("The", "cat", "sat", "on"): 1,
        ("cat", "sat", "on", "the"): 1,
        ("sat", "on", "the", "mat"): 1,
    }


def test_a_text_shorter_than_a_shingle_is_one_shingle() -> None:
    assert shingles("two words") == {("two", "words"): 1}
    assert shingles(" ... ") == {}


def test_shingles_are_a_multiset() -> None:
    # a b c d a b c d -> abcd, bcda, cdab, dabc, abcd
    assert shingles("a b c d a b c d")[("a", "b", "c", "d")] == 2


def test_identical_texts_score_one() -> None:
    score = score_page(truth="the cat sat on the mat", predicted="the cat  sat on the mat.")
    assert score == PageScore(tp=3, fp=0, fn=0)
    assert score.precision == score.recall == 1.0


def test_extra_text_costs_precision_only() -> None:
    # truth: 3 shingles; prediction adds "today" -> one extra shingle (on the mat today)
    score = score_page(truth="the cat sat on the mat", predicted="the cat sat on the mat today")
    assert score == PageScore(tp=3, fp=1, fn=0)
    assert score.precision == 0.75
    assert score.recall == 1.0


def test_missing_text_costs_recall_only() -> None:
    # truth 5 shingles (abcd twice), prediction abcd once
    score = score_page(truth="a b c d a b c d", predicted="a b c d")
    assert score == PageScore(tp=1, fp=0, fn=4)
    assert score.precision == 1.0
    assert score.recall == 0.2


def test_an_empty_prediction_has_no_precision_and_zero_recall() -> None:
    score = score_page(truth="the cat sat on the mat", predicted="")
    assert score.precision is None
    assert score.recall == 0.0


def test_summary_averages_pages_then_takes_the_harmonic_mean() -> None:
    pages = [
        PageScore(tp=3, fp=1, fn=0),  # P 0.75, R 1.0
        PageScore(tp=1, fp=0, fn=1),  # P 1.0,  R 0.5
        PageScore(tp=0, fp=0, fn=2),  # empty prediction: no precision, R 0.0
    ]
    summary = summarize(pages)
    assert summary.precision == pytest.approx((0.75 + 1.0) / 2)
    assert summary.recall == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    p, r = 0.875, 0.5
    assert summary.f1 == pytest.approx(2 * p * r / (p + r))
    assert summary.pages == 3


def test_summary_of_nothing_is_zero() -> None:
    summary = summarize([])
    assert (summary.precision, summary.recall, summary.f1, summary.pages) == (0.0, 0.0, 0.0, 0)


def test_the_bag_of_words_ignores_order_but_counts_repeats() -> None:
    # The same words reordered: no 4-gram in common, every word in common.
    truth, predicted = "the cat sat on the mat", "on the mat the cat sat"
    assert score_page(truth=truth, predicted=predicted, size=1) == PageScore(tp=6, fp=0, fn=0)
    assert score_page(truth=truth, predicted=predicted).tp < 3
    # "the" twice in the truth, once predicted: one word missing.
    assert score_page(truth=truth, predicted="the cat sat on mat", size=1) == PageScore(
        tp=5, fp=0, fn=1)
