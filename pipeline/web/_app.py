"""The pages: Stories, a Story, Feeds, Alerts and Chart, over a :class:`Reader`.

Jinja2 renders with autoescaping on for every template, so a value from a
feed or a page (titles, outlet names, texts, errors) is always text, never
markup; the only markup inserted as is comes from :mod:`._svg`, which
escapes its own text. Links to the original reports are shown only when
they are http(s) (``Report.link``). The Content-Security-Policy allows no
script at all and nothing from another origin: every asset is ours.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import duckdb
import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline import __version__, alert, browse, store
from pipeline.config import Settings
from pipeline.query import engine_refused
from pipeline.web._reader import Reader, Updating, View
from pipeline.web._svg import bar_chart, bucket_label, timeline

__all__ = ["MAX_QUERY_LENGTH", "create_app", "host_allowed", "loopback_hosts"]

# The longest query the search box takes. Any page open in the user's browser
# can send a GET to a server on 127.0.0.1 (it cannot read the answer, but the
# query runs), and a query's cost grows with its length (measured: 0.57 s for
# 500 characters of "..."~5 phrases, 2.4 s for 2,000, on a database of 4
# articles), so the page bounds it. 2,000 takes the longest built-in topic
# query (pipeline/data/topics.yaml, 1,520 characters) pasted in and edited.
# `newsmon search` runs what its user typed, at any length.
MAX_QUERY_LENGTH = 2_000
PAGE_SIZE = 50
MAX_PAGE = 1_000_000  # pages: 50 million stories
SINCE_CHOICES = (("", "any time"), ("24h", "last 24 hours"), ("7d", "last 7 days"),
                 ("30d", "last 30 days"))
SORT_CHOICES = (("day", "newest day, most outlets first"), ("latest", "latest report first"),
                ("outlets", "most outlets first"))
_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.decode("latin-1").lower() for k, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in _HEADERS.items()
                            if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


# Host = a name or IPv4 address, or an IPv6 address in brackets (RFC 3986
# section 3.2.2), then ":" and a port, maybe empty (section 3.2.3).
_HOST_HEADER = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<name>[^\[\]:@/\s]+))(?::\d*)?")


def _host_key(host: str) -> str:
    """``host`` as compared: an IP address in its one short form (``0:0::1`` is
    ``::1``), a name in lower case."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def host_allowed(header: str | None, allowed: Iterable[str]) -> bool:
    """Whether a request's Host header names one of the ``allowed`` hosts (names or IP
    addresses, IPv6 without brackets), whatever its port."""
    match = _HOST_HEADER.fullmatch(header or "")
    if match is None:
        return False
    if match["ipv6"] is not None:
        try:
            host = str(ipaddress.IPv6Address(match["ipv6"]))
        except ValueError:
            return False
    else:
        host = _host_key(match["name"])
    return host in {_host_key(h) for h in allowed}


class _HostCheck:
    """Answers 400 to a request not addressed to one of ``allowed``. Not Starlette's
    TrustedHostMiddleware: before its fix for encode/starlette#3357 it split the
    header on ":" (``[::1]:8000`` became ``[``), after it keeps the brackets (``::1``
    matches nothing): with either, a server on ::1 refused every request."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not host_allowed(Headers(scope=scope).get("host"),
                                                        self.allowed):
            await PlainTextResponse("Invalid host header", status_code=400)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _when(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if isinstance(value, datetime) else "-"


def _size(value: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024  # type: ignore[assignment]
    return str(value)


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.splitlines() if p.strip()]


def _numbers(counts: Sequence[browse.Count], *, hourly: bool) -> list[tuple[str, int]]:
    """A bar chart's numbers, one row per bar, for its table (templates/_chart.html)."""
    return [(bucket_label(c.start, hourly), c.reports) for c in counts]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.web", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(when=_when, size=_size, paragraphs=_paragraphs)
    env.globals.update(version=__version__, query=lambda **kw: urlencode(
        {k: v for k, v in kw.items() if v not in (None, "")}))
    return env


@dataclass(frozen=True, slots=True, kw_only=True)
class _Filters:
    """The Stories and Chart forms' values, as typed (shown back in the form)."""

    q: str
    topic: str
    country: str
    person: str
    lang: str
    since: str
    start: str
    end: str

    @classmethod
    def of(cls, params: Mapping[str, str]) -> _Filters:
        def get(key: str) -> str:
            return params.get(key, "").strip()

        return cls(q=get("q"), topic=get("topic"), country=get("country"), person=get("person"),
                   lang=get("lang"), since=get("since"), start=get("from"), end=get("to"))

    def story_filter(self) -> browse.StoryFilter:
        """Raises FilterError."""
        if len(self.q) > MAX_QUERY_LENGTH:
            raise browse.FilterError(
                "query", f"{len(self.q):,} characters; the search box takes at most"
                f" {MAX_QUERY_LENGTH:,} (newsmon search takes longer queries)")
        return browse.StoryFilter(
            since=browse.parse_since(self.start or self.since), until=browse.parse_until(self.end),
            topic=self.topic or None, country=self.country or None, person=self.person or None,
            language=self.lang or None, query=self.q or None)

    def error(self, exc: browse.FilterError) -> str:
        """``exc`` naming the form's field (the Time choice or From, To, Search)."""
        name = {"since": "From" if self.start else "Time", "until": "To", "query": "Search"}
        return exc.worded(name[exc.field])

    def params(self) -> dict[str, str]:
        return {k: v for k, v in (("q", self.q), ("topic", self.topic), ("country", self.country),
                                  ("person", self.person), ("lang", self.lang),
                                  ("since", self.since), ("from", self.start), ("to", self.end))
                if v}


def create_app(settings: Settings, reader: Reader, *,
               allowed_hosts: Sequence[str] | None = None, page_size: int = PAGE_SIZE,
               ) -> ASGIApp:
    """The app; ``allowed_hosts``: the Host header values it answers (None: any);
    ``page_size``: stories per page."""
    env = _environment()

    def render(name: str, view: View | None, status_code: int = 200,
               headers: Mapping[str, str] | None = None, **context: Any) -> HTMLResponse:
        header = None
        if view is not None:
            header = view.con.execute(
                "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM stories),"
                " (SELECT max(loaded_at) FROM runs)").fetchone()
        body = env.get_template(name).render(view=view, header=header, **context)
        return HTMLResponse(body, status_code=status_code, headers=dict(headers or {}))

    def page(handler: Callable[[Request, View], Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                with reader.view() as view:
                    return handler(request, view)
            except Updating:
                return render("updating.html", None, 503, {"retry-after": "2"},
                              database=str(settings.database))
            except store.StoreError as exc:
                return render("error.html", None, 503, message=str(exc), title="No database")
            except duckdb.Error as exc:
                # A damaged block past the ones opening the file reads: its sentence,
                # not a stack trace (a query error of ours stays one).
                damaged = store.explain(exc, settings.database)
                if damaged is None:
                    raise
                title = ("Damaged database" if isinstance(damaged, store.DatabaseDamaged)
                         else "Database error")  # a full disk, say
                return render("error.html", None, 503, message=str(damaged), title=title)

        return endpoint

    def stories(request: Request, view: View) -> Response:
        filters = _Filters.of(request.query_params)
        sort = request.query_params.get("sort", "day")
        sort_key: browse.Sort = sort if sort in browse.SORTS else "day"
        try:
            # Past the last page is an empty page, however far (an offset DuckDB can hold).
            page_no = min(MAX_PAGE, max(1, int(request.query_params.get("page", "1"))))
        except ValueError:
            page_no = 1
        error, result, chart, numbers = None, None, None, None
        try:
            story_filter = filters.story_filter()
            result = browse.list_stories(view.con, story_filter, sort=sort_key,
                                         limit=page_size, offset=(page_no - 1) * page_size)
            counts = browse.report_counts(view.con, story_filter, "day")
            chart = Markup(bar_chart(counts, hourly=False, title="Reports per day", height=160))
            numbers = _numbers(counts, hourly=False)
        except browse.FilterError as exc:
            error = filters.error(exc)
        return render("stories.html", view, 400 if error else 200, filters=filters,
                      sort=sort_key, page=page_no, result=result, error=error, chart=chart,
                      numbers=numbers,
                      facets=browse.facets(view.con), since_choices=SINCE_CHOICES,
                      sort_choices=SORT_CHOICES, page_size=page_size)

    def story(request: Request, view: View) -> Response:
        detail = browse.find_story(view.con, request.path_params["story_id"])
        if detail is None:
            return render("error.html", view, 404, title="No such story",
                          message=f"No story {request.path_params['story_id']!r} here.")
        return render("story.html", view, story=detail.summary, reports=detail.reports,
                      timeline=Markup(timeline(detail.reports)))

    def feeds_page(request: Request, view: View) -> Response:
        status = browse.status(view.con, settings, settings.database)
        return render("feeds.html", view, status=status)

    def alerts_page(request: Request, view: View) -> Response:
        backtests: list[tuple[Any, list[Any], str | None]] = []
        for rule in settings.alerts:
            try:
                backtests.append((rule, alert.backtest(view.con, rule, limit=20), None))
            except duckdb.Error as exc:
                if store.explain(exc, settings.database) is not None:
                    raise  # a damaged file: the whole page says so
                # That rule's sentence, as `newsmon alerts test` says it.
                backtests.append((rule, [], engine_refused(exc, what="its query")))
        return render("alerts.html", view, rows=browse.outbox(view.con), backtests=backtests,
                      counts=browse.status(view.con, settings, settings.database).alerts)

    def chart_page(request: Request, view: View) -> Response:
        filters = _Filters.of(request.query_params)
        by = request.query_params.get("by", "day")
        bucket: browse.Bucket = "hour" if by == "hour" else "day"
        error, svg, total, numbers = None, None, 0, None
        try:
            counts = browse.report_counts(view.con, filters.story_filter(), bucket)
            total = sum(c.reports for c in counts)
            described = " ".join(f"{k}:{v}" for k, v in filters.params().items())
            title = f"Reports per {bucket}" + (f" ({described})" if described else "")
            svg = Markup(bar_chart(counts, hourly=bucket == "hour", title=title))
            numbers = _numbers(counts, hourly=bucket == "hour")
        except browse.FilterError as exc:
            error = filters.error(exc)
        return render("chart.html", view, 400 if error else 200, filters=filters, by=bucket,
                      svg=svg, total=total, numbers=numbers, error=error,
                      facets=browse.facets(view.con),
                      since_choices=SINCE_CHOICES, max_buckets=browse.MAX_BUCKETS)

    def not_found(request: Request, exc: Exception) -> Response:
        return render("error.html", None, 404, title="Not found",
                      message=f"Nothing at {request.url.path!r}.")

    static = StaticFiles(packages=[("pipeline.web", "static")])
    app = Starlette(
        routes=[
            Route("/", page(stories)),
            Route("/story/{story_id}", page(story)),
            Route("/feeds", page(feeds_page)),
            Route("/alerts", page(alerts_page)),
            Route("/chart", page(chart_page)),
            Mount("/static", static, name="static"),
        ],
        exception_handlers={404: not_found},
    )
    if allowed_hosts is not None:
        # A page on another site can point a name it controls at 127.0.0.1 (DNS
        # rebinding) and read a local server's answers; a server on loopback
        # therefore answers only requests addressed to a loopback name.
        return _SecurityHeaders(_HostCheck(app, allowed_hosts))
    return _SecurityHeaders(app)


def loopback_hosts(host: str) -> list[str] | None:
    """The Host names to accept when listening on ``host``: the loopback names for
    a loopback address, None (any) otherwise."""
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host == "localhost"
    return ["127.0.0.1", "localhost", "::1", host.strip("[]")] if loopback else None
