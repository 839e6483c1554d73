"""The sentence splitter: abbreviations, initials, quotes, lines; spans are exact."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.content.sentences import clip, lead, split_sentences


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


def test_plain_sentences() -> None:
    assert sentences("Russia agreed. Israel disagreed! Why? Nobody knows.") == [
        "Russia agreed.",
        "Israel disagreed!",
        "Why?",
        "Nobody knows.",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Mr. Netanyahu met Dr. Smith in Moscow on Monday.",
        "The talks began on Feb. 26 and ended on Mar. 4 in Moscow.",
        "President Donald J. Trump spoke to reporters.",
        "The U.S. President spoke to U.K. officials.",
        "Troops from the U.S. military and U.N. peacekeepers left.",
        "Rates rose, e.g. in Turkey, to record highs.",
        "Sen. Graham and Gov. Kemp met Gen. Milley.",
    ],
)
def test_abbreviations_and_initials_do_not_split(text: str) -> None:
    assert sentences(text) == [text]


def test_abbreviation_at_the_end_of_a_sentence_splits_before_an_opener() -> None:
    text = "The company moved to the U.S. The move cost millions."
    assert sentences(text) == ["The company moved to the U.S.", "The move cost millions."]


def test_closing_quote_stays_with_its_sentence() -> None:
    text = "“We agreed on a common goal.” Netanyahu said so on Sunday."
    assert sentences(text) == ["“We agreed on a common goal.”", "Netanyahu said so on Sunday."]


def test_split_before_an_opening_quote() -> None:
    text = 'He spoke. "It was good," he said.'
    assert sentences(text) == ["He spoke.", '"It was good," he said.']


def test_lowercase_after_a_full_stop_does_not_split() -> None:
    text = "The plan... was not discussed further."
    assert sentences(text) == [text]


def test_each_line_is_its_own_sentence() -> None:
    text = (
        "Syria talks resume\nRussian President Vladimir Putin (R)\n\nThe talks resumed on Monday."
    )
    assert sentences(text) == [
        "Syria talks resume",
        "Russian President Vladimir Putin (R)",
        "The talks resumed on Monday.",
    ]


def test_a_hard_wrapped_sentence_is_joined() -> None:
    text = "The talks resumed on Monday after\na week of delays. Both sides agreed."
    assert sentences(text) == [
        "The talks resumed on Monday after\na week of delays.",
        "Both sides agreed.",
    ]


def test_russian_and_french() -> None:
    assert sentences("Путин провел переговоры. Стороны договорились.") == [
        "Путин провел переговоры.",
        "Стороны договорились.",
    ]
    assert sentences("La Syrie a protesté. Damas a saisi l'ONU.") == [
        "La Syrie a protesté.",
        "Damas a saisi l'ONU.",
    ]


def test_spans_are_trimmed_and_empty_text_has_none() -> None:
    assert split_sentences("") == []
    assert split_sentences("  \n \n") == []
    assert split_sentences("  One.  Two.  ") == [(2, 6), (8, 12)]


@given(st.text(alphabet=st.sampled_from(list("ab .!?\n\"'”UuSs")), max_size=80))
def test_spans_are_ordered_trimmed_and_cover_all_text(text: str) -> None:
    spans = split_sentences(text)
    covered: set[int] = set()
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        assert not text[start].isspace() and not text[end - 1].isspace()
        covered.update(range(start, end))
        previous_end = end
    # every character outside the spans is white space
    assert all(text[i].isspace() for i in range(len(text)) if i not in covered)


def test_the_lead_is_the_first_two_sentences_of_five_words_or_more() -> None:
    text = ("BREAKING\nPrice: 3 USD.\nRussia and Israel agreed on a plan today. "
            "Both sides signed it in Moscow on Monday. A third sentence follows here too.")
    spans = split_sentences(text)
    assert [text[slice(*spans[i])] for i in sorted(lead(text, spans))] == [
        "Russia and Israel agreed on a plan today.", "Both sides signed it in Moscow on Monday."]
    assert lead(text, spans, sentences=1) == {2}
    assert lead(text, spans, sentences=0) == set()
    assert lead(text, spans, min_words=1) == {0, 1}


def test_clip_collapses_white_space_and_marks_a_cut() -> None:
    assert clip("  Russia\n and\tIsrael  ") == "Russia and Israel"
    assert clip("word " * 100, limit=12) == "word word w…"  # 12 characters
    assert len(clip("x" * 1000)) == 400
    assert clip("x" * 400) == "x" * 400
