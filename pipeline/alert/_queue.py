"""Queueing: outbox candidates (planned by the cluster stage), outbox rows written
from them inside the load transaction, and backtests.

The outbox key is (rule, story_id, recipient, update_no). ``update_no`` 0 is
the alert for a story; a rule with ``updates: true`` adds 1, 2, ... when the
story grows (never more than one unsent update at a time). A digest rule's
rows wait until the end of their period (UTC-aligned hours, days, ISO weeks).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from pipeline.config import AlertRule
from pipeline.query import Document, Matcher, SqlColumns, compile, parse, to_sql
from pipeline.store import insert_values
from pipeline.store.backend import is_lake, upsert

_ARTICLE_COLUMNS = SqlColumns(
    title="a.title", text="a.text", source="a.source", language="a.language",
    topics="a.topics", countries="a.countries", people="a.people",
)
_PERIOD = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(days=7)}


@dataclass(frozen=True, slots=True, kw_only=True)
class StoryArticle:
    id: str
    title: str
    url: str
    source: str
    text: str
    language: str | None
    topics: tuple[str, ...]
    countries: tuple[str, ...]
    people: tuple[str, ...]
    published_at: datetime | None
    loaded_at: datetime | None = None

    def document(self) -> Document:
        return Document(
            title=self.title, text=self.text, source=self.source, language=self.language or "",
            topics=self.topics, countries=self.countries, people=self.people,
        )


def story_articles(con: duckdb.DuckDBPyConnection, story_id: str) -> list[StoryArticle]:
    cursor = con.execute(
        f"SELECT {', '.join(STORY_ARTICLE_COLUMNS)} FROM articles WHERE story_id = ?"
        " ORDER BY coalesce(published_at, fetched_at), id",
        [story_id],
    )
    return [story_article(row) for row in named_rows(cursor, cursor.fetchall())]


# The articles columns a StoryArticle is made of: its fields, by name.
STORY_ARTICLE_COLUMNS = tuple(f.name for f in fields(StoryArticle))


def named_rows(cursor: duckdb.DuckDBPyConnection, rows: Iterable[Sequence[Any]]
               ) -> Iterator[dict[str, Any]]:
    """Rows of ``cursor``'s result as {column name: value}."""
    names = [d[0] for d in cursor.description or ()]
    for row in rows:
        yield dict(zip(names, row, strict=True))


def story_article(row: Mapping[str, Any]) -> StoryArticle:
    """A StoryArticle from a row by column name (those of :data:`STORY_ARTICLE_COLUMNS`)."""
    return StoryArticle(
        id=row["id"], title=row["title"] or "", url=row["url"], source=row["source"] or "",
        text=row["text"] or "", language=row["language"], topics=tuple(row["topics"] or ()),
        countries=tuple(row["countries"] or ()), people=tuple(row["people"] or ()),
        published_at=row["published_at"], loaded_at=row["loaded_at"])


def period_bounds(moment: datetime, period: str) -> tuple[datetime, datetime]:
    """The UTC-aligned period that contains ``moment``."""
    t = moment.astimezone(UTC)
    if period == "hourly":
        start = t.replace(minute=0, second=0, microsecond=0)
    else:
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        if period == "weekly":
            start -= timedelta(days=start.weekday())
    return start, start + _PERIOD[period]


def _eligible(rule: AlertRule, article: StoryArticle) -> bool:
    if rule.languages and (article.language or "") not in rule.languages:
        return False
    return not rule.sources or article.source.lower() in {s.lower() for s in rule.sources}


def matching_article(
    rule: AlertRule, articles: Sequence[StoryArticle], matcher: Matcher | None = None,
    documents: dict[str, Document] | None = None,
) -> StoryArticle | None:
    """The first article of a story that fires the rule, honouring its filters.

    ``documents`` caches each article's Document (the tokenised text) across rules.
    """
    if len({a.source for a in articles}) < rule.min_sources:
        return None
    matcher = matcher or compile(parse(rule.query))
    for article in articles:
        if not _eligible(rule, article):
            continue
        document = documents.get(article.id) if documents is not None else None
        if document is None:
            document = article.document()
            if documents is not None:
                documents[article.id] = document
        if matcher.matches(document):
            return article
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A saved search's view of a story that grew in this run, for one recipient."""

    rule: str
    story_id: str
    recipient: str
    first_match: str | None  # the article that fires the rule; None: none does
    latest: str  # the story's latest article: what an update is about


def candidates(
    rules: Sequence[AlertRule], stories: Iterable[tuple[str, Sequence[StoryArticle]]]
) -> list[Candidate]:
    """Outbox candidates for stories (new or grown): (story id, its articles in time
    order) pairs, read one at a time.

    Pure Python over what the cluster stage read, so it runs before the load
    transaction; :func:`queue` turns candidates into outbox rows inside it,
    against the alerts already stored.
    """
    matchers = {rule.name: compile(parse(rule.query)) for rule in rules}
    out = []
    for story, articles in stories:
        if not articles:
            continue
        documents: dict[str, Document] = {}
        for rule in rules:
            article = matching_article(rule, articles, matchers[rule.name], documents)
            if article is None and not _updates(rule):
                continue
            out += [Candidate(rule=rule.name, story_id=story, recipient=recipient,
                              first_match=article.id if article is not None else None,
                              latest=articles[-1].id)
                    for recipient in rule.to]
    return out


def _updates(rule: AlertRule) -> bool:
    return rule.updates and rule.mode == "instant"


def queue(
    con: duckdb.DuckDBPyConnection, rules: Sequence[AlertRule], table: str, *, now: datetime
) -> int:
    """Write outbox rows from the candidates in temp table ``table``; return how many.

    A candidate with no row yet for its (rule, story, recipient) becomes the
    alert (``update_no`` 0) on its first matching article. One that has rows,
    all sent (or failed for good), becomes an update on the latest article
    when its rule asks for updates. Anything else is already waiting.
    """
    if not rules:
        return 0
    # A lake's delivery state is in PostgreSQL: its view (pipeline.store.delivery).
    stored = "alert_state" if is_lake(con) else "alerts"
    con.execute("DROP TABLE IF EXISTS alert_rules")
    con.execute("CREATE TEMP TABLE alert_rules (rule VARCHAR, due TIMESTAMPTZ, updates BOOLEAN)")
    insert_values(con, "alert_rules", ("rule", "due", "updates"), [
        (rule.name, period_bounds(now, rule.period)[1] if rule.period else now, _updates(rule))
        for rule in rules
    ])
    return upsert(
        con, "alerts", ("rule", "story_id", "recipient", "update_no", "article_id", "status",
                        "created_at", "next_attempt_at"),
        f"""SELECT c.rule, c.story_id, c.recipient, coalesce(e.last_no + 1, 0),
            CASE WHEN e.last_no IS NULL THEN c.first_match ELSE c.latest END,
            'pending', ?, r.due
        FROM {table} c JOIN alert_rules r USING (rule)
        LEFT JOIN (
            SELECT rule, story_id, recipient, max(update_no) AS last_no,
                bool_and(status IN ('sent', 'failed')) AS done
            FROM {stored} WHERE story_id IN (SELECT story_id FROM {table}) GROUP BY ALL
        ) e USING (rule, story_id, recipient)
        WHERE (e.last_no IS NULL AND c.first_match IS NOT NULL)
            OR (e.last_no IS NOT NULL AND r.updates AND e.done)""",
        key=("rule", "story_id", "recipient", "update_no"), params=[now], count=True,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestHit:
    story_id: str
    title: str
    first_seen: datetime | None
    n_sources: int
    matching_articles: int


def backtest(con: duckdb.DuckDBPyConnection, rule: AlertRule, *, limit: int = 100
             ) -> list[BacktestHit]:
    """The stored stories this rule would have alerted on (newest first)."""
    where, params = to_sql(parse(rule.query), _ARTICLE_COLUMNS)
    filters = ""
    if rule.languages:
        filters += " AND list_contains(?, a.language)"
        params.append(list(rule.languages))
    if rule.sources:
        filters += " AND list_contains(?, lower(a.source))"
        params.append([s.lower() for s in rule.sources])
    rows = con.execute(
        f"""SELECT s.id, s.title, s.first_seen, s.n_sources, count(*)
        FROM articles a JOIN stories s ON s.id = a.story_id
        WHERE ({where}){filters}
        GROUP BY ALL HAVING s.n_sources >= ?
        ORDER BY s.first_seen DESC LIMIT ?""",
        [*params, rule.min_sources, limit],
    ).fetchall()
    return [BacktestHit(story_id=r[0], title=r[1] or "", first_seen=r[2], n_sources=r[3],
                        matching_articles=r[4]) for r in rows]
