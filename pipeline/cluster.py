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
language, a country or person). With 2,000 stored articles in the window
(synthetic, Zipf-distributed words; ``benchmarks/signal_quality.py``),
assign() takes 3-5 ms per new article, against 40 ms when every article was
compared with every other; loading the 2,000 takes 0.7-1.5 s (features and
vectors are computed once per article). Measured on the 2-core development
machine under load, so ranges.
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


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    # Shared / the smaller set, but never over fewer than two: one number in
    # common with an article that quotes only one is weak evidence.
    return len(a & b) / max(2, min(len(a), len(b)))


@dataclass(slots=True)
class _Member:
    doc: ClusterDoc
    features: _Features
    story: str
    vector: dict[str, float] = field(default_factory=dict)  # unit tf-idf vector


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
    _norms: list[float] = field(default_factory=list)  # see _common_norms_now
    _norms_limit: float = -1.0
    _micros: list[int] = field(default_factory=list)  # each member's time, as _micros()

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
        self._norms_limit = -1.0  # which terms are common may have changed

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
             vector: dict[str, float] | None = None) -> _Member:
        if doc.id not in self._observed:
            self._observed.add(doc.id)
            self._count(features)
        vector = vector if vector is not None else self._vector(features)
        # What a member keeps is what comparing and titling need: not the text
        # (the features have it), not the term counts (the vector has them).
        features.terms = Counter()
        member = _Member(doc=replace(doc, text=""), features=features, story=story,
                         vector=vector)
        index = len(self._members)
        self._members.append(member)
        self._micros.append(_micros(doc.time))
        self._by_story.setdefault(story, []).append(member)
        for term in member.vector:
            self._by_term[term].append(index)
        for name in features.named:
            self._by_named[name].append(index)
        return member

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
                and _jaccard(frozenset(a.shingles), frozenset(b.shingles)) >= NEAR_DUPLICATE):
            return Similarity(1.0, "near-duplicate", cosine=cosine or 0.0)
        if cross:
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
        assert cosine is not None
        named = _jaccard(a.named, b.named)
        numbers = _overlap(a.lead_numbers, b.lead_numbers)
        score = TEXT_WEIGHT * cosine + NAMED_WEIGHT * named + NUMBER_WEIGHT * numbers
        return Similarity(score, "text", cosine=cosine, named=named, numbers=numbers)

    def similarity(self, a: ClusterDoc, b: ClusterDoc) -> Similarity:
        """Compare two articles with this clusterer's IDF (for diagnostics and tests)."""
        fa, fb = _features(a), _features(b)
        return self.compare(fa, fb, self._vector(fa), self._vector(fb))

    # -- assigning ----------------------------------------------------------------------

    def _limit(self) -> float:
        """Document frequency above which a term is too common to find candidates by."""
        return max(CANDIDATE_MIN_DF, CANDIDATE_DF_SHARE * self._n)

    def _common_norms_now(self) -> list[float]:
        """Each member's vector norm over the common terms (df above the current
        limit), kept until a document is counted (none is while a batch that was
        observed up front is assigned)."""
        limit = self._limit()
        if limit != self._norms_limit:
            self._norms, self._norms_limit = [], limit
        norms, df = self._norms, self._df
        for member in self._members[len(norms):]:
            norms.append(math.sqrt(sum(v * v for t, v in member.vector.items()
                                       if df.get(t, 0) > limit)))
        return norms

    def _candidates(self, features: _Features, vector: dict[str, float]
                    ) -> tuple[dict[int, float], float, set[int]]:
        """Members worth comparing: those sharing a word that is not among the
        commonest in the window, with the dot product over those words; the norm
        of ``vector`` over the common words; and, in another language, the
        members sharing a country or person."""
        limit = self._limit()
        df, by_term, members = self._df, self._by_term, self._members
        partial: dict[int, float] = {}
        common = 0.0
        for term, weight in vector.items():
            if df.get(term, 0) <= limit:
                for i in by_term.get(term, ()):
                    partial[i] = partial.get(i, 0.0) + weight * members[i].vector[term]
            else:
                common += weight * weight
        cross: set[int] = set()
        if self.cross_language and features.language:
            language = features.language
            for name in features.named:
                cross.update(i for i in self._by_named.get(name, ())
                             if members[i].features.language not in ("", language))
        return partial, math.sqrt(common), cross

    def assign(self, doc: ClusterDoc, features: _Features | None = None) -> str:
        """Return the story id for a new article and remember it.

        The article goes to the story of its most similar member (the lowest
        index among equals), if that similarity reaches the threshold. Most
        candidates are ruled out without computing their cosine: the dot
        product over the uncommon words is known from the index, and the rest
        of the cosine is at most the product of the two vectors' norms over the
        common words (Cauchy-Schwarz). A candidate whose bound cannot reach the
        threshold (nor the best so far, nor the cosine from which leads are
        compared as copies) is skipped; the others are compared in full, so
        the answer is the one comparing every candidate would give
        (``tests/unit/test_cluster.py`` checks it against that).
        """
        features = features if features is not None else self._features(doc)
        if doc.id not in self._observed:
            self._observed.add(doc.id)
            self._count(features)
        vector = self._vector(features)
        partial, common, cross = self._candidates(features, vector)
        norms = self._common_norms_now()
        near = NEAR_DUPLICATE_COSINE if self.near_duplicates else math.inf
        language = features.language
        cross_on = self.cross_language and bool(language)
        named, numbers = features.named, features.lead_numbers
        best_story, best = None, 0.0
        members, micros = self._members, self._micros
        now, window = _micros(doc.time), _micros_of(self.window)
        # The loop is the clusterer's hot path: the bound is written out inline.
        for index in sorted(partial.keys() | cross):
            if abs(micros[index] - now) > window:
                continue
            member = members[index]
            other = member.features
            if index in cross or (cross_on and other.language and other.language != language):
                if member.doc.id == doc.id:
                    continue
                # Compared on named entities and numbers: no cosine to bound.
                score = self.compare(features, other, vector, member.vector).score
            else:
                bound = partial.get(index, 0.0) + common * norms[index]
                bound = (1.0 if bound > 1.0 else bound) + _EPSILON
                # What named entities and numbers must add to reach the target.
                rest = (best if best > self.threshold else self.threshold) - TEXT_WEIGHT * bound
                if bound < near and rest > NAMED_WEIGHT + NUMBER_WEIGHT:
                    continue
                # As compare() computes them (_jaccard, _overlap), written out.
                union = len(named | other.named)
                shared = len(named & other.named) / union if union else 0.0
                figures = len(numbers & other.lead_numbers) / max(
                    2, min(len(numbers), len(other.lead_numbers)))
                if bound < near and NAMED_WEIGHT * shared + NUMBER_WEIGHT * figures < rest:
                    continue
                if member.doc.id == doc.id:
                    continue
                theirs = member.vector
                cosine = math.fsum(vector[t] * theirs[t] for t in vector.keys() & theirs.keys())
                if cosine >= near:  # possibly a copy: the shingles decide (compare)
                    score = self.compare(features, other, vector, theirs, cosine).score
                else:  # compare()'s "text" score, the same sum in the same order
                    score = (TEXT_WEIGHT * cosine + NAMED_WEIGHT * shared
                             + NUMBER_WEIGHT * figures)
            if score > best:
                best_story, best = member.story, score
        if best_story is None or best < self.threshold:
            best_story = story_id(doc.id)
        self._add(doc, features, best_story, vector)
        return best_story

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
        scored = [
            (sum(self.compare(m.features, o.features, m.vector, o.vector).score
                 for o in members if o is not m), m)
            for m in members
        ]
        return max(scored, key=lambda s: (s[0], -s[1].doc.time.timestamp()))[1].doc


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
    assignments = {doc.id: clusterer.assign(doc, features.pop(doc.id)) for doc in slim}
    return assignments, clusterer
