'''One query language for topics, alerts and ``newsmon search``, with two engines.

``parse(text)`` gives a :data:`Query` tree; ``compile(query)`` gives a
:class:`Matcher` for new articles (``matches``, ``hits``); ``RuleSet`` matches
many named queries at once; ``to_sql(query)`` gives a DuckDB expression for the
archive. Both engines return the same articles (a property test checks it).

Usage::

    from pipeline.query import Document, RuleSet, compile, format_query, parse, to_sql

    query = parse('title:(Syria OR Damascus) "foreign forces"~3 -lang:ru')
    doc = Document(title="Syria talks", text="Foreign armed forces left.", language="en")
    matcher = compile(query)
    matcher.matches(doc)          # True
    matcher.hits(doc)             # [Hit("text", 0, 7), Hit("text", 14, 20), Hit("title", 0, 5)]
    RuleSet({"syria": query}).match(doc)          # {"syria"}
    where, params = to_sql(query)                 # "SELECT id FROM articles WHERE " + where
    format_query(query)   # '(title:syria OR title:damascus) AND "foreign forces"~3 AND NOT lang:ru'

Public API::

    parse(text: str) -> Query                       raises QuerySyntaxError
    format_query(query: Query) -> str               parse(format_query(q)) == q
    Document(*, title="", text="", source="", language="", topics=(), countries=(), people=())
    compile(query: Query) -> Matcher                .matches(doc) -> bool, .hits(doc) -> list[Hit]
    Hit(field, start, end)                          field: "title" | "text" | "source"
    RuleSet(rules: Mapping[str, Query])             .match(doc) -> set[str], .matcher(name)
    to_sql(query, columns: SqlColumns | None = None) -> tuple[str, list[object]]
    facets(query: Query) -> tuple[Facet, ...]       its field:value tests (topic:, lang:, ...)
    SqlColumns(*, title="title", text="text", ..., people="people")
    fold(text: str) -> str                          the NFC + lowercase form both engines compare
    Term, Prefix, Phrase, Near, Facet, And, Or, Not the tree (frozen, validated dataclasses)

Grammar (EBNF; keywords are upper case, everything else is case-insensitive)::

    query     = or_expr ;
    or_expr   = and_expr , { "OR" , and_expr } ;
    and_expr  = unary , { [ "AND" ] , unary } ;          (* adjacent clauses: AND *)
    unary     = ( "NOT" | "-" ) , unary | near ;         (* "-" directly before its clause *)
    near      = primary , [ "NEAR/" , digits , primary ] ;   (* not chained *)
    primary   = [ field , ":" ] , value ;                (* no space after ":" *)
    value     = "(" , or_expr , ")" | phrase | term ;
    phrase    = '"' , { char - '"' } , '"' , [ "~" , digits ] ;
    term      = { char - ( space | "(" | ")" | '"' ) }- ;
    field     = "title" | "text" | "source" | "person"   (* text fields *)
              | "lang" | "topic" | "country" ;           (* tag fields *)

Precedence: NEAR > NOT > AND > OR. ``Damascus "working group"`` is
``Damascus AND "working group"``.

Semantics:

- Words. Text is NFC-normalised and lowercased; a word is a maximal run of
  letters, digits and underscore (``\\w`` / ``[\\pL\\pN_]``). A term matches
  whole words only (``syria`` does not match "Syriac") and also the plain
  English inflections -s and -es (``force`` matches "forces", not "forceful";
  ``church`` matches "churches"; the plural ``forces`` does not match "force").
  ``stem*`` matches any word starting with stem. A term written with
  separators (``covid-19``, ``U.S.``) is the phrase of its words.
- ``"a b c"``: the words consecutively (each word with its inflections;
  ``stem*`` allowed). ``"a b"~n``: all the words, any order, each at its own
  position, spanning at most k + n words for k words (at most n other words
  among them); at most 5 words. ``A NEAR/n B``: an occurrence of A and one of B
  that do not overlap, either order, with at most n words between them; A and
  B are terms, prefixes, exact phrases or an OR of those, on the same field.
  n <= 1000.
- Fields. A bare term or phrase searches the title or the text, each on its
  own (a phrase or a NEAR never runs from the title into the text).
  ``title:``, ``text:``, ``source:`` search that string; ``person:`` searches
  each tagged person's name on its own (``person:putin``,
  ``person:"Vladimir Putin"``). ``lang:``, ``topic:``, ``country:`` compare the
  whole tag, case-insensitively (``country:sy``, ``topic:foreign-forces``,
  ``topic:"middle east"``); ``value*`` is a prefix of the tag; ``country:``
  takes ISO 3166-1 alpha-2 codes. A field applies to a group:
  ``title:(Syria OR Iraq)``; fields do not nest.
- NOT needs company: a query must have a clause that is not negated
  (``Syria NOT Iraq`` is fine; ``NOT Iraq`` and ``Syria OR NOT Iraq`` are
  refused, they would match nearly every article). ``AND``, ``OR``, ``NOT``
  and ``NEAR`` as words must be quoted: ``"and"``.

Engines:

- In memory, a :class:`Document` folds and tokenises each field once; a
  :class:`RuleSet` looks up only the rules whose anchor words (or prefixes, or
  tags) the document contains (see ``_ruleset``): on the benchmark
  (``python -m benchmarks.query_matching``: 1,000 rules, 10,000 articles of
  ~450 words) it is ~9-11x faster than evaluating every rule.
- In SQL, terms and exact phrases are RE2 patterns over the folded column
  (``regexp_matches``), the words and phrases of one OR in one pattern;
  proximity compares word positions from ``regexp_extract_all`` with list
  lambdas (see ``_sql``). Each RE2 Unicode word class costs ~2.5 ms to
  compile, so a long topic query takes 0.1-0.5 s to plan (a constant per
  query; rows are then matched by RE2's DFA).

Limits:

- Characters assigned after Unicode 14.0 (Python 3.11's database) are letters
  to DuckDB's RE2 but separators to Python; a text containing them can match
  differently in the two engines.
- The inflection rule is deliberately naive (no stemming): ``forc`` matches
  "forces" (forc + es), ``child`` does not match "children".
- No escaping: a query cannot contain a literal ``"``; tag values cannot
  either. ``~`` only follows a closing quote; ``*`` only ends a word.
- Hits cover title, text and source; tag fields and person: give none.
- At most ``MAX_DEPTH`` (50) parentheses and NOTs inside one another: deeper
  is a QuerySyntaxError, not a RecursionError in one of the engines.

Errors: :class:`QuerySyntaxError` (a ValueError) with ``position``, ``column``
and ``expected``; ``str()`` shows the query (at most 100 characters of it,
around the problem) with a caret under the problem.
'''

from __future__ import annotations

from ._ast import (
    FACET_FIELDS,
    MAX_DISTANCE,
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
    Span,
    Term,
    TextField,
    facets,
)
from ._document import Document
from ._errors import QuerySyntaxError, engine_refused
from ._format import format_query
from ._match import Hit, Matcher, compile
from ._parser import MAX_DEPTH, parse
from ._ruleset import RuleSet
from ._sql import SqlColumns, to_sql
from ._words import fold

__all__ = [
    "FACET_FIELDS",
    "MAX_DEPTH",
    "MAX_DISTANCE",
    "MAX_SLOP_WORDS",
    "TEXT_FIELDS",
    "And",
    "Document",
    "Facet",
    "FacetField",
    "Hit",
    "Matcher",
    "Near",
    "Not",
    "Or",
    "Phrase",
    "Prefix",
    "Query",
    "QuerySyntaxError",
    "RuleSet",
    "Span",
    "SqlColumns",
    "Term",
    "TextField",
    "compile",
    "engine_refused",
    "facets",
    "fold",
    "format_query",
    "parse",
    "to_sql",
]
