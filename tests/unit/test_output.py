"""write_rows(): one rule per value type for the table, CSV and JSON lines."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import duckdb
import pytest

from pipeline.output import JsonValue, OutputError, counted, jsonable, typed_rows, write_rows


def written(columns: list[str], rows: list[list[object]], fmt: str) -> str:
    out = io.StringIO()
    write_rows(columns, rows, fmt, out)  # type: ignore[arg-type]
    return out.getvalue()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (math.nan, None), (math.inf, None), (-math.inf, None), (1.5, 1.5),
        (Decimal("NaN"), None), (Decimal("2.50"), 2.5), (True, True), (7, 7),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05+00:00"),
        (date(2026, 1, 2), "2026-01-02"), (timedelta(days=1), 86400.0),
        (UUID(int=1), "00000000-0000-0000-0000-000000000001"), (b"\x00a\\\xff", "\\x00a\\x5C\\xFF"),
        ([1.0, math.nan, ["a", math.inf]], [1.0, None, ["a", None]]),
        ({"k": math.nan, 1: (1, 2)}, {"k": None, "1": [1, 2]}),
    ],
)
def test_jsonable_gives_plain_finite_json_data(value: object, expected: object) -> None:
    assert jsonable(value) == expected


def test_json_lines_never_contain_nan_or_infinity() -> None:
    text = written(["x", "l"], [[math.nan, [math.inf, 1]], [2.0, []]], "json")
    rows = [json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in the output"))
            for line in text.splitlines()]
    assert rows == [{"x": None, "l": [None, 1]}, {"x": 2.0, "l": []}]


def test_lists_and_structs_are_json_in_csv_and_in_the_table() -> None:
    rows: list[list[object]] = [[["SY", "RU"], {"a": [1]}, None, "Zürich"]]
    columns = ["countries", "s", "empty", "name"]
    parsed = list(csv.reader(io.StringIO(written(columns, rows, "csv"))))
    assert parsed == [columns, ['["SY", "RU"]', '{"a": [1]}', "", "Zürich"]]
    table = written(columns, rows, "table").splitlines()
    assert table[2] == '["SY", "RU"]  {"a": [1]}         Zürich'
    assert table[-1] == "(1 row)"


def test_times_are_iso_in_csv_and_readable_in_the_table() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert written(["t"], [[when]], "csv").splitlines()[1] == "2026-01-02T03:04:05+00:00"
    assert written(["t"], [[when]], "table").splitlines()[2] == "2026-01-02 03:04:05+00:00"


def test_table_cells_are_one_line_and_cut_at_80_characters() -> None:
    table = written(["text"], [["line one\nline two"], ["x" * 100]], "table").splitlines()
    assert table[2] == "line one line two"
    assert table[3] == "x" * 79 + "…"


def test_control_characters_are_shown_as_u_fffd_in_the_table_only() -> None:
    # ESC (CSI, OSC), BEL, DEL and the one-character C1 CSI (U+009B).
    evil = "\x1b[2J\x1b]0;owned\x07 \x7f\x9b31m"
    table = written(["t\x1b[1m"], [[evil], [[evil]]], "table")
    assert table.splitlines()[0] == "t\ufffd[1m"
    assert table.splitlines()[2] == "\ufffd[2J\ufffd]0;owned\ufffd \ufffd\ufffd31m"
    assert not any((ord(c) < 32 and c != "\n") or 127 <= ord(c) < 160 for c in table)
    text = written(["t"], [[evil], [[evil]]], "json")
    assert not any((ord(c) < 32 and c != "\n") or 127 <= ord(c) < 160 for c in text)
    assert [json.loads(line) for line in text.splitlines()] == [{"t": evil}, {"t": [evil]}]
    assert list(csv.reader(io.StringIO(written(["t"], [[evil]], "csv"))))[1] == [evil]


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_duplicate_column_names_are_refused_before_any_output(fmt: str) -> None:
    out = io.StringIO()
    with pytest.raises(OutputError, match="two columns are named 'a': give each its own name"):
        write_rows(["a", "b", "a"], [[1, 2, 3]], fmt, out)  # type: ignore[arg-type]
    assert out.getvalue() == ""


DECIMALS = [Decimal("123456789012345678.123"), Decimal("1.10"), Decimal("-0.30"),
            Decimal("0E-7"), Decimal("1E-7")]


def test_decimals_are_their_exact_digits_in_json() -> None:
    # Before: floats (123456789012345678.123 became 1.2345678901234568e+17, 1.10 became 1.1).
    text = written(["d", "l"], [[d, {"in": [d]}] for d in DECIMALS], "json")
    assert text.splitlines()[:2] == [
        '{"d": 123456789012345678.123, "l": {"in": [123456789012345678.123]}}',
        '{"d": 1.10, "l": {"in": [1.10]}}']
    rows = [json.loads(line, parse_float=Decimal) for line in text.splitlines()]
    assert [r["d"] for r in rows] == [r["l"]["in"][0] for r in rows] == DECIMALS
    assert [str(r["d"]) for r in rows][:2] == ["123456789012345678.123", "1.10"]
    assert written(["d"], [[Decimal("NaN")], [Decimal("-Infinity")]], "json") == (
        '{"d": null}\n{"d": null}\n')


def test_decimals_are_plain_digits_in_csv_and_the_table() -> None:
    # As DuckDB prints them: 0.0000001, not Python's 1E-7.
    digits = ["123456789012345678.123", "1.10", "-0.30", "0.0000000", "0.0000001"]
    assert written(["d"], [[d] for d in DECIMALS], "csv").splitlines()[1:] == digits
    assert [line.strip() for line in
            written(["d"], [[d] for d in DECIMALS], "table").splitlines()[2:-1]] == digits


# DuckDB's own text for each. Its Python client gives a timedelta: a month as 30
# days, "26:00:00" as 1 day 2 hours ('=' in DuckDB), "1 day -01:00:00" as 23 hours
# (not '=' in DuckDB), a split the writer cannot see.
INTERVALS = ["1 day 02:00:00", "00:00:00", "1 day", "2 days", "-1 day", "-1 day -02:00:00",
             "00:00:01.5", "-00:00:00.5", "3 days 00:00:00.000001", "100000 days",
             "26:00:00", "-26:00:00"]


@pytest.mark.parametrize("fmt", ["csv", "table"])
def test_intervals_are_duckdbs_text_and_read_back_equal(fmt: str) -> None:
    # Before: Python's "1 day, 2:00:00" and "-1 day, 23:59:59.500000", which DuckDB cannot read.
    con = duckdb.connect()
    values = [con.execute("SELECT ?::INTERVAL", [t]).fetchone()[0]  # type: ignore[index]
              for t in INTERVALS]
    lines = written(["i"], [[v] for v in values], fmt).splitlines()
    cells = lines[1:] if fmt == "csv" else [line.strip() for line in lines[2:-1]]
    assert cells[:10] == INTERVALS[:10]  # the rest: the same interval, hours as days
    for text, cell in zip(INTERVALS, cells, strict=True):
        assert con.execute("SELECT ?::INTERVAL = ?::INTERVAL", [cell, text]).fetchone() == (
            True,), (text, cell)


@pytest.mark.parametrize(("n", "word", "plural", "text"), [
    (0, "story", "stories", "0 stories"), (1, "story", "stories", "1 story"),
    (2, "story", "stories", "2 stories"), (1, "feed", None, "1 feed"),
    (12345, "feed", None, "12,345 feeds"), (1, "new entry", "new entries", "1 new entry"),
])
def test_counted_says_one_in_the_singular(n: int, word: str, plural: str | None,
                                          text: str) -> None:
    assert counted(n, word, plural) == text


def fetched(query: str) -> tuple[list[str], list[object]]:
    con = duckdb.connect()
    cursor = con.execute(query)
    kinds = [d[1] for d in cursor.description or ()]
    return [d[0] for d in cursor.description or ()], typed_rows(kinds, cursor.fetchall())


def test_a_float_column_is_its_shortest_float32_decimal_everywhere() -> None:
    columns, rows = fetched(
        "SELECT 0.1::FLOAT f, 1e30::REAL big, 'nan'::FLOAT n, NULL::FLOAT z, [0.3::FLOAT, NULL] l,"
        " {'a': 0.7::FLOAT, 'b': 'x'} s, MAP {'k': 0.2::FLOAT} m, [0.1::FLOAT]::FLOAT[1] arr,"
        " 0.1::DOUBLE d")
    assert written(columns, rows, "json") == (
        '{"f": 0.1, "big": 1e+30, "n": null, "z": null, "l": [0.3, null],'
        ' "s": {"a": 0.7, "b": "x"}, "m": {"k": 0.2}, "arr": [0.1], "d": 0.1}\n')
    assert written(columns, rows, "csv").splitlines()[1] == (
        '0.1,1e+30,nan,,"[0.3, null]","{""a"": 0.7, ""b"": ""x""}","{""k"": 0.2}",[0.1],0.1')


def test_the_shortest_float32_text_reads_back_as_the_same_float32() -> None:
    import numpy as np

    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, size=20_000, dtype=np.uint64).astype(np.uint32)
    values = [float(v) for v in bits.view(np.float32) if np.isfinite(v)]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, f FLOAT)")
    # One statement, the same rows as an executemany of (i, value) pairs (a
    # double each, cast to FLOAT by the column), which took most of the test.
    con.execute("INSERT INTO t SELECT unnest(?), unnest(?)", [list(range(len(values))), values])
    cursor = con.execute("SELECT f FROM t ORDER BY i")
    rows = typed_rows([d[1] for d in cursor.description or ()], cursor.fetchall())
    texts = [line for line in written(["f"], rows, "csv").splitlines()[1:]]
    assert [np.float32(float(t)) for t in texts] == [np.float32(v) for v in values]
    # Shortest: no text has more significant digits than float32 ever needs (9).
    assert max(len(t.lstrip("-").split("e")[0].replace(".", "").strip("0")) for t in texts) <= 9
    assert written(["f"], typed_rows([duckdb.sqltype("FLOAT")], [[0.10000000149011612]]),
                   "csv").splitlines()[1] == "0.1"


def test_a_json_column_is_json_data_not_a_quoted_string() -> None:
    columns, rows = fetched(
        """SELECT '{"a": [1, 2.50, 1e400]}'::JSON j, '"x"'::JSON s, 'null'::JSON jn,"""
        """ NULL::JSON z, ['{"k": true}'::JSON] l""")
    assert rows[0][2] == JsonValue(data=None)
    assert written(columns, rows, "json") == (
        '{"j": {"a": [1, 2.50, 1' + "0" * 400 + ']}, "s": "x", "jn": null, "z": null,'
        ' "l": [{"k": true}]}\n')
    assert written(columns, rows, "csv").splitlines()[1] == (
        '"{""a"": [1, 2.50, 1' + "0" * 400 + ']}","""x""",null,,"[{""k"": true}]"')
    assert written(columns, rows, "table").splitlines()[2].endswith('"x"  null     [{"k": true}]')


def test_a_blob_is_duckdbs_own_text_which_duckdb_reads_back() -> None:
    every_byte = bytes(range(256))
    columns, rows = fetched("SELECT ?::BLOB b".replace("?", "'" + "".join(
        f"\\x{b:02X}" for b in every_byte) + "'"))
    con = duckdb.connect()
    duckdb_text = con.execute("SELECT ?::BLOB::VARCHAR", [every_byte]).fetchone()[0]
    cell = list(csv.reader(io.StringIO(written(columns, rows, "csv"))))[1][0]
    value = json.loads(written(columns, rows, "json"))["b"]
    assert cell == value == duckdb_text
    assert con.execute("SELECT ?::BLOB", [cell]).fetchone()[0] == every_byte
    assert written(["b"], [[b"a\\'\xff"]], "table").splitlines()[2] == "a\\x5C\\x27\\xFF"
