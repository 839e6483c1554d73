"""Random queries over random corpora: the two engines, the prefilter and the printer agree.

The vocabulary is small on purpose (so random queries do match) and full of
near misses: inflections (force/forces/forceful/forc), prefixes
(syria/syrian/syriac), non-ASCII words in several spellings (NFD "Zürich",
capital Greek with a final sigma, "İstanbul"), separators that do and do not
split words ("-" splits, "_" joins).
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator
from typing import Any, cast

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.query import (
    TEXT_FIELDS,
    And,
    Document,
    Facet,
    Near,
    Not,
    Or,
    Phrase,
    Prefix,
    Query,
    QuerySyntaxError,
    RuleSet,
    Span,
    Term,
    compile,
    format_query,
    parse,
    to_sql,
)

# Query words (folded) and, for each, the ways a document may spell it.
SPELLINGS: dict[str, list[str]] = {
    "syria": ["syria", "Syria", "SYRIA"],
    "syrian": ["Syrian", "syrians"],
    "syriac": ["Syriac"],
    "force": ["force", "Force"],
    "forces": ["forces", "FORCES"],
    "forceful": ["forceful"],
    "forc": ["forc"],
    "box": ["box", "boxes", "boxs"],
    "talks": ["talks", "Talk"],
    "foreign": ["foreign", "Foreign"],
    "group": ["group", "grouping"],
    "zürich": ["Zürich", unicodedata.normalize("NFD", "Zürich"), "ZÜRICH"],
    "сирия": ["Сирия", "сирии"],
    "οδοσ": ["ΟΔΟΣ", "οδος", "οδοσ"],
    "istanbul": ["İstanbul", "istanbul"],
    "a": ["a", "A"],
    "x_1": ["x_1"],
    "19": ["19"],
}
WORDS = sorted(SPELLINGS)
INFIXES = ["ria", "orce", "ox", "ich", "ири"]
SEPARATORS = [" ", " ", " ", ", ", ". ", "-", "\n", " — ", "'", "_", " (", ") "]
SOURCES = ["Reuters", "Syria Times", "Zürich Post", "Forces News", "BOX-office", ""]
LANGUAGES = ["en", "EN", "fr", "pt-BR", "", None]
TOPICS = ["war", "Foreign-Forces", "energy"]
COUNTRIES = ["SY", "iq", "FR"]
PEOPLE = ["Vladimir Putin", "Bashar al-Assad", "Force Syria", "ΟΔΟΣ Talks", "Boxes Zürich"]


# Each example draws a few words and builds both its documents and its queries
# from them, so phrases and NEAR clauses match often enough to be tested.


def text(rng: random.Random, vocabulary: list[str], max_words: int) -> str:
    parts = []
    for _ in range(rng.randint(0, max_words)):
        parts.append(rng.choice(SPELLINGS[rng.choice(vocabulary)]))
        parts.append(rng.choice(SEPARATORS))
    return "".join(parts)


def document(rng: random.Random, vocabulary: list[str]) -> dict[str, Any]:
    return {
        "title": text(rng, vocabulary, 6),
        "text": text(rng, vocabulary, 16),
        "source": rng.choice([*SOURCES, text(rng, vocabulary, 3)]),
        "language": rng.choice(LANGUAGES),
        "topics": rng.sample(TOPICS, rng.randint(0, 2)),
        "countries": rng.sample(COUNTRIES, rng.randint(0, 2)),
        "people": [
            rng.choice([*PEOPLE, text(rng, vocabulary, 3)]) for _ in range(rng.randint(0, 3))
        ],
    }


# Queries are drawn as word-free shapes from one static strategy (building
# strategies per vocabulary made generation slower than the SQL), then filled
# in with the example's words: a word is an index, a prefix an index and a length.
WordRef = tuple[int, int | None]  # (word index, prefix length or None)
word_refs = st.tuples(st.integers(0, 4), st.none())
prefix_refs = st.tuples(st.integers(0, 6), st.integers(1, 4))
pattern_refs = st.one_of(word_refs, word_refs, prefix_refs)
phrase_refs = st.lists(pattern_refs, min_size=2, max_size=3).map(tuple)
simple_span_shapes = st.one_of(
    st.tuples(st.just("word"), st.one_of(word_refs, prefix_refs)),
    st.tuples(st.just("phrase"), phrase_refs),
)
span_shapes = st.one_of(
    simple_span_shapes,
    simple_span_shapes,
    st.tuples(st.just("or"), st.lists(simple_span_shapes, min_size=2, max_size=2)),
)
# Bare and title/text fields mostly: source and person strings are short.
fields = st.sampled_from(["any", "any", "any", "title", "text", *TEXT_FIELDS])
text_shapes = st.one_of(
    st.tuples(st.just("span"), fields, span_shapes),
    st.tuples(st.just("window"), fields, phrase_refs, st.integers(0, 3)),
    st.tuples(st.just("near"), fields, span_shapes, span_shapes, st.integers(0, 3)),
)
facets = st.sampled_from(
    [
        Facet("lang", "en"), Facet("lang", "fr"), Facet("lang", "pt-br"), Facet("lang", "pt", True),
        Facet("topic", "war"), Facet("topic", "foreign-forces"), Facet("topic", "for", True),
        Facet("country", "sy"), Facet("country", "iq"), Facet("country", "s", True),
    ]
)
shapes = st.recursive(
    st.one_of(text_shapes, text_shapes, text_shapes, st.tuples(st.just("facet"), facets)),
    lambda children: st.one_of(
        st.tuples(st.just("and"), st.lists(children, min_size=2, max_size=3)),
        st.tuples(st.just("or"), st.lists(children, min_size=2, max_size=3)),
        st.tuples(st.just("not"), children),
    ),
    max_leaves=4,
)


def build(shape: Any, vocabulary: list[str]) -> Query:
    """The query a shape describes, with the example's words."""

    def pattern(ref: WordRef) -> str:
        index, cut = ref
        if cut is None:
            return vocabulary[index % len(vocabulary)]
        # Some stems occur inside words but start none: a prefix must not match there.
        word = vocabulary[index % len(vocabulary)] if index < 5 else INFIXES[index + cut - 6]
        return word[:cut] + "*"

    def span(shape: Any, field: Any) -> Span:
        if shape[0] == "or":
            return Or(tuple(span(s, field) for s in shape[1]))
        if shape[0] == "phrase":
            return Phrase(tuple(pattern(r) for r in shape[1]), field)
        word = pattern(shape[1])
        return Prefix(word[:-1], field) if word.endswith("*") else Term(word, field)

    kind = shape[0]
    if kind == "span":
        return span(shape[2], shape[1])
    if kind == "window":
        return Phrase(tuple(pattern(r) for r in shape[2]), shape[1], shape[3])
    if kind == "near":
        return Near(span(shape[2], shape[1]), span(shape[3], shape[1]), shape[4])
    if kind == "facet":
        return cast(Query, shape[1])
    if kind == "not":
        return Not(build(shape[1], vocabulary))
    children = tuple(build(s, vocabulary) for s in shape[1])
    return And(children) if kind == "and" else Or(children)


@st.composite
def scenarios(
    draw: st.DrawFn, max_docs: int, max_queries: int
) -> tuple[list[dict[str, Any]], list[Query]]:
    vocabulary = draw(st.lists(st.sampled_from(WORDS), min_size=2, max_size=5, unique=True))
    # Documents come from a Random that Hypothesis seeds: drawing every word
    # through Hypothesis cost more than the SQL being tested.
    rng = draw(st.randoms(use_true_random=False))
    corpus = [document(rng, vocabulary) for _ in range(rng.randint(3, max_docs))]
    batch = draw(st.lists(shapes, min_size=max_queries, max_size=max_queries))
    return corpus, [build(shape, vocabulary) for shape in batch]


# -- helpers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


def load(con: duckdb.DuckDBPyConnection, corpus: list[dict[str, Any]]) -> None:
    con.execute(
        "CREATE OR REPLACE TABLE docs (id INTEGER, title VARCHAR, text VARCHAR, source VARCHAR,"
        " language VARCHAR, topics VARCHAR[], countries VARCHAR[], people VARCHAR[])"
    )
    con.executemany(
        "INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [i, d["title"], d["text"], d["source"], d["language"], d["topics"], d["countries"],
             d["people"]]
            for i, d in enumerate(corpus)
        ],
    )


def sql_ids(con: duckdb.DuckDBPyConnection, batch: list[Query]) -> list[set[int]]:
    """The ids each query selects, all queries in one statement (planning dominates)."""
    columns, params = [], []
    for query in batch:
        where, query_params = to_sql(query)
        columns.append(where)
        params += query_params
    rows = con.execute(f"SELECT id, {', '.join(columns)} FROM docs", params).fetchall()
    return [{row[0] for row in rows if row[k]} for k in range(1, len(batch) + 1)]


def memory_ids(corpus: list[dict[str, Any]], query: Query) -> set[int]:
    matcher = compile(query)
    return {i for i, d in enumerate(corpus) if matcher.matches(Document(**d))}


def positive(query: Query) -> bool:
    if isinstance(query, Not):
        return False
    if isinstance(query, And):
        return any(positive(c) for c in query.children)
    if isinstance(query, Or):
        return all(positive(c) for c in query.children)
    return True


# -- properties --------------------------------------------------------------------


@settings(max_examples=60, derandomize=True, deadline=None)
@given(scenarios(max_docs=10, max_queries=8))
def test_sql_engine_returns_the_articles_the_memory_engine_matches(
    con: duckdb.DuckDBPyConnection, scenario: tuple[list[dict[str, Any]], list[Query]]
) -> None:
    corpus, batch = scenario
    load(con, corpus)
    for query, ids in zip(batch, sql_ids(con, batch), strict=True):
        assert ids == memory_ids(corpus, query), (format_query(query), corpus)


@settings(max_examples=100, derandomize=True, deadline=None)
@given(scenarios(max_docs=6, max_queries=10))
def test_ruleset_matches_exactly_the_rules_that_match_one_by_one(
    scenario: tuple[list[dict[str, Any]], list[Query]],
) -> None:
    corpus, rules = scenario
    named = {f"r{i}": q for i, q in enumerate(rules)}
    ruleset = RuleSet(named)
    matchers = {name: compile(q) for name, q in named.items()}
    for fields in corpus:
        doc = Document(**fields)
        assert ruleset.match(doc) == {n for n, m in matchers.items() if m.matches(doc)}


@settings(max_examples=150, derandomize=True, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4, unique=True), shapes)
def test_format_query_parses_back_to_the_same_tree(vocabulary: list[str], shape: Any) -> None:
    query = build(shape, vocabulary)
    if positive(query):
        assert parse(format_query(query)) == query
    else:  # a query without a positive clause is refused, not silently changed
        with pytest.raises(ValueError, match="only negative"):
            parse(format_query(query))


# -- arbitrary text ------------------------------------------------------------------
# Whatever a user types: a query every engine can run, or a QuerySyntaxError
# with a position inside the text; never another exception (200 "(" once gave
# a RecursionError).

SYNTAX = [
    "(", ")", '"', "AND", "OR", "NOT", "-", "*", "~", "~3", "title:", "lang:", "topic:",
    "country:", "person:", "source:", "NEAR/3", "NEAR/", "syria", "Zürich", " ", " ", "\t",
    "\n", "a", "1", "é", "\u0301", "İ", "ß", "_", ":", "x*", "and", "NEAR/" + "9" * 20,
    "~" + "9" * 12, "\x00", "\U0001d518", "(" * 60, "NOT " * 30,
]
typed = st.one_of(st.text(max_size=40), st.lists(st.sampled_from(SYNTAX), max_size=25)
                  .map("".join))


@settings(max_examples=300, derandomize=True, deadline=None)
@given(typed)
def test_any_text_is_a_query_every_engine_runs_or_a_syntax_error(
    con: duckdb.DuckDBPyConnection, text: str
) -> None:
    try:
        query = parse(text)
    except QuerySyntaxError as exc:
        assert 0 <= exc.position <= len(exc.query)
        assert exc.message and "\n" not in exc.message
        return
    load(con, [document(random.Random(0), WORDS)])
    where, params = to_sql(query)
    con.execute(f"SELECT count(*) FROM docs WHERE {where}", params).fetchall()
    compile(query).matches(Document(title="Syria talks", text="forces in Zürich"))
    RuleSet({"typed": query})
    assert parse(format_query(query)) == query
