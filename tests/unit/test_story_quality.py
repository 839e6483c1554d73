"""The story-quality benchmark's scores are right, and the clusterer holds its
measured figures on the public development sets (../shared/clustering-data)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from benchmarks.story_quality import (
    DATA,
    Labelled,
    agreement,
    bcubed,
    evaluate,
    half,
    joined_labels,
    labelled,
    pairwise,
    read_set,
)
from pipeline.config import Settings
from pipeline.signal.cluster import ClusterDoc


def item(id: str, story: str, language: str = "en", title: str = "") -> Labelled:
    doc = ClusterDoc(id=id, time=datetime(2020, 1, 1, tzinfo=UTC), title=title, text="",
                     source="s", language=language)
    return Labelled(doc=doc, story=story, language=language, split="dev")


def test_pairwise_and_bcubed_count_as_defined() -> None:
    items = [item("a", "x"), item("b", "x"), item("c", "x"), item("d", "y")]
    predicted = {"a": "1", "b": "1", "c": "2", "d": "2"}
    pw = pairwise(items, predicted)
    assert (pw.tp, pw.fp, pw.fn) == (1, 1, 2)
    p, r, _ = bcubed(items, predicted)
    # precision: a, b 1; c, d 1/2. recall: a, b 2/3; c 1/3; d 1.
    assert p == pytest.approx((1 + 1 + 0.5 + 0.5) / 4)
    assert r == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1) / 4)


def test_cross_language_pairs_are_counted_apart() -> None:
    items = [item("a", "x", "en"), item("b", "x", "fr"), item("c", "x", "en")]
    predicted = {"a": "1", "b": "1", "c": "2"}
    cross = pairwise(items, predicted, cross=True)
    same = pairwise(items, predicted)
    assert (cross.tp, cross.fn) == (1, 1) and (same.tp, same.fn) == (0, 1)


def test_agreement_is_one_for_the_same_partition_under_other_names() -> None:
    assert agreement({"a": "1", "b": "1", "c": "2"}, {"a": "x", "b": "x", "c": "y"}) == 1.0
    assert agreement({"a": "1", "b": "1", "c": "2"}, {"a": "x", "b": "y", "c": "y"}) == 0.0


def test_a_set_without_splits_is_halved_by_story_label() -> None:
    labels = [f"Q{i}" for i in range(200)]
    halves = [half(x) for x in labels]
    assert halves == [half(x) for x in labels]  # a function of the label alone
    assert set(halves) == {"train", "dev"} and 60 < halves.count("train") < 140


def test_labels_that_share_a_blurb_are_joined_and_no_others() -> None:
    items = [item("a", "Q1", "en", "Nobel prize to A"), item("b", "Q2", "en", "Nobel prize to A"),
             item("c", "Q2", "fr", "Prix Nobel"), item("d", "Q3", "fr", "Prix Nobel"),
             item("e", "Q4", "en", "Prix Nobel"), item("f", "Q5", "fr", "Nobel prize to A")]
    joined = joined_labels(items)
    assert joined["Q1"] == joined["Q2"] == joined["Q3"]
    assert len({joined["Q1"], joined["Q4"], joined["Q5"]}) == 3  # same text, other language


# Measured (README, "Stories on public labelled news"): ECB+ dev 0.907 / 0.883
# (0.736 / 0.919 before the novelty penalty traded recall for precision),
# GVC dev 1.000 / 0.765 / 0.867 (0.725 / 0.841 before a rare shared word slowed
# the decay). The floors sit just below so they cannot slide back.
# The ECB+ recall floor came down from 0.89 with that trade (recall -0.036,
# precision +0.171); the F1 floors (0.818 -> 0.895 on ECB+) hold the trade
# itself: a change that gives precision back for less recall fails them.
# The apart rule and the names' overlap (branch q13) raised ECB+ dev to
# 0.960 / 0.870 / 0.913: its precision and F1 floors went up with it.
# Session 18's gate on the names an article brings: 0.961 / 0.882 / 0.920,
# the recall and F1 floors went up with it. Session 19's plain difference
# (APART_FEW_HELD, APART_MANY_NEW): 1.000 / 0.908 / 0.952; every ECB+ floor went
# up with it, precision to the goal (0.97). Session 20's rare reach (RARE_REACH):
# GVC dev 1.000 / 0.804 / 0.891; its recall and F1 floors went up with it.
FLOORS = {"ecbplus": (0.97, 0.89), "gvc": (0.97, 0.80)}
F1_FLOORS = {"ecbplus": 0.94, "gvc": 0.88}


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_the_development_sets_hold_their_measured_figures(name: str) -> None:
    if not DATA.is_dir():
        pytest.skip(f"{DATA}: the public clustering data is not here")
    settings = Settings()
    items = labelled(name, read_set(name), settings)  # same language: no embeddings needed
    rows, _ = evaluate(name, items, settings.cluster.options(), "dev")
    precision, recall = FLOORS[name]
    assert rows[0].pairwise.precision >= precision
    assert rows[0].pairwise.recall >= recall
    assert rows[0].pairwise.f1 >= F1_FLOORS[name]
