"""Unrelated reports that share a language but no event."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from pipeline.signal.cluster import ClusterDoc

T0 = datetime(2019, 2, 27, tzinfo=UTC)


def made_up_reports(n: int, *, seed: int = 25, vocabulary: int = 3000) -> list[ClusterDoc]:
    """``n`` unrelated reports in a made-up language (the background knows none
    of its words): 150 to 400 words each, drawn from one Zipf distribution over
    ``vocabulary`` words with English function words between them, a few an
    hour. What one report shares with another is the language, not an event."""
    rng = random.Random(seed)
    syllables = [c + v for c in "bcdfghjklmnprstvz" for v in "aeiou"]
    words: dict[str, None] = {}
    while len(words) < vocabulary:
        words["".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))] = None
    pool = list(words)
    weights = [1 / (rank + 1) for rank in range(vocabulary)]
    function = "the of and to in a for on that with as by at from is was has".split()  # noqa: SIM905
    docs, when = [], T0
    for i in range(n):
        body = [w if rng.random() < 0.6 else f"{rng.choice(function)} {w}"
                for w in rng.choices(pool, weights, k=rng.randint(150, 400))]
        text = " ".join(f"{' '.join(body[j:j + 15]).capitalize()}."
                        for j in range(0, len(body), 15))
        when += timedelta(minutes=rng.uniform(0, 6))
        docs.append(ClusterDoc(id=f"r{i:04d}", time=when, source=f"feed-{i % 7}", text=text,
                               title=" ".join(rng.choices(pool, weights, k=7)).capitalize()))
    return docs
