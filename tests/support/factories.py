"""Build staged records and loaded databases for tests of load and alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.config import Settings, parse_settings
from pipeline.store import staging

T0 = datetime(2019, 2, 27, 12, tzinfo=UTC)

# One wire report (Reuters-style, ~90 words): the text syndicated copies share.
WIRE = (
    "The United States plans to keep about 400 troops in Syria after the bulk of American "
    "forces leave, roughly double the number the White House announced last week, a senior "
    "administration official said on Thursday. The troops would be split between a safe zone "
    "in the northeast, along the border with Turkey, and the al-Tanf garrison near the Iraqi "
    "and Jordanian borders, the official said, speaking on condition of anonymity. President "
    "Donald Trump stunned allies in December when he ordered a full pullout of the roughly "
    "2,000 U.S. troops in Syria."
)


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    data: dict[str, Any] = {"database": str(tmp_path / "news.duckdb"),
                            "staging_dir": str(tmp_path / "staging"),
                            "outbox_dir": str(tmp_path / "outbox")}
    data.update(overrides)
    return parse_settings(data)


def article(n: int, *, title: str, text: str, source: str, topics: tuple[str, ...] = (),
            countries: tuple[str, ...] = (), people: tuple[str, ...] = (),
            url: str | None = None, hours: float = 0.0, language: str = "en") -> dict[str, Any]:
    link = url or f"https://outlet{n}.example.org/story-{n}"
    from pipeline import ids

    canonical = ids.canonical_url(link)
    return {
        "id": ids.article_id(canonical), "entry_id": link, "feed_url": f"https://feed{n}.example",
        "url": link, "canonical_url": canonical, "source": source, "title": title, "text": text,
        "author": None, "published_at": T0 + timedelta(hours=hours),
        "fetched_at": T0 + timedelta(hours=hours, minutes=5), "language": language,
        "topics": list(topics), "countries": list(countries), "people": list(people),
        "evidence": [{"kind": "topic", "tag": t, "evidence": text[:80]} for t in topics],
        "removed": [{"position": 0, "line": "0 $", "rule": "donation-amount"}],
    }


def stage(settings: Settings, run_id: str, articles: list[dict[str, Any]],
          shard: str = "p000") -> None:
    directory = staging.run_dir(settings.staging, run_id)
    with staging.StagingWriter(directory, shard) as writer:
        for record in articles:
            writer.write("articles", record)
            writer.write("entries", {
                "feed_url": record["feed_url"], "id": record["entry_id"], "url": record["url"],
                "title": record["title"], "published_at": record["published_at"],
                "status": "stored", "attempts": 1, "article_id": record["id"]})


def skip_processing(settings: Settings, run_id: str) -> None:
    """Record that the run's process stage finished having processed nothing.

    For tests of the poll stage alone: they leave the polled entries
    unprocessed on purpose (so a later poll sees them as new). The load
    refuses a run whose polled entries no process stage finished, since it
    would save the feed's validators and lose those entries."""
    directory = staging.run_dir(settings.staging, run_id)
    staging.StagingWriter(directory, staging.process_shard(0), of=1).commit()
