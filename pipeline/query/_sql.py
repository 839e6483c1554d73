"""The SQL engine: a query compiled into one DuckDB boolean expression.

User text only ever travels as ``?`` parameters; the SQL text holds our own
constants, column names (quoted) and integers.

- Text is folded as in Python (see :mod:`._words`):
  ``replace(lower(nfc_normalize(coalesce(col, ''))), chr(962), chr(963))``
  (final sigma U+03C2 to sigma U+03C3).
- Terms, prefixes and exact phrases are RE2 patterns. RE2 has no look-behind,
  so a word boundary is spelled ``(?:^|[^\\pL\\pN_])`` before and
  ``(?:$|[^\\pL\\pN_])`` after; the words of a phrase are joined by
  ``[^\\pL\\pN_]+`` (consecutive words have only separators between them).
- Proximity (NEAR, "phrase"~n) is not a regular expression: written with
  counted repetition, ``NEAR/50`` compiled slower than it ran, ``NEAR/200``
  and a 3-word ``"…"~10`` hit RE2's "pattern too large", and ``NEAR/10`` took
  8.4 s on 10,000 articles of 500 words (DuckDB 1.5.5). So the field is cut
  into a list of words with ``regexp_extract_all`` and positions are compared
  with list lambdas, the same arithmetic as the Python engine, behind a
  ``CASE WHEN`` that first requires every part to be present (DuckDB only
  evaluates THEN on the rows that pass: 0.41 s on the same data).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ._ast import (
    And,
    Facet,
    Near,
    Not,
    Or,
    Phrase,
    Prefix,
    Query,
    Term,
    span_alternatives,
    span_field,
)
from ._words import SQL_SEPARATOR, SQL_WORD_CHAR, variants

_BEFORE = f"(?:^|{SQL_SEPARATOR})"
_AFTER = f"(?:$|{SQL_SEPARATOR})"
_EMPTY_LIST = "[]::VARCHAR[]"
_MARKER = re.compile("\x00\\d+\x00")


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlColumns:
    """Column names of the searched table (a dotted name is quoted part by part)."""

    title: str = "title"
    text: str = "text"
    source: str = "source"
    language: str = "language"
    topics: str = "topics"
    countries: str = "countries"
    people: str = "people"

    def __post_init__(self) -> None:
        for name in (self.title, self.text, self.source, self.language, self.topics,
                     self.countries, self.people):
            if not name or "\x00" in name:
                raise ValueError(f"not a column name: {name!r}")


def to_sql(query: Query, columns: SqlColumns | None = None) -> tuple[str, list[object]]:
    """A DuckDB boolean expression for ``query`` and its parameters, in order.

    The expression is parenthesised and never NULL, so it can be combined
    freely: ``"SELECT id FROM articles WHERE " + sql``.
    """
    compiler = _Compiler(columns or SqlColumns())
    return compiler.finish(compiler.node(query))


def _quote(name: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def _fold(expr: str) -> str:
    return f"replace(lower(nfc_normalize(coalesce({expr}, ''))), chr(962), chr(963))"


def _any_element(column: str, x: str, test: str) -> str:
    return f"(len(list_filter(coalesce({column}, {_EMPTY_LIST}), lambda {x}: ({test}))) > 0)"


def _word_regex(pattern: str) -> str:
    if pattern.endswith("*"):
        return pattern[:-1] + SQL_WORD_CHAR + "*"
    return pattern + "(?:e?s)?"  # the -s / -es inflections, as in _words.variants


def _alternatives_regex(sequences: list[tuple[str, ...]]) -> str:
    """An RE2 alternation of word sequences, factored on shared leading words.

    ``"peace talks" OR "peace deal"`` becomes ``peace(?:e?s)?SEP+(?:talks…|deal…)``:
    each ``[^\\pL\\pN_]`` class costs RE2 about 2.5 ms to compile (DuckDB 1.5.5),
    and a topic's long OR of phrases repeated it once per phrase.
    """
    groups: dict[str, list[tuple[str, ...]]] = {}
    for sequence in sequences:
        groups.setdefault(sequence[0], []).append(sequence[1:])
    alternatives = []
    for first, rests in groups.items():
        tails = [rest for rest in rests if rest]
        regex = _word_regex(first)
        if tails:
            optional = "?" if len(tails) < len(rests) else ""  # a sequence also ends here
            regex += f"(?:{SQL_SEPARATOR}+{_alternatives_regex(tails)}){optional}"
        alternatives.append(regex)
    return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"


def _span_regex(span: Query) -> str:
    alternatives = list(dict.fromkeys(span_alternatives(span)))
    return _BEFORE + _alternatives_regex(alternatives) + _AFTER


def _substrings(span: Query) -> tuple[str, ...]:
    """Strings one of which a text containing ``span`` contains (its longest words)."""
    return tuple(
        max((w.rstrip("*") for w in alternative), key=len)
        for alternative in span_alternatives(span)
    )


class _Compiler:
    def __init__(self, columns: SqlColumns) -> None:
        self.columns = columns
        self._values: dict[str, object] = {}
        self._names = itertools.count(1)

    def param(self, value: object) -> str:
        # Fragments are built in whatever order is convenient, so a parameter is a
        # unique marker first; finish() turns markers into "?" in textual order.
        marker = f"\x00{len(self._values)}\x00"
        self._values[marker] = value
        return marker

    def finish(self, sql: str) -> tuple[str, list[object]]:
        params: list[object] = []

        def placeholder(match: re.Match[str]) -> str:
            params.append(self._values[match.group()])
            return "?"

        return _MARKER.sub(placeholder, sql), params

    def name(self, stem: str) -> str:
        # Lambda parameters get a prefix no column is likely to have.
        return f"nm_{stem}{next(self._names)}"

    # -- boolean structure --------------------------------------------------------

    def node(self, query: Query) -> str:
        if isinstance(query, And):
            return "(" + " AND ".join(self.node(c) for c in query.children) + ")"
        if isinstance(query, Or):
            return "(" + " OR ".join(self.alternatives(query)) + ")"
        if isinstance(query, Not):
            return f"(NOT {self.node(query.child)})"
        if isinstance(query, Facet):
            return self.facet(query)
        if isinstance(query, Term | Prefix | Phrase | Near):
            return self.text_field(query)
        raise TypeError(f"not a query node: {query!r}")

    def alternatives(self, query: Or) -> list[str]:
        """The OR's children, plain terms and phrases of one field merged into one pattern.

        A topic is often a long OR of words; one RE2 pattern per field instead of
        one per word saves most of the compile time (each ``[^\\pL\\pN_]`` class
        costs RE2 about 2.5 ms to compile) and a pass over the text per word.
        """
        merged: dict[str, list[Term | Prefix | Phrase]] = {}
        others: list[str] = []
        for child in query.children:
            if isinstance(child, Term | Prefix) or (
                isinstance(child, Phrase) and child.slop is None
            ):
                merged.setdefault(child.field, []).append(child)
            else:
                others.append(self.node(child))
        for spans in merged.values():
            others.append(self.text_field(spans[0] if len(spans) == 1 else Or(tuple(spans))))
        return others

    def text_field(self, query: Term | Prefix | Phrase | Near | Or) -> str:
        """The leaf tested on each string of its field: one for most, each name for person."""
        c = self.columns
        field = span_field(query) if isinstance(query, Or) else query.field
        if field == "person":
            x = self.name("person")
            test = self.leaf(query, _fold(x))
            return _any_element(_quote(c.people), x, test)
        names = {"any": (c.title, c.text), "title": (c.title,), "text": (c.text,),
                 "source": (c.source,)}[field]
        return "(" + " OR ".join(self.leaf(query, _fold(_quote(n))) for n in names) + ")"

    def facet(self, facet: Facet) -> str:
        c = self.columns
        op = "starts_with({v}, {p})" if facet.prefix else "{v} = {p}"
        if facet.field == "lang":
            return "(" + op.format(v=_fold(_quote(c.language)), p=self.param(facet.value)) + ")"
        column = c.topics if facet.field == "topic" else c.countries
        x = self.name("tag")
        return _any_element(_quote(column), x, op.format(v=_fold(x), p=self.param(facet.value)))

    # -- one string -----------------------------------------------------------------

    def leaf(self, query: Term | Prefix | Phrase | Near | Or, text: str) -> str:
        if isinstance(query, Near):
            return self.near(query, text)
        if isinstance(query, Phrase) and query.slop is not None:
            return self.window(query, text)
        return f"regexp_matches({text}, {self.param(_span_regex(query))})"

    def guarded(self, text: str, required: Sequence[tuple[str, ...]], check: str) -> str:
        """``check`` only on rows that contain every required part.

        A part is a list of substrings one of which must occur: a cheap necessary
        condition (``contains`` needs no regex compile and is fast to run).
        """
        guard = " AND ".join(
            "(" + " OR ".join(f"contains({text}, {self.param(s)})" for s in part) + ")"
            for part in required
        )
        return f"(CASE WHEN {guard} THEN {check} ELSE false END)"

    def words(self, text: str, body: str, ws: str) -> str:
        """Evaluate ``body`` with ``ws`` bound to the list of words of ``text``."""
        pattern = self.param(SQL_WORD_CHAR + "+")
        return f"list_transform([regexp_extract_all({text}, {pattern})], lambda {ws}: ({body}))[1]"

    def word_test(self, element: str, pattern: str) -> str:
        if pattern.endswith("*"):
            return f"starts_with({element}, {self.param(pattern[:-1])})"
        options = ", ".join(self.param(v) for v in variants(pattern))
        return f"{element} IN ({options})"

    def starts(self, ws: str, patterns: tuple[str, ...]) -> str:
        """1-based positions in ``ws`` where ``patterns`` occur as consecutive words."""
        i = self.name("i")
        tests = " AND ".join(
            self.word_test(f"{ws}[{i} + {k}]" if k else f"{ws}[{i}]", p)
            for k, p in enumerate(patterns)
        )
        return f"list_filter(range(1, len({ws}) + 1), lambda {i}: ({tests}))"

    def occurrences(self, ws: str, span: Query) -> str:
        """[first, last] positions of every occurrence of a span (of any alternative)."""
        lists = []
        for alt in span_alternatives(span):
            i = self.name("i")
            lists.append(
                f"list_transform({self.starts(ws, alt)}, lambda {i}: [{i}, {i} + {len(alt) - 1}])"
            )
        return lists[0] if len(lists) == 1 else "flatten([" + ", ".join(lists) + "])"

    def near(self, near: Near, text: str) -> str:
        parts = [_substrings(near.left), _substrings(near.right)]
        ws, o, a, b = self.name("ws"), self.name("o"), self.name("a"), self.name("b")
        d = near.distance
        pair = (
            f"({a}[2] < {b}[1] AND {b}[1] - {a}[2] - 1 <= {d})"
            f" OR ({b}[2] < {a}[1] AND {a}[1] - {b}[2] - 1 <= {d})"
        )
        occurrences = f"[{self.occurrences(ws, near.left)}, {self.occurrences(ws, near.right)}]"
        check = (
            f"list_transform([{occurrences}], lambda {o}: len(list_filter({o}[1], lambda {a}: ("
            f"len(list_filter({o}[2], lambda {b}: ({pair}))) > 0))) > 0)[1]"
        )
        return self.guarded(text, parts, self.words(text, check, ws))

    def window(self, phrase: Phrase, text: str) -> str:
        assert phrase.slop is not None
        parts = [(w.rstrip("*"),) for w in phrase.words]
        ws, o = self.name("ws"), self.name("o")
        window = phrase.slop + len(phrase.words) - 1
        lists = "[" + ", ".join(self.starts(ws, (w,)) for w in phrase.words) + "]"
        names = [self.name("p") for _ in phrase.words]
        # Innermost first: the last word's position must differ from and be within
        # the window of every earlier one; each outer level wraps the inner test.
        test = ""
        for k in range(len(names) - 1, -1, -1):
            p = names[k]
            conditions = [f"{p} <> {q} AND abs({p} - {q}) <= {window}" for q in names[:k]]
            if test:
                conditions.append(test)
            body = " AND ".join(conditions) or "true"
            test = f"len(list_filter({o}[{k + 1}], lambda {p}: ({body}))) > 0"
        check = f"list_transform([{lists}], lambda {o}: ({test}))[1]"
        return self.guarded(text, parts, self.words(text, check, ws))
