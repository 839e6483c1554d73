# Typographic apostrophes are the point here:
# ruff: noqa: RUF001
"""PhraseIndex: phrases found where a word starts, whatever is before them.

The index's regex starts with the non-word character before a phrase (the
text is searched behind one space); these cases pin where a phrase may start
and end: the start and end of the text, punctuation, Cyrillic, a phrase
right after another, and a phrase inside a word, which is none. A plain
reference (a lookbehind, as the pattern was written before) is compared on
generated text.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.signal.places import PhraseIndex, _normalise

PHRASES = ["Syria", "U.S.", "US", "South Sudan", "Sudan", "Россия", "России", "Côte d'Ivoire",
           "al-Assad", "May", "Kim Jong Un", "Kim", "Un"]
INDEX = PhraseIndex((p, p) for p in PHRASES)


def found(text: str) -> list[tuple[int, int, str]]:
    return [(h.start, h.end, h.payload) for h in INDEX.find(text)]


def test_a_phrase_at_the_start_and_at_the_end_of_the_text() -> None:
    assert found("Syria") == [(0, 5, "Syria")]
    assert found("Syria said") == [(0, 5, "Syria")]
    assert found("talks on Syria") == [(9, 14, "Syria")]


def test_a_phrase_after_punctuation_and_before_it() -> None:
    assert found("(Syria)") == [(1, 6, "Syria")]
    assert found("«Syria»,") == [(1, 6, "Syria")]
    assert found('"U.S." troops') == [(1, 5, "U.S.")]
    assert found("-Syria-") == [(1, 6, "Syria")]
    assert found("\nSyria\n") == [(1, 6, "Syria")]


def test_a_phrase_right_after_another_ending_in_punctuation() -> None:
    assert found("U.S.-Syria") == [(0, 4, "U.S."), (5, 10, "Syria")]
    # a phrase must end a word too: "U.S." before a letter is none, "Syria" after it is
    assert found("U.S.Syria") == [(4, 9, "Syria")]
    assert found("Syria,Sudan") == [(0, 5, "Syria"), (6, 11, "Sudan")]


def test_never_inside_a_word() -> None:
    assert found("Syrian") == []
    assert found("ProSyria") == []
    assert found("_Syria") == []
    assert found("2Syria") == []
    assert found("Sudanese") == []


def test_cyrillic_at_the_start_after_punctuation_and_inside_a_word() -> None:
    assert found("Россия и США") == [(0, 6, "Россия")]
    assert found("в (России)") == [(3, 9, "России")]
    assert found("Великороссия") == []


def test_the_longest_form_and_the_capitals_rule() -> None:
    assert found("South Sudan") == [(0, 11, "South Sudan")]
    assert found("south  Sudan") == [(7, 12, "Sudan")]  # "south" lacks its capital
    assert found("Kim Jong Un met Kim") == [(0, 11, "Kim Jong Un"), (16, 19, "Kim")]
    assert found("us and US") == [(7, 9, "US")]
    assert found("may May") == [(4, 7, "May")]
    assert found("Côte d’Ivoire") == [(0, 13, "Côte d'Ivoire")]


def _reference(text: str) -> list[tuple[int, int, str]]:
    """The same search with the lookbehind first, as the pattern was written before."""
    plain = re.compile(INDEX._pattern.pattern.replace(r"\W(?:", r"(?<!\w)(?:", 1))
    text = _normalise(text)
    lowered = text.lower()
    out = []
    pos = 0
    while (m := plain.search(lowered, pos)) is not None:
        start, end = m.span()
        hit = INDEX._accept(text, lowered, start, end) or INDEX._shorter(
            text, lowered, start, end)
        if hit is None:
            pos = start + 1
            continue
        out.append((hit.start, hit.end, hit.payload))
        pos = hit.end
    return out


PIECES = st.sampled_from([*PHRASES, *(p.lower() for p in PHRASES), "x", "Syrian", " ", "  ",
                          ".", ",", "(", ")", "-", "_", "2", "\n", "ß", "и", "’", "ё"])


@settings(max_examples=2000)
@given(st.lists(PIECES, max_size=12))
def test_the_same_hits_as_a_lookbehind(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert found(text) == _reference(text)
