"""An article whose every field is an attack, stored as its own story."""

from __future__ import annotations

from pathlib import Path

from pipeline import store

HOSTILE_TITLE = '<script>alert("t")</script><img src=x onerror=alert(1)>'
HOSTILE_SOURCE = '<b onmouseover="alert(2)">Evil Outlet</b>'


def add_hostile_story(database: Path) -> str:
    """An article whose every field is an attack, as its own story; returns the story id."""
    with store.connect(database) as con:
        con.execute(
            "INSERT INTO articles (id, url, canonical_url, source, title, text, language,"
            " published_at, topics, countries, people, story_id) VALUES ('evil', ?, ?, ?, ?, ?,"
            " 'en', TIMESTAMPTZ '2019-03-05 10:00:00+00', ['<i>topic</i>'], ['SY'],"
            " ['<u>who</u>'], 's-evil')",
            ["javascript:alert(3)", "javascript:alert(3)", HOSTILE_SOURCE, HOSTILE_TITLE,
             "Body with </p><script>alert(4)</script> and {{ 7*7 }}."])
        con.execute("INSERT INTO removed_lines VALUES ('evil', 0, '<iframe src=//x>', 'junk')")
        con.execute(
            "INSERT INTO stories VALUES ('s-evil', ?, TIMESTAMPTZ '2019-03-05 10:00:00+00',"
            " TIMESTAMPTZ '2019-03-05 10:00:00+00', 1, 1, 'evil')", [HOSTILE_TITLE])
    return "s-evil"
