"""The in-memory engine: words, phrases, proximity, fields, case and script, hits."""

from __future__ import annotations

import unicodedata

import pytest

from pipeline.query import Document, Hit, compile, parse


def matches(query: str, **fields: object) -> bool:
    return compile(parse(query)).matches(Document(**fields))  # type: ignore[arg-type]


def text_matches(query: str, text: str) -> bool:
    return matches(query, text=text)


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("syria", "Talks on Syria, today", True),
        ("syria", "Syria's army", True),
        ("syria", "the Syriac church", False),
        ("syria", "Assyria", False),
        ("force", "foreign forces", True),
        ("force", "a forceful speech", False),
        ("church", "three churches", True),
        ("forces", "one force", False),
        ("box", "boxes", True),
        ("syria*", "Syrians fled", True),
        ("syria*", "Syria", True),
        ("syria*", "Assyrian art", False),
        ("x_1", "see x_1 here", True),
        ("x", "see x_1 here", False),
        ("19", "covid-19 cases", True),
        ("covid-19", "COVID 19 cases", True),
        ("covid-19", "covid19 cases", False),
    ],
)
def test_terms_match_whole_words_and_their_s_es_forms(
    query: str, text: str, expected: bool
) -> None:
    assert text_matches(query, text) is expected


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ('"foreign forces"', "the foreign forces left", True),
        ('"foreign forces"', "foreign, forces", True),
        ('"foreign forces"', "forces foreign", False),
        ('"foreign forces"', "foreign armed forces", False),
        ('"foreign force"', "foreign forces", True),
        ('"foreign forc*"', "foreign forcefully", True),
        ('"working group"', "working_group", False),
    ],
)
def test_phrases_are_consecutive_words(query: str, text: str, expected: bool) -> None:
    assert text_matches(query, text) is expected


def test_a_phrase_does_not_run_from_the_title_into_the_text() -> None:
    assert not matches('"foreign forces"', title="Foreign", text="forces left")
    assert matches('"foreign forces"', title="Foreign forces", text="left")


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("troops NEAR/2 withdraw", "troops will soon withdraw", True),
        ("troops NEAR/2 withdraw", "withdraw all the troops", True),
        ("troops NEAR/1 withdraw", "troops will soon withdraw", False),
        ("troops NEAR/0 withdraw", "withdraw troops", True),
        ('"foreign forces" NEAR/1 leave', "leave, all foreign forces", True),
        ('"foreign forces" NEAR/1 leave', "leave now, all foreign forces", False),
        ("(pullout OR withdraw*) NEAR/3 troops", "troops are withdrawing", True),
        ("syria NEAR/3 syria", "Syria talks", False),
        ("syria NEAR/3 syria", "Syria and Syria", True),
        ('"a b" NEAR/3 "b c"', "a b c", False),
        ('"a b" NEAR/0 "b c"', "a b b c", True),
    ],
)
def test_near_counts_the_words_between_either_order(query: str, text: str, expected: bool) -> None:
    assert text_matches(query, text) is expected


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ('"foreign forces"~0', "forces foreign", True),
        ('"foreign forces"~1', "foreign armed forces", True),
        ('"foreign forces"~1', "forces were foreign", True),
        ('"foreign forces"~1', "foreign armed allied forces", False),
        ('"a b c"~1', "c x a b", True),
        ('"a b c"~1', "c x a y b", False),
        ('"a a"~2', "a b", False),
        ('"a a"~2', "a b a", True),
    ],
)
def test_a_phrase_with_slop_is_a_window_in_any_order(query: str, text: str, expected: bool) -> None:
    assert text_matches(query, text) is expected


def test_fields() -> None:
    doc = {"title": "Syria talks", "text": "Iraq", "source": "BBC News", "language": "EN",
           "topics": ("Foreign-Forces",), "countries": ("SY",),
           "people": ("Vladimir Putin", "Bashar al-Assad")}
    assert matches("title:syria", **doc)
    assert not matches("title:iraq", **doc)
    assert matches("text:iraq", **doc)
    assert not matches("text:syria", **doc)
    assert matches("source:news", **doc)
    assert matches('source:"bbc news"', **doc)
    assert not matches("source:syria", **doc)
    assert matches("lang:en", **doc)
    assert not matches("lang:e", **doc)
    assert matches("lang:e*", **doc)
    assert matches("topic:foreign-forces", **doc)
    assert not matches("topic:foreign", **doc)
    assert matches("topic:foreign*", **doc)
    assert matches("country:sy", **doc)
    assert matches("country:s*", **doc)
    assert not matches("country:iq", **doc)
    assert matches("person:putin", **doc)
    assert matches("person:assad", **doc)  # any of the names, not only the first
    assert matches('person:"vladimir putin"', **doc)
    assert not matches('person:"putin bashar"', **doc)  # a phrase stays within one name
    assert not matches("person:syria", **doc)


def test_missing_values_are_empty() -> None:
    assert matches("x NOT lang:en", text="x", language=None)
    assert not matches("x lang:en", text="x", language=None)


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("сирия", "\u0412 СИРИИ и Сирия"),
        ("СИРИЯ", "сирия"),
        ("damas", "À Damas, hier"),
        ("zürich", "in Zürich"),
        ("zürich", unicodedata.normalize("NFD", "in Zürich")),
        (unicodedata.normalize("NFD", "Zürich"), "in ZÜRICH"),
        ("istanbul", "İstanbul"),
        ("İstanbul", "istanbul"),
        ("οδος", "ΟΔΟΣ"),
        ("ΟΔΟΣ", "η οδος"),
        ("straße", "STRAßE"),
    ],
)
def test_case_and_script_insensitive(query: str, text: str) -> None:
    assert text_matches(query, text)


def test_non_ascii_word_boundaries() -> None:
    assert not text_matches("zürich", "Zürichsee")
    assert text_matches("zürich*", "Zürichsee")
    assert not text_matches("damas", "Damascène")


def test_boolean_structure() -> None:
    assert text_matches("syria NOT iraq", "syria")
    assert not text_matches("syria NOT iraq", "syria iraq")
    assert text_matches("syria OR iraq", "iraq")
    assert text_matches("syria AND (iraq OR lebanon)", "lebanon syria")
    assert not text_matches("syria AND (iraq OR lebanon)", "syria")


def hits(query: str, **fields: object) -> list[tuple[str, str]]:
    doc = Document(**fields)  # type: ignore[arg-type]
    strings = {"title": doc.title, "text": doc.text, "source": doc.source}
    return [(h.field, strings[h.field][h.start : h.end]) for h in compile(parse(query)).hits(doc)]


def test_hits_are_the_spans_of_the_positive_clauses_that_matched() -> None:
    assert hits("syria", title="Syria talks", text="In Syria, syria's") == [
        ("text", "Syria"), ("text", "syria"), ("title", "Syria")
    ]
    assert hits('"foreign forces" NOT iraq', text="Foreign  forces left") == [
        ("text", "Foreign  forces")
    ]
    text = "troops withdrawing and then other troops stay"
    assert hits("troops NEAR/1 withdraw*", text=text) == [
        ("text", "troops"), ("text", "withdrawing")
    ]
    assert hits('"a c"~1', text="a b c") == [("text", "a"), ("text", "c")]
    # An OR branch that did not match and a NOT contribute nothing.
    assert hits("(syria AND iraq) OR lebanon", text="syria lebanon") == [("text", "lebanon")]
    assert hits("source:bbc lang:en", source="BBC", language="en") == [("source", "BBC")]
    assert hits("syria", text="nothing here") == []


def test_hits_are_sorted_hit_records() -> None:
    found = compile(parse("b OR a")).hits(Document(text="a b", title="b"))
    assert found == [Hit("text", 0, 1), Hit("text", 2, 3), Hit("title", 0, 1)]


def test_hit_offsets_index_the_original_string_even_when_it_is_not_nfc() -> None:
    text = "Zu\u0308rich und Zu\u0308rich"
    found = compile(parse("zürich")).hits(Document(text=text))
    assert [text[h.start : h.end] for h in found] == ["Zu\u0308rich", "Zu\u0308rich"]
    assert [(h.start, h.end) for h in found] == [(0, 7), (12, 19)]


def test_a_document_keeps_the_fields_it_was_given() -> None:
    doc = Document(title="T", text="x", source="S", language=None, topics=["a"],
                   countries=("SY",), people=["P"])
    assert (doc.title, doc.text, doc.source, doc.language) == ("T", "x", "S", "")
    assert (doc.topics, doc.countries, doc.people) == (("a",), ("SY",), ("P",))
