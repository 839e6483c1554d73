"""Rows on stdout, as a table, CSV or JSON lines: one rule per value type for all three.

- JSON is strict (RFC 8259): NaN and ±Infinity, which ``json.dumps`` writes
  by default and most parsers refuse, become ``null``; timestamps and dates
  are ISO 8601 strings; lists stay arrays and structs objects. A DECIMAL is a
  JSON number with its exact digits (``1.10``), never a float.
- In CSV and the table a DECIMAL is its digits as DuckDB prints them
  (``0.0000001``, not ``1E-7``) and an INTERVAL is DuckDB's own text
  (``1 day 02:00:00``), which DuckDB reads back, never Python's
  ``1 day, 2:00:00``.
- In CSV and in the table a list or a struct is written as JSON
  (``["SY", "RU"]``), the same text ``--json`` gives for it, never a Python
  repr (``['SY', 'RU']``) that no other tool reads.
- A column's DuckDB type decides what its values are (:func:`typed_rows`): a
  FLOAT (REAL) is the shortest decimal that reads back as the same float32
  (``0.1``, not the widened double ``0.10000000149011612``); a JSON value is
  JSON data (an object in ``--json``, its JSON text in CSV and the table),
  never a quoted string; a BLOB is DuckDB's own text for it (``\\x00a\\xFF``:
  printable ASCII as is, other bytes and ``\\ ' "`` as ``\\xHH``), which
  ``'...'::BLOB`` reads back, in all three.
- Column names must be distinct: a JSON object or a CSV reader keyed by the
  header would keep only one of two columns called ``a``.
- CSV and JSON lines are written as the rows come (a query's result is read
  :data:`FETCH_ROWS` at a time), so an export of the whole archive holds one
  chunk in memory, not the result. The table, which must see every row for
  its widths, shows the first :data:`TABLE_ROWS` and says there are more.
- Text comes from feeds and pages, so it may hold escape sequences that would
  clear the screen or retitle the window. The table, which is for a terminal,
  shows control characters as U+FFFD (:func:`plain`); JSON escapes them
  (``\\u001b``), so the value read back is the stored one; CSV, for programs,
  keeps them as stored.
- A table may show one column under each row instead of in a cell
  (``under``): whole, wrapped to the terminal, where a cell is cut at
  :data:`TABLE_CELL_WIDTH` characters. For a sentence whose end says what to
  do (a feed's last error: ``... unless fetch.allow_private lists
  '127.0.0.1:8080'``). CSV and JSON keep it a column.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
import shutil
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TextIO
from uuid import UUID

if TYPE_CHECKING:
    from duckdb.sqltypes import DuckDBPyType

__all__ = ["Format", "JsonValue", "OutputError", "fetched_rows", "jsonable", "plain", "typed_rows",
           "write_rows"]

Format = Literal["table", "csv", "json"]

# Wider cells are cut in the table (CSV and JSON are never cut).
TABLE_CELL_WIDTH = 80
# Rows a table shows at most (CSV and JSON write them all, as they come).
TABLE_ROWS = 10_000
# Rows read from a query's result at a time.
FETCH_ROWS = 2_048

# Feed text on a terminal: control characters (escape sequences could move the
# cursor, retitle the window or hide text) are shown as U+FFFD; newline and tab
# stay.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# What json.dumps leaves raw with ensure_ascii=False: DEL and the C1 controls
# (U+009B is a one-character CSI to a terminal that reads 8-bit controls).
_JSON_RAW_CONTROL = re.compile(r"[\x7f-\x9f]")


class OutputError(Exception):
    """The rows cannot be written as asked; the message says why and what to do."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonValue:
    """A value of a JSON column, parsed: written as JSON in every format (``null``
    for JSON's null, never the empty cell that stands for SQL's NULL)."""

    data: object


_Reader = Callable[[object], object]


def _float32(value: object) -> object:
    """The double nearest the shortest decimal that reads back as float32 ``value``
    (numpy's repr: Steele-White/Dragon4 shortest), so that every writer prints
    that decimal; NaN and ±Infinity pass through."""
    if not isinstance(value, float) or not math.isfinite(value):
        return value
    import numpy as np  # only for a FLOAT column: numpy costs ~0.1 s to import

    return float(str(np.float32(value)))


def _json_value(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        # Decimal keeps a number's digits (2.50 stays 2.50, 1e400 is no inf).
        return JsonValue(data=json.loads(value, parse_float=Decimal, parse_constant=Decimal))
    except json.JSONDecodeError:  # DuckDB validates JSON; a value it let through stays text
        return value


def _reader(kind: DuckDBPyType) -> _Reader | None:
    """How to read a value of DuckDB type ``kind`` (None: as the client gives it)."""
    if kind.id == "float":
        return _float32
    if str(kind) == "JSON":
        return _json_value
    if kind.id in ("list", "array"):
        return _each(_reader(_parts(kind)["child"]))
    if kind.id == "struct":
        return _fields({name: _reader(t) for name, t in _parts(kind).items()})
    if kind.id == "map":
        parts = _parts(kind)
        # A key stays a key (JSON writes it as a string): only a FLOAT's text is read.
        key = _float32 if parts["key"].id == "float" else None
        return _entries(key, _reader(parts["value"]))
    return None  # a UNION's value does not say which member it is


def _parts(kind: DuckDBPyType) -> dict[str, DuckDBPyType]:
    """A nested type's member types by name (an ARRAY's size left out)."""
    from duckdb.sqltypes import DuckDBPyType

    return {name: t for name, t in kind.children if isinstance(t, DuckDBPyType)}


def _maybe(read: _Reader | None, value: object) -> object:
    return value if read is None or value is None else read(value)


def _each(child: _Reader | None) -> _Reader | None:
    def read(value: Any) -> object:  # a list, or an ARRAY's tuple
        return [_maybe(child, v) for v in value]

    return None if child is None else read


def _fields(fields: dict[str, _Reader | None]) -> _Reader | None:
    def read(value: Any) -> object:  # a dict
        return {k: _maybe(fields.get(k), v) for k, v in value.items()}

    return None if not any(fields.values()) else read


def _entries(key: _Reader | None, val: _Reader | None) -> _Reader | None:
    def read(value: Any) -> object:  # a dict
        return {_maybe(key, k): _maybe(val, v) for k, v in value.items()}

    return None if key is None and val is None else read


def typed_rows(
    kinds: Sequence[DuckDBPyType], rows: Sequence[Sequence[object]]
) -> list[Sequence[object]]:
    """``rows`` as DuckDB's Python client gave them, with each value read by its
    column's type ``kinds`` (``cursor.description``'s second field)."""
    readers = [_reader(kind) for kind in kinds]
    if not any(readers):
        return list(rows)
    return [[_maybe(r, v) for r, v in zip(readers, row, strict=True)] for row in rows]


def _blob(value: bytes) -> str:
    """DuckDB's text for a BLOB (``SELECT blob::VARCHAR``), which ``'...'::BLOB`` reads back."""
    return "".join(chr(b) if 32 <= b < 127 and b not in b"\\'\"" else f"\\x{b:02X}" for b in value)


def jsonable(value: object) -> object:
    """``value`` as plain JSON data: None, bool, int, finite float, finite Decimal
    (written as its digits), str, list, dict."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _blob(bytes(value))
    if isinstance(value, JsonValue):
        return jsonable(value.data)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def plain(value: object) -> str:
    """``value`` as text safe to print on a terminal (None: the empty string)."""
    return _CONTROL.sub("\ufffd", "" if value is None else str(value))


def counted(n: int, word: str, plural: str | None = None) -> str:
    """``n`` and ``word`` in the number ``n`` asks for: "1 story", "2 stories"."""
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def _json(value: object) -> str:
    data = jsonable(value)
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except TypeError:  # a Decimal in it (json.dumps takes none): twice as slow, exact
        text = _encode(data)
    # Outside strings JSON is ASCII, so every match is inside a string.
    return _JSON_RAW_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _encode(data: object) -> str:
    """JSON text for :func:`jsonable`'s data. A Decimal is written as a number with
    its own digits: a DECIMAL column is exact (money, counts with a scale), and
    as a float 0.1 + 0.2 would read 0.30000000000000004 and 18 digits or more
    would be rounded. A number, not a string: ``jq 'select(.total > 100)'``
    compares numbers, while a string would silently sort after every number;
    jq 1.7 prints an untouched number's digits as written, and Python reads them
    exactly with ``json.loads(line, parse_float=Decimal)``."""
    if isinstance(data, Decimal):
        return format(data, "f")
    if isinstance(data, dict):
        return "{" + ", ".join(f"{_encode(k)}: {_encode(v)}" for k, v in data.items()) + "}"
    if isinstance(data, list):
        return "[" + ", ".join(_encode(v) for v in data) + "]"
    return json.dumps(data, ensure_ascii=False, allow_nan=False)


def _interval(value: timedelta) -> str:
    """DuckDB's text for an interval: ``1 day 02:00:00``, ``-1 day -02:00:00``,
    ``00:00:01.5``, ``2 days``; DuckDB reads each back as the same interval."""
    micros = value // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    days, rest = divmod(abs(micros), 86_400_000_000)
    seconds, fraction = divmod(rest, 1_000_000)
    clock = f"{sign}{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if fraction:
        clock += f".{fraction:06d}".rstrip("0")
    if not days:
        return clock
    day_part = f"{sign}{days} day{'s' if days != 1 else ''}"
    return day_part if not rest else f"{day_part} {clock}"


def _text(value: object, *, iso: bool = True) -> str:
    """One cell for CSV and the table (None: the empty string). ``iso``: times
    as ISO 8601 (``T`` between date and time, for programs), else as people read them."""
    if value is None:
        return ""
    if isinstance(value, Mapping | list | tuple | set | frozenset | JsonValue):
        return _json(value)
    if iso and isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return _blob(bytes(value))
    if isinstance(value, Decimal) and value.is_finite():
        return format(value, "f")
    if isinstance(value, timedelta):
        return _interval(value)
    return str(value)


def _check_columns(columns: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise OutputError(
                f"two columns are named {name!r}: give each its own name"
                f" (... AS {name}_2), or the output would lose one of them"
            )
        seen.add(name)


def write_rows(
    columns: Sequence[str], rows: Iterable[Sequence[object]], fmt: Format, out: TextIO, *,
    under: str | None = None,
) -> None:
    """Write ``rows`` (with ``columns``' names) to ``out`` as they come (the
    table: its first :data:`TABLE_ROWS`); OutputError before any output.
    ``under``: the column a table shows under each row that has a value,
    whole and wrapped, rather than in a cell (CSV and JSON: a column)."""
    _check_columns(columns)
    if under is not None and under not in columns:
        raise ValueError(f"no column {under!r} to show under the rows")
    if fmt == "json":
        for row in rows:
            out.write(_json(dict(zip(columns, row, strict=True))) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_text(v) for v in row])
    else:
        shown = list(itertools.islice(rows, TABLE_ROWS + 1))
        _table(columns, shown[:TABLE_ROWS], out, more=len(shown) > TABLE_ROWS, under=under)


def _under(label: str, text: str) -> str:
    """``text`` on lines of its own under its row: indented, after ``label``,
    wrapped to the terminal (80 columns off one); a word longer than a line
    (a URL) stays whole."""
    lead = "  " + label
    width = max(len(lead) + 20, shutil.get_terminal_size().columns - 1)
    return "\n".join(textwrap.wrap(text, width=width, initial_indent=lead,
                                   subsequent_indent=" " * len(lead), break_long_words=False,
                                   break_on_hyphens=False)) + "\n"


def fetched_rows(cursor: Any) -> Iterator[Sequence[object]]:
    """A DuckDB result's rows, read :data:`FETCH_ROWS` at a time and each value
    read by its column's type (:func:`typed_rows`)."""
    kinds = [d[1] for d in cursor.description or ()]
    while chunk := cursor.fetchmany(FETCH_ROWS):
        yield from typed_rows(kinds, chunk)


def _table(columns: Sequence[str], rows: Sequence[Sequence[object]], out: TextIO, *,
           more: bool = False, under: str | None = None) -> None:
    width = TABLE_CELL_WIDTH
    below = columns.index(under) if under is not None else None
    texts = [[plain(" ".join(_text(v, iso=False).splitlines())) for v in row] for row in rows]
    notes = ["" if below is None or row[below] is None else texts[n][below]
             for n, row in enumerate(rows)]
    columns = [plain(c) for i, c in enumerate(columns) if i != below]
    cells = [[c if len(c) <= width else c[:width - 1] + "…"
              for i, c in enumerate(row) if i != below] for row in texts]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row, note in zip(cells, notes, strict=True):
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")
        if note:
            out.write(_under(f"{plain(under or '')}: ", note))
    if more:
        out.write(f"(the first {len(rows):,} rows; there are more: use --csv or --json for"
                  " all of them, or LIMIT)\n")
    else:
        out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")
