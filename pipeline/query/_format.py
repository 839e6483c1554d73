"""Query -> text that parses back to the same tree (for logs, errors and tests)."""

from __future__ import annotations

import re

from ._ast import And, Facet, Near, Not, Or, Phrase, Prefix, Query, Term

_NEEDS_QUOTES = re.compile(r'[\s()]|^-')


def format_query(query: Query) -> str:
    """The canonical text of ``query``: ``parse(format_query(q)) == q``."""
    if isinstance(query, Term):
        return _field(query.field) + query.word
    if isinstance(query, Prefix):
        return _field(query.field) + query.stem + "*"
    if isinstance(query, Phrase):
        slop = "" if query.slop is None else f"~{query.slop}"
        return f'{_field(query.field)}"{" ".join(query.words)}"{slop}'
    if isinstance(query, Near):
        return f"{_wrap(query.left)} NEAR/{query.distance} {_wrap(query.right)}"
    if isinstance(query, Facet):
        value = query.value + ("*" if query.prefix else "")
        if _NEEDS_QUOTES.search(value):
            value = f'"{value}"'
        return f"{query.field}:{value}"
    if isinstance(query, Not):
        return "NOT " + _wrap(query.child)
    if isinstance(query, And):
        return " AND ".join(_wrap(child) for child in query.children)
    return " OR ".join(_wrap(child) for child in query.children)


def _field(field: str) -> str:
    return "" if field == "any" else field + ":"


def _wrap(query: Query) -> str:
    text = format_query(query)
    return f"({text})" if isinstance(query, And | Or) else text
