"""The analyst's commands: ``stories``, ``story``, ``status``, ``init`` and ``serve``.

:func:`register` adds them to the ``newsmon`` parser (:mod:`pipeline.cli`);
what they show comes from :mod:`pipeline.browse`, the same reads the web
page (:mod:`pipeline.web`) makes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import sys
import tempfile
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline import browse, store
from pipeline.cli import (
    UserError,
    _add_config,
    _add_format,
    _print_rows,
    _settings,
    _whole_number,
    ctrl_c_kept,
    interruptible,
)
from pipeline.output import counted, plain

__all__ = ["register"]

def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "-"


# A filter's name on the command line (a query error reads "query: ...", as
# `newsmon search` words it).
_OPTION: dict[browse.FilterField, str] = {"since": "--since", "until": "--until",
                                          "query": "query"}


# What a tag filter's values look like, for a filter that matched no report.
TAGGED = {
    "country": "countries are two-letter ISO codes (SY, RU, US): `newsmon sql \"SELECT"
               " unnest(countries) c, count(*) FROM articles GROUP BY c\"` lists them",
    "topic": "topics are the config's topic names: `newsmon sql \"SELECT unnest(topics) t,"
             " count(*) FROM articles GROUP BY t\"` lists them",
    "person": "people are tagged by the config's `people:` names",
    "language": "languages are two-letter ISO 639-1 codes (en, fr, ru)",
}


def _filter(args: argparse.Namespace) -> browse.StoryFilter:
    try:
        return browse.StoryFilter(
            since=browse.parse_since(args.since), until=browse.parse_until(args.until),
            topic=args.topic, country=args.country, person=args.person, language=args.language,
            query=args.query)
    except browse.FilterError as exc:
        raise UserError(exc.worded(_OPTION[exc.field])) from None


def _file_settings(args: argparse.Namespace) -> Any:
    """The settings, for a command that reads the DuckDB file only: in lake
    mode it said `news.duckdb: no database here yet; run newsmon run --once
    first` (which loads the lake, not the file), or showed a file left from
    before the switch as if it were the lake."""
    settings = _settings(args)
    if settings.store.mode == "lake":
        raise UserError(f"newsmon {args.command} reads a DuckDB file, not a lake (not built "
                        "yet): in lake mode use `newsmon sql` (README, \"Scaling out: lake "
                        "mode\")")
    return settings


def cmd_stories(args: argparse.Namespace) -> int:
    settings = _file_settings(args)
    story_filter = _filter(args)
    with contextlib.ExitStack() as stack:
        with ctrl_c_kept():  # as sql's: a Ctrl-C during the open is not lost
            con = stack.enter_context(store.connect(settings.database, read_only=True,
                                                    schema_if_empty=False))
        try:
            page = interruptible(con, lambda: browse.list_stories(
                con, story_filter, sort=args.sort, limit=args.limit))
        except browse.FilterError as exc:
            raise UserError(exc.worded(_OPTION[exc.field])) from None
        absent = story_filter.absent_tags(con) if page.total == 0 else []
    for kind, value in absent:
        # On stderr: the rows on stdout stay what a program reading them expects.
        print(f"newsmon: no report is tagged {kind} {value!r}; {TAGGED[kind]}",
              file=sys.stderr)
    if args.json:
        _print_rows(
            ["id", "title", "first_seen", "last_seen", "n_articles", "n_sources", "sources",
             "languages", "topics", "countries", "people"],
            [(s.id, s.title, s.first_seen, s.last_seen, s.n_articles, s.n_sources,
              list(s.sources), list(s.languages), list(s.topics), list(s.countries),
              list(s.people)) for s in page.stories], "json")
        return 0
    rows = [(s.last_seen, s.n_sources, s.n_articles, ", ".join(s.languages), plain(s.title),
             ", ".join(s.topics), ", ".join(s.countries), "; ".join(s.people), s.id)
            for s in page.stories]
    columns = ["last_report", "outlets", "reports", "languages", "title", "topics",
               "countries", "people", "id"]
    if args.csv:
        rows = [(s.last_seen, s.n_sources, s.n_articles, ";".join(s.languages), s.title,
                 ";".join(s.topics), ";".join(s.countries), ";".join(s.people), s.id)
                for s in page.stories]
        _print_rows(columns, rows, "csv")
        return 0
    _print_rows(columns, rows, "table")
    if page.total > len(page.stories):
        print(f"(the first {len(page.stories)} of {page.total} stories; --limit N for more)")
    return 0


def cmd_story(args: argparse.Namespace) -> int:
    settings = _file_settings(args)
    with store.connect(settings.database, read_only=True,
                       schema_if_empty=False) as con:
        detail = browse.find_story(con, args.story_id)
    if detail is None:
        raise UserError(f"no story {args.story_id!r} (or more than one starts so); "
                        "`newsmon stories` lists them")
    if args.json:
        s = detail.summary
        print(json.dumps({
            "id": s.id, "title": s.title, "first_seen": _iso(s.first_seen),
            "last_seen": _iso(s.last_seen), "n_articles": s.n_articles,
            "n_sources": s.n_sources, "languages": s.languages, "topics": s.topics,
            "countries": s.countries, "people": s.people,
            "reports": [{
                "id": r.id, "source": r.source, "title": r.title, "url": r.url,
                "published_at": _iso(r.published_at), "fetched_at": _iso(r.fetched_at),
                "language": r.language, "author": r.author, "text": r.text,
                "topics": r.topics, "countries": r.countries, "people": r.people,
                "removed": [{"line": x.line, "rule": x.rule} for x in r.removed],
            } for r in detail.reports],
        }, ensure_ascii=False))
        return 0
    _print_story(detail)
    return 0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _print_story(detail: browse.StoryDetail) -> None:
    s = detail.summary
    width = min(shutil.get_terminal_size((100, 24)).columns, 100)
    print(plain(s.title) or "(no title)")
    print(f"{s.id} · {s.n_sources} outlets · {s.n_articles} reports · languages: "
          f"{', '.join(s.languages) or '?'} · first {_when(s.first_seen)} · last "
          f"{_when(s.last_seen)}")
    print(f"topics: {', '.join(s.topics) or '-'}; countries: {', '.join(s.countries) or '-'}; "
          f"people: {plain(', '.join(s.people)) or '-'}")
    print("\nTimeline:")
    for r in detail.reports:
        print(f"  {_when(r.time)}  {plain(r.source)}")
    for i, r in enumerate(detail.reports, 1):
        print(f"\n== {i}/{len(detail.reports)}  {plain(r.source)} · {_when(r.time)} · "
              f"{r.language or '?'}")
        print(f"   {plain(r.title)}")
        link = plain(r.link) if r.link else f"(not an http(s) address: {plain(r.url)})"
        print(f"   {link}")
        for paragraph in r.text.splitlines():
            if paragraph.strip():
                print()
                print(textwrap.fill(plain(paragraph.strip()), width, initial_indent="   ",
                                    subsequent_indent="   "))
        print(f"\n   removed by the cleaner: {len(r.removed)} line(s)")
        for x in r.removed:
            print(f"     [{x.rule}] {plain(x.line)}")


def cmd_status(args: argparse.Namespace) -> int:
    settings = _file_settings(args)
    with store.connect(settings.database, read_only=True,
                       schema_if_empty=False) as con:
        st = browse.status(con, settings, settings.database)
    size = st.size_bytes / 1024 / 1024
    print(f"database   {settings.database} ({size:.1f} MiB)")
    print(f"content    {counted(st.articles, 'article')},"
          f" {counted(st.stories, 'story', 'stories')}; last report {_when(st.last_report_at)}"
          f" ({counted(st.stories_24h, 'story', 'stories')} in the 24 h before it)")
    if st.last_run is None:
        print("last pass  none loaded yet: `newsmon run --once`")
    else:
        r = st.last_run
        print(f"last pass  {_when(r.loaded_at)} ({st.runs} in all):"
              f" {counted(r.feeds_polled, 'feed')} polled,"
              f" {counted(r.entries_new, 'new entry', 'new entries')},"
              f" {counted(r.articles_new, 'article')} stored, {r.rejected:,} rejected,"
              f" {counted(r.stories_new, 'new story', 'new stories')},"
              f" {counted(r.alerts_queued, 'alert')} queued")
    by_status: dict[str, int] = {}
    for f in st.feeds:
        by_status[f.status] = by_status.get(f.status, 0) + 1
    print(f"feeds      {len(st.feeds)}: "
          + (", ".join(f"{n} {k}" for k, n in sorted(by_status.items())) or "none configured"))
    failing = st.failing_feeds
    for f in failing[:5]:
        print(f"  {f.status}: {plain(f.name or f.url)} ({f.error_count} error points; last"
              f" success {_when(f.last_success_at)}): {plain(f.last_error) or '-'}")
    if len(failing) > 5:
        print(f"  ... and {len(failing) - 5} more: `newsmon feeds`")
    a = st.alerts
    print(f"alerts     {a['pending']} pending, {a['sending']} sending, {a['sent']} sent,"
          f" {a['failed']} failed")
    for row in st.failed_alerts[:5]:
        print(f"  failed: {row.rule} -> {row.recipient}: {plain(row.error) or '-'}")
    if a["failed"] > 5:
        print(f"  ... and {a['failed'] - 5} more: `newsmon alerts`")
    print(f"rejected   {counted(st.rejected, 'page')} not stored"
          " (see `newsmon sql` on the rejected table)")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from pipeline.starter import StarterExists, write_starter

    path = Path(args.config or "newsmon.yaml")
    try:
        write_starter(path)
    except StarterExists as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot write: {exc.strerror}") from None
    flag = "" if args.config is None else f" --config {args.config}"
    print(f"wrote {path}: three feeds, one topic, one alert; no SMTP (alerts become .eml files)")
    print("next:")
    print(f"  1. edit {path}: your feeds, topics and the alert's address")
    print(f"  2. newsmon run --once{flag}      # one pass: poll, fetch, extract, store")
    print(f"  3. newsmon serve{flag}           # then open http://127.0.0.1:8000")
    print(f"     newsmon stories{flag}         # or the same in the terminal")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from pipeline.web import serve

    settings = _file_settings(args)
    if not settings.database.exists():
        raise store.StoreError(
            f"{settings.database}: no database here yet; run `newsmon run --once` first")
    snapshot_dir = _snapshot_dir(Path(args.snapshot_dir)) if args.snapshot_dir else None
    # An IPv6 address needs an IPv6 socket (an IPv4 one cannot even resolve "::1").
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    host = f"[{args.host}]" if ":" in args.host else args.host

    def announce() -> None:
        print(f"newsmon: serving {settings.database} read-only at http://{host}:{args.port}/"
              " (Ctrl-C to stop)", file=sys.stderr, flush=True)

    # A damaged database is refused here, by the first copy, before anything listens.
    serve(settings, host=args.host, port=args.port, snapshot_dir=snapshot_dir, ready=announce)
    return 0


def _snapshot_dir(path: Path) -> Path:
    """``--snapshot-dir``, created if need be and proved writable; UserError if not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryDirectory(prefix="newsmon-serve-", dir=path).cleanup()
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"--snapshot-dir {path}: not a folder") from None
    except OSError as exc:
        raise UserError(f"--snapshot-dir {path}: cannot keep the database copies there:"
                        f" {exc.strerror or exc}") from None
    return path


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="WHEN",
                   help="reports from then on: 24h, 7d, 2w, 30m, a date (2019-03-01) or an"
                   " ISO time (default: any time)")
    p.add_argument("--until", metavar="WHEN", help="reports before then (a date: that whole day)")
    p.add_argument("--topic", metavar="T", help="a topic tag (as in topic:T)")
    p.add_argument("--country", metavar="CC", help="an ISO country code (as in country:CC)")
    p.add_argument("--person", metavar="NAME", help="a person tag, the whole name")
    p.add_argument("--language", metavar="LANG", help="a language code (en, fr, ...)")
    p.add_argument("--query", "-q", metavar="QUERY", help="the query language (see `search`)")


def register(sub: Any) -> None:
    """Add the commands to the ``newsmon`` subparsers."""
    p = sub.add_parser(
        "stories", help="the stories, newest day and most outlets first, with filters",
        description="Stories with at least one report passing every filter.")
    _add_filters(p)
    p.add_argument("--sort", choices=sorted(browse.SORTS), default="day",
                   help="day: newest day first, most outlets first within it (default);"
                   " latest: latest report first; outlets: most outlets first")
    p.add_argument("--limit", type=_whole_number(1), default=50,
                   help="at most this many (default 50)")
    _add_config(p)
    _add_format(p)
    p.set_defaults(func=cmd_stories)

    p = sub.add_parser("story", help="one story: every report, its text and what was removed")
    p.add_argument("story_id", metavar="ID", help="a story id (or its unique start)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    _add_config(p)
    p.set_defaults(func=cmd_story)

    p = sub.add_parser("status", help="articles, stories, the last pass, failing feeds and"
                       " alerts, on one screen")
    _add_config(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("init", help="write a commented starter newsmon.yaml (never overwrites)")
    p.add_argument("--config", "-c", metavar="FILE",
                   help="where to write it (default: ./newsmon.yaml)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("serve", help="a read-only web page over the database",
                       description="Stories, a story's reports, feed health, alerts and charts"
                       " in the browser. Never writes the database.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_whole_number(1, 65535), default=8000,
                   help="port (default 8000)")
    p.add_argument("--snapshot-dir", metavar="DIR",
                   help="where the private copy of the database is kept (default: the system's"
                   " temporary folder)")
    _add_config(p)
    p.set_defaults(func=cmd_serve)
