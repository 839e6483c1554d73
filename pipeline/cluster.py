"""Cluster stage: give reports of the same event the same story id, streaming.

A new article joins the most similar story seen within a time window (default
72 hours) when the similarity reaches a threshold, else it starts a story.
The similarity of an article to a story is its best similarity to any of the
story's articles in the window. Two articles are compared in one of three ways:

**Near-duplicates** (syndicated copies: the same wire text on two sites, a
headline changed, a paragraph cut): when the 4-word shingles of their leads
(first ``LEAD_WORDS`` words) overlap by at least ``NEAR_DUPLICATE``
(Jaccard), the similarity is 1.0.

**Same language** (or a language unknown):

    TEXT_WEIGHT * cosine(tf-idf of title + lead)
      + NAMED_WEIGHT * overlap(countries and people)
      + NUMBER_WEIGHT * overlap(numbers in the title and lead)

Title and lead carry the event (who did what, where); the rest of a report is
background that other events share. Countries and people are the tags of the
tag stage; two reports of one event name the same ones. Numbers ("400
troops", "15.2 million votes") are the most specific thing a report says, but
two reports of one event quote different figures as often as the same ones,
so a shared number adds and a different one costs nothing (the overlap is
shared / smaller set, at least 2, not Jaccard). IDF is smoothed (sklearn's
``log((1+n)/(1+df)) + 1``) over the window: the stored articles and the whole
new batch.

**Different languages** (both known and different): word overlap is about 0
across languages, so text cannot decide. The rule is on what does not depend
on the language, and deliberately conservative:

- the countries and people agree: Jaccard >= ``CROSS_MIN_NAMED`` (0.5), with
  at least one in common;
- at least ``CROSS_MIN_NUMBERS`` (2) numbers in common anywhere in the title
  and text (dates, counts, "Il-20", "F-16", "15 servicemen");

and then the similarity is ``0.5 * named Jaccard + 0.5 * number Jaccard``,
which must reach ``CROSS_THRESHOLD`` (its own threshold, not ``threshold``).
Two Syria stories of one week share "Syria" and "2011" but rarely the people
and the figures of one event.

A story's title is the title of its most representative article: among the
articles in the story's main language, the one most similar to the others.

Speed: articles are indexed by term and by named entity, so an article is
only compared with those it shares an uncommon word with (or, in another
language, a country or person). The members' vectors are rows of one sparse
matrix in numpy arrays (:class:`_Rows`): a new article's cosines with all its
candidates (hundreds, with thousands of articles in the window) are a few
array operations, which rule out most of them; the rest are scored one by one
in Python, exactly as :meth:`Clusterer.compare` scores them. Members that went
out of the window leave the indexes as a pass moves on in time. One pass of
synthetic reports (``benchmarks.synthetic``, stories of 1-4 reports, ~2,000 a
day) takes 4 s for 5,000 and 12 s for 10,000, against 14 s and 50 s when every
candidate was scored in Python and the bound was Cauchy-Schwarz on the common
words (measured with ``cluster()`` on the 2-core development machine).
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from sys import intern

import numpy as np

from pipeline.ids import story_id

TEXT_WEIGHT = 0.70
NAMED_WEIGHT = 0.20
NUMBER_WEIGHT = 0.10
LEAD_WORDS = 120
TITLE_BOOST = 2  # title words count this many times
SHINGLE_WORDS = 4
NEAR_DUPLICATE = 0.5  # shingle Jaccard from which two texts are copies of one report
NEAR_DUPLICATE_COSINE = 0.3  # below this cosine, leads are not copies (shingles not compared)
# An article is compared only with those sharing a word at most this common
# (a share of the window, and never fewer articles than the minimum): reports
# of one event share names and places, and skipping "government" and
# "president" makes assign() 10x cheaper with 2,000 articles in the window.
CANDIDATE_DF_SHARE = 0.02
CANDIDATE_MIN_DF = 20
FORGET_STEPS = 8  # cluster() drops members gone out of the window this often per window
CROSS_MIN_NAMED = 0.5
CROSS_MIN_NUMBERS = 2
CROSS_THRESHOLD = 0.6
_EPSILON = 1e-9  # rounding slack for the cosine bound in assign()

_WORD = re.compile(r"[^\W\d_]{2,}|\d+(?:[.,]\d+)*")
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")
# Numbers anywhere: "2,000", "15.2", "Il-20", "F-16", "18 avril"; thousands
# separators (",", ".", thin and no-break spaces) are dropped so "2,000",
# "2.000" and "2 000" are one number.
_ANY_NUMBER = re.compile(
    r"(?<![\w.,])(?:\d{1,3}(?:[,.\u202f\xa0 ]\d{3})+(?!\d)|\d+(?:[.,]\d+)?)(?![^\W\d_])"
)
_GROUPING = re.compile(r"[,.\u202f\xa0 ](?=\d{3}(?!\d))")
_STOP = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours
    yourself yourselves said says say told according new one two also would could since last
    week year years first may might must shall us mr ms le la les de des du et un une der die
    das und ein eine el los las y en""".split()  # noqa: SIM905 (a word list reads better so)
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterDoc:
    """What clustering needs of an article."""

    id: str
    time: datetime
    title: str
    text: str
    source: str
    countries: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    story_id: str | None = None  # set for articles already stored
    language: str = ""  # ISO 639-1 as detected; "" unknown (then compared as same language)


@dataclass(slots=True)
class _Features:
    terms: Counter[str]
    named: frozenset[str]  # "c:SY", "p:Vladimir Putin"
    lead_numbers: frozenset[str]
    numbers: frozenset[str]  # title and the whole text
    shingles: array[int]  # hashes of the lead's 4-word runs: 8 bytes each, not a set
    language: str


def _number(raw: str) -> str:
    return _GROUPING.sub("", raw).replace(",", ".")


def _features(doc: ClusterDoc) -> _Features:
    lead = " ".join(doc.text.split()[:LEAD_WORDS])
    title_words = _WORD.findall(doc.title.lower())
    lead_words = _WORD.findall(lead.lower())
    terms: Counter[str] = Counter()
    found: set[str] = set()
    for w in title_words * TITLE_BOOST + lead_words:
        if w[0].isdigit() and _NUMBER.match(w):
            found.add(w)
        elif w not in _STOP:
            terms[intern(w)] += 1  # one string per word for every article, vector, index
    lead_numbers = frozenset(_number(w) for w in found - {"1", "2"})
    numbers = frozenset(
        n for n in (_number(m) for m in _ANY_NUMBER.findall(f"{doc.title}\n{doc.text}"))
        if len(n) > 1  # one digit: "3 of the 5", list numbering; usually spelled out anyway
    )
    # Shingles of the lead only: a copy keeps the wire's opening paragraphs, and
    # tokenising whole texts doubled the cost of loading a 2,000-article window.
    # They are compared within one process only, so Python's own (salted) hash
    # of the word tuple will do; it is 5x faster than hashing joined strings.
    shingles = array("q", set(
        map(hash, zip(*(lead_words[i:] for i in range(SHINGLE_WORDS)), strict=False))
    ))
    named = frozenset({f"c:{c}" for c in doc.countries} | {f"p:{p}" for p in doc.people})
    return _Features(terms=terms, named=named, lead_numbers=lead_numbers, numbers=numbers,
                     shingles=shingles, language=doc.language.lower())


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)  # for naive times only
_MICROSECOND = timedelta(microseconds=1)


def _micros(t: datetime) -> int:
    """A time as whole microseconds: exact, unlike a float timestamp. (A naive
    time counts from a naive epoch: mixing the two is an error, as comparing is.)"""
    return (t - (_EPOCH if t.tzinfo is not None else _NAIVE_EPOCH)) // _MICROSECOND


def _micros_of(span: timedelta) -> int:
    return span // _MICROSECOND


def _jaccard(a: frozenset[str] | frozenset[int], b: frozenset[str] | frozenset[int]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def _copies(shingles: frozenset[int], other: array[int]) -> bool:
    """Whether two leads are copies: their shingles' Jaccard reaches
    ``NEAR_DUPLICATE``. ``shingles`` is one lead's as a set, ``other`` the other's
    as stored (distinct hashes), so nothing is built per pair."""
    n, m = len(shingles), len(other)
    if 2 * min(n, m) < max(n, m) or not n:  # the Jaccard is at most min / max
        return False
    shared = len(shingles.intersection(other))
    return shared / (n + m - shared) >= NEAR_DUPLICATE


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    # Shared / the smaller set, but never over fewer than two: one number in
    # common with an article that quotes only one is weak evidence.
    return len(a & b) / max(2, min(len(a), len(b)))


@dataclass(slots=True)
class _Member:
    doc: ClusterDoc
    features: _Features
    story: str
    row: int  # of the unit tf-idf vector in the clusterer's _Rows


def _grown(a: np.ndarray, need: int) -> np.ndarray:
    if need <= len(a):
        return a
    bigger = np.zeros(max(need, 2 * len(a)), dtype=a.dtype)
    bigger[: len(a)] = a
    return bigger


class _Rows:
    """The members' unit vectors as one sparse matrix of compressed rows (term
    ids and weights in two numpy arrays: 12 bytes a term, against ~90 in a
    dict of floats), with each member's time and language, so a new article's
    dot products with all its candidates are a few array operations."""

    __slots__ = ("cols", "ids", "langs", "languages", "micros", "n", "nnz", "query", "starts",
                 "vals", "words")

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.words: list[str] = []
        self.starts = np.zeros(1025, dtype=np.int64)  # row r is cols[starts[r]:starts[r + 1]]
        self.cols = np.zeros(1 << 16, dtype=np.int32)
        self.vals = np.zeros(1 << 16, dtype=np.float64)
        self.micros = np.zeros(1024, dtype=np.int64)
        self.langs = np.zeros(1024, dtype=np.int32)  # 0: unknown
        self.languages: dict[str, int] = {"": 0}
        self.n = self.nnz = 0
        self.query = np.zeros(1024, dtype=np.float64)  # dense; all zeros between calls

    def term_ids(self, vector: dict[str, float]) -> np.ndarray:
        ids = self.ids
        for term in vector:
            if term not in ids:
                ids[term] = len(self.words)
                self.words.append(term)
        return np.fromiter((ids[t] for t in vector), dtype=np.int32, count=len(vector))

    def language(self, language: str) -> int:
        return self.languages.setdefault(language, len(self.languages))

    def append(self, ids: np.ndarray, vector: dict[str, float], micros: int,
               language: str) -> int:
        row, start, end = self.n, self.nnz, self.nnz + len(ids)
        self.starts = _grown(self.starts, row + 2)
        self.micros = _grown(self.micros, row + 1)
        self.langs = _grown(self.langs, row + 1)
        self.cols = _grown(self.cols, end)
        self.vals = _grown(self.vals, end)
        self.cols[start:end] = ids
        self.vals[start:end] = np.fromiter(vector.values(), dtype=np.float64, count=len(ids))
        self.starts[row + 1] = end
        self.micros[row] = micros
        self.langs[row] = self.language(language)
        self.n, self.nnz = row + 1, end
        return row

    def vector(self, row: int) -> dict[str, float]:
        start, end = self.starts[row], self.starts[row + 1]
        words = self.words
        return dict(zip([words[i] for i in self.cols[start:end].tolist()],
                        self.vals[start:end].tolist(), strict=True))

    def products(self, rows: np.ndarray, ids: np.ndarray, weights: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each row's products with the query, term by term (0.0 for its terms
        the query lacks), laid end to end; where each row's run begins; and
        each row's dot product with the query (summed by numpy: for bounds)."""
        starts = self.starts.take(rows)
        lengths = self.starts.take(rows + 1) - starts
        offsets = np.cumsum(lengths) - lengths
        positions = np.repeat(starts - offsets, lengths)  # take() is ~2x faster than [...]
        positions += np.arange(len(positions))
        self.query = _grown(self.query, len(self.words))
        query = self.query
        query[ids] = weights
        products = query.take(self.cols.take(positions)) * self.vals.take(positions)
        query[ids] = 0.0
        dots = np.zeros(len(rows))
        filled = lengths > 0  # reduceat() would give an empty row its next row's first term
        if len(products):
            dots[filled] = np.add.reduceat(products, offsets[filled])
        return products, np.append(offsets, len(products)), dots


@dataclass(frozen=True, slots=True)
class Similarity:
    """How two articles compare, part by part (for the benchmark and for tests)."""

    score: float
    rule: str  # "near-duplicate", "text", "cross-language" or "none"
    cosine: float = 0.0
    named: float = 0.0
    numbers: float = 0.0


@dataclass(slots=True)
class Clusterer:
    """Streaming assignment; feed it the window's stored articles, then new ones."""

    window: timedelta = timedelta(hours=72)
    threshold: float = 0.3
    cross_language: bool = True  # the rule for reports in different languages
    near_duplicates: bool = True  # syndicated copies join whatever their similarity
    _members: list[_Member] = field(default_factory=list)
    _by_story: dict[str, list[_Member]] = field(default_factory=dict)
    _df: Counter[str] = field(default_factory=Counter)
    _n: int = 0  # documents counted in _df
    _idf_cache: dict[str, float] = field(default_factory=dict)  # valid for the current _n
    _observed: set[str] = field(default_factory=set)  # ids counted in _df
    _pending: dict[str, _Features] = field(default_factory=dict)  # observed, not yet added
    _by_term: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    _by_named: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    _rows: _Rows = field(default_factory=_Rows)  # members' vectors, times, languages

    def observe_one(self, doc: ClusterDoc) -> _Features:
        """Count one article about to be assigned in the IDF; its features."""
        features = _features(doc)
        if doc.id not in self._observed:
            self._observed.add(doc.id)
            self._count(features)
        return features

    def observe(self, docs: Iterable[ClusterDoc]) -> None:
        """Count documents about to be assigned in the IDF (the whole batch, up front)."""
        for doc in docs:
            if doc.id not in self._observed:
                features = _features(doc)
                self._observed.add(doc.id)
                self._count(features)
                self._pending[doc.id] = features

    def add_known(self, docs: Iterable[ClusterDoc]) -> None:
        """Add stored articles (each with its story id), streaming: every one is
        counted in the IDF before any is vectorised, and only features are kept."""
        slim = []
        for doc in docs:
            if doc.story_id is None:
                raise ValueError(f"known article {doc.id} has no story id")
            features = self._features(doc)
            if doc.id not in self._observed:
                self._observed.add(doc.id)
                self._count(features)
            slim.append((replace(doc, text=""), doc.story_id, features))
        for doc, story, features in slim:
            self._add(doc, features, story)

    def _features(self, doc: ClusterDoc) -> _Features:
        features = self._pending.pop(doc.id, None)
        return features if features is not None else _features(doc)

    def _count(self, features: _Features) -> None:
        self._n += 1
        self._df.update(features.terms.keys())
        self._idf_cache.clear()

    def _idf(self, term: str) -> float:
        idf = self._idf_cache.get(term)
        if idf is None:
            idf = math.log((1 + self._n) / (1 + self._df.get(term, 0))) + 1.0
            self._idf_cache[term] = idf
        return idf

    def _vector(self, features: _Features) -> dict[str, float]:
        vec = {t: (1 + math.log(c)) * self._idf(t) for t, c in features.terms.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {t: v / norm for t, v in vec.items()}

    def _add(self, doc: ClusterDoc, features: _Features, story: str,
             vector: dict[str, float] | None = None, ids: np.ndarray | None = None
             ) -> _Member:
        if doc.id not in self._observed:
            self._observed.add(doc.id)
            self._count(features)
        vector = vector if vector is not None else self._vector(features)
        ids = ids if ids is not None else self._rows.term_ids(vector)
        # What a member keeps is what comparing and titling need: not the text
        # (the features have it), not the term counts (the vector has them), and
        # the vector as a row of _Rows.
        features.terms = Counter()
        index = len(self._members)
        row = self._rows.append(ids, vector, _micros(doc.time), features.language)
        assert row == index
        member = _Member(doc=replace(doc, text=""), features=features, story=story, row=row)
        self._members.append(member)
        self._by_story.setdefault(story, []).append(member)
        for term in vector:
            self._by_term[term].append(index)
        for name in features.named:
            self._by_named[name].append(index)
        return member

    def forget(self, before: datetime) -> None:
        """Stop offering members older than ``before`` as candidates: the caller
        promises that no article still to be assigned is earlier than ``before``
        plus the window, so the window would rule them out anyway. They stay in
        their stories (for :meth:`representative`); only the term and name
        indexes drop them, which keeps a pass that spans many windows (a first
        pass over feeds whose entries go back weeks) from scanning them all
        again for every new article."""
        cutoff, micros = _micros(before), self._rows.micros
        old = set(np.flatnonzero(micros[: self._rows.n] < cutoff).tolist())
        if not old:
            return
        for index in (self._by_term, self._by_named):
            for key in list(index):
                kept = [i for i in index[key] if i not in old]
                if not kept:
                    del index[key]
                elif len(kept) != len(index[key]):
                    index[key] = kept

    # -- comparing two articles ---------------------------------------------------------

    def _cross(self, a: _Features, b: _Features) -> bool:
        return self.cross_language and bool(a.language and b.language) and (
            a.language != b.language
        )

    def compare(self, a: _Features, b: _Features, va: dict[str, float],
                vb: dict[str, float], cosine: float | None = None) -> Similarity:
        """Compare two articles' features; ``cosine`` of ``va`` and ``vb`` if known."""
        cross = self._cross(a, b)
        if cosine is None and not cross:
            # Over the shared words only (a set operation in C), summed exactly
            # rounded so the order of the words cannot change the last digit.
            cosine = math.fsum(va[t] * vb[t] for t in va.keys() & vb.keys())
        # Copies share most of their lead words, so their cosine is high: only
        # then are the shingles worth comparing.
        if (self.near_duplicates and (cross or (cosine or 0.0) >= NEAR_DUPLICATE_COSINE)
                and _copies(frozenset(a.shingles), b.shingles)):
            return Similarity(1.0, "near-duplicate", cosine=cosine or 0.0)
        if cross:
            return self._cross_rule(a, b)
        assert cosine is not None
        named = _jaccard(a.named, b.named)
        numbers = _overlap(a.lead_numbers, b.lead_numbers)
        score = TEXT_WEIGHT * cosine + NAMED_WEIGHT * named + NUMBER_WEIGHT * numbers
        return Similarity(score, "text", cosine=cosine, named=named, numbers=numbers)

    def _cross_rule(self, a: _Features, b: _Features) -> Similarity:
        """Two articles in different languages, unless they are copies."""
        named = _jaccard(a.named, b.named)
        shared_numbers = len(a.numbers & b.numbers)
        numbers = _jaccard(a.numbers, b.numbers)
        if (named < CROSS_MIN_NAMED or not a.named & b.named
                or shared_numbers < CROSS_MIN_NUMBERS):
            return Similarity(0.0, "none", named=named, numbers=numbers)
        score = 0.5 * named + 0.5 * numbers
        # Mapped onto the same-language scale: CROSS_THRESHOLD here is `threshold` there.
        scaled = self.threshold * score / CROSS_THRESHOLD
        return Similarity(scaled if score >= CROSS_THRESHOLD else 0.0, "cross-language",
                          named=named, numbers=numbers)

    def vector_of(self, member: _Member) -> dict[str, float]:
        """A member's unit tf-idf vector, as :meth:`compare` takes it."""
        return self._rows.vector(member.row)

    def similarity(self, a: ClusterDoc, b: ClusterDoc) -> Similarity:
        """Compare two articles with this clusterer's IDF (for diagnostics and tests)."""
        fa, fb = _features(a), _features(b)
        return self.compare(fa, fb, self._vector(fa), self._vector(fb))

    # -- assigning ----------------------------------------------------------------------

    def _limit(self) -> float:
        """Document frequency above which a term is too common to find candidates by."""
        return max(CANDIDATE_MIN_DF, CANDIDATE_DF_SHARE * self._n)

    def _candidates(self, features: _Features, vector: dict[str, float]
                    ) -> tuple[set[int], set[int], set[int]]:
        """Members worth comparing: those sharing a word that is not among the
        commonest in the window; and, in another language, the members sharing
        a country or person. Third, all the members sharing one."""
        limit = self._limit()
        df, by_term = self._df, self._by_term
        found: set[int] = set()
        for term in vector:
            if df.get(term, 0) <= limit:
                found.update(by_term.get(term, ()))
        named: set[int] = set()
        for name in features.named:
            named.update(self._by_named.get(name, ()))
        cross: set[int] = set()
        if self.cross_language and features.language and named:
            rows = self._rows
            sharing = np.fromiter(named, dtype=np.int64, count=len(named))
            langs = rows.langs[sharing]
            cross = set(sharing[(langs != 0) & (langs != rows.language(features.language))]
                        .tolist())
        return found, cross, named

    def assign(self, doc: ClusterDoc, features: _Features | None = None) -> str:
        """Return the story id for a new article and remember it.

        The article goes to the story of its most similar member (the lowest
        index among equals), if that similarity reaches the threshold. The
        cosines with all candidates are computed at once (:class:`_Rows`),
        and a candidate that cannot reach the threshold with them (nor the best
        so far, nor the cosine from which leads are compared as copies), even
        if it shared every country, person and number, is ruled out there; the
        others are scored as :meth:`compare` scores them, with the cosine
        summed exactly (``math.fsum``), so the answer is the one comparing
        every candidate one by one gives (``tests/unit/test_cluster.py``
        checks it against that).
        """
        features = features if features is not None else self._features(doc)
        if doc.id not in self._observed:
            self._observed.add(doc.id)
            self._count(features)
        vector = self._vector(features)
        rows = self._rows
        ids = rows.term_ids(vector)
        found, cross, named = self._candidates(features, vector)
        best_story, best = None, 0.0
        if found or cross:
            best_story, best = self._best(doc, features, vector, ids, found | cross, named)
        if best_story is None or best < self.threshold:
            best_story = story_id(doc.id)
        self._add(doc, features, best_story, vector, ids)
        return best_story

    def _best(self, doc: ClusterDoc, features: _Features, vector: dict[str, float],
              ids: np.ndarray, found: set[int], sharing: set[int]
              ) -> tuple[str | None, float]:
        rows, members = self._rows, self._members
        index = np.fromiter(sorted(found), dtype=np.int64, count=len(found))
        index = index[np.abs(rows.micros[index] - _micros(doc.time)) <= _micros_of(self.window)]
        language = rows.language(features.language)
        other = (rows.langs[index] != 0) & (rows.langs[index] != language)
        if not (self.cross_language and features.language):
            other[:] = False  # compared as the same language
        products, offsets, dots = rows.products(
            index, ids, np.fromiter(vector.values(), dtype=np.float64, count=len(vector)))
        # An upper bound of each cosine (numpy's sum may differ from the exact
        # one in the last bits) and of what countries, people and numbers add.
        bound = np.minimum(dots, 1.0) + _EPSILON
        named = features.named
        shares = np.fromiter(map(sharing.__contains__, index.tolist()), dtype=bool,
                             count=len(index))
        near = NEAR_DUPLICATE_COSINE if self.near_duplicates else math.inf
        viable = other | (bound >= near) | (
            TEXT_WEIGHT * bound + NAMED_WEIGHT * shares + NUMBER_WEIGHT >= self.threshold)
        numbers = features.lead_numbers
        mine = frozenset(features.shingles)  # compared as copies' (_copies)
        best_story, best = None, 0.0
        for k in np.flatnonzero(viable).tolist():
            i = int(index[k])
            member = members[i]
            theirs = member.features
            if member.doc.id == doc.id:
                continue
            if other[k]:  # compared on named entities and numbers: no cosine to bound
                # As compare() scores it.
                score = (1.0 if self.near_duplicates and _copies(mine, theirs.shingles)
                         else self._cross_rule(features, theirs).score)
            else:
                high = float(bound[k])
                # What named entities and numbers must add to reach the target.
                rest = (best if best > self.threshold else self.threshold) - TEXT_WEIGHT * high
                # As compare() computes them (_jaccard, _overlap), written out.
                union = len(named | theirs.named)
                shared = len(named & theirs.named) / union if union else 0.0
                figures = len(numbers & theirs.lead_numbers) / max(
                    2, min(len(numbers), len(theirs.lead_numbers)))
                if high < near and NAMED_WEIGHT * shared + NUMBER_WEIGHT * figures < rest:
                    continue
                # The terms' products, summed exactly: the sum over the shared
                # words compare() takes (the others add 0.0).
                cosine = math.fsum(products[offsets[k]:offsets[k + 1]].tolist())
                # compare()'s score: 1.0 for copies (looked for from a cosine
                # of `near`), else the "text" score, the same sum in the same order.
                score = 1.0 if cosine >= near and _copies(mine, theirs.shingles) else (
                    TEXT_WEIGHT * cosine + NAMED_WEIGHT * shared + NUMBER_WEIGHT * figures)
            if score > best:
                best_story, best = member.story, score
        return best_story, best

    def representative(self, story: str) -> ClusterDoc | None:
        """The member most similar to the others, in the story's main language."""
        members = self._by_story.get(story, [])
        if not members:
            return None
        languages = Counter(m.features.language for m in members)
        # Most members; a tie goes to the language of the earliest article.
        first = min(members, key=lambda m: (m.doc.time, m.doc.id)).features.language
        main = max(languages, key=lambda lang: (languages[lang], lang == first))
        members = [m for m in members if m.features.language == main]
        if len(members) <= 2:
            return min(members, key=lambda m: (m.doc.time, m.doc.id)).doc
        vectors = {id(m): self.vector_of(m) for m in members}
        scored = [
            (sum(self.compare(m.features, o.features, vectors[id(m)], vectors[id(o)]).score
                 for o in members if o is not m), m)
            for m in members
        ]
        return max(scored, key=lambda s: (s[0], -s[1].doc.time.timestamp()))[1].doc


def _shifted(when: datetime, by: timedelta) -> datetime | None:
    """``when + by``, or None past the ends of the calendar (a feed's date of
    year 9999 is a bad date, not a crash)."""
    try:
        return when + by
    except OverflowError:
        return None


def cluster(
    new: Iterable[ClusterDoc], known: Iterable[ClusterDoc], *,
    window: timedelta = timedelta(hours=72), threshold: float = 0.3,
) -> tuple[dict[str, str], Clusterer]:
    """Assign story ids to ``new`` articles (in time order), given the window's stored ones.

    Both are read once, in that order, and may be iterators: an article's text is
    only needed for its features, so a pass's texts are never all held at once.
    """
    clusterer = Clusterer(window=window, threshold=threshold)
    features: dict[str, _Features] = {}
    slim = []
    for doc in new:
        if doc.id not in features:  # the first copy of an id, as assigning keeps it
            features[doc.id] = clusterer.observe_one(doc)
            slim.append(replace(doc, text=""))
    clusterer.add_known(known)
    slim.sort(key=lambda d: (d.time, d.id))
    assignments: dict[str, str] = {}
    step = window / FORGET_STEPS
    forget_at = _shifted(slim[0].time, step) if slim else None
    for doc in slim:
        if forget_at is not None and doc.time >= forget_at:
            # In time order: no article still to come is earlier than this one.
            if (before := _shifted(doc.time, -window)) is not None:
                clusterer.forget(before)
            forget_at = _shifted(doc.time, step)
        assignments[doc.id] = clusterer.assign(doc, features.pop(doc.id))
    return assignments, clusterer
