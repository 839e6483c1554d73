"""Cluster stage: give reports of the same event the same story id, streaming.

A new article joins the most similar story seen within a time window (default
72 hours) when the similarity reaches a threshold, else it starts a story.

Similarity of an article to a story is the best similarity to any of the
story's articles in the window, where the similarity of two articles is

    TEXT_WEIGHT * cosine(tf-idf of title + lead)  +  ENTITY_WEIGHT * overlap(entities)

Title and lead carry the event (who did what, where); the rest of a report
is background that other events share. Entities are the tagged countries and
people plus the numbers in the lead ("15 servicemen", "400 troops"): two
reports of one event agree on them, two events on one topic often do not.
IDF is smoothed (sklearn's ``log((1+n)/(1+df)) + 1``) over the window, so a
word every candidate shares still counts a little instead of zero.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pipeline.ids import story_id

TEXT_WEIGHT = 0.75
ENTITY_WEIGHT = 0.25
LEAD_WORDS = 120
TITLE_BOOST = 2  # title words count this many times

_WORD = re.compile(r"[^\W\d_]{2,}|\d+(?:[.,]\d+)*")
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")
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


@dataclass(slots=True)
class _Features:
    terms: Counter[str]
    entities: frozenset[str]


def _features(doc: ClusterDoc) -> _Features:
    lead = " ".join(doc.text.split()[:LEAD_WORDS])
    title_words = [w.lower() for w in _WORD.findall(doc.title)]
    lead_words = [w.lower() for w in _WORD.findall(lead)]
    terms: Counter[str] = Counter()
    for w in title_words * TITLE_BOOST + lead_words:
        if w not in _STOP and not _NUMBER.match(w):
            terms[w] += 1
    numbers = {f"n:{w}" for w in lead_words if _NUMBER.match(w) and w not in {"1", "2"}}
    entities = frozenset(
        {f"c:{c}" for c in doc.countries} | {f"p:{p}" for p in doc.people} | numbers
    )
    return _Features(terms=terms, entities=entities)


@dataclass(slots=True)
class _Member:
    doc: ClusterDoc
    features: _Features
    story: str


@dataclass(slots=True)
class Clusterer:
    """Streaming assignment; feed it the window's stored articles, then new ones."""

    window: timedelta = timedelta(hours=72)
    threshold: float = 0.3
    _members: list[_Member] = field(default_factory=list)
    _df: Counter[str] = field(default_factory=Counter)

    def add_known(self, docs: Iterable[ClusterDoc]) -> None:
        for doc in docs:
            if doc.story_id is None:
                raise ValueError(f"known article {doc.id} has no story id")
            self._add(doc, doc.story_id)

    def _add(self, doc: ClusterDoc, story: str) -> _Member:
        member = _Member(doc=doc, features=_features(doc), story=story)
        self._members.append(member)
        self._df.update(member.features.terms.keys())
        return member

    def _idf(self, term: str) -> float:
        n = len(self._members)
        return math.log((1 + n) / (1 + self._df.get(term, 0))) + 1.0

    def _vector(self, features: _Features) -> dict[str, float]:
        vec = {t: (1 + math.log(c)) * self._idf(t) for t, c in features.terms.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {t: v / norm for t, v in vec.items()}

    def similarity(self, a: _Features, b: _Features) -> float:
        va, vb = self._vector(a), self._vector(b)
        if len(va) > len(vb):
            va, vb = vb, va
        cosine = sum(v * vb.get(t, 0.0) for t, v in va.items())
        union = a.entities | b.entities
        overlap = len(a.entities & b.entities) / len(union) if union else 0.0
        return TEXT_WEIGHT * cosine + ENTITY_WEIGHT * overlap

    def assign(self, doc: ClusterDoc) -> str:
        """Return the story id for a new article and remember it."""
        features = _features(doc)
        best_story, best = None, 0.0
        for member in self._members:
            if abs(member.doc.time - doc.time) > self.window or member.doc.id == doc.id:
                continue
            score = self.similarity(features, member.features)
            if score > best:
                best_story, best = member.story, score
        if best_story is None or best < self.threshold:
            best_story = story_id(doc.id)
        story = best_story
        self._add(doc, story)
        return story

    def representative(self, story: str) -> ClusterDoc | None:
        """The member most similar to the others: its title names the story."""
        members = [m for m in self._members if m.story == story]
        if not members:
            return None
        if len(members) <= 2:
            return min(members, key=lambda m: m.doc.time).doc
        scored = [
            (sum(self.similarity(m.features, o.features) for o in members if o is not m), m)
            for m in members
        ]
        return max(scored, key=lambda s: (s[0], -s[1].doc.time.timestamp()))[1].doc


def cluster(
    new: Sequence[ClusterDoc], known: Iterable[ClusterDoc], *,
    window: timedelta = timedelta(hours=72), threshold: float = 0.3,
) -> tuple[dict[str, str], Clusterer]:
    """Assign story ids to ``new`` articles (in time order), given the window's stored ones."""
    clusterer = Clusterer(window=window, threshold=threshold)
    clusterer.add_known(known)
    assignments = {doc.id: clusterer.assign(doc) for doc in sorted(new, key=lambda d: d.time)}
    return assignments, clusterer
