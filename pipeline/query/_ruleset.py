"""Many queries against one document, evaluating only those that can match.

The prefilter. For every rule we derive *anchor groups*: sets of keys such
that a matching document contains at least one key of every group.

- a term's group is its forms (``force`` -> force, forces, forcees): the
  document probes the index with its own words;
- a prefix's group is its stem: a document word hits it if it starts with the
  stem (found once per distinct word, see :class:`_Keys`);
- ``lang:en``, ``topic:x``, ``country:sy`` give a tag group (weak: every
  English article has lang:en); the document probes with its tags;
- a phrase, a "phrase"~n or a NEAR requires all its parts: one group each; an
  AND has the groups of all its children; an OR one group, the union of one
  group of each child; NOT and tag prefixes (``topic:war*``) give none.

A rule is indexed under its most selective group (long words are rare words;
a tag counts as a one-letter word); a document that hits it must also contain
a key of the rule's second best group, checked with a set test or two, before
the rule is evaluated. On benchmarks/query_matching.py, one group per rule left
40 candidates per article (a phrase's longest word is often a common one),
two groups 19 (17 since stems are matched in full, not by their first four
letters), of which 11 match. A rule with no group (an OR with a NOT
branch, say) is evaluated for every document. Groups are necessary
conditions, so the result is exactly that of evaluating every rule
(tests/unit/query/test_query_properties.py checks it on random rules).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import chain

from ._ast import And, Facet, Near, Or, Phrase, Prefix, Query, Term, span_alternatives
from ._document import Document
from ._match import Matcher
from ._words import variants

# Letters of a stem that count towards its group's selectivity (score): when
# stems were indexed by their first letters only, 3 made prefix rules
# candidates for most articles ("con", "pro", "str"); 4 is kept for choosing
# groups, though stems are now matched in full.
PREFIX_KEY = 4

# Words remembered by _Keys before it starts afresh: news text keeps bringing
# new tokens (names, numbers, typos), so the memo must not grow for ever;
# 100,000 words (about 10 MB) hold the working vocabulary of a news stream.
MEMO_WORDS = 100_000


@dataclass(frozen=True, slots=True)
class _Group:
    """Keys one of which a matching document contains."""

    words: frozenset[str] = frozenset()
    prefixes: frozenset[str] = frozenset()
    tags: frozenset[tuple[str, str]] = frozenset()  # (field, folded value)

    def hit(self, doc: Document) -> bool:
        text, other = doc._text_words, doc._other_words
        if not (self.words.isdisjoint(text) and self.words.isdisjoint(other)):
            return True
        for prefix in self.prefixes:
            if any(w.startswith(prefix) for w in chain(text, other)):
                return True
        return any(value in doc._facets[field] for field, value in self.tags)

    @property
    def score(self) -> tuple[int, int]:
        """Higher is more selective: long words are rarer; a tag counts as a 1-letter word."""
        keys = self.words | {p[:PREFIX_KEY] for p in self.prefixes}
        lengths = [len(k) for k in keys] + [1] * len(self.tags)
        return min(lengths), -len(lengths)

    def __or__(self, other: _Group) -> _Group:
        return _Group(
            self.words | other.words, self.prefixes | other.prefixes, self.tags | other.tags
        )


class _Keys:
    """The index of words and stems, probed with the set of a document's words.

    A stem hits every word that starts with it, which a set operation cannot
    find; slicing the first letters of every word of every article for a
    prefix index cost more than all the other lookups together (35 of 77 us
    an article on benchmarks/query_matching.py). Instead the rules of a word
    (those indexed under it and under each stem it starts with) are found the
    first time the word is seen and kept in ``_rules`` (only the words that
    have some); ``_seen`` holds every word looked at. Per article that is two
    C-level set operations: the words not seen yet (few, once the vocabulary
    of the stream has been met), and the words that have rules. A dict of
    every word seen, probed word by word, was slower (38 against 27 us
    measured alone): most probes of a dict of the few words with rules miss at
    once, without reading the key.

    Both live in one tuple, replaced (never cleared) by one assignment when
    the memo starts afresh, so a thread in the middle of :meth:`rules` keeps
    a consistent pair; a word's rules are stored before it is marked seen.
    """

    __slots__ = ("_by_prefix", "_by_word", "_lengths", "_memo")

    def __init__(self, by_word: dict[str, list[int]], by_prefix: dict[str, list[int]]) -> None:
        self._by_word, self._by_prefix = by_word, by_prefix
        self._lengths = sorted({len(stem) for stem in by_prefix})
        rules: dict[str, tuple[int, ...]] = {}
        if not by_prefix:  # nothing to learn: the word index is the whole answer
            rules = {word: tuple(found) for word, found in by_word.items()}
        self._memo: tuple[set[str], dict[str, tuple[int, ...]]] = (set(), rules)

    def rules(self, words: frozenset[str]) -> Iterator[int]:
        """The rules indexed under any of ``words`` (with repeats)."""
        seen, rules = self._memo
        if self._lengths:
            new = words - seen
            if new:
                if len(seen) + len(new) > MEMO_WORDS:
                    seen, rules, new = set(), {}, words
                    self._memo = (seen, rules)
                self._learn(new, seen, rules)
        return chain.from_iterable(map(rules.__getitem__, rules.keys() & words))

    def _learn(
        self, new: frozenset[str], seen: set[str], rules: dict[str, tuple[int, ...]]
    ) -> None:
        by_word, by_prefix, lengths = self._by_word, self._by_prefix, self._lengths
        for word in new:
            found = list(by_word.get(word, ()))
            for head in {word[:n] for n in lengths}:
                found += by_prefix.get(head, ())
            if found:
                rules[word] = tuple(found)
        seen.update(new)


def _pattern_group(pattern: str) -> _Group:
    if pattern.endswith("*"):
        return _Group(prefixes=frozenset({pattern[:-1]}))
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
        "_always", "_by_tag", "_keys", "_matchers", "_names", "_second", "_second_words", "_tests",
    )

    def __init__(self, rules: Mapping[str, Query]) -> None:
        self._names = list(rules)
        self._matchers = [Matcher(q) for q in rules.values()]
        self._tests = [m._test for m in self._matchers]
        by_word: dict[str, list[int]] = {}
        by_prefix: dict[str, list[int]] = {}
        self._by_tag: dict[tuple[str, str], list[int]] = {}
        self._always: list[int] = []
        # A rule's second group, checked on a hit; word-only groups (the usual
        # case) as a bare frozenset, tested with isdisjoint.
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
                by_word.setdefault(word, []).append(i)
            for stem in groups[0].prefixes:
                by_prefix.setdefault(stem, []).append(i)
            for tag in groups[0].tags:
                self._by_tag.setdefault(tag, []).append(i)
        self._keys = _Keys(by_word, by_prefix)

    def __len__(self) -> int:
        return len(self._names)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._names)

    def matcher(self, name: str) -> Matcher:
        """The compiled query of one rule (for :meth:`Matcher.hits`)."""
        return self._matchers[self._names.index(name)]

    def _hits(self, doc: Document) -> set[int]:
        """The rules indexed under a key the document has (before the second groups)."""
        # Duplicates (a title word also in the text) only repeat a lookup.
        hits = set(self._keys.rules(doc._text_words))
        hits.update(self._keys.rules(doc._other_words))
        by_tag = self._by_tag
        if by_tag:
            for field, values in doc._facets.items():
                for value in values:
                    hits.update(by_tag.get((field, value), ()))
        return hits

    def candidates(self, doc: Document) -> set[int]:
        """Indexes of the rules the prefilter cannot rule out."""
        found = {i for i in self._hits(doc) if self._second_hit(i, doc)}
        found.update(self._always)
        return found

    def _second_hit(self, i: int, doc: Document) -> bool:
        words = self._second_words.get(i)
        if words is not None:
            return not (words.isdisjoint(doc._text_words) and words.isdisjoint(doc._other_words))
        group = self._second.get(i)
        return group is None or group.hit(doc)

    def match(self, doc: Document) -> set[str]:
        # candidates() and the evaluation in one loop (_second_hit written
        # out): a set, a pass and a call fewer per candidate.
        second, second_words = self._second, self._second_words
        tests, names = self._tests, self._names
        text, other = doc._text_words, doc._other_words
        matched = set()
        for i in self._hits(doc):
            words = second_words.get(i)
            if words is not None:
                if words.isdisjoint(text) and words.isdisjoint(other):
                    continue
            elif i in second and not second[i].hit(doc):
                continue
            if tests[i](doc):
                matched.add(names[i])
        for i in self._always:
            if tests[i](doc):
                matched.add(names[i])
        return matched
