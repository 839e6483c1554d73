"""Rows a layout has to hold: words longer than any screen, right-to-left text, a
feed's and an alert's long error, each added to a loaded database."""

from __future__ import annotations

from pathlib import Path

from pipeline import store

LONG_WORD = "Supercalifragilisticexpialidocious" * 9  # 306 characters, no break
# Arabic ending in "!" and a Latin word: in a left-to-right paragraph the "!"
# lands at the left end of the line, before the sentence's first word.
RTL_TITLE = "انفجار في دمشق اليوم!"
LONG_ERROR = "HTTP 503 from https://feeds.example.org/" + "x" * 600
WIDE_STORY, RTL_STORY = "s-wide", "s-rtl"


def add_wide_rows(database: Path) -> None:
    """A story titled LONG_WORD (its text one long word too), a story titled
    RTL_TITLE, a failing feed whose address and error are one long word, and a
    failed alert with a long error."""
    with store.connect(database) as con:
        for story, title, text, lang in (
                (WIDE_STORY, LONG_WORD, LONG_WORD, "en"),
                (RTL_STORY, RTL_TITLE, "قالت الشرطة إن الانفجار وقع صباحا.", "ar")):
            con.execute(
                "INSERT INTO articles (id, url, canonical_url, source, title, text, language,"
                " published_at, topics, countries, people, story_id) VALUES (?, ?, ?, ?, ?, ?,"
                " ?, TIMESTAMPTZ '2019-03-04 10:00:00+00', [], [], [], ?)",
                [f"a-{story}", f"https://{story}.example.org/", f"https://{story}.example.org/",
                 f"Outlet {LONG_WORD[:40]}", title, text, lang, story])
            con.execute(
                "INSERT INTO stories VALUES (?, ?, TIMESTAMPTZ '2019-03-04 10:00:00+00',"
                " TIMESTAMPTZ '2019-03-04 10:00:00+00', 1, 1, ?)", [story, title, f"a-{story}"])
        con.execute(
            "INSERT INTO feeds (url, name, status, error_count, last_error, origin)"
            " VALUES (?, 'Failing feed', 'failing', 7, ?, 'added')",
            ["https://feeds.example.org/" + "a" * 300, LONG_ERROR])
        con.execute(
            "INSERT INTO alerts (rule, story_id, recipient, status, created_at, error, attempts)"
            " VALUES ('wide', ?, 'analyst@example.org', 'failed',"
            " TIMESTAMPTZ '2019-03-04 11:00:00+00', ?, 5)", [WIDE_STORY, LONG_ERROR])
