"""The parsed form of a query: small frozen nodes, checked when built.

Fields are folded into the leaves (``Term("syria", "title")``), so an engine
never has to carry a "current field" down the tree. Words are stored folded
(see :mod:`._words`); a word pattern inside a :class:`Phrase` ends with ``*``
when it is a prefix (``*`` is never part of a word, so this is unambiguous).

Nodes validate themselves, so a hand-built tree is as safe to compile as a
parsed one; :func:`parse` reports the same problems earlier, with a position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, TypeAlias

from ._words import QUERY_WORD, fold, is_word

TextField = Literal["any", "title", "text", "source", "person"]
FacetField = Literal["lang", "topic", "country"]
TEXT_FIELDS: tuple[TextField, ...] = ("any", "title", "text", "source", "person")
FACET_FIELDS: tuple[FacetField, ...] = ("lang", "topic", "country")

# Proximity is checked on word positions in both engines, so large windows cost
# nothing extra; the cap only keeps typos such as NEAR/100000 out.
MAX_DISTANCE = 1000
# Each extra word of a "…"~n phrase nests one more loop (Python) and one more
# lambda (SQL); five words keeps the worst case bounded.
MAX_SLOP_WORDS = 5

_COUNTRY = re.compile(r"[a-z]{2}")
_COUNTRY_PREFIX = re.compile(r"[a-z]{1,2}")
_SPACE_OR_PAREN = re.compile(r"[\s()]")
_LANG = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*[-_]?")


def _check_text_field(field: str) -> None:
    if field not in TEXT_FIELDS:
        raise ValueError(f"not a text field: {field!r} (one of {', '.join(TEXT_FIELDS)})")


def _check_distance(distance: int, what: str) -> None:
    if isinstance(distance, bool) or not isinstance(distance, int):
        raise TypeError(f"{what} must be an int, not {type(distance).__name__}")
    if not 0 <= distance <= MAX_DISTANCE:
        raise ValueError(f"{what} must be between 0 and {MAX_DISTANCE}, not {distance}")


@dataclass(frozen=True, slots=True)
class Term:
    """One word; also matches its -s and -es forms."""

    word: str
    field: TextField = "any"

    def __post_init__(self) -> None:
        if not is_word(self.word):
            raise ValueError(f"a Term holds one folded word, not {self.word!r}")
        _check_text_field(self.field)


@dataclass(frozen=True, slots=True)
class Prefix:
    """Any word that starts with ``stem`` (``syria*``)."""

    stem: str
    field: TextField = "any"

    def __post_init__(self) -> None:
        if not is_word(self.stem):
            raise ValueError(f"a Prefix holds one folded word, not {self.stem!r}")
        _check_text_field(self.field)


@dataclass(frozen=True, slots=True)
class Phrase:
    """Consecutive words, or with ``slop`` all of them within a window, any order."""

    words: tuple[str, ...]
    field: TextField = "any"
    slop: int | None = None

    def __post_init__(self) -> None:
        if len(self.words) < 2:
            raise ValueError("a Phrase has at least two words (use Term or Prefix)")
        for word in self.words:
            if QUERY_WORD.fullmatch(word) is None or fold(word) != word:
                raise ValueError(f"not a folded word or prefix pattern: {word!r}")
        _check_text_field(self.field)
        if self.slop is not None:
            _check_distance(self.slop, "slop")
            if len(self.words) > MAX_SLOP_WORDS:
                raise ValueError(f"a ~ phrase has at most {MAX_SLOP_WORDS} words")


@dataclass(frozen=True, slots=True)
class Near:
    """``left`` and ``right`` at most ``distance`` words apart, either order."""

    left: Span
    right: Span
    distance: int

    def __post_init__(self) -> None:
        _check_distance(self.distance, "NEAR distance")
        fields = {span_field(self.left), span_field(self.right)}
        if len(fields) != 1:
            raise ValueError("both sides of NEAR must search the same field")

    @property
    def field(self) -> TextField:
        return span_field(self.left)


@dataclass(frozen=True, slots=True)
class Facet:
    """Equality (or prefix) on a tag: ``lang:en``, ``topic:syria``, ``country:sy``."""

    field: FacetField
    value: str
    prefix: bool = False

    def __post_init__(self) -> None:
        if self.field not in FACET_FIELDS:
            raise ValueError(f"not a facet field: {self.field!r}")
        problem = facet_value_problem(self.field, self.value, self.prefix)
        if problem:
            raise ValueError(problem)


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Query, ...]

    def __post_init__(self) -> None:
        if len(self.children) < 2:
            raise ValueError("And needs at least two children")


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Query, ...]

    def __post_init__(self) -> None:
        if len(self.children) < 2:
            raise ValueError("Or needs at least two children")


@dataclass(frozen=True, slots=True)
class Not:
    child: Query


Query: TypeAlias = Term | Prefix | Phrase | Near | Facet | And | Or | Not
# What proximity can be measured between: a fixed run of words, or a choice of them.
Span: TypeAlias = Term | Prefix | Phrase | Or


def facet_value_problem(field: str, value: str, prefix: bool) -> str | None:
    """Why ``value`` cannot be compared with ``field``, or None if it can."""
    if not value:
        return f"{field}: needs a value"
    if value != fold(value) or value != value.strip() or '"' in value:
        return f"{field}: value must be folded, trimmed and free of quotes: {value!r}"
    if "*" in value:
        return f"{field}: allows * only at the end of a value"
    if prefix and _SPACE_OR_PAREN.search(value):
        return f"{field}: a prefix value cannot contain spaces or parentheses"
    if field == "country":
        pattern = _COUNTRY_PREFIX if prefix else _COUNTRY
        if pattern.fullmatch(value) is None:
            return "country: takes a two-letter ISO 3166-1 code such as SY"
    if field == "lang" and _LANG.fullmatch(value) is None:
        return "lang: takes a language code such as en or pt-br"
    return None


def span_field(span: Query) -> TextField:
    """The one field a proximity operand searches (ValueError if it is not a span)."""
    if isinstance(span, Term | Prefix):
        return span.field
    if isinstance(span, Phrase):
        if span.slop is not None:
            raise ValueError('a "phrase"~n cannot be a NEAR operand')
        return span.field
    if isinstance(span, Or):
        fields = {span_field(child) for child in span.children}
        if len(fields) != 1:
            raise ValueError("an OR used with NEAR must search one field")
        return fields.pop()
    raise ValueError("a NEAR operand is a term, a prefix*, a \"phrase\" or an OR of them")


def span_alternatives(span: Query) -> tuple[tuple[str, ...], ...]:
    """The word-pattern sequences a span can match (``*`` marks a prefix)."""
    if isinstance(span, Term):
        return ((span.word,),)
    if isinstance(span, Prefix):
        return ((span.stem + "*",),)
    if isinstance(span, Phrase):
        return (span.words,)
    if isinstance(span, Or):
        return tuple(alt for child in span.children for alt in span_alternatives(child))
    raise ValueError(f"not a span: {span!r}")


def is_span(node: Query) -> bool:
    try:
        span_field(node)
    except ValueError:
        return False
    return True


def facets(query: Query) -> tuple[Facet, ...]:
    """Every ``field:value`` tag test in ``query`` (``topic:syria``, ``lang:en``),
    in the order written, negated or not."""
    if isinstance(query, Facet):
        return (query,)
    if isinstance(query, And | Or):
        return tuple(f for child in query.children for f in facets(child))
    if isinstance(query, Not):
        return facets(query.child)
    return ()
