"""Tag stage: countries, people, then topics, each with the sentence that shows why.

Countries and people are tagged first so that topic queries can use
``country:`` and ``person:`` (the default ``syria`` topic is "substantially
about Syria" as the gazetteer rule decides, not "mentions Syria once").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

import yaml

from pipeline.models import Article, TagEvidence, TaggedArticle
from pipeline.people import PersonSpec, Watchlist, load_watchlist, tag_people
from pipeline.places import Gazetteer, load_gazetteer, tag_countries
from pipeline.query import Document, Matcher, RuleSet, compile, parse
from pipeline.sentences import split_sentences

if TYPE_CHECKING:
    from pipeline.config import Settings


@cache
def default_topics() -> dict[str, str]:
    text = resources.files("pipeline.data").joinpath("topics.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return {str(k): " ".join(str(v).split()) for k, v in data.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class Tagger:
    """Everything tagging needs, compiled once (per process) from the settings."""

    topics: RuleSet
    matchers: dict[str, Matcher]
    gazetteer: Gazetteer
    watchlist: Watchlist


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


def _sentence_at(text: str, spans: list[tuple[int, int]], offset: int) -> str:
    for start, end in spans:
        if start <= offset < end:
            return text[start:end].strip()
    return ""


def document(article: Article, *, topics: tuple[str, ...] = (),
             countries: tuple[str, ...] = (), people: tuple[str, ...] = ()) -> Document:
    return Document(
        title=article.title, text=article.text, source=article.source,
        language=article.language or "", topics=topics, countries=countries, people=people,
    )


def tag(article: Article, tagger: Tagger) -> TaggedArticle:
    countries = tag_countries(title=article.title, text=article.text, gazetteer=tagger.gazetteer)
    people = tag_people(title=article.title, text=article.text, watchlist=tagger.watchlist)
    codes = tuple(c.code for c in countries)
    names = tuple(p.name for p in people)
    doc = document(article, countries=codes, people=names)
    topics = tuple(sorted(tagger.topics.match(doc)))
    evidence = [TagEvidence(kind="country", tag=c.code, evidence=c.evidence) for c in countries]
    evidence += [TagEvidence(kind="person", tag=p.name, evidence=p.evidence) for p in people]
    spans: list[tuple[int, int]] | None = None
    for topic in topics:
        text_hits = [h for h in tagger.matchers[topic].hits(doc) if h.field == "text"]
        title_hits = [h for h in tagger.matchers[topic].hits(doc) if h.field == "title"]
        if text_hits:
            spans = spans if spans is not None else split_sentences(article.text)
            sentence = _sentence_at(article.text, spans, text_hits[0].start)
        elif title_hits:
            sentence = article.title
        else:  # matched through country:/person:, whose evidence is recorded above
            sentence = next((e.evidence for e in evidence if e.kind != "topic"), "")
        evidence.append(TagEvidence(kind="topic", tag=topic, evidence=sentence))
    return TaggedArticle(
        article=article, topics=topics, countries=codes, people=names, evidence=tuple(evidence)
    )
