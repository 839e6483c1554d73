"""Which articles a listing looks at: the filters shared by ``newsmon stories``,
the web page's Stories list and its chart, compiled to one SQL condition."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

import duckdb

from pipeline.query import QuerySyntaxError, SqlColumns, parse, to_sql

__all__ = ["FilterError", "FilterField", "StoryFilter", "parse_since", "parse_until"]

# The report's own time, as the stories table counts first_seen and last_seen.
REPORT_TIME = "coalesce(a.published_at, a.fetched_at)"
ARTICLE_COLUMNS = SqlColumns(
    title="a.title", text="a.text", source="a.source", language="a.language",
    topics="a.topics", countries="a.countries", people="a.people",
)
_DURATION = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT = {"m": timedelta(minutes=1), "min": timedelta(minutes=1), "h": timedelta(hours=1),
         "d": timedelta(days=1), "w": timedelta(weeks=1)}


FilterField = Literal["since", "until", "query"]


class FilterError(ValueError):
    """A filter the user typed cannot be used: ``field`` is which one, ``problem``
    what is wrong with it and ``value`` what was typed (None: not echoed).

    Each front end names the field as its user knows it, through :meth:`worded`:
    the command line ``--until``, the web page's form "To" (a user who typed into
    a form has no flag to look up).
    """

    def __init__(self, field: FilterField, problem: str, value: str | None = None) -> None:
        self.field: FilterField = field
        self.problem = problem
        self.value = value
        super().__init__(self.worded(field))

    def worded(self, name: str) -> str:
        """The sentence, with the field called ``name``."""
        shown = "" if self.value is None else f" {self.value!r}"
        return f"{name}{shown}: {self.problem}"


# A report's tags hold a value: compared whole and case-insensitively, as
# topic: and country: do in a query.
def _has_tag(column: str) -> str:
    return (f"list_contains(list_transform(coalesce({column}, []::VARCHAR[]),"
            " lambda x: lower(x)), lower(?))")


_LANGUAGE_IS = "lower(a.language) = lower(?)"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoryFilter:
    """Stories with at least one report that passes every given filter."""

    since: datetime | None = None
    until: datetime | None = None
    topic: str | None = None
    country: str | None = None
    person: str | None = None
    language: str | None = None
    query: str | None = None

    def where(self) -> tuple[str, list[object]]:
        """A SQL condition on ``articles a`` and its parameters; raises FilterError."""
        parts: list[str] = ["a.story_id IS NOT NULL"]
        params: list[object] = []
        if self.since is not None and self.until is not None and self.until <= self.since:
            # Zero stories without a word read as "nothing happened".
            start = f"{self.since:%Y-%m-%d %H:%M} UTC"
            raise FilterError("until", f"ends the period before it starts ({start}): no report"
                                       " can be in between")
        if self.since is not None:
            parts.append(f"{REPORT_TIME} >= ?")
            params.append(self.since)
        if self.until is not None:
            parts.append(f"{REPORT_TIME} < ?")
            params.append(self.until)
        # Tags compare whole and case-insensitively, as topic: and country: do.
        for column, value in (("a.topics", self.topic), ("a.countries", self.country),
                              ("a.people", self.person)):
            if value:
                parts.append(_has_tag(column))
                params.append(value.strip())
        if self.language:
            parts.append(_LANGUAGE_IS)
            params.append(self.language.strip())
        if self.query and self.query.strip():
            try:
                sql, query_params = to_sql(parse(self.query), ARTICLE_COLUMNS)
            except QuerySyntaxError as exc:
                raise FilterError("query", str(exc)) from None
            parts.append(sql)
            params.extend(query_params)
        return " AND ".join(parts), params

    def absent_tags(self, con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
        """The tag filters (``country``, ``topic``, ``person``, ``language``) whose
        value no stored report has at all, as (kind, value): a code mistyped
        (``zzz`` for a country) finds nothing, which is worth a word."""
        absent = []
        for kind, condition, value in (("topic", _has_tag("topics"), self.topic),
                                       ("country", _has_tag("countries"), self.country),
                                       ("person", _has_tag("people"), self.person),
                                       ("language", _LANGUAGE_IS, self.language)):
            if not (value and value.strip()):
                continue
            row = con.execute(f"SELECT EXISTS (SELECT 1 FROM articles a WHERE {condition})",
                              [value.strip()]).fetchone()
            if not (row and row[0]):
                absent.append((kind, value.strip()))
        return absent

    @property
    def active(self) -> bool:
        return any(v not in (None, "") for v in (self.since, self.until, self.topic,
                                                 self.country, self.person, self.language,
                                                 self.query))


def parse_since(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """``24h``, ``30m``, ``7d``, ``2w`` back from now, a date (``2019-03-01``) or an
    ISO time; ``all`` or empty: no bound. Raises FilterError."""
    if text is None or not text.strip() or text.strip().lower() in ("all", "any"):
        return None
    match = _DURATION.match(text)
    if match:
        step = _UNIT[match.group(2).lower()]
        try:
            return (now or datetime.now(UTC)) - int(match.group(1)) * step
        except OverflowError:
            raise FilterError("since", "too far back (before the year 1)",
                              text.strip()) from None
    return _moment(text, "since")


def parse_until(text: str | None) -> datetime | None:
    """A date (the whole day included) or an ISO time; empty: no bound."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    if len(value) == 10:
        day = _moment(value, "until")
        try:
            return day + timedelta(days=1)
        except OverflowError:
            raise FilterError("until", "too far ahead (the latest day it takes is 9999-12-30)",
                              value) from None
    return _moment(value, "until")


def _moment(text: str, field: FilterField) -> datetime:
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise FilterError(field, "not a duration (24h, 7d, 2w, 30m), a date (2019-03-01)"
                          " or an ISO time", value) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
