"""Stories as an analyst reads them: the list, one story's reports side by side,
the values the filters offer, and reports counted per hour or day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import duckdb

from pipeline.alert import safe_link
from pipeline.browse._filters import REPORT_TIME, StoryFilter
from pipeline.models import RemovedLine

__all__ = ["SORTS", "Bucket", "Count", "Facets", "RemovedLine", "Report", "Sort",
           "StoryDetail", "StoryPage", "StorySummary", "facets", "find_story", "list_stories",
           "report_counts"]

Sort = Literal["day", "latest", "outlets"]
SORTS: dict[Sort, str] = {
    # The default: the newest day first and, within a day, the story most
    # outlets reported: what happened today, biggest first.
    "day": "date_trunc('day', s.last_seen) DESC, s.n_sources DESC, s.last_seen DESC, s.id",
    "latest": "s.last_seen DESC, s.n_sources DESC, s.id",
    "outlets": "s.n_sources DESC, s.n_articles DESC, s.last_seen DESC, s.id",
}
Bucket = Literal["hour", "day"]
MAX_BUCKETS = 400  # bars in one chart; a longer span shows its latest part


@dataclass(frozen=True, slots=True, kw_only=True)
class StorySummary:
    id: str
    title: str
    first_seen: datetime | None
    last_seen: datetime | None
    n_articles: int
    n_sources: int
    sources: tuple[str, ...]
    languages: tuple[str, ...]
    topics: tuple[str, ...]
    countries: tuple[str, ...]
    people: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoryPage:
    stories: tuple[StorySummary, ...]
    total: int  # stories that pass the filter, over all pages
    offset: int
    limit: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """One outlet's report of a story."""

    id: str
    source: str
    title: str
    url: str
    link: str | None  # the url when it is http(s): the only links ever shown
    author: str | None
    published_at: datetime | None
    fetched_at: datetime | None
    language: str | None
    text: str
    topics: tuple[str, ...]
    countries: tuple[str, ...]
    people: tuple[str, ...]
    removed: tuple[RemovedLine, ...]

    @property
    def time(self) -> datetime | None:
        return self.published_at or self.fetched_at


@dataclass(frozen=True, slots=True, kw_only=True)
class StoryDetail:
    summary: StorySummary
    reports: tuple[Report, ...]  # oldest first


@dataclass(frozen=True, slots=True, kw_only=True)
class Facets:
    """The values the filters offer, most frequent first (at most 200 each)."""

    topics: tuple[str, ...]
    countries: tuple[str, ...]
    people: tuple[str, ...]
    languages: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Count:
    start: datetime
    reports: int


_SUMMARY = """
    SELECT s.id, coalesce(s.title, '') AS title, s.first_seen, s.last_seen, s.n_articles,
        s.n_sources,
        list_sort(list_distinct(list(a.source))) AS sources,
        list_sort(list_distinct(list(a.language))) AS languages,
        list_sort(list_distinct(flatten(list(coalesce(a.topics, []::VARCHAR[]))))) AS topics,
        list_sort(list_distinct(flatten(list(coalesce(a.countries, []::VARCHAR[])))))
            AS countries,
        list_sort(list_distinct(flatten(list(coalesce(a.people, []::VARCHAR[]))))) AS people
    FROM stories s JOIN articles a ON a.story_id = s.id
    WHERE s.id IN (SELECT id FROM picked)
    GROUP BY ALL
"""


def _summary(row: tuple[object, ...]) -> StorySummary:
    def strings(value: object) -> tuple[str, ...]:
        return tuple(str(v) for v in value or () if v) if isinstance(value, list) else ()

    return StorySummary(
        id=str(row[0]), title=str(row[1]), first_seen=_time(row[2]), last_seen=_time(row[3]),
        n_articles=_count(row[4]), n_sources=_count(row[5]),
        sources=strings(row[6]), languages=strings(row[7]), topics=strings(row[8]),
        countries=strings(row[9]), people=strings(row[10]),
    )


def list_stories(con: duckdb.DuckDBPyConnection, story_filter: StoryFilter, *,
                 sort: Sort = "day", limit: int = 50, offset: int = 0) -> StoryPage:
    """The stories with a report passing the filter, in ``sort`` order; raises FilterError."""
    where, params = story_filter.where()
    # One pass over the articles: a query's regular expressions over every text are
    # the cost (about a second per 10,000 articles), so the matching stories are
    # materialized once and both counted and paged from there.
    matching = f"SELECT DISTINCT a.story_id AS id FROM articles a WHERE {where}"
    rows = con.execute(
        f"WITH matching AS MATERIALIZED ({matching}),"
        f" picked AS (SELECT s.id FROM stories s WHERE s.id IN (SELECT id FROM matching)"
        f" ORDER BY {SORTS[sort]} LIMIT ? OFFSET ?)"
        f" SELECT (SELECT count(*) FROM matching), s.* FROM ({_SUMMARY}) s"
        f" ORDER BY {SORTS[sort]}",
        [*params, limit, offset],
    ).fetchall()
    if rows:
        total = int(rows[0][0])
    elif offset == 0:
        total = 0
    else:  # a page past the end: count them on their own
        row = con.execute(f"SELECT count(*) FROM ({matching})", params).fetchone()
        total = int(row[0]) if row else 0
    return StoryPage(stories=tuple(_summary(r[1:]) for r in rows), total=total, offset=offset,
                     limit=limit)


def find_story(con: duckdb.DuckDBPyConnection, story_id: str) -> StoryDetail | None:
    """The story with this id (or the one story whose id starts so), every report and
    what the cleaner removed from each; None when there is none."""
    ids = [r[0] for r in con.execute(
        "SELECT id FROM stories WHERE id = ? UNION SELECT id FROM stories"
        " WHERE starts_with(id, ?) AND length(?) >= 4 LIMIT 2",
        [story_id, story_id, story_id]).fetchall()]
    if story_id in ids:
        ids = [story_id]
    if len(ids) != 1:
        return None
    row = con.execute(f"WITH picked AS (SELECT ? AS id) {_SUMMARY}", [ids[0]]).fetchone()
    if row is None:
        return None
    articles = con.execute(
        f"""SELECT a.id, coalesce(a.source, ''), coalesce(a.title, ''), a.url, a.author,
            a.published_at, a.fetched_at, a.language, coalesce(a.text, ''), a.topics,
            a.countries, a.people,
            (SELECT list({{'position': r.position, 'line': r.line, 'rule': r.rule}}
                    ORDER BY r.position)
             FROM removed_lines r WHERE r.article_id = a.id)
        FROM articles a WHERE a.story_id = ? ORDER BY {REPORT_TIME}, a.source, a.id""",
        [ids[0]],
    ).fetchall()
    reports = tuple(
        Report(id=r[0], source=r[1], title=r[2], url=r[3], link=safe_link(r[3] or ""),
               author=r[4], published_at=r[5], fetched_at=r[6], language=r[7], text=r[8],
               topics=tuple(r[9] or ()), countries=tuple(r[10] or ()), people=tuple(r[11] or ()),
               removed=tuple(RemovedLine(**x) for x in r[12] or ()))
        for r in articles
    )
    return StoryDetail(summary=_summary(row), reports=reports)


def facets(con: duckdb.DuckDBPyConnection) -> Facets:
    def values(expr: str) -> tuple[str, ...]:
        rows = con.execute(
            f"SELECT v FROM (SELECT {expr} AS v FROM articles WHERE story_id IS NOT NULL)"
            " WHERE v IS NOT NULL AND v <> '' GROUP BY v ORDER BY count(*) DESC, v LIMIT 200"
        ).fetchall()
        return tuple(str(r[0]) for r in rows)

    return Facets(topics=values("unnest(topics)"), countries=values("unnest(countries)"),
                  people=values("unnest(people)"), languages=values("language"))


def report_counts(con: duckdb.DuckDBPyConnection, story_filter: StoryFilter,
                  bucket: Bucket) -> list[Count]:
    """Reports passing the filter per hour or day (UTC), empty buckets included,
    from the first to the last (at most the latest MAX_BUCKETS)."""
    where, params = story_filter.where()
    rows = con.execute(
        f"SELECT date_trunc('{bucket}', {REPORT_TIME}) AS t, count(*) FROM articles a"
        f" WHERE {where} AND {REPORT_TIME} IS NOT NULL GROUP BY t ORDER BY t",
        params,
    ).fetchall()
    if not rows:
        return []
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    counted = {_utc(r[0]): int(r[1]) for r in rows}
    first, last = min(counted), max(counted)
    first = max(first, last - step * (MAX_BUCKETS - 1))
    out, moment = [], first
    while moment <= last:
        out.append(Count(start=moment, reports=counted.get(moment, 0)))
        moment += step
    return out


def _count(value: object) -> int:
    return value if isinstance(value, int) else 0


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time(value: object) -> datetime | None:
    return _utc(value) if isinstance(value, datetime) else None
