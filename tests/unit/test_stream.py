"""The pipelined run's totals: what a long continuous run keeps of its
batches; when it tries a failed load again."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any, cast

from pipeline.alert import SendResult
from pipeline.store.load import LoadResult
from pipeline.store.plan import PlanResult
from pipeline.stream import BatchResult, RunTotals, _nap, load_again_wait


def batch(i: int) -> BatchResult:
    return BatchResult(
        plan=PlanResult(run_id=f"run-{i}", already_loaded=False, articles=2, stories=1,
                        candidates=3),
        load=LoadResult(run_id=f"run-{i}", already_loaded=False, feeds=1, entries=2,
                        articles_new=2, rejected=1, stories_new=1, stories_touched=1,
                        alerts_queued=3),
        send=None)


def deep_size(root: object) -> int:
    """Bytes held by ``root`` and everything it refers to (each object once;
    types and modules are shared, not held)."""
    seen: set[int] = set()
    todo: list[Any] = [root]
    total = 0
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type) or type(obj).__name__ == "module":
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        todo.extend(gc.get_referents(obj))
    return total


def test_totals_sum_each_count_of_the_batches_and_send_rounds() -> None:
    totals = RunTotals()
    for i in range(3):
        totals.add_batch(batch(i))
    later = datetime(2026, 1, 2, tzinfo=UTC)
    totals.add_send(SendResult(sent=2, failed=1, pending=4, retry=1))
    totals.add_send(SendResult(sent=3, failed=0, pending=1, sending=2, next_attempt_at=later))
    assert totals.batches == 3
    assert (totals.plan.articles, totals.plan.stories, totals.plan.candidates) == (6, 3, 9)
    ld = totals.load
    assert (ld.feeds, ld.entries, ld.articles_new, ld.rejected, ld.stories_new,
            ld.stories_touched, ld.alerts_queued) == (3, 6, 6, 3, 3, 3, 9)
    # This run's emails summed; the outbox as the last round left it (the
    # email round 1 left to retry is among the pending, or was sent since).
    assert (totals.send.sent, totals.send.failed, totals.send.retry) == (5, 1, 0)
    assert (totals.send.pending, totals.send.sending) == (1, 2)
    assert totals.send.next_attempt_at == later


def test_an_email_greylisted_then_delivered_is_not_counted_as_undelivered() -> None:
    """A soak run of 20 minutes behind a greylisting server (451 to the first
    try) sent all 95 alerts, yet ended saying `95 sent, 0 failed, 0 pending`
    and `19 email(s) not delivered this round, left pending`, with exit code 1:
    each round's retries were summed over the run, so an email greylisted and
    delivered a minute later was counted twice. As `alerts send` counts them:
    sent, failed and pending disjoint, the retries those the last round left."""
    totals = RunTotals()
    totals.add_send(SendResult(sent=0, failed=0, pending=1, retry=1))  # 451
    totals.add_send(SendResult(sent=1, failed=0, pending=0))  # delivered after the backoff
    assert (totals.send.sent, totals.send.failed, totals.send.pending) == (1, 0, 0)
    assert totals.send.retry == 0 and totals.send.undelivered == 0
    # Still refused when the run stops: not delivered, as in `run --once`.
    totals.add_send(SendResult(sent=0, failed=0, pending=1, retry=1))
    assert totals.send.undelivered == 1


def test_totals_do_not_grow_with_the_number_of_batches() -> None:
    # Past 256 batches every count is an int object of its own (CPython caches
    # the small ones), so both hold the same objects of the same sizes.
    few, many = RunTotals(), RunTotals()
    for i in range(300):
        few.add_batch(batch(i))
        few.add_send(SendResult(sent=1, failed=1, pending=1, retry=1))
    for i in range(30_000):
        many.add_batch(batch(i))
        many.add_send(SendResult(sent=1, failed=1, pending=1, retry=1))
    assert many.batches == 30_000 and many.load.articles_new == 60_000
    assert deep_size(many) == deep_size(few)


def test_the_next_send_round_is_due_when_the_outbox_has_an_alert_due() -> None:
    """Continuous mode tries a send round between two polls only when the
    outbox the last round left has an alert due (a round opens the writer,
    which an analyst's read-only session holds up ~18 s)."""
    import time
    from datetime import timedelta

    from pipeline.stream import _Stream

    now, clock = datetime.now(UTC), time.monotonic()
    # Nothing pending or being sent: no round until a load queues one.
    assert _Stream._next_send(SendResult(sent=2, failed=0, pending=0)) is None
    # A retry in 90 s, a digest at its period's end, a lease that ends.
    retry = _Stream._next_send(SendResult(sent=0, failed=0, pending=1, retry=1,
                                          next_attempt_at=now + timedelta(seconds=90)))
    assert retry is not None and 85 <= retry - clock <= 95
    lease = _Stream._next_send(SendResult(sent=0, failed=0, pending=1, sending=1,
                                          next_attempt_at=now + timedelta(hours=1),
                                          reclaim_at=now + timedelta(seconds=30)))
    assert lease is not None and 25 <= lease - clock <= 35
    # A pending row due now (no next attempt), or one already past: at once.
    for left in (SendResult(sent=0, failed=0, pending=1),
                 SendResult(sent=0, failed=0, pending=1,
                            next_attempt_at=now - timedelta(seconds=5))):
        due = _Stream._next_send(left)
        assert due is not None and due - clock <= 1


def test_a_failed_load_is_tried_again_5_10_20_then_every_30_seconds() -> None:
    """The README's spacing of a continuous run's tries again, from the
    failure (0) on; no overflow after a week of tries."""
    assert [load_again_wait(n) for n in range(6)] == [5.0, 10.0, 20.0, 30.0, 30.0, 30.0]
    assert load_again_wait(20_000) == 30.0


class _Napping:
    """What ``_nap`` reads of a stream: a failed load's try due ``again`` s
    from now, and whether a load is under way."""

    def __init__(self, again: float, under_way: bool = False) -> None:
        self.freed, self.fatal = 0, None
        self.again, self.under_way = time.monotonic() + again, under_way

    def next_load_again(self) -> float | None:
        return self.again

    def load_under_way(self) -> bool:
        return self.under_way

    def send_backlog(self) -> bool:
        return False  # no send round left a backlog


def _napped(stream: _Napping, seconds: float, floor: float) -> float:
    started = time.monotonic()
    asyncio.run(_nap(cast(Any, stream), threading.Event(), seconds, floor, None))
    return time.monotonic() - started


def test_a_failed_loads_try_ends_the_nap_however_long_the_least_look_between_polls() -> None:
    """Before: the try waited for the least time between two looks for due
    feeds (``floor``: a minute with the default poll.min_interval_minutes), so
    the README's 5, 10, 20 and 30 s were a minute each."""
    assert _napped(_Napping(again=0.5), seconds=60, floor=60) < 5
    # Due already (its time is past): not at once, and not spinning.
    assert 0.9 < _napped(_Napping(again=-10), seconds=60, floor=60) < 5
    # A try under way: its time means nothing, the nap is the nap.
    assert _napped(_Napping(again=-10, under_way=True), seconds=3, floor=60) >= 2.9
