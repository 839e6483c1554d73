"""Recursive-descent parser: query text -> :data:`Query` (grammar in the package docstring)."""

from __future__ import annotations

from ._ast import (
    FACET_FIELDS,
    MAX_SLOP_WORDS,
    TEXT_FIELDS,
    And,
    Facet,
    FacetField,
    Near,
    Not,
    Or,
    Phrase,
    Prefix,
    Query,
    Term,
    TextField,
    facet_value_problem,
    span_field,
)
from ._errors import QuerySyntaxError
from ._lexer import Kind, Token, tokenize
from ._words import QUERY_WORD, fold, nfc

_CLAUSE_START: frozenset[Kind] = frozenset(
    {"WORD", "PHRASE", "FIELD", "LPAREN", "NOT", "MINUS"}
)
_CLAUSE = 'a term, a "phrase" or "("'
_FACET_VALUE = 'a value, a "quoted value" or "("'

# The field a group is parsed in: None at top level (fields allowed inside),
# else the field every leaf of the group gets (nested fields are refused).
_Context = TextField | FacetField | None
_TEXTS: dict[str, TextField] = {f: f for f in TEXT_FIELDS}
_FACETS: dict[str, FacetField] = {f: f for f in FACET_FIELDS}
_FIELDS: dict[str, TextField | FacetField] = {**_TEXTS, **_FACETS}

# Parentheses and NOTs inside one another, at most. Each level is a few frames
# of recursion here and in every engine that walks the tree (matcher, SQL,
# printer); 200 levels of "(" reached Python's recursion limit. People write
# three or four; 50 leaves generated queries room.
MAX_DEPTH = 50


def parse(text: str) -> Query:
    """Parse a query; raise :class:`QuerySyntaxError` with the position of the problem."""
    return _Parser(nfc(text)).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0  # open "(" and NOT around the current clause
        # Where each node started, for errors found after the node was built
        # (keyed by id: equal nodes at different places are different entries).
        self.starts: dict[int, int] = {}

    # -- plumbing ---------------------------------------------------------------

    def peek(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def error(self, message: str, pos: int, expected: str) -> QuerySyntaxError:
        return QuerySyntaxError(message, pos, expected, self.text)

    def unexpected(self, expected: str) -> QuerySyntaxError:
        token = self.peek()
        if token.kind == "EOF":
            return self.error("unexpected end of query", token.pos, expected)
        return self.error(f"unexpected {_describe(token)}", token.pos, expected)

    def nest(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(
                f"nested too deeply (more than {MAX_DEPTH} levels of parentheses and NOT)",
                token.pos, "a flatter query",
            )

    def built(self, node: Query, start: int) -> Query:
        self.starts.setdefault(id(node), start)
        return node

    # -- grammar ----------------------------------------------------------------

    def parse(self) -> Query:
        if self.peek().kind == "EOF":
            raise self.error("empty query", 0, _CLAUSE)
        query = self.or_expr(None)
        if self.peek().kind == "RPAREN":
            raise self.unexpected('an operator, a clause or the end of the query (no "(" is open)')
        if self.peek().kind != "EOF":
            raise self.unexpected("AND, OR, NOT, a clause or the end of the query")
        witness = _negative_witness(query)
        if witness is not None:
            raise self.error(
                "a query cannot be only negative (NOT x matches nearly every article)",
                self.starts.get(id(witness), 0),
                'a clause articles must match, as in Syria NOT Iraq',
            )
        return query

    def or_expr(self, ctx: _Context) -> Query:
        start = self.peek().pos
        children = [self.and_expr(ctx)]
        while self.peek().kind == "OR":
            self.advance()
            children.append(self.and_expr(ctx))
        return children[0] if len(children) == 1 else self.built(Or(tuple(children)), start)

    def and_expr(self, ctx: _Context) -> Query:
        start = self.peek().pos
        children = [self.unary(ctx)]
        while True:
            kind = self.peek().kind
            if kind == "AND":
                self.advance()
            elif kind not in _CLAUSE_START:
                break
            children.append(self.unary(ctx))
        return children[0] if len(children) == 1 else self.built(And(tuple(children)), start)

    def unary(self, ctx: _Context) -> Query:
        if self.peek().kind in ("NOT", "MINUS"):
            token = self.advance()
            self.nest(token)
            node = self.built(Not(self.unary(ctx)), token.pos)
            self.depth -= 1
            return node
        return self.near(ctx)

    def near(self, ctx: _Context) -> Query:
        start = self.peek().pos
        left = self.primary(ctx)
        if self.peek().kind != "NEAR":
            return left
        op = self.advance()
        if ctx in FACET_FIELDS:
            raise self.error(f"NEAR inside {ctx}:", op.pos, "AND, OR or NOT between values")
        right_start = self.peek().pos
        right = self.primary(ctx)
        for node, pos in ((left, start), (right, right_start)):
            try:
                span_field(node)
            except ValueError as exc:
                raise self.error(
                    str(exc), pos, 'a term, a prefix*, a "phrase" or an OR of them'
                ) from None
        if span_field(left) != span_field(right):
            raise self.error(
                "both sides of NEAR must search the same field", op.pos,
                "the same field on both sides, as in title:(a NEAR/5 b)",
            )
        if self.peek().kind == "NEAR":
            raise self.error(
                "NEAR cannot be chained", self.peek().pos, "AND between two NEAR clauses"
            )
        assert op.number is not None  # the lexer always sets a NEAR's distance
        return self.built(Near(left, right, op.number), start)  # type: ignore[arg-type]

    def primary(self, ctx: _Context) -> Query:
        token = self.peek()
        if token.kind == "FIELD":
            if ctx is not None:
                raise self.error(
                    f"fields cannot be nested (already inside {ctx}:)", token.pos, _CLAUSE
                )
            self.advance()
            ctx = _FIELDS[token.text]  # the lexer only emits known names
        if ctx is not None and ctx in _FACETS:
            return self.facet_value(_FACETS[ctx])
        return self.text_value(None if ctx is None else _TEXTS[ctx])

    def group(self, ctx: _Context, expected: str) -> Query:
        opening = self.advance()
        self.nest(opening)
        if self.peek().kind == "RPAREN":
            raise self.unexpected(expected)
        query = self.or_expr(ctx)
        if self.peek().kind != "RPAREN":
            raise self.unexpected(f'")" (to close the "(" opened at column {opening.pos + 1})')
        self.advance()
        self.depth -= 1
        return query

    def text_value(self, ctx: TextField | None) -> Query:
        token = self.peek()
        field: TextField = ctx or "any"
        if token.kind == "LPAREN":
            return self.group(ctx, _CLAUSE)
        if token.kind == "PHRASE":
            self.advance()
            return self.words(token.text, token.pos + 1, field, token.number, token.pos)
        if token.kind == "WORD":
            self.advance()
            if "~" in token.text:
                raise self.error(
                    "~ only follows a closing quote", token.pos + token.text.index("~"),
                    'a "phrase"~n',
                )
            return self.words(token.text, token.pos, field, None, token.pos)
        raise self.unexpected(_CLAUSE)

    def words(
        self, raw: str, offset: int, field: TextField, slop: int | None, start: int
    ) -> Query:
        """A term, a prefix or a phrase from raw text, split the way documents are."""
        folded = fold(raw)
        for k, c in enumerate(folded):
            if c == "*" and (k == 0 or not (folded[k - 1].isalnum() or folded[k - 1] == "_")):
                raise self.error("misplaced *", offset + k, "* directly after a word, as in Syria*")
        words = tuple(m.group(1) + m.group(2) for m in QUERY_WORD.finditer(folded))
        if not words:
            raise self.error("no word to search for", start, "a term with a letter or a digit")
        if len(words) == 1:
            word = words[0]
            node: Query = Prefix(word[:-1], field) if word.endswith("*") else Term(word, field)
        else:
            if slop is not None and len(words) > MAX_SLOP_WORDS:
                raise self.error(
                    f"too many words for a ~ phrase ({len(words)})", start,
                    f"at most {MAX_SLOP_WORDS} words in a \"phrase\"~n",
                )
            node = Phrase(words, field, slop)
        return self.built(node, start)

    def facet_value(self, field: FacetField) -> Query:
        token = self.peek()
        if token.kind == "LPAREN":
            return self.group(field, _FACET_VALUE)
        if token.kind not in ("WORD", "PHRASE"):
            raise self.unexpected(_FACET_VALUE)
        self.advance()
        if token.kind == "PHRASE" and token.number is not None:
            raise self.error(f"~ is not allowed with {field}:", token.pos, "a quoted value")
        value = fold(token.text).strip()
        prefix = token.kind == "WORD" and value.endswith("*")
        value = value[:-1] if prefix else value
        problem = facet_value_problem(field, value, prefix)
        if problem:
            raise self.error(problem, token.pos, _facet_example(field))
        return self.built(Facet(field, value, prefix), token.pos)


def _describe(token: Token) -> str:
    if token.kind in ("WORD", "FIELD"):
        return repr(token.text + (":" if token.kind == "FIELD" else ""))
    if token.kind == "PHRASE":
        return '"phrase"'
    return {"LPAREN": "'('", "RPAREN": "')'", "MINUS": "'-'", "NEAR": "NEAR"}.get(
        token.kind, token.kind
    )


def _facet_example(field: FacetField) -> str:
    return {
        "lang": "a language code, as in lang:en",
        "topic": "a topic name, as in topic:syria",
        "country": "an ISO 3166-1 alpha-2 code, as in country:SY",
    }[field]


def _negative_witness(node: Query) -> Query | None:
    """The NOT that leaves ``node`` without a positive clause, or None if it has one.

    A query needs one: ``a AND NOT b`` is fine, ``NOT b`` and ``a OR NOT b`` are
    not (they match nearly every article, and leave the prefilter of
    :class:`RuleSet` nothing to look up).
    """
    if isinstance(node, Not):
        return node
    if isinstance(node, And):
        witnesses = [_negative_witness(child) for child in node.children]
        return None if any(w is None for w in witnesses) else witnesses[0]
    if isinstance(node, Or):
        return next((w for w in map(_negative_witness, node.children) if w is not None), None)
    return None
