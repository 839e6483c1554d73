"""Many queries against one document, evaluating only those that can match.

The prefilter. For every rule we derive *anchor groups*: sets of keys such
that a matching document contains at least one key of every group.

- a term's group is its forms (``force`` -> force, forces, forcees): the
  document probes the index with its own words;
- a prefix's group is its first four letters (shorter stems: themselves): the
  document probes with the first four letters of its words;
- ``lang:en``, ``topic:x``, ``country:sy`` give a tag group (weak: every
  English article has lang:en); the document probes with its tags;
- a phrase, a "phrase"~n or a NEAR requires all its parts: one group each; an
  AND has the groups of all its children; an OR one group, the union of one
  group of each child; NOT and tag prefixes (``topic:war*``) give none.

A rule is indexed under its most selective group (long words are rare words;
a tag counts as a one-letter word); a document that hits it must also contain
a key of the rule's second best group, checked with one set operation, before
the rule is evaluated. On benchmarks/query_matching.py, one group per rule left
40 candidates per article (a phrase's longest word is often a common one),
two groups 19, of which 11 match. A rule with no group (an OR with a NOT
branch, say) is evaluated for every document. Groups are necessary
conditions, so the result is exactly that of evaluating every rule
(tests/unit/query/test_query_properties.py checks it on random rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter

from ._ast import And, Facet, Near, Or, Phrase, Prefix, Query, Term, span_alternatives
from ._document import Document
from ._match import Matcher
from ._words import variants

# Letters of a prefix that are indexed: with 3, common English beginnings
# ("con", "pro", "str") made prefix rules candidates for most articles.
PREFIX_KEY = 4


@dataclass(frozen=True, slots=True)
class _Group:
    """Keys one of which a matching document contains."""

    words: frozenset[str] = frozenset()
    prefixes: frozenset[str] = frozenset()
    tags: frozenset[tuple[str, str]] = frozenset()  # (field, folded value)

    def hit(self, doc: Document) -> bool:
        words = doc._all_words
        if not self.words.isdisjoint(words):
            return True
        for prefix in self.prefixes:
            if any(w.startswith(prefix) for w in words):
                return True
        return any(value in doc._facets[field] for field, value in self.tags)

    @property
    def score(self) -> tuple[int, int]:
        """Higher is more selective: long words are rarer; a tag counts as a 1-letter word."""
        lengths = [len(k) for k in self.words | self.prefixes] + [1] * len(self.tags)
        return min(lengths), -len(lengths)

    def __or__(self, other: _Group) -> _Group:
        return _Group(
            self.words | other.words, self.prefixes | other.prefixes, self.tags | other.tags
        )


def _pattern_group(pattern: str) -> _Group:
    if pattern.endswith("*"):
        return _Group(prefixes=frozenset({pattern[:-1][:PREFIX_KEY]}))
    return _Group(words=frozenset(variants(pattern)))


def _best(groups: list[_Group]) -> _Group:
    return max(groups, key=lambda g: g.score)


def _span_groups(span: Query) -> list[_Group]:
    alternatives = span_alternatives(span)
    if len(alternatives) == 1:
        return [_pattern_group(p) for p in dict.fromkeys(alternatives[0])]
    union = _Group()
    for alternative in alternatives:
        union = union | _best([_pattern_group(p) for p in alternative])
    return [union]


def anchor_groups(query: Query) -> list[_Group]:
    """Necessary conditions for ``query`` to match (all of them); empty if there are none."""
    if isinstance(query, Phrase) and query.slop is not None:  # every word, any order
        return [_pattern_group(w) for w in dict.fromkeys(query.words)]
    if isinstance(query, Term | Prefix | Phrase):
        return _span_groups(query)
    if isinstance(query, Near):
        return _span_groups(query.left) + _span_groups(query.right)
    if isinstance(query, And):
        return [g for child in query.children for g in anchor_groups(child)]
    if isinstance(query, Facet):
        return [] if query.prefix else [_Group(tags=frozenset({(query.field, query.value)}))]
    if isinstance(query, Or):
        union = _Group()
        for child in query.children:
            groups = anchor_groups(child)
            if not groups:
                return []
            union = union | _best(groups)
        return [union]
    return []  # Not


class RuleSet:
    """Named queries matched together; :meth:`match` returns the names that match.

    The result is the same as evaluating every query; the anchor index (see the
    module docstring) only skips the queries that cannot match.
    """

    __slots__ = (
        "_always", "_by_prefix", "_by_tag", "_by_word", "_matchers", "_names",
        "_prefix_lengths", "_roots", "_second", "_second_words",
    )

    def __init__(self, rules: Mapping[str, Query]) -> None:
        self._names = list(rules)
        self._matchers = [Matcher(q) for q in rules.values()]
        self._by_word: dict[str, list[int]] = {}
        self._by_prefix: dict[str, list[int]] = {}
        self._by_tag: dict[tuple[str, str], list[int]] = {}
        self._always: list[int] = []
        self._roots = [m._root for m in self._matchers]
        # A rule's second group, checked on a hit; word-only groups (the usual
        # case) as a bare frozenset, tested with one isdisjoint.
        self._second: dict[int, _Group] = {}
        self._second_words: dict[int, frozenset[str]] = {}
        for i, query in enumerate(rules.values()):
            groups = sorted(set(anchor_groups(query)), key=lambda g: g.score, reverse=True)
            if not groups:
                self._always.append(i)
                continue
            if len(groups) > 1 and (groups[1].prefixes or groups[1].tags):
                self._second[i] = groups[1]
            elif len(groups) > 1:
                self._second_words[i] = groups[1].words
            for word in groups[0].words:
                self._by_word.setdefault(word, []).append(i)
            for key in groups[0].prefixes:
                self._by_prefix.setdefault(key, []).append(i)
            for tag in groups[0].tags:
                self._by_tag.setdefault(tag, []).append(i)
        self._prefix_lengths = sorted({len(k) for k in self._by_prefix})

    def __len__(self) -> int:
        return len(self._names)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._names)

    def matcher(self, name: str) -> Matcher:
        """The compiled query of one rule (for :meth:`Matcher.hits`)."""
        return self._matchers[self._names.index(name)]

    def candidates(self, doc: Document) -> set[int]:
        """Indexes of the rules the prefilter cannot rule out."""
        hits: set[int] = set()
        by_word, by_prefix, by_tag = self._by_word, self._by_prefix, self._by_tag
        words = doc._all_words
        for word in by_word.keys() & words:
            hits.update(by_word[word])
        for length in self._prefix_lengths:
            heads = set(map(itemgetter(slice(None, length)), words))
            for head in by_prefix.keys() & heads:
                hits.update(by_prefix[head])
        if by_tag:
            for field, values in doc._facets.items():
                for value in values:
                    hits.update(by_tag.get((field, value), ()))
        second, second_words = self._second, self._second_words
        found = {
            i for i in hits
            if (i not in second_words or not second_words[i].isdisjoint(words))
            and (i not in second or second[i].hit(doc))
        }
        found.update(self._always)
        return found

    def match(self, doc: Document) -> set[str]:
        roots, names = self._roots, self._names
        return {names[i] for i in self.candidates(doc) if roots[i].matches(doc)}
