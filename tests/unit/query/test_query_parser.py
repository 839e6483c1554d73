"""parse(): precedence, implicit AND, groups, fields, proximity, and the errors users see."""

from __future__ import annotations

import pytest

from pipeline.query import (
    MAX_DEPTH,
    And,
    Facet,
    Near,
    Not,
    Or,
    Phrase,
    Prefix,
    QuerySyntaxError,
    Term,
    format_query,
    parse,
)


def t(word: str, field: str = "any") -> Term:
    return Term(word, field)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a OR b AND c", Or((t("a"), And((t("b"), t("c")))))),
        ("a AND b OR c", Or((And((t("a"), t("b"))), t("c")))),
        ("NOT a AND b", And((Not(t("a")), t("b")))),
        ("a b OR c", Or((And((t("a"), t("b"))), t("c")))),
        ("(a OR b) c", And((Or((t("a"), t("b"))), t("c")))),
        ("a AND (b OR c)", And((t("a"), Or((t("b"), t("c")))))),
        ("a -b", And((t("a"), Not(t("b"))))),
        ("a -(b OR c)", And((t("a"), Not(Or((t("b"), t("c"))))))),
        ("a NOT NOT b", And((t("a"), Not(Not(t("b")))))),
        ("((a))", t("a")),
        ("a AND b AND c", And((t("a"), t("b"), t("c")))),
        ("a AND (b AND c)", And((t("a"), And((t("b"), t("c")))))),
    ],
)
def test_precedence_is_not_then_and_then_or(text: str, expected: object) -> None:
    assert parse(text) == expected


def test_adjacent_clauses_are_anded() -> None:
    assert parse('Damascus "working group"') == And(
        (t("damascus"), Phrase(("working", "group")))
    )


def test_words_are_folded_and_keywords_are_upper_case_only() -> None:
    assert parse("SYRIA and Zu\u0308rich") == And((t("syria"), t("and"), t("zürich")))
    assert parse('"AND"') == t("and")


def test_prefix_term_and_prefix_inside_a_phrase() -> None:
    assert parse("Syria*") == Prefix("syria")
    assert parse('"foreign forc*"') == Phrase(("foreign", "forc*"))


def test_a_term_with_separators_is_the_phrase_of_its_words() -> None:
    assert parse("covid-19") == Phrase(("covid", "19"))
    assert parse("U.S.") == Phrase(("u", "s"))
    assert parse('"Syria"') == t("syria")


def test_proximity() -> None:
    assert parse('"foreign forces"~10') == Phrase(("foreign", "forces"), "any", 10)
    assert parse("troops NEAR/5 withdraw*") == Near(t("troops"), Prefix("withdraw"), 5)
    assert parse('(pullout OR "pull out") NEAR/6 troops') == Near(
        Or((t("pullout"), Phrase(("pull", "out")))), t("troops"), 6
    )
    # NEAR binds tighter than NOT and AND.
    assert parse("NOT a NEAR/2 b c") == And((Not(Near(t("a"), t("b"), 2)), t("c")))


def test_fields() -> None:
    assert parse("title:Syria") == t("syria", "title")
    assert parse("TITLE:Syria") == t("syria", "title")
    assert parse("title:(Syria OR Iraq)") == Or((t("syria", "title"), t("iraq", "title")))
    assert parse('text:"foreign forces"~3') == Phrase(("foreign", "forces"), "text", 3)
    assert parse('person:"Vladimir Putin"') == Phrase(("vladimir", "putin"), "person")
    assert parse("source:bbc*") == Prefix("bbc", "source")
    assert parse("title:(a NEAR/3 b)") == Near(t("a", "title"), t("b", "title"), 3)
    assert parse("lang:EN") == Facet("lang", "en")
    assert parse("country:SY") == Facet("country", "sy")
    assert parse("country:s*") == Facet("country", "s", prefix=True)
    assert parse("topic:foreign-forces") == Facet("topic", "foreign-forces")
    assert parse('topic:"Middle East"') == Facet("topic", "middle east")
    assert parse("topic:(war OR -energy) a") == And(
        (Or((Facet("topic", "war"), Not(Facet("topic", "energy")))), t("a"))
    )
    assert parse("-lang:ru syria") == And((Not(Facet("lang", "ru")), t("syria")))


def test_the_shipped_topic_queries_parse() -> None:
    query = parse(
        "country:SY OR title:(Syria OR Syrian* OR Damascus OR Assad) OR "
        '((withdrawal OR "pull out") NEAR/6 (forces OR troops)) OR "иностранных войск"'
    )
    assert isinstance(query, Or)
    assert parse(format_query(query)) == query


def error(text: str) -> QuerySyntaxError:
    with pytest.raises(QuerySyntaxError) as info:
        parse(text)
    return info.value


@pytest.mark.parametrize(
    ("text", "column", "expected"),
    [
        ("", 1, 'a term, a "phrase" or "("'),
        ("   ", 1, 'a term, a "phrase" or "("'),
        ("Syria AND (", 12, 'a term, a "phrase" or "("'),
        ("Syria OR", 9, 'a term, a "phrase" or "("'),
        ("a AND AND b", 7, 'a term, a "phrase" or "("'),
        ("(a OR b", 8, '")" (to close the "(" opened at column 1)'),
        ("a OR b)", 7, 'no "(" is open'),
        ("()", 2, 'a term, a "phrase" or "("'),
        ('a "foreign forces', 18, 'a closing "'),
        ('"a b"~', 7, "a number of words"),
        ('"a b"~1001', 7, "from 0 to 1000"),
        ("a NEAR b", 7, "NEAR/n"),
        ("a NEAR/x b", 8, "NEAR/n"),
        ("foo:bar", 1, "one of title, text, source, person, lang, topic, country"),
        ("title: syria", 7, 'right after the colon'),
        ("title:-syria", 7, "- before the field"),
        ("title:(a OR text:b)", 13, 'a term, a "phrase" or "("'),
        ("title:a NEAR/3 b", 9, "the same field on both sides"),
        ("a NEAR/3 b NEAR/3 c", 12, "AND between two NEAR clauses"),
        ("(a AND b) NEAR/3 c", 1, "an OR of them"),
        ('"a b"~2 NEAR/3 c', 1, "an OR of them"),
        ("lang:en NEAR/3 c", 1, "an OR of them"),
        ("topic:(a NEAR/2 b)", 10, "AND, OR or NOT between values"),
        ("country:syria", 9, "ISO 3166-1 alpha-2"),
        ("lang:e!n", 6, "a language code"),
        ('"a b c d e f"~2', 1, 'at most 5 words in a "phrase"~n'),
        ("a *b", 3, "* directly after a word"),
        ("a & b", 3, "a term with a letter or a digit"),
        ("syria~2", 6, '"phrase"~n'),
        ("NOT iraq", 1, "a clause articles must match"),
        ("-iraq", 1, "a clause articles must match"),
        ("syria OR NOT iraq", 10, "a clause articles must match"),
        ("NOT a AND -b", 1, "a clause articles must match"),
    ],
)
def test_errors_point_at_the_problem_and_say_what_was_expected(
    text: str, column: int, expected: str
) -> None:
    exc = error(text)
    assert exc.column == column
    assert exc.position == column - 1
    assert expected in exc.expected
    assert f"at column {column}" in str(exc)


def test_error_text_shows_the_query_with_a_caret_under_the_problem() -> None:
    exc = error("Syria AND (")
    lines = str(exc).splitlines()
    assert lines[0] == (
        'unexpected end of query: expected a term, a "phrase" or "(" at column 12'
    )
    assert lines[1] == "  Syria AND ("
    assert lines[2] == "  " + " " * 11 + "^"


def test_error_echo_keeps_the_caret_aligned_across_newlines() -> None:
    lines = str(error("syria\nOR")).splitlines()
    assert lines[1:] == ["  syria OR", "          ^"]


def test_a_syntax_error_is_a_value_error() -> None:
    assert isinstance(error("("), ValueError)


def test_negation_is_fine_next_to_a_positive_clause() -> None:
    assert parse("syria AND (NOT iraq OR lebanon)") == And(
        (t("syria"), Or((Not(t("iraq")), t("lebanon"))))
    )
    assert parse("lang:en -sport") == And((Facet("lang", "en"), Not(t("sport"))))


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("(" * 200 + "a" + ")" * 200, 51),
        ("a " + "NOT " * 200 + "b", 3 + 4 * 50),
        ("a " + "-" * 200 + "b", 3 + 50),
        ("title:" + "(" * 60 + "a" + ")" * 60, 7 + 50),
        ("a " + "NOT (b " * 30 + ")" * 30, 3 + 7 * 25),
    ],
)
def test_nesting_deeper_than_the_limit_is_a_syntax_error_not_a_recursion_error(
    text: str, column: int
) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse(text)
    assert info.value.message == (
        f"nested too deeply (more than {MAX_DEPTH} levels of parentheses and NOT)")
    assert info.value.column == column


def test_nesting_up_to_the_limit_parses_and_prints_back() -> None:
    text = "a " + "(b " * (MAX_DEPTH - 1) + "NOT c" + ")" * (MAX_DEPTH - 1)
    query = parse(text)
    assert parse(format_query(query)) == query
    depth, node = 0, query
    while isinstance(node, And | Not):
        node = node.children[-1] if isinstance(node, And) else node.child
        depth += 1
    assert (depth, node) == (MAX_DEPTH + 1, t("c"))


@pytest.mark.parametrize(
    ("text", "echo", "caret"),
    [
        ("a " * 100 + ")", "…" + ("a " * 100 + ")")[-100:], 100),  # the problem at the end
        (") " + "a " * 100, ") " + "a " * 49 + "…", 0),  # at the start
        ("a " * 100 + ") " + "a " * 100, "…" + ("a " * 100 + ") " + "a " * 100)[150:250] + "…",
         51),
    ],
)
def test_a_long_query_is_echoed_around_the_problem(text: str, echo: str, caret: int) -> None:
    lines = str(error(text)).splitlines()
    assert lines[1] == "  " + echo
    assert lines[2] == "  " + " " * caret + "^"
    assert lines[1][2 + caret] in "()"
