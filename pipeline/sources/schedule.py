"""When to poll a feed next: its own hints, how often it publishes, its errors.

A pure computation (no I/O, no clock: ``now`` is an argument), in five steps:

1. **Rhythm.** The median gap between the feed's most recent publication
   dates (the newest :data:`RHYTHM_WINDOW` distinct ones, at least
   :data:`RHYTHM_MIN_DATES`), halved: two polls per typical gap, so a new
   entry waits a quarter of a gap on average. The median, not the mean, so
   one old pinned entry does not make a busy feed look quiet. Without enough
   dates: the interval of the last poll that had them, else
   ``poll.interval_minutes``.
2. **The publisher's floors.** Never sooner than the feed or the server asks:
   RSS ``<ttl>`` (minutes, RSS 2.0 spec), ``sy:updatePeriod`` divided by
   ``sy:updateFrequency`` (RSS 1.0 Syndication module), ``Cache-Control:
   max-age`` (RFC 9111 §5.2.2.1) or, without it, ``Expires`` minus ``Date``
   (RFC 9111 §5.3). ``no-cache`` / ``no-store`` set no floor.
3. Clamped to ``poll.min_interval_minutes`` .. ``poll.max_interval_minutes``:
   this is the feed's *natural interval*, stored in
   ``feeds.poll_interval_minutes`` and reused when the feed answers 304.
4. **Errors** back off exponentially: natural * 2^(error_count / 2), so each
   hard error (2 points) doubles the interval and each soft one (1 point)
   multiplies it by √2. ``Retry-After`` (RFC 9110 §10.2.3, on 429 / 503) is a
   floor.
5. Clamped again: a feed that keeps failing is polled at the maximum
   interval, never dropped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from itertools import pairwise
from statistics import median

from pipeline.config import PollConfig

__all__ = ["RHYTHM_MIN_DATES", "RHYTHM_WINDOW", "Hints", "Schedule", "next_poll"]

RHYTHM_WINDOW = 20  # the newest dates say how the feed publishes now
RHYTHM_MIN_DATES = 3  # two gaps at least; one gap is an anecdote

# sy:updatePeriod values (RSS 1.0 Syndication module), in minutes.
_PERIODS = {"hourly": 60.0, "daily": 1440.0, "weekly": 10080.0, "monthly": 43200.0,
            "yearly": 525600.0}
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_FLOOR = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:[,=]|$)", re.IGNORECASE)
# Entries dated this far ahead are scheduled posts or a wrong clock, not a rhythm.
_FUTURE_SLACK = timedelta(hours=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Hints:
    """What one poll said about the feed's timing, as found (raw strings)."""

    ttl: str | None = None  # RSS <ttl>, minutes
    update_period: str | None = None  # sy:updatePeriod
    update_frequency: str | None = None  # sy:updateFrequency
    published: tuple[datetime, ...] = ()  # the entries' dates (aware)
    cache_control: str | None = None  # response headers
    expires: str | None = None
    date: str | None = None
    retry_after: float | None = None  # seconds, from a 429 / 503


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    next_poll_at: datetime
    interval_minutes: float  # the natural interval, before any error backoff


def next_poll(
    hints: Hints, *, now: datetime, options: PollConfig,
    previous_minutes: float | None = None, error_count: int = 0,
) -> Schedule:
    """When to poll next (see the module docstring for the rule).

    ``previous_minutes`` is the natural interval stored by the last poll; it
    stands in for the rhythm when this poll saw no dates (a 304, an error).
    ``error_count`` is the feed's weighted count of errors in a row.
    """
    base = _rhythm(hints.published, now)
    if base is None:
        base = previous_minutes or options.interval_minutes
    floors = [f for f in (_number(hints.ttl), _syndication(hints), _freshness(hints, now))
              if f is not None]
    natural = _clamp(max([base, *floors]), options)
    minutes = natural * 2 ** (min(max(error_count, 0), 40) / 2)
    if hints.retry_after is not None and hints.retry_after > 0:
        minutes = max(minutes, hints.retry_after / 60)
    minutes = _clamp(minutes, options)
    return Schedule(next_poll_at=now + timedelta(minutes=minutes), interval_minutes=natural)


def _clamp(minutes: float, options: PollConfig) -> float:
    return max(options.min_interval_minutes, min(minutes, options.max_interval_minutes))


def _rhythm(published: tuple[datetime, ...], now: datetime) -> float | None:
    dates = sorted({d for d in published if d <= now + _FUTURE_SLACK}, reverse=True)
    dates = dates[:RHYTHM_WINDOW]
    if len(dates) < RHYTHM_MIN_DATES:
        return None
    gaps = [(a - b).total_seconds() / 60 for a, b in pairwise(dates)]
    return median(gaps) / 2


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def _syndication(hints: Hints) -> float | None:
    if hints.update_period is None and hints.update_frequency is None:
        return None
    # The module's defaults: daily, once.
    period = _PERIODS.get((hints.update_period or "daily").strip().lower())
    if period is None:
        return None
    frequency = _number(hints.update_frequency) if hints.update_frequency else 1.0
    if frequency is None:
        return None
    return period / frequency


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _freshness(hints: Hints, now: datetime) -> float | None:
    """The response's freshness lifetime in minutes (RFC 9111 §4.2.1), if any."""
    control = hints.cache_control or ""
    if _NO_FLOOR.search(control):
        return None
    match = _MAX_AGE.search(control)
    if match:  # max-age wins over Expires (RFC 9111 §5.3)
        seconds = int(match.group(1))
        return seconds / 60 if seconds > 0 else None
    expires = _http_date(hints.expires)
    if expires is None:  # absent, or invalid such as "0": already stale
        return None
    origin = _http_date(hints.date) or now
    lifetime = (expires - origin).total_seconds()
    return lifetime / 60 if lifetime > 0 else None
