"""Python and DuckDB cut text into the same words and fold them the same way.

Checked over every Unicode code point, against the DuckDB that is installed.
"""

from __future__ import annotations

import re
import sys
import unicodedata

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.query import fold
from pipeline.query._words import (
    SQL_WORD_CHAR,
    WORD,
    lower,
    spaced_words,
    split_words,
    variants,
)

CODE_POINTS = [c for c in range(1, sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]


@pytest.fixture(scope="module")
def duckdb_view() -> tuple[list[str], list[bool]]:
    """DuckDB's lower() and word-character test of each code point, in order."""
    con = duckdb.connect()
    row = con.execute(
        "SELECT list(lower(c) ORDER BY i), list(regexp_matches(c, ?) ORDER BY i) FROM"
        " (SELECT i, chr(i::INTEGER) AS c FROM range(1, ?) t(i) WHERE i < 55296 OR i > 57343)",
        ["^" + SQL_WORD_CHAR + "$", sys.maxunicode + 1],
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_lowercasing_agrees_with_duckdb_on_every_code_point(
    duckdb_view: tuple[list[str], list[bool]],
) -> None:
    lowered, _ = duckdb_view
    assert len(lowered) == len(CODE_POINTS)
    differ = [
        hex(c) for c, theirs in zip(CODE_POINTS, lowered, strict=True)
        if lower(chr(c)) != theirs.replace("\u03c2", "\u03c3")
    ]
    assert differ == []


def test_word_characters_agree_with_duckdb_on_every_assigned_code_point(
    duckdb_view: tuple[list[str], list[bool]],
) -> None:
    _, is_word = duckdb_view
    word = re.compile(r"\w")
    differ = [
        hex(c) for c, theirs in zip(CODE_POINTS, is_word, strict=True)
        if (word.match(chr(c)) is not None) != theirs
        # Unassigned in Python's Unicode database; RE2's may be newer (documented limit).
        and unicodedata.category(chr(c)) != "Cn"
    ]
    assert differ == []


def test_only_dotted_capital_i_lowercases_to_more_than_one_code_point() -> None:
    longer = [hex(c) for c in CODE_POINTS if len(chr(c).lower()) != 1]
    assert longer == ["0x130"]


def test_folding_keeps_the_length_of_nfc_text() -> None:
    text = "İSTANBUL ΟΔΟΣ Straße ǅ ﬁ Zürich"
    assert len(lower(text)) == len(text)
    assert lower(text) == "istanbul οδοσ straße ǆ ﬁ zürich"


def test_fold_normalises_then_lowercases() -> None:
    assert fold("Zu\u0308rich") == "zürich"
    assert fold("ΟΔΟΣ") == fold("οδος") == "οδοσ"


def test_nfc_agrees_with_duckdb() -> None:
    samples = ["Zu\u0308rich", "e\u0301\u0323", "\u1100\u1161\u11a8", "\u212b", "a\u0323\u0302"]
    con = duckdb.connect()
    theirs = con.execute("SELECT list_transform(?, lambda s: nfc_normalize(s))", [samples])
    row = theirs.fetchone()
    assert row is not None
    assert row[0] == [unicodedata.normalize("NFC", s) for s in samples]


def test_words_and_inflections() -> None:
    assert WORD.findall(fold("covid-19, U.S. x_1")) == ["covid", "19", "u", "s", "x_1"]
    assert variants("box") == ("box", "boxs", "boxes")


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60)
       | st.lists(st.sampled_from(["a", "Zürich", " ", "_", "\u2019", "-", "\u00a0", "é", "1", "ǅ",
                                   "\u0301", "—", "x\u200bz", "\t", "中文", "\U0001d400"]))
       .map("".join))
def test_split_words_is_findall_of_word_characters(text: str) -> None:
    assert split_words(text) == WORD.findall(text)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.lists(st.sampled_from(["a", "ab", "Zürich", " ", "_", "\u2019", "-", "\u00a0", "é", "1",
                                 "\u0301", "—", "x\u200bz", "\t", "中文", "syria", "syr"]))
       .map("".join),
       st.sampled_from(["a", "ab", "syr", "syria", "z", "zü", "x", "中", "1", "_"]))
def test_spaced_words_finds_the_words_and_their_beginnings(text: str, stem: str) -> None:
    spaced = spaced_words(text)
    assert len(spaced) == len(text)
    assert spaced.split() == WORD.findall(text)
    # What _Unit.has_prefix relies on.
    assert (" " + stem in " " + spaced) == any(w.startswith(stem) for w in WORD.findall(text))
