"""The in-memory engine: a query compiled into a tree of small matcher nodes.

Word positions are those of :mod:`._document`; proximity is measured in words
exactly as the SQL engine measures it (see :mod:`._sql`), so both engines
return the same articles.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterator
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
)
from ._document import Document, _Unit
from ._words import variants


@dataclass(frozen=True, slots=True, order=True)
class Hit:
    """Where a positive term or phrase matched: a character span of one field.

    ``field`` is "title", "text" or "source"; offsets index the string given to
    :class:`Document` (``doc.text[hit.start:hit.end]`` is the matched text).
    """

    field: str
    start: int
    end: int


class Matcher:
    """One compiled query."""

    __slots__ = ("_root", "_test", "query")

    def __init__(self, query: Query) -> None:
        self.query = query
        self._root = _build(query)
        self._test = self._root.test

    def matches(self, doc: Document) -> bool:
        return self._test(doc)

    def hits(self, doc: Document) -> list[Hit]:
        """Spans of the positive clauses that made the document match (sorted, no repeats).

        Clauses under NOT, OR alternatives that did not match, and tag fields
        (lang:, topic:, country:, person:) contribute no hits. Empty when the
        document does not match.
        """
        if not self._test(doc):
            return []
        found: set[Hit] = set()
        self._root.hits(doc, found)
        return sorted(found)

    def __repr__(self) -> str:
        return f"Matcher({self.query!r})"


def compile(query: Query) -> Matcher:  # shadows the builtin on purpose: the public verb
    """Compile ``query`` for the in-memory engine."""
    return Matcher(query)


# -- words and spans -------------------------------------------------------------


class _WordPattern:
    """A plain word (with its -s/-es forms) or a prefix, as written ``stem*``."""

    __slots__ = ("exact", "stem")

    def __init__(self, pattern: str) -> None:
        self.stem = pattern[:-1] if pattern.endswith("*") else None
        self.exact = None if self.stem is not None else frozenset(variants(pattern))

    def present(self, unit: _Unit) -> bool:
        if self.exact is not None:
            return not self.exact.isdisjoint(unit.wordset)
        assert self.stem is not None
        return unit.has_prefix(self.stem)

    def accepts(self, word: str) -> bool:
        if self.exact is not None:
            return word in self.exact
        assert self.stem is not None
        return word.startswith(self.stem)

    def positions(self, unit: _Unit) -> list[int]:
        if self.exact is not None:
            words: list[str] = [w for w in self.exact if w in unit.wordset]
        else:
            assert self.stem is not None
            words = unit.words_with_prefix(self.stem)
        if len(words) == 1:
            return unit.positions(words[0])
        return sorted(itertools.chain.from_iterable(unit.positions(w) for w in words))


class _Sequence:
    """Consecutive word patterns (a term is a sequence of one).

    ``present(unit)`` is a closure made once (see _HOT_LOOPS): every word
    first, with one set test each (long words first: they are rare, so most
    texts are rejected sooner), then every prefix, then the order.
    """

    __slots__ = ("patterns", "present")

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.patterns = tuple(_WordPattern(p) for p in patterns)
        order = sorted(range(len(patterns)), key=lambda i: -len(patterns[i].rstrip("*")))
        by_length = [self.patterns[i] for i in order]
        exacts = tuple(p.exact for p in by_length if p.exact is not None)
        needles = tuple(" " + p.stem for p in by_length if p.stem is not None)
        single = len(self.patterns) == 1
        occurrences = self.occurrences

        def present(unit: _Unit) -> bool:
            wordset = unit.wordset
            for forms in exacts:
                if forms.isdisjoint(wordset):
                    return False
            if needles:
                spaced = unit.spaced
                for needle in needles:
                    if needle not in spaced:
                        return False
            return single or next(occurrences(unit), None) is not None

        self.present: Callable[[_Unit], bool] = present

    def occurrences(self, unit: _Unit) -> Iterator[tuple[int, int]]:
        """(first, last) word positions of each occurrence."""
        first, rest = self.patterns[0], self.patterns[1:]
        words, last = unit.words, len(unit.words) - len(rest)
        for start in first.positions(unit):
            if start < last and all(
                p.accepts(words[start + k]) for k, p in enumerate(rest, 1)
            ):
                yield start, start + len(rest)


class _Span:
    """One or more alternative sequences (a NEAR operand may be an OR of them)."""

    __slots__ = ("sequences",)

    def __init__(self, span: Query) -> None:
        self.sequences = tuple(_Sequence(alt) for alt in span_alternatives(span))

    def present(self, unit: _Unit) -> bool:
        for sequence in self.sequences:  # noqa: SIM110 - see _HOT_LOOPS
            if sequence.present(unit):
                return True
        return False

    def occurrences(self, unit: _Unit) -> list[tuple[int, int]]:
        return [o for s in self.sequences if s.present(unit) for o in s.occurrences(unit)]


# -- nodes -----------------------------------------------------------------------

# _HOT_LOOPS: what runs for every candidate rule (tens per article) is a
# closure made when the query is compiled (``_Node.test``), specialised to its
# field, with its loops written out rather than any()/all() over a generator
# (which costs a generator object and a frame per call). Closures instead of
# methods on a tree of nodes took the evaluation of the candidates on
# benchmarks/query_matching.py from 33 to 30 us an article; the methods
# (matches, hits) remain for everything else.

Test = Callable[[Document], bool]


class _Node:
    __slots__ = ("test",)

    test: Test

    def matches(self, doc: Document) -> bool:
        return self.test(doc)

    def hits(self, doc: Document, found: set[Hit]) -> None:
        """Add this node's evidence; only called when :meth:`matches` is true."""


def _wordset_test(forms: frozenset[str], field: str) -> Test:
    """True if a string of ``field`` has a word of ``forms``."""
    if field == "any":
        def test(doc: Document) -> bool:
            return not (forms.isdisjoint(doc._text_words) and forms.isdisjoint(doc._title_words))
    elif field == "title":
        def test(doc: Document) -> bool:
            return not forms.isdisjoint(doc._title_words)
    elif field == "text":
        def test(doc: Document) -> bool:
            return not forms.isdisjoint(doc._text_words)
    else:
        def test(doc: Document) -> bool:
            for unit in doc._units[field]:  # noqa: SIM110 - see _HOT_LOOPS
                if not forms.isdisjoint(unit.wordset):
                    return True
            return False
    return test


class _WordsNode(_Node):
    """Any of several plain words in one field: an OR of terms is one set test.

    Most topic rules are long ORs of words; one ``isdisjoint`` per string
    instead of a node per word is what makes evaluating a candidate rule cheap.
    """

    __slots__ = ("field", "forms")

    def __init__(self, words: list[str], field: str) -> None:
        self.forms = frozenset(form for word in words for form in variants(word))
        self.field = field
        self.test = _wordset_test(self.forms, field)

    def hits(self, doc: Document, found: set[Hit]) -> None:
        for unit in doc._units[self.field]:
            if unit.field is not None:
                for form in self.forms & unit.wordset:
                    for p in unit.positions(form):
                        found.add(Hit(unit.field, *unit.char_span(p, p)))


class _PrefixesNode(_Node):
    """Any word starting with one of several stems, in one field."""

    __slots__ = ("field", "stems")

    def __init__(self, stems: list[str], field: str) -> None:
        self.stems = tuple(stems)
        self.field = field
        needles = tuple(" " + stem for stem in stems)  # see _Unit.has_prefix

        def test(doc: Document) -> bool:
            for unit in doc._units[field]:
                spaced = unit.spaced
                for needle in needles:
                    if needle in spaced:
                        return True
            return False

        self.test = test

    def hits(self, doc: Document, found: set[Hit]) -> None:
        for unit in doc._units[self.field]:
            if unit.field is not None:
                for stem in self.stems:
                    for word in unit.words_with_prefix(stem):
                        for p in unit.positions(word):
                            found.add(Hit(unit.field, *unit.char_span(p, p)))


class _PhrasesNode(_Node):
    """Any of several exact phrases in one field (an OR's phrases, merged)."""

    __slots__ = ("field", "sequences")

    def __init__(self, phrases: list[tuple[str, ...]], field: str) -> None:
        self.sequences = tuple(_Sequence(words) for words in phrases)
        self.field = field
        tests = tuple(sequence.present for sequence in self.sequences)

        def test(doc: Document) -> bool:
            for unit in doc._units[field]:
                for present in tests:
                    if present(unit):
                        return True
            return False

        self.test = test

    def hits(self, doc: Document, found: set[Hit]) -> None:
        for unit in doc._units[self.field]:
            if unit.field is not None:
                for sequence in self.sequences:
                    for first, last in sequence.occurrences(unit):
                        found.add(Hit(unit.field, *unit.char_span(first, last)))


class _NearNode(_Node):
    __slots__ = ("distance", "field", "left", "right")

    def __init__(self, near: Near) -> None:
        self.left, self.right = _Span(near.left), _Span(near.right)
        self.distance = near.distance
        self.field = near.field
        self.test = self._test

    def _pairs(self, unit: _Unit) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
        if not (self.left.present(unit) and self.right.present(unit)):
            return
        d = self.distance
        rights = self.right.occurrences(unit)
        for a in self.left.occurrences(unit):
            for b in rights:
                # Disjoint, with at most d words between the end of one and the start of the other.
                if (a[1] < b[0] and b[0] - a[1] - 1 <= d) or (b[1] < a[0] and a[0] - b[1] - 1 <= d):
                    yield a, b

    def _test(self, doc: Document) -> bool:
        return any(next(self._pairs(u), None) is not None for u in doc._units[self.field])

    def hits(self, doc: Document, found: set[Hit]) -> None:
        for unit in doc._units[self.field]:
            if unit.field is not None:
                for pair in self._pairs(unit):
                    for first, last in pair:
                        found.add(Hit(unit.field, *unit.char_span(first, last)))


class _WindowNode(_Node):
    """A "phrase"~n: every word at its own position, all within k + n words."""

    __slots__ = ("field", "patterns", "window")

    def __init__(self, phrase: Phrase) -> None:
        assert phrase.slop is not None
        self.patterns = tuple(_WordPattern(w) for w in phrase.words)
        self.window = phrase.slop + len(phrase.words) - 1  # largest last - first position
        self.field = phrase.field
        self.test = self._test

    def _assignments(self, unit: _Unit) -> Iterator[tuple[int, ...]]:
        if not all(p.present(unit) for p in self.patterns):
            return
        lists = [p.positions(unit) for p in self.patterns]
        window = self.window

        def extend(chosen: tuple[int, ...], lo: int, hi: int) -> Iterator[tuple[int, ...]]:
            if len(chosen) == len(lists):
                yield chosen
                return
            positions = lists[len(chosen)]
            i = bisect.bisect_left(positions, hi - window)
            end = bisect.bisect_right(positions, lo + window)
            for p in positions[i:end]:
                if p not in chosen:
                    yield from extend((*chosen, p), min(lo, p), max(hi, p))

        for p in lists[0]:
            yield from extend((p,), p, p)

    def _test(self, doc: Document) -> bool:
        return any(next(self._assignments(u), None) is not None for u in doc._units[self.field])

    def hits(self, doc: Document, found: set[Hit]) -> None:
        for unit in doc._units[self.field]:
            if unit.field is not None:
                for chosen in self._assignments(unit):
                    for p in chosen:
                        found.add(Hit(unit.field, *unit.char_span(p, p)))


class _FacetNode(_Node):
    __slots__ = ("field", "prefix", "value")

    def __init__(self, facet: Facet) -> None:
        self.field, self.value, self.prefix = facet.field, facet.value, facet.prefix
        field, value = self.field, self.value
        if self.prefix:
            def test(doc: Document) -> bool:
                for v in doc._facets[field]:  # noqa: SIM110 - see _HOT_LOOPS
                    if v.startswith(value):
                        return True
                return False
        else:
            def test(doc: Document) -> bool:
                return value in doc._facets[field]
        self.test = test


class _AndNode(_Node):
    __slots__ = ("children",)

    def __init__(self, children: tuple[_Node, ...]) -> None:
        self.children = children
        tests = tuple(child.test for child in children)
        if len(tests) == 2:
            first, second = tests

            def test(doc: Document) -> bool:
                return first(doc) and second(doc)
        else:
            def test(doc: Document) -> bool:
                for child in tests:  # noqa: SIM110 - see _HOT_LOOPS
                    if not child(doc):
                        return False
                return True
        self.test = test

    def hits(self, doc: Document, found: set[Hit]) -> None:
        for child in self.children:
            child.hits(doc, found)


class _OrNode(_Node):
    __slots__ = ("children",)

    def __init__(self, children: tuple[_Node, ...]) -> None:
        self.children = children
        tests = tuple(child.test for child in children)
        if len(tests) == 2:
            first, second = tests

            def test(doc: Document) -> bool:
                return first(doc) or second(doc)
        else:
            def test(doc: Document) -> bool:
                for child in tests:  # noqa: SIM110 - see _HOT_LOOPS
                    if child(doc):
                        return True
                return False
        self.test = test

    def hits(self, doc: Document, found: set[Hit]) -> None:
        for child in self.children:
            if child.test(doc):
                child.hits(doc, found)


class _NotNode(_Node):
    __slots__ = ("child",)

    def __init__(self, child: _Node) -> None:
        self.child = child
        positive = child.test

        def test(doc: Document) -> bool:
            return not positive(doc)

        self.test = test


def _build(query: Query) -> _Node:
    if isinstance(query, Term):
        return _WordsNode([query.word], query.field)
    if isinstance(query, Prefix):
        return _PrefixesNode([query.stem], query.field)
    if isinstance(query, Phrase):
        if query.slop is None:
            return _PhrasesNode([query.words], query.field)
        return _WindowNode(query)
    if isinstance(query, Near):
        return _NearNode(query)
    if isinstance(query, Facet):
        return _FacetNode(query)
    if isinstance(query, And):
        return _AndNode(tuple(_build(c) for c in query.children))
    if isinstance(query, Or):
        return _build_or(query)
    if isinstance(query, Not):
        return _NotNode(_build(query.child))
    raise TypeError(f"not a query node: {query!r}")


def _build_or(query: Or) -> _Node:
    """An OR with its words, prefixes and exact phrases of each field merged into nodes."""
    words: dict[str, list[str]] = {}
    stems: dict[str, list[str]] = {}
    phrases: dict[str, list[tuple[str, ...]]] = {}
    others: list[_Node] = []
    for child in query.children:
        if isinstance(child, Term):
            words.setdefault(child.field, []).append(child.word)
        elif isinstance(child, Prefix):
            stems.setdefault(child.field, []).append(child.stem)
        elif isinstance(child, Phrase) and child.slop is None:
            phrases.setdefault(child.field, []).append(child.words)
        else:
            others.append(_build(child))
    nodes: list[_Node] = [_WordsNode(w, field) for field, w in words.items()]
    nodes += [_PrefixesNode(p, field) for field, p in stems.items()]
    nodes += [_PhrasesNode(p, field) for field, p in phrases.items()]
    nodes += others
    return nodes[0] if len(nodes) == 1 else _OrNode(tuple(nodes))
