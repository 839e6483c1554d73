"""Cut query text into tokens: words, "phrases"~n, fields, operators, parentheses.

A bare word runs until whitespace, a parenthesis or a quote, so ``covid-19``
or ``U.S.`` stay one token (the parser splits it into words the way document
text is split). ``AND``, ``OR``, ``NOT`` and ``NEAR/n`` are operators only in
upper case; a leading ``-`` directly before a term, phrase, field or ``(`` is
NOT. ``name:`` at the start of a token is a field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ._ast import FACET_FIELDS, MAX_DISTANCE, TEXT_FIELDS
from ._errors import QuerySyntaxError

Kind = Literal[
    "WORD", "PHRASE", "FIELD", "LPAREN", "RPAREN", "AND", "OR", "NOT", "MINUS", "NEAR", "EOF"
]

FIELD_NAMES = tuple(f for f in TEXT_FIELDS if f != "any") + FACET_FIELDS
_FIELD = re.compile(r"([A-Za-z]+):")
_NEAR = re.compile(r"NEAR/(\d+)")
_DIGITS = re.compile(r"\d+")
_STOP = frozenset(' \t\r\n\f\v()"')


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    pos: int
    text: str = ""  # a WORD's raw text, a PHRASE's contents, a FIELD's name
    number: int | None = None  # NEAR's distance, a PHRASE's slop


def tokenize(query: str) -> list[Token]:
    """Tokens of ``query`` (already NFC-normalised), ending with an EOF token."""
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
        elif c in "()":
            tokens.append(Token("LPAREN" if c == "(" else "RPAREN", i))
            i += 1
        elif c == '"':
            i = _phrase(query, i, tokens)
        elif c == "-" and i + 1 < n and query[i + 1] not in _STOP - {'"', "("}:
            tokens.append(Token("MINUS", i))
            i += 1
        else:
            j = i
            while j < n and query[j] not in _STOP:
                j += 1
            _bare(query, i, query[i:j], tokens)
            i = j
    tokens.append(Token("EOF", n))
    return tokens


def _phrase(query: str, start: int, tokens: list[Token]) -> int:
    close = query.find('"', start + 1)
    if close < 0:
        raise QuerySyntaxError(
            f"unterminated phrase (opened at column {start + 1})", len(query), 'a closing "',
            query,
        )
    end = close + 1
    slop = None
    if end < len(query) and query[end] == "~":
        digits = _DIGITS.match(query, end + 1)
        if digits is None:
            raise QuerySyntaxError(
                "missing proximity", end + 1, 'a number of words, as in "a b"~5', query
            )
        slop = _bounded(int(digits.group()), query, end + 1)
        end = digits.end()
    tokens.append(Token("PHRASE", start, query[start + 1 : close], slop))
    return end


def _bare(query: str, pos: int, raw: str, tokens: list[Token]) -> None:
    if raw in ("AND", "OR", "NOT"):
        tokens.append(Token(raw, pos))  # type: ignore[arg-type]  # the literal is the kind
        return
    if raw == "NEAR" or raw.startswith("NEAR/"):
        near = _NEAR.fullmatch(raw)
        if near is None:
            raise QuerySyntaxError(
                "NEAR needs a distance", pos + min(len(raw), 5), "NEAR/n, as in NEAR/10", query
            )
        tokens.append(Token("NEAR", pos, number=_bounded(int(near.group(1)), query, pos + 5)))
        return
    field = _FIELD.match(raw)
    if field is None:
        tokens.append(Token("WORD", pos, raw))
        return
    name = field.group(1).lower()
    if name not in FIELD_NAMES:
        raise QuerySyntaxError(
            f"unknown field {field.group(1)!r}", pos, f"one of {', '.join(FIELD_NAMES)}", query
        )
    tokens.append(Token("FIELD", pos, name))
    rest, after = raw[field.end() :], pos + field.end()
    if rest.startswith("-"):
        raise QuerySyntaxError(
            f"- after {name}:", after, f"- before the field, as in -{name}:value", query
        )
    if rest:
        tokens.append(Token("WORD", after, rest))
    elif after >= len(query) or query[after] not in '("':
        raise QuerySyntaxError(
            f"nothing after {name}:", after, 'a term, a "phrase" or "(" right after the colon',
            query,
        )


def _bounded(distance: int, query: str, pos: int) -> int:
    if distance > MAX_DISTANCE:
        raise QuerySyntaxError(
            "distance too large", pos, f"a number of words from 0 to {MAX_DISTANCE}", query
        )
    return distance
