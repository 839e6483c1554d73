"""Tag stage: countries, people, then topics, each with the sentence that shows why.

Countries and people are tagged first so that topic queries can use
``country:`` and ``person:`` (the default ``syria`` topic is "substantially
about Syria" as the gazetteer rule decides, not "mentions Syria once").

**When is an article about a topic?** A topic's query must match the article
(the query language's own semantics, over title and text), and the match must
be prominent (:class:`TopicRule`), at least one of:

1. the query is satisfied by the article's **tags** alone (``country:SY``,
   ``person:putin``, ``source:``, ``lang:``): those tags are already
   "substantially about" decisions of their own;
2. a **hit** of the query (a span of one of its positive clauses that made it
   match, :meth:`pipeline.query.Matcher.hits`) is in the **title**;
3. a hit is in the **lead**: the first two sentences of the body that have at
   least five words (the same lead as the country rule in
   :mod:`pipeline.signal.places`);
4. hits are in at least **two different body sentences**.

So one passing clause outside the lead ("... the election campaign in Israel
as a possible cause", "a government crackdown on protesters in 2011") no
longer tags a topic. On the labelled set (``benchmarks/signal``, 49 articles;
``docs/signal.md``), the same queries give topic precision 0.70 when any
match tags and 0.92 with this rule, recall 0.99 both ways. Lead and sentence
counts were chosen there: a one-sentence lead or three sentences lose recall
(0.90-0.96), a three-sentence lead loses precision (0.86).

Evidence is the title when a hit is there, else the first sentence with a hit,
else (a tag-only match) the evidence of the matching country or person.
"""

from __future__ import annotations

import bisect
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from pydantic import RootModel

from pipeline.config import Topics
from pipeline.content.sentences import (
    LEAD_MIN_WORDS,
    LEAD_SENTENCES,
    clip,
    lead,
    split_sentences,
)
from pipeline.datafile import load
from pipeline.models import Article, TagEvidence, TaggedArticle
from pipeline.query import Document, Hit, Matcher, RuleSet, compile, parse
from pipeline.signal.people import PersonSpec, PersonTag, Watchlist, load_watchlist, tag_people
from pipeline.signal.places import CountryTag, Gazetteer, load_gazetteer, tag_countries

if TYPE_CHECKING:
    from pipeline.config import Settings


class TopicsFileError(ValueError):
    """The topics file is malformed (the message says where)."""


class TopicsFile(RootModel[Topics]):
    """``pipeline/data/topics.yaml``: topic name -> query, as in the config's ``topics``."""


@cache
def default_topics() -> dict[str, str]:
    source = resources.files("pipeline.data").joinpath("topics.yaml")
    topics = load(source.read_bytes(), TopicsFile, origin=str(source), error=TopicsFileError)
    return {name: " ".join(query.split()) for name, query in topics.root.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicRule:
    """How prominent a topic's match must be (rules in the module doc)."""

    lead_sentences: int = LEAD_SENTENCES  # the lead: this many first sentences ...
    lead_min_words: int = LEAD_MIN_WORDS  # ... of at least this many words
    # Body sentences with a hit needed outside title and lead. 0 turns the rule
    # off: any match anywhere tags (the behaviour before the rule, kept for the
    # benchmark's baseline).
    min_sentences: int = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Tagger:
    """Everything tagging needs, compiled once (per process) from the settings."""

    topics: RuleSet
    matchers: dict[str, Matcher]
    gazetteer: Gazetteer
    watchlist: Watchlist
    topic_rule: TopicRule = field(default_factory=TopicRule)


def topic_queries(settings: Settings) -> dict[str, str]:
    queries = dict(default_topics()) if settings.default_topics else {}
    queries.update(settings.topics)
    return queries


def build_tagger(settings: Settings) -> Tagger:
    queries = {name: parse(q) for name, q in topic_queries(settings).items()}
    extra = [PersonSpec(name=p.name, aliases=tuple(p.aliases)) for p in settings.people]
    return Tagger(
        topics=RuleSet(queries),
        matchers={name: compile(q) for name, q in queries.items()},
        gazetteer=load_gazetteer(),
        watchlist=load_watchlist(extra=extra),
    )


def document(article: Article, *, topics: tuple[str, ...] = (),
             countries: tuple[str, ...] = (), people: tuple[str, ...] = ()) -> Document:
    return Document(
        title=article.title, text=article.text, source=article.source,
        language=article.language or "", topics=topics, countries=countries, people=people,
    )


_END = sys.maxsize


@dataclass(slots=True)
class _Body:
    """Sentence spans and the lead of one article, computed once for all topics."""

    text: str
    rule: TopicRule
    spans: list[tuple[int, int]]  # split_sentences(text)
    lead: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.lead = lead(self.text, self.spans, sentences=self.rule.lead_sentences,
                         min_words=self.rule.lead_min_words)

    def sentence_of(self, offset: int) -> int | None:
        i = bisect.bisect_right(self.spans, (offset, _END)) - 1
        return i if i >= 0 and offset < self.spans[i][1] else None


def _prominent(hits: list[Hit], body: _Body, rule: TopicRule) -> tuple[bool, int | None]:
    """Whether text hits are in the lead or in enough sentences; the first hit's sentence."""
    sentences: list[int] = []
    for hit in hits:
        if hit.field != "text":
            continue
        i = body.sentence_of(hit.start)
        if i is not None and i not in sentences:
            sentences.append(i)
    first = min(sentences, default=None)
    return (not body.lead.isdisjoint(sentences) or len(sentences) >= rule.min_sentences), first


def _tag_evidence(matcher: Matcher, article: Article, countries: tuple[CountryTag, ...],
                  people: tuple[PersonTag, ...]) -> str:
    """The evidence of the first country or person tag that alone satisfies the query."""
    language = article.language or ""
    for c in countries:
        if matcher.matches(Document(source=article.source, language=language,
                                    countries=(c.code,))):
            return c.evidence
    for p in people:
        if matcher.matches(Document(source=article.source, language=language,
                                    people=(p.name,))):
            return p.evidence
    evidence = [c.evidence for c in countries] + [p.evidence for p in people]
    return evidence[0] if evidence else ""


def tag(article: Article, tagger: Tagger) -> TaggedArticle:
    # One split for the three taggers, which used to split the body each: 25 ms
    # a pass over the 181 pages of benchmarks/processing.py, tagging is 230 ms.
    spans = split_sentences(article.text)
    countries = tag_countries(title=article.title, text=article.text,
                              gazetteer=tagger.gazetteer, sentences=spans)
    people = tag_people(title=article.title, text=article.text, watchlist=tagger.watchlist,
                        sentences=spans)
    codes = tuple(c.code for c in countries)
    names = tuple(p.name for p in people)
    doc = document(article, countries=codes, people=names)
    evidence = [TagEvidence(kind="country", tag=c.code, evidence=c.evidence) for c in countries]
    evidence += [TagEvidence(kind="person", tag=p.name, evidence=p.evidence) for p in people]

    rule = tagger.topic_rule
    body: _Body | None = None
    tags_only: Document | None = None
    topics: list[str] = []
    for topic in sorted(tagger.topics.match(doc)):
        matcher = tagger.matchers[topic]
        hits = matcher.hits(doc)
        if any(h.field == "title" for h in hits):
            topics.append(topic)
            evidence.append(TagEvidence(kind="topic", tag=topic, evidence=clip(article.title)))
            continue
        body = body if body is not None else _Body(article.text, rule, spans)
        about, first = _prominent(hits, body, rule)
        if not about:
            # The tags alone (no title, no text) may satisfy the query: country:SY.
            if tags_only is None:
                tags_only = Document(source=article.source, language=article.language or "",
                                     countries=codes, people=names)
            if not matcher.matches(tags_only):
                continue  # a passing mention
        topics.append(topic)
        if first is not None:
            start, end = body.spans[first]
            sentence = clip(article.text[start:end])
        else:  # matched through country:/person:, whose evidence is recorded above
            sentence = _tag_evidence(matcher, article, countries, people)
        evidence.append(TagEvidence(kind="topic", tag=topic, evidence=sentence))
    return TaggedArticle(
        article=article, topics=tuple(topics), countries=codes, people=names,
        evidence=tuple(evidence),
    )
