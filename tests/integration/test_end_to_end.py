"""The whole pipeline over the seed site on 127.0.0.1, into a real DuckDB file,
with alerts delivered to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from pipeline.config import Settings, parse_settings
from pipeline.run import run_pass

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
TABLES = ("feeds", "entries", "articles", "article_tags", "removed_lines", "stories",
          "rejected", "alerts")


def make_settings(tmp_path: Path, site: Any, smtp: Any) -> Settings:
    return parse_settings({
        "database": str(tmp_path / "news.duckdb"),
        "feeds": [{"url": site.feed_url, "name": "Seed outlets"}],
        "alerts": [{"name": "syria-foreign-forces",
                    "query": "topic:syria AND topic:foreign-forces",
                    "to": ["analyst@example.org"]}],
        "smtp": {"url": smtp.url},
        "fetch": {"allow_private": [f"127.0.0.1:{site.port}"]},
        "process": {"workers": 1},
    })


def counts(db: Path) -> dict[str, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def test_one_pass_stores_tags_clusters_and_alerts_once(
    tmp_path: Path, seed_site: Any, smtp_server: Any
) -> None:
    settings = make_settings(tmp_path, seed_site, smtp_server)
    result = run_pass(settings)
    assert result.poll.feeds_failed == 0
    assert result.load.articles_new == 5

    with duckdb.connect(str(settings.database), read_only=True) as con:
        rows = con.execute("SELECT title, text, topics, story_id, source FROM articles").fetchall()
        story = con.execute("SELECT id, title, n_articles, n_sources FROM stories").fetchall()
        rejected = con.execute("SELECT url, reason FROM rejected").fetchall()
        alerts = con.execute("SELECT status, message_id FROM alerts").fetchall()
    assert rejected == []
    assert len(rows) == 5
    for title, _text, topics, _story, _source in rows:
        assert {"syria", "foreign-forces"} <= set(topics), title
    assert len({r[3] for r in rows}) == 1
    with duckdb.connect(str(settings.database), read_only=True) as con:
        span = con.execute("SELECT min(published_at), max(published_at) FROM articles").fetchone()
    # The dates the seed texts give: 26 February (the Israeli source) to the
    # reports of the 3 March cabinet meeting, more than four days apart.
    assert span is not None and span[0].date().isoformat() == "2019-02-26"
    assert (span[1] - span[0]).total_seconds() > 4 * 86400
    assert len(story) == 1 and story[0][2] == 5 and story[0][3] == 5
    assert len({r[4] for r in rows}) == 5  # five outlets

    # The junk is gone and every body sentence is kept.
    texts = [r[1] for r in rows]
    for expected in sorted((SEEDS / "expected").glob("*.txt")):
        body = [line for line in expected.read_text(encoding="utf-8").splitlines() if line]
        seed = (SEEDS / "articles" / expected.name).read_text(encoding="utf-8").splitlines()
        matching = [t for t in texts if body[0] in t]
        assert len(matching) == 1, f"{expected.name}: no stored article starts like it"
        stored = matching[0]
        for line in body:
            assert line in stored, f"{expected.name}: lost body line {line[:60]!r}"
        junk = [s.strip() for s in seed if s.strip() and s.strip() not in body]
        for line in junk:
            assert line not in stored.splitlines(), f"{expected.name}: kept junk {line!r}"

    # Exactly one email for the story, not one per outlet.
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]
    assert message["To"] == "analyst@example.org"
    assert message["Subject"] == story[0][1]
    assert alerts == [("sent", message["Message-ID"])]

    # A second pass (every feed polled again) adds no row and sends no email.
    before = counts(settings.database)
    again = run_pass(settings, force=True)
    assert again.load.articles_new == 0
    assert counts(settings.database) == before
    assert len(smtp_server.messages) == 1
