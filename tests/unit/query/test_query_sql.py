"""to_sql(): DuckDB expressions that select what the in-memory engine matches, safely."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from pipeline.query import Document, Near, SqlColumns, Term, compile, parse, to_sql

CORPUS: list[dict[str, Any]] = [
    {"title": "Syria talks", "text": "Foreign forces left Damascus.", "source": "BBC News",
     "language": "en", "topics": ["Syria"], "countries": ["SY"], "people": ["Bashar al-Assad"]},
    {"title": "The Syriac church", "text": "A forceful sermon in the churches.",
     "source": "Reuters", "language": "EN", "topics": [], "countries": [], "people": []},
    {"title": "Retrait", "text": "Les forces étrangères quittent Damas; ΟΔΟΣ, İstanbul.",
     "source": "Le Monde", "language": "fr", "topics": ["foreign-forces"], "countries": ["FR"],
     "people": ["Vladimir Putin", "Recep Erdoğan"]},
    {"title": unicodedata.normalize("NFD", "Zürich"), "text": "troops will soon withdraw",
     "source": "NZZ", "language": None, "topics": None, "countries": None, "people": None},
    {"title": None, "text": None, "source": None, "language": "de",
     "topics": ["energy"], "countries": ["DE"], "people": ["Olaf Scholz"]},
]

QUERIES = [
    "syria", "syria*", "force", "church", "title:syria", "text:syria", "source:news",
    '"foreign forces"', '"forces foreign"~0', "troops NEAR/2 withdraw", "withdraw NEAR/1 troops",
    "lang:en", "lang:e*", "NOT lang:en x OR damas", "topic:syria", "topic:foreign*", "country:sy",
    "country:s* OR country:d*", "person:assad", 'person:"putin recep"', "person:erdoğan",
    "zürich", "οδος", "istanbul", "forces NOT title:retrait", "damas OR damascus",
    '"forces étrangères"~2 OR scholz', "a* -syria", "(syria OR zürich) AND NOT source:bbc",
]


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE docs (id INTEGER, title VARCHAR, text VARCHAR, source VARCHAR,"
        " language VARCHAR, topics VARCHAR[], countries VARCHAR[], people VARCHAR[])"
    )
    connection.executemany(
        "INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [[i, *d.values()] for i, d in enumerate(CORPUS)],
    )
    yield connection
    connection.close()


def sql_ids(con: duckdb.DuckDBPyConnection, query: str) -> set[int]:
    where, params = to_sql(parse(query))
    return {r[0] for r in con.execute("SELECT id FROM docs WHERE " + where, params).fetchall()}


def memory_ids(query: str) -> set[int]:
    matcher = compile(parse(query))
    docs = [
        Document(
            title=d["title"] or "", text=d["text"] or "", source=d["source"] or "",
            language=d["language"], topics=d["topics"] or (), countries=d["countries"] or (),
            people=d["people"] or (),
        )
        for d in CORPUS
    ]
    return {i for i, doc in enumerate(docs) if matcher.matches(doc)}


@pytest.mark.parametrize("query", QUERIES)
def test_sql_selects_what_the_matcher_matches(con: duckdb.DuckDBPyConnection, query: str) -> None:
    assert sql_ids(con, query) == memory_ids(query)


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("syria", {0}),
        ("force", {0, 2}),
        ("church", {1}),
        ("zürich", {3}),
        ("NOT lang:en x OR damas", {2}),
        ("person:erdoğan", {2}),
        ("country:s* OR country:d*", {0, 4}),
    ],
)
def test_sql_results(con: duckdb.DuckDBPyConnection, query: str, ids: set[int]) -> None:
    assert sql_ids(con, query) == ids


def test_user_text_only_travels_as_parameters(con: duckdb.DuckDBPyConnection) -> None:
    nasty = "x'); DROP TABLE docs; --"
    for query in (f'"{nasty}"', "topic:\"x'); DROP TABLE docs; --\"", "person:o'brien"):
        where, params = to_sql(parse(query))
        assert "DROP" not in where and "brien" not in where
        assert any("brien" in str(p) or "drop" in str(p) for p in params)
        con.execute("SELECT count(*) FROM docs WHERE " + where, params).fetchall()
    assert con.execute("SELECT count(*) FROM docs").fetchone() == (len(CORPUS),)


def test_the_expression_combines_with_more_sql_and_parameters(
    con: duckdb.DuckDBPyConnection,
) -> None:
    where, params = to_sql(parse("force OR church"))
    rows = con.execute(
        "SELECT id FROM docs WHERE " + where + " AND id > ? ORDER BY id LIMIT ?", [*params, 0, 5]
    ).fetchall()
    assert rows == [(1,), (2,)]


def test_never_null_so_not_works_on_missing_values(con: duckdb.DuckDBPyConnection) -> None:
    where, params = to_sql(Term("syria"))
    values = con.execute(f"SELECT id, {where} FROM docs ORDER BY id", params).fetchall()
    assert [v for _, v in values] == [True, False, False, False, False]


def test_column_names_are_configurable_and_quoted() -> None:
    con = duckdb.connect()
    con.execute('CREATE TABLE a ("Head Line" VARCHAR, body VARCHAR, tags VARCHAR[])')
    con.execute("INSERT INTO a VALUES ('Syria', 'x', ['War']), ('Iraq', 'syria', [])")
    columns = SqlColumns(title="Head Line", text="a.body", topics="tags", source="'')--",
                         people="'')--", language="'')--", countries="'')--")
    where, params = to_sql(parse("title:syria"), columns)
    assert con.execute("SELECT count(*) FROM a WHERE " + where, params).fetchone() == (1,)
    where, params = to_sql(parse("syria topic:war"), columns)
    assert con.execute("SELECT count(*) FROM a WHERE " + where, params).fetchone() == (1,)
    with pytest.raises(ValueError, match="column"):
        SqlColumns(title="")


def test_long_proximity_compiles(con: duckdb.DuckDBPyConnection) -> None:
    # Counted repetition in one RE2 pattern failed here ("pattern too large").
    where, params = to_sql(Near(Term("foreign"), Term("damascus"), 1000))
    assert con.execute("SELECT id FROM docs WHERE " + where, params).fetchall() == [(0,)]
    assert sql_ids(con, '"quittent forces damas"~1000') == {2}


def test_an_or_of_words_is_one_pattern_per_field() -> None:
    where, params = to_sql(parse("syria OR damascus OR title:assad OR lang:en"))
    assert where.count("regexp_matches") == 3  # title and text for the bare words, title:assad
    assert sum("syria" in str(p) and "damascus" in str(p) for p in params) == 2
