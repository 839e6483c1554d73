"""The next-poll rule (pipeline.sources.schedule), as a table of cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.config import PollConfig
from pipeline.sources.schedule import Hints, next_poll

NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
OPTIONS = PollConfig(interval_minutes=15, min_interval_minutes=5, max_interval_minutes=1440)


def every(minutes: float, n: int = 10, *, newest: datetime = NOW) -> tuple[datetime, ...]:
    return tuple(newest - i * timedelta(minutes=minutes) for i in range(n))


CASES: list[tuple[str, Hints, dict[str, float | int | None], float, float]] = [
    # (case, hints, previous_minutes / error_count, next poll in minutes, natural interval)
    ("nothing known: the configured interval", Hints(), {}, 15, 15),
    ("rhythm: median gap 2 h, halved", Hints(published=every(120)), {}, 60, 60),
    ("rhythm: busy feed clamped to the minimum", Hints(published=every(2)), {}, 5, 5),
    ("rhythm: a quiet feed clamped to the maximum", Hints(published=every(10 * 1440)), {},
     1440, 1440),
    ("rhythm: the median ignores one old pinned entry",
     Hints(published=(*every(60, 9), NOW - timedelta(days=400))), {}, 30, 30),
    ("rhythm: the newest 20 dates only (was daily, now hourly)",
     Hints(published=(*every(60, 20), *every(1440, 30, newest=NOW - timedelta(days=2)))), {},
     30, 30),
    ("rhythm: two dates are not enough", Hints(published=every(600, 2)), {}, 15, 15),
    ("rhythm: one date repeated is no rhythm", Hints(published=(NOW,) * 10), {}, 15, 15),
    ("rhythm: future dates are ignored",
     Hints(published=(*every(120, 5), NOW + timedelta(days=30))), {}, 60, 60),
    ("no dates: the previous natural interval", Hints(), {"previous_minutes": 240}, 240, 240),
    ("ttl is a floor", Hints(ttl="90", published=every(30)), {}, 90, 90),
    ("ttl below the rhythm changes nothing", Hints(ttl="10", published=every(120)), {}, 60, 60),
    ("ttl garbage is ignored", Hints(ttl="soon"), {}, 15, 15),
    ("ttl zero or negative is ignored", Hints(ttl="-5"), {}, 15, 15),
    ("ttl of a year is clamped", Hints(ttl="525600"), {}, 1440, 1440),
    ("sy: hourly, twice", Hints(update_period="hourly", update_frequency="2"), {}, 30, 30),
    ("sy: daily by default, 4 times", Hints(update_frequency="4"), {}, 360, 360),
    ("sy: weekly once is clamped", Hints(update_period="weekly"), {}, 1440, 1440),
    ("sy: unknown period ignored", Hints(update_period="fortnightly"), {}, 15, 15),
    ("sy: frequency zero ignored", Hints(update_period="hourly", update_frequency="0"), {},
     15, 15),
    ("max-age is a floor", Hints(cache_control="public, max-age=3600"), {}, 60, 60),
    ("max-age quoted", Hints(cache_control='max-age="7200"'), {}, 120, 120),
    ("max-age=0: no floor", Hints(cache_control="max-age=0"), {}, 15, 15),
    ("no-cache: no floor", Hints(cache_control="no-cache, max-age=3600"), {}, 15, 15),
    ("s-maxage is for shared caches", Hints(cache_control="s-maxage=3600"), {}, 15, 15),
    ("Expires minus Date", Hints(expires="Mon, 06 May 2024 14:00:00 GMT",
                                 date="Mon, 06 May 2024 12:00:00 GMT"), {}, 120, 120),
    ("Expires without Date: minus now", Hints(expires="Mon, 06 May 2024 13:00:00 GMT"), {},
     60, 60),
    ("Expires in the past: no floor", Hints(expires="Mon, 06 May 2024 11:00:00 GMT"), {},
     15, 15),
    ("Expires invalid ('0'): no floor", Hints(expires="0"), {}, 15, 15),
    ("max-age wins over Expires", Hints(cache_control="max-age=600",
                                        expires="Mon, 06 May 2024 20:00:00 GMT"), {}, 15, 15),
    ("one soft error: x sqrt 2", Hints(), {"error_count": 1}, 15 * 2 ** 0.5, 15),
    ("one hard error: x 2", Hints(), {"error_count": 2}, 30, 15),
    ("three hard errors: x 8", Hints(), {"error_count": 6}, 120, 15),
    ("backoff multiplies the feed's own interval", Hints(),
     {"error_count": 2, "previous_minutes": 60}, 120, 60),
    ("many errors: the maximum, never dropped", Hints(), {"error_count": 30}, 1440, 15),
    ("absurd error counts do not overflow", Hints(), {"error_count": 10**6}, 1440, 15),
    ("Retry-After is a floor", Hints(retry_after=7200), {"error_count": 1}, 120, 15),
    ("Retry-After below the backoff changes nothing", Hints(retry_after=60),
     {"error_count": 4}, 60, 15),
    ("Retry-After of a week is clamped", Hints(retry_after=7 * 86400), {"error_count": 1},
     1440, 15),
]


@pytest.mark.parametrize(("hints", "extra", "minutes", "natural"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_next_poll(hints: Hints, extra: dict[str, float | int | None], minutes: float,
                   natural: float) -> None:
    plan = next_poll(hints, now=NOW, options=OPTIONS, **extra)  # type: ignore[arg-type]
    assert (plan.next_poll_at - NOW).total_seconds() / 60 == pytest.approx(minutes)
    assert plan.interval_minutes == pytest.approx(natural)


def test_the_clamp_follows_the_configuration() -> None:
    narrow = PollConfig(interval_minutes=15, min_interval_minutes=20, max_interval_minutes=30)
    assert next_poll(Hints(), now=NOW, options=narrow).interval_minutes == 20
    assert next_poll(Hints(ttl="600"), now=NOW, options=narrow).interval_minutes == 30


def test_a_feed_scheduled_beyond_a_lowered_maximum_is_due_now() -> None:
    """A running `newsmon run` takes an edited `poll:`: a feed scheduled under
    a longer maximum is polled at once, not at the time the old one allowed."""
    from pipeline.sources.feeds import Feed
    from pipeline.sources.poll import due_feeds
    from pipeline.store import FeedState

    def state(url: str, minutes: float) -> FeedState:
        return FeedState(url=url, status="ok", etag=None, last_modified=None,
                         content_hash=None, error_count=0, last_success_at=None,
                         next_poll_at=NOW + timedelta(minutes=minutes))

    feeds = [Feed(url=u, name=None, origin="config") for u in ("https://a/", "https://b/")]
    states = {"https://a/": state("https://a/", 1440), "https://b/": state("https://b/", 50)}
    lowered = PollConfig(min_interval_minutes=5, max_interval_minutes=60)
    assert due_feeds(feeds, states, NOW, force=False) == []
    assert due_feeds(feeds, states, NOW, force=False, options=OPTIONS) == []
    assert due_feeds(feeds, states, NOW, force=False, options=lowered) == feeds[:1]
