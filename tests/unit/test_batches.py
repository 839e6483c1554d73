"""batched: lists of at most `size` items, in order, lazily."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.batches import batched


def test_items_in_order_the_last_batch_shorter() -> None:
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([1, 2], 2)) == [[1, 2]]
    assert list(batched([], 5)) == []


def test_reads_only_what_the_batch_needs() -> None:
    taken: list[int] = []

    def numbers() -> Iterator[int]:
        for n in range(100):
            taken.append(n)
            yield n

    first = next(batched(numbers(), 4))
    assert first == [0, 1, 2, 3]
    assert taken == [0, 1, 2, 3]


def test_a_batch_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one item, not 0"):
        next(batched([1], 0))
