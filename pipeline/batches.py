"""Batches: an iterable cut into lists of at most ``size`` items, lazily.

``itertools.batched`` does this from Python 3.12 on (as tuples); newsmon runs
on 3.11. One definition for the process stage's page batches, the store's
multi-row INSERTs and the benchmarks' loads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

__all__ = ["batched"]

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items from ``items``, the last one shorter."""
    if size < 1:
        raise ValueError(f"a batch holds at least one item, not {size}")
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch
