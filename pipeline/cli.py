"""The ``newsmon`` command: the same pipeline the Airflow DAGs run, without Airflow."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

from pipeline import __version__
from pipeline.output import Format, OutputError, fetched_rows, plain, write_rows

if TYPE_CHECKING:
    import duckdb

    from pipeline.config import Settings

log = logging.getLogger("newsmon")
_T = TypeVar("_T")


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


# -- progress ------------------------------------------------------------------------------


class ProgressLine:
    """A :data:`pipeline.run.Progress` callback writing counts on stderr: a live
    line on a terminal, a line every few seconds otherwise."""

    def __init__(self, *, enabled: bool = True, interval: float = 2.0) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.interval = interval
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        final = done >= total
        if not final and now - self._last < (0.1 if self.tty else self.interval):
            return
        self._last = now
        unit = "feeds" if stage == "poll" else "pages"
        line = f"{stage}: {done}/{total} {unit}"
        if self.tty:
            sys.stderr.write("\r" + line + ("\n" if final else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


# -- commands ------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Any:
    from pipeline.config import load_settings

    return load_settings(args.config)


def _summary(result: Any) -> str:
    p, pr, ld, s = result.poll, result.process, result.load, result.send
    return (
        f"polled {p.feeds_polled} feed(s) ({p.feeds_failed} failed): "
        f"{p.entries_new} new entries"
        + (f", {p.entries_retry} retried" if p.entries_retry else "")
        + (f"; {p.feeds_deferred} feed(s) deferred to the next pass (time budget)"
           if p.feeds_deferred else "")
        + f"\nstored {ld.articles_new} article(s), rejected {pr.rejected}"
        + (f", {pr.retry} to retry later" if pr.retry else "")
        + (f", {pr.deferred} deferred to the next pass (time budget)" if pr.deferred else "")
        + f"\n{ld.stories_new} new story(ies), {ld.stories_touched} updated in all"
        + f"\n{ld.alerts_queued} alert(s) queued; " + _delivery(s)
    )


def _delivery(s: Any, now: datetime | None = None) -> str:
    """A send round in words: this round's emails, then what waits and until when.

    Each alert is counted once: ``pending`` includes the ones that just failed
    for a temporary reason (``retry``), which are described, not added.
    """
    now = now or datetime.now(UTC)
    line = f"{s.sent} sent, {s.failed} failed, {s.pending} pending"
    if s.sending:
        line += f", {s.sending} sending"
    if s.retry:
        line += (f"\n{s.retry} email(s) not delivered this round, left pending"
                 + (f": the round stopped after {s.stopped}" if s.stopped else
                    " (a temporary refusal: see `newsmon alerts`, column error)"))
    if s.pending and s.next_attempt_at is not None:
        line += f"\nnext attempt due {_when(s.next_attempt_at, now)}"
        if s.next_attempt_at > now:
            line += "; `newsmon alerts send --now` skips a retry backoff"
    if s.sending and s.reclaim_at is not None:
        line += (f"\n{s.sending} alert(s) claimed by another sender, or by one that died: "
                 f"taken over {_when(s.reclaim_at, now)} if still unsent")
    return line


def _when(moment: datetime, now: datetime) -> str:
    wait = (moment - now).total_seconds()
    at = f"at {moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    if wait <= 0:
        return f"now ({at})"
    if wait < 90:
        return f"{at} (in {wait:.0f} s)"
    if wait < 90 * 60:
        return f"{at} (in {wait / 60:.0f} min)"
    return f"{at} (in {wait / 3600:.1f} h)"


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline.run import run_continuous, run_pass

    settings = _settings(args)
    if not settings.feeds and not _has_added_feeds(settings):
        raise UserError(f"{args.config or 'newsmon.yaml'}: no feeds configured (add 'feeds:' "
                        "or run `newsmon feeds add URL`)")
    progress = ProgressLine(enabled=not args.quiet)
    if args.once:
        result = run_pass(settings, force=args.all, workers=args.workers, progress=progress)
    else:
        from pipeline.config import DEFAULT_CONFIG

        config = Path(args.config) if args.config is not None else DEFAULT_CONFIG
        print(f"polling each feed when it is due; {config} is read again when edited (or on "
              "SIGHUP); Ctrl-C or SIGTERM to stop", file=sys.stderr, flush=True)
        # A reload's line (what it changed) shows without --verbose, as a batch's does.
        logging.getLogger("pipeline.reload").setLevel(logging.INFO)
        result = run_continuous(settings, force=args.all, workers=args.workers,
                                progress=progress, on_batch=_print_batch, config=config)
    print(_summary(result), flush=True)
    if args.once and not args.all and not result.poll.feeds_polled:
        # A feed that failed waits out its backoff even once the config is
        # fixed (an allow_private entry added): a pass that polled nothing
        # and said only "polled 0 feed(s)" looked broken.
        print("no feed was due: each is polled when its schedule says (`newsmon feeds` shows"
              " the next poll); `newsmon run --once --all` polls every feed now", flush=True)
    # As `alerts send`: an alert not delivered (refused, or to retry) is exit 1.
    return 1 if result.send.undelivered else 0


def _print_batch(batch: Any) -> None:
    ld, sent = batch.load, batch.send
    line = (f"{datetime.now(UTC):%H:%M:%S} batch {ld.run_id}: stored {ld.articles_new} "
            f"article(s), {ld.stories_new} new story(ies), {ld.alerts_queued} alert(s) queued")
    if sent is not None:
        line += f", {sent.sent} sent"
    print(line, flush=True)


def _has_added_feeds(settings: Any) -> bool:
    from pipeline import store
    from pipeline.store.backend import backend, open_store

    if not backend(settings).exists():
        return False
    with open_store(settings, read_only=True) as con:
        return any(r.get("origin") == "added" for r in store.feed_rows(con))


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline import demo, store
    from pipeline.config import load_settings
    from pipeline.run import run_pass

    database = Path(args.database) if args.database else demo.DEMO_DIR / "news.duckdb"
    seeds = Path(args.seeds) if args.seeds else demo.default_seeds()
    if not (seeds / demo.FEED_NAME).is_file():
        raise UserError(f"{seeds}: no {demo.FEED_NAME} here; pass --seeds DIR (the seeds/site "
                        "folder of a newsmon checkout)")
    try:
        config, port = demo.prepare(database.parent)
    except OSError as exc:
        raise UserError(f"cannot write the demo's files in {database.parent}: "
                        f"{exc.strerror or exc}; pass --database in a folder you can write"
                        ) from None
    settings = load_settings(config)
    if settings.database.resolve() != database.resolve():
        settings = settings.model_copy(update={"database": database})
    with demo.SeedServer(seeds, port=port) as server:
        print(f"serving {seeds} at {server.base}; config {config}", file=sys.stderr)
        result = run_pass(settings, force=True, progress=ProgressLine(enabled=not args.quiet))
    print(_summary(result))
    with store.connect(settings.database, read_only=True) as con:
        _print_demo_report(con, settings)
    print(demo.serve_hint(config))
    return 0


def _print_demo_report(con: Any, settings: Any) -> None:
    rows = con.execute(
        "SELECT source, title, topics, countries, people, story_id,"
        " (SELECT count(*) FROM removed_lines r WHERE r.article_id = a.id)"
        " FROM articles a ORDER BY published_at, source"
    ).fetchall()
    print(f"\nArticles in {settings.database} ({len(rows)}):")
    for source, title, topics, countries, people, story, removed in rows:
        print(f"- [{source}] {title}")
        print(f"    topics: {', '.join(topics) or '-'}; countries: {', '.join(countries) or '-'};"
              f" people: {', '.join(people) or '-'}")
        print(f"    story: {story}; boilerplate lines removed: {removed}")
    stories = con.execute(
        "SELECT id, title, n_articles, n_sources FROM stories ORDER BY first_seen"
    ).fetchall()
    print(f"\nStories ({len(stories)}):")
    for sid, title, n_articles, n_sources in stories:
        print(f"- {sid}: {title} ({n_articles} articles, {n_sources} sources)")
    alerts = con.execute(
        "SELECT rule, recipient, status, message_id FROM alerts ORDER BY created_at"
    ).fetchall()
    print(f"\nAlerts ({len(alerts)}):")
    for rule, recipient, status, message_id in alerts:
        print(f"- {rule} -> {recipient}: {status} {message_id or ''}")
    if settings.smtp is None and alerts:
        print(f"  (no smtp configured: emails are .eml files in {settings.outbox})")


def cmd_extract(args: argparse.Namespace) -> int:
    from pipeline.charset import utf8_html
    from pipeline.content.clean import clean
    from pipeline.content.extract import ExtractionError, extract
    from pipeline.content.language import load_detector
    from pipeline.http import AddressRefused, Fetcher, FetchError, FetchLimits

    detector = load_detector()
    limits = FetchLimits(allow_private=frozenset(args.allow_private or ()))
    failures = unreadable = 0

    async def fetch_url(url: str) -> bytes:
        # Decoded with the charset the server or the page declares, as the
        # pipeline's fetch stage does (pipeline.charset.utf8_html).
        async with Fetcher(limits) as fetcher:
            response = await fetcher.get(url, kind="page")
        return utf8_html(response.body, response.headers.get("content-type", ""))

    for source in args.sources:
        try:
            if source.startswith(("http://", "https://")):
                body, url = asyncio.run(fetch_url(source)), source
            else:
                path = Path(source)
                try:
                    # As a fetched page is: at most max_page_bytes (/dev/zero, a
                    # disk image named by mistake, is refused, not read into memory).
                    with path.open("rb") as handle:
                        body = handle.read(limits.max_page_bytes + 1)
                    url = path.resolve().as_uri()
                except OSError as exc:
                    # The user named a file that is not there: their error (exit 2),
                    # unlike a page that does not extract. The other sources still run.
                    why = "no such file" if isinstance(exc, FileNotFoundError) else exc.strerror
                    print(f"newsmon: {source}: {why or exc}", file=sys.stderr)
                    unreadable += 1
                    continue
                if len(body) > limits.max_page_bytes:
                    print(f"newsmon: {source}: larger than {limits.max_page_bytes // 2**20} MiB, "
                          "the most the pipeline reads of a page", file=sys.stderr)
                    failures += 1
                    continue
            extracted = extract(body, url=url)
        except (OSError, FetchError, ExtractionError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
            if isinstance(exc, AddressRefused):
                reason = exc.advice("--allow-private")
            print(f"newsmon: {source}: {reason}", file=sys.stderr)
            failures += 1
            continue
        cleaned = clean(extracted.text, title=extracted.title, url=url,
                        site_name=extracted.site_name)
        language = detector.detect(f"{extracted.title or ''}\n{cleaned.text}",
                                   declared=extracted.language)
        if args.json:
            print(json.dumps({
                "source": source, "title": extracted.title, "text": cleaned.text,
                "author": extracted.author,
                "published": extracted.published.isoformat() if extracted.published else None,
                "language": language, "removed": [r.line for r in cleaned.removed],
            }, ensure_ascii=False, allow_nan=False))
        else:
            print(f"# {extracted.title or '(no title)'}\n\n{cleaned.text}\n")
            if cleaned.removed:
                print(f"[{len(cleaned.removed)} boilerplate line(s) removed: "
                      + "; ".join(f"{r.rule}: {r.line[:60]!r}" for r in cleaned.removed) + "]\n")
    return 2 if unreadable else 1 if failures else 0


def _print_rows(columns: Sequence[str], rows: Iterable[Sequence[object]], fmt: Format, *,
                under: str | None = None) -> None:
    write_rows(columns, rows, fmt, sys.stdout, under=under)


def _print_cursor(cursor: duckdb.DuckDBPyConnection, fmt: Format) -> None:
    """The result of a statement as it is read, each column read by its DuckDB
    type (FLOAT, JSON, BLOB): an export of the whole archive holds a chunk of
    rows in memory, not all of them."""
    _print_rows([d[0] for d in cursor.description or ()], fetched_rows(cursor), fmt)


@contextlib.contextmanager
def ctrl_c_kept() -> Iterator[None]:
    """A Ctrl-C while the block runs DuckDB on the main thread (a connection
    opened, its schema checks, ``SET``s) is kept and raised as
    KeyboardInterrupt once the block is done. DuckDB's client takes a
    KeyboardInterrupt raised inside one of its calls for that call's: a Ctrl-C
    that landed during the open was at times lost, and the query then ran to
    its end (rows printed, exit 0). A second Ctrl-C is raised at once (the
    open may be waiting out another process's lock). Only on the main
    thread, where signals go."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Started with Ctrl-C ignored (nohup, `newsmon run &` in a script, a
        # service): a handler here ended such a process (exit 130) when the
        # signal reached it during the imports or an open, and only then.
        yield
        return
    kept: list[int] = []

    def keep(signum: int, frame: object) -> None:
        if kept:  # a second Ctrl-C (the open waiting out a lock, say): at once
            raise KeyboardInterrupt
        kept.append(signum)

    previous = signal.signal(signal.SIGINT, keep)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if kept:
        raise KeyboardInterrupt


def interruptible(con: duckdb.DuckDBPyConnection, work: Callable[[], _T]) -> _T:
    """``work()`` (statements on ``con`` and the printing of their rows) in a
    thread of its own, so that Ctrl-C stops a long statement at once. On the
    main thread DuckDB's client looks for the signal only between two of its
    tasks: a Ctrl-C that landed while a task ran, or while the client waited
    for the other threads' tasks, was seen when the whole statement had ended
    (20 s later, for a query of 20 s), and at times not at all (the rows
    printed, exit 0). Here the main thread only waits, takes the signal at
    once, and interrupts the connection (``con.interrupt()``); the statement
    stops at its next chunk and the command says ``newsmon: interrupted``."""
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # noqa: BLE001 (handed to the main thread below)
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name="newsmon-statement", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        con.interrupt()
        thread.join(5)  # the statement's next chunk; a second Ctrl-C ends the wait
        raise
    done, value = outcome[0]
    if not done:
        raise value
    return cast("_T", value)


def _format(args: argparse.Namespace) -> Format:
    return "json" if args.json else "csv" if args.csv else "table"


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from pipeline.store.backend import is_lake, open_store

    settings = _settings(args)
    if not args.query.strip():
        raise UserError("no SQL to run: the statement is empty")
    # What prints rows (SHOW, DESCRIBE, FROM t, VALUES are SELECTs to DuckDB).
    returns_rows = {duckdb.StatementType.SELECT, duckdb.StatementType.PRAGMA,
                    duckdb.StatementType.CALL, duckdb.StatementType.EXPLAIN,
                    duckdb.StatementType.EXECUTE}
    with contextlib.ExitStack() as stack:
        with ctrl_c_kept():
            con = stack.enter_context(open_store(settings, read_only=True,
                                                 schema_if_empty=False))
            if not is_lake(con):
                # Read-only is the database; a statement could still write or
                # read other files (COPY ... TO over news.duckdb itself, ATTACH
                # ... READ_WRITE, read_csv('/etc/passwd')). None of that, and the
                # statement cannot turn it back on. (A lake reads its data files
                # through that same access: there the catalog's read-only role
                # holds.)
                con.execute("SET enable_external_access = false")
                con.execute("SET lock_configuration = true")
        interruptible(con, lambda: _run_sql(con, args, returns_rows))
    return 0


def _run_sql(con: duckdb.DuckDBPyConnection, args: argparse.Namespace,
             returns_rows: set[duckdb.StatementType]) -> None:
    import duckdb

    try:
        queries = [s.type.name for s in con.extract_statements(args.query)
                   if s.type in returns_rows]
        if len(queries) > 1:
            # DuckDB runs them all and returns the last result: the others were
            # dropped without a word.
            raise UserError(f"the SQL holds {len(queries)} queries that return rows "
                            f"({', '.join(queries)}) and newsmon sql prints one result: "
                            "run each on its own")
        cursor = con.execute(args.query)
    except duckdb.Error as exc:
        # DuckDB's later lines are the useful ones: 'Did you mean "articles"?',
        # and the statement with a caret under the problem.
        message = "\n".join(line for line in str(exc).splitlines() if line.strip())
        raise UserError(f"SQL error: {message}") from None
    if cursor is None:  # ";" or only comments: DuckDB ran nothing
        raise UserError("no SQL to run: the text has no statement (only ';' or comments)")
    if cursor.description is not None:
        _print_cursor(cursor, _format(args))


def cmd_search(args: argparse.Namespace) -> int:
    import duckdb

    from pipeline.cli_browse import TAGGED
    from pipeline.query import QuerySyntaxError, facets, parse, to_sql
    from pipeline.store.backend import open_store

    settings = _settings(args)
    try:
        query = parse(args.query)
        where, params = to_sql(query)
    except QuerySyntaxError as exc:
        raise UserError(f"query: {exc}") from None
    kinds = {"topic": "topic", "country": "country", "lang": "language"}
    tags = [f for f in dict.fromkeys(facets(query)) if f.field in kinds and not f.prefix]
    with contextlib.ExitStack() as stack:
        with ctrl_c_kept():  # as sql's: a Ctrl-C during the open is not lost
            con = stack.enter_context(open_store(settings, read_only=True,
                                                 schema_if_empty=False))

        def matching() -> tuple[list[str], list[Any]]:
            try:
                cursor = con.execute(
                    "SELECT CAST(coalesce(published_at, fetched_at) AS DATE) AS date, source,"
                    " title, story_id, url FROM articles WHERE " + where
                    + " ORDER BY coalesce(published_at, fetched_at) DESC LIMIT ?",
                    [*params, args.limit],
                )
                return [d[0] for d in cursor.description or ()], cursor.fetchall()
            except duckdb.Error as exc:
                raise UserError(_query_failed(exc)) from None

        def absent() -> list[Any]:
            # As `stories --topic`: a tag no stored article has (`topic:energy`
            # for the topic energy-prices, `country:uk` for GB) finds nothing.
            missing = []
            for facet in tags:
                test, values = to_sql(facet)
                row = con.execute(f"SELECT EXISTS (SELECT 1 FROM articles WHERE {test})",
                                  values).fetchone()
                if not (row and row[0]):
                    missing.append(facet)
            return missing

        columns, rows = interruptible(con, matching)
        missing = interruptible(con, absent) if not rows else []
    for facet in missing:
        # On stderr: the rows on stdout stay what a program reading them expects.
        print(f"newsmon: no article is tagged {facet.field}:{facet.value};"
              f" {TAGGED[kinds[facet.field]]}", file=sys.stderr)
    _print_rows(columns, rows, _format(args))
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from pipeline import alert, store

    settings = _settings(args)
    if settings.store.mode == "lake":
        raise UserError("newsmon backup copies the DuckDB file; a lake is backed up with its "
                        "catalog (PostgreSQL) and its data path (store.data_path)")
    # A send round's journal holds the emails it delivered until its marks:
    # marked in the copy, which restored would send them again otherwise.
    journals: list[alert.Journaled] = []

    def beside() -> store.Into:
        journals.append(alert.journaled(settings.database))
        return journals[0].mark

    size = store.backup(settings.database, Path(args.dest), beside=beside)
    carried = ""
    if journals and journals[0].outcomes:
        carried = (f"; {len(journals[0].outcomes)} delivery outcome(s) ({journals[0].sent}"
                   f" email(s) sent) of {journals[0].journals} send round(s) not marked yet,"
                   " marked in the copy")
    print(f"backed up {settings.database} to {args.dest} ({size / 2**20:.1f} MiB, one file: "
          f"the write-ahead log folded in{carried})")
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    """Maintenance under the writer lock: what the maintenance DAG runs daily."""
    from datetime import UTC, datetime, timedelta

    from pipeline.store import maintenance
    from pipeline.store.backend import backend

    settings = _settings(args)
    _require_store(settings)
    chosen = backend(settings)
    if settings.store.mode != "lake":
        with chosen.writer() as con:
            maintenance.checkpoint(con)
        print(f"checkpointed {settings.database}")
        return 0
    from pipeline.store.lake import LakeBackend, compact_lake

    assert isinstance(chosen, LakeBackend)
    # Under the writer lock, fenced, checked before each step (the DAG's too).
    done = compact_lake(chosen, now=datetime.now(UTC), keep=timedelta(days=args.keep_days))
    print(f"data files {done.files_before} -> {done.files_after}; "
          f"{done.snapshots_expired} snapshots expired, {done.files_deleted} old files deleted, "
          f"{done.orphans_deleted} orphaned files deleted")
    return 0


def _require_store(settings: Any) -> None:
    """StoreError unless the database is there: a command that only tends an
    existing one (``alerts send``, ``compact``) created it at a mistyped path,
    folders and all, and reported zero alerts sent or a checkpoint done."""
    from pipeline.store import StoreError
    from pipeline.store.backend import backend

    chosen = backend(settings)
    if not chosen.exists():
        raise StoreError(f"{chosen.describe()}: no database here yet; run `newsmon run --once` "
                         "first")


def _query_failed(exc: Exception) -> str:
    from pipeline.query import engine_refused

    return f"query: {engine_refused(exc)}"


# An OPML file of 10,000 feeds takes about 1.5 MiB. Past this it is the wrong
# file (/dev/zero, a disk image), which was read whole into memory or never ended.
_MAX_OPML_BYTES = 16 * 2**20


@contextlib.contextmanager
def _feeds_writer(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """The writer, for one feeds change: one fenced transaction (in a lake, an
    overlapping writer's commit makes this one fail in a sentence)."""
    from pipeline.store.backend import backend, fenced

    chosen = backend(settings)
    with chosen.writer() as con, fenced(con, chosen.describe()):
        yield con


def cmd_feeds(args: argparse.Namespace) -> int:
    from pipeline import store
    from pipeline.sources import feeds
    from pipeline.store.backend import backend, open_store

    settings = _settings(args)
    action = getattr(args, "action", None) or "list"
    try:
        if action == "add":
            with _feeds_writer(settings) as con:
                feed = feeds.add(con, settings, args.url, name=args.name)
            print(f"added {feed.url}; it is polled on the next pass")
            return 0
        if action == "import":
            try:
                with Path(args.file).open("rb") as handle:
                    data = handle.read(_MAX_OPML_BYTES + 1)
            except OSError as exc:
                raise UserError(f"{args.file}: cannot read: {exc.strerror}") from None
            if len(data) > _MAX_OPML_BYTES:
                raise UserError(f"{args.file}: larger than {_MAX_OPML_BYTES // 2**20} MiB, more "
                                "than an OPML file of feeds holds: is it the right file?")
            with backend(settings).writer() as con:
                result = feeds.import_opml(con, settings, data)
            for url, why in result.skipped:
                print(f"skipped {plain(url[:200])}: {plain(why)}", file=sys.stderr)
            print(f"added {len(result.added)} feed(s), skipped {len(result.skipped)}")
            return 0
        if action in _FEED_CHANGES:
            with _feeds_writer(settings) as con:
                said = _FEED_CHANGES[action](con, settings, args)
            print(said)
            return 0
    except feeds.ConfiguredFeed as exc:
        raise UserError(f"{exc.url} is in the config file {_config_name(args)}: {exc.action}; "
                        "newsmon never rewrites that file") from None
    except feeds.FeedError as exc:
        raise UserError(str(exc)) from None
    rows: list[dict[str, object]] = []
    if backend(settings).exists():
        with open_store(settings, read_only=True, schema_if_empty=False) as con:
            rows = store.feed_rows(con)
    health = feeds.health(settings, rows)
    if action == "export":
        sys.stdout.write(feeds.export_opml(health))
        return 0
    _print_rows(
        ["name", "url", "fetch_url", "origin", "status", "last_success", "last_error", "errors",
         "next_poll", "entries"],
        [(h.name, h.url, h.fetch_url, h.origin, h.status, h.last_success_at, h.last_error,
          h.error_count, h.next_poll_at, h.entries_seen) for h in health],
        # An error's sentence ends with what to do ('... unless fetch.allow_private
        # lists 127.0.0.1:8080'): whole, under its feed, where a cell cut it at 80.
        _format(args), under="last_error",
    )
    return 0


def _config_name(args: argparse.Namespace) -> str:
    return str(getattr(args, "config", None) or "newsmon.yaml")


def _feeds_remove(con: Any, settings: Any, args: argparse.Namespace) -> str:
    from pipeline.sources import feeds

    feeds.remove(con, settings, args.url)
    return f"removed {args.url.strip()}; its articles stay in the database"


def _feeds_pause(con: Any, settings: Any, args: argparse.Namespace) -> str:
    from pipeline.sources import feeds

    feeds.pause(con, settings, args.url)
    return f"paused {args.url.strip()}; `newsmon feeds resume URL` polls it again"


def _feeds_resume(con: Any, settings: Any, args: argparse.Namespace) -> str:
    from pipeline.sources import feeds

    feeds.resume(con, settings, args.url)
    return f"resumed {args.url.strip()}; it is polled on the next pass"


def _feeds_rename(con: Any, settings: Any, args: argparse.Namespace) -> str:
    from pipeline.sources import feeds

    feeds.rename(con, settings, args.url, args.name)
    return f"renamed {args.url.strip()} to {args.name.strip()!r}"


_FEED_CHANGES: dict[str, Callable[[Any, Any, argparse.Namespace], str]] = {
    "remove": _feeds_remove, "pause": _feeds_pause, "resume": _feeds_resume,
    "rename": _feeds_rename,
}


def cmd_alerts(args: argparse.Namespace) -> int:
    from pipeline.run import send_stage

    settings = _settings(args)
    if args.action != "test" and args.rule:
        raise UserError(f"'alerts {args.action}' takes no rule name (did you mean 'alerts test"
                        f" {args.rule}'?)")
    if args.now and args.action != "send":
        raise UserError("--now goes with 'alerts send'")
    if args.action == "send":
        _require_store(settings)
        result = send_stage(settings, ignore_backoff=args.now)
        print(_delivery(result))
        return 1 if result.undelivered else 0
    if args.action == "test":
        return _backtest(settings, args)
    from pipeline.store.backend import open_store

    # In lake mode `alerts` is the view joining the lake's rows and their
    # delivery state in PostgreSQL. A sent row keeps its last claim's lease in
    # next_attempt_at: only a pending or sending row has an attempt to come.
    with open_store(settings, read_only=True, schema_if_empty=False) as con:
        cursor = con.execute(
            "SELECT a.rule, a.recipient, a.update_no AS update, a.status, s.title AS story,"
            " a.created_at, a.sent_at, a.attempts,"
            " CASE WHEN a.status IN ('pending', 'sending') THEN a.next_attempt_at END"
            " AS next_attempt,"
            " a.error FROM alerts a LEFT JOIN stories s ON s.id = a.story_id"
            " ORDER BY a.created_at DESC"
        )
        _print_cursor(cursor, _format(args))
        if _format(args) == "table":
            print(_outbox_state(con))
    return 0


def _outbox_state(con: Any) -> str:
    """The outbox by status; rows in 'sending' say who holds them and until when."""
    now = datetime.now(UTC)
    counts = dict(con.execute("SELECT status, count(*) FROM alerts GROUP BY ALL").fetchall())
    line = "outbox: " + ", ".join(f"{counts.get(s, 0)} {s}"
                                  for s in ("pending", "sending", "sent", "failed"))
    due = con.execute("SELECT min(next_attempt_at) FROM alerts WHERE status = 'pending'"
                      ).fetchone()[0]
    if due is not None:
        line += f"\nnext attempt due {_when(due, now)}"
    # Read-only, the schema is not brought up to date: a database from before
    # claimed_by was added has no such column until the next write.
    column = "claimed_by" if con.execute(
        "SELECT count(*) FROM information_schema.columns"
        " WHERE table_name = 'alerts' AND column_name = 'claimed_by'").fetchone()[0] else "NULL"
    for holder, n, until in con.execute(
            f"SELECT {column}, count(*), max(next_attempt_at) FROM alerts"
            " WHERE status = 'sending' GROUP BY ALL ORDER BY 3").fetchall():
        state = ("its lease has run out: the next send takes them over"
                 if until is None or until <= now
                 else f"if that sender died, the next send takes them over {_when(until, now)}")
        line += f"\n{n} sending, claimed by {holder or '(unknown)'}; {state}"
    return line


def _backtest(settings: Any, args: argparse.Namespace) -> int:
    import duckdb

    from pipeline import alert
    from pipeline.store.backend import open_store

    rules = {r.name: r for r in settings.alerts}
    if not args.rule or args.rule not in rules:
        known = ", ".join(sorted(rules)) or "none configured"
        raise UserError(f"alerts test needs a rule name from the config ({known})")
    with open_store(settings, read_only=True, schema_if_empty=False) as con:
        try:
            hits = alert.backtest(con, rules[args.rule], limit=args.limit)
        except duckdb.Error as exc:
            raise UserError(f"alert rule {args.rule}: {_query_failed(exc)}") from None
    rows = [(h.first_seen, h.n_sources, h.matching_articles, h.title, h.story_id) for h in hits]
    _print_rows(["first_seen", "sources", "matching", "story", "story_id"], rows, _format(args))
    return 0


# -- parser --------------------------------------------------------------------------------
# Nothing heavy is imported before a command runs: `newsmon --help` takes 0.09 s,
# 0.33 s with pydantic (pipeline.config) imported up front.


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, with its errors on one line like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


# SQL's LIMIT is a BIGINT.
_BIGINT_MAX = 2**63 - 1


def _whole_number(minimum: int, maximum: int = _BIGINT_MAX) -> Callable[[str], int]:
    """An argparse type: an integer from ``minimum`` to ``maximum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value
    return parse


def _allowed_host(text: str) -> str:
    """An argparse type: an entry of the address guard's allow-list."""
    from pipeline.http import allow_entry_problem

    problem = allow_entry_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text.strip()


def _workers(text: str) -> int:
    from pipeline.config import MAX_WORKERS

    return _whole_number(1, MAX_WORKERS)(text)


def _add_config(p: argparse.ArgumentParser, *, inherit: bool = False) -> None:
    # inherit: a sub-action's own default would overwrite the --config given
    # before the action (`newsmon feeds --config F add URL`).
    p.add_argument("--config", "-c", metavar="FILE",
                   default=argparse.SUPPRESS if inherit else None,
                   help="the YAML config file (default: ./newsmon.yaml)")


def _add_format(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="one JSON object per row")
    group.add_argument("--csv", action="store_true", help="CSV with a header row")


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="newsmon",
        description="Monitor news feeds: extract, clean, tag and cluster articles into DuckDB, "
        "and email alerts on new stories that match saved searches.",
    )
    parser.add_argument("--version", action="version", version=f"newsmon {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each stage's details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="poll the due feeds and process new entries")
    _add_config(p)
    p.add_argument("--once", action="store_true",
                   help="make one pass and exit (default: keep running, each feed polled "
                        "when it is due)")
    p.add_argument("--all", action="store_true", help="poll every feed, due or not")
    p.add_argument("--workers", type=_workers,
                   help="extraction processes (default: one per core)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress counts")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="serve the seed site on 127.0.0.1 and run one pass")
    p.add_argument("--database", metavar="PATH",
                   help=f"the DuckDB file (default: {Path('newsmon-demo') / 'news.duckdb'})")
    p.add_argument("--seeds", metavar="DIR", help="the seed site folder (default: seeds/site)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress counts")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("extract", help="extract and clean article pages (files or URLs)")
    p.add_argument("sources", nargs="+", metavar="PATH_OR_URL")
    p.add_argument("--json", action="store_true", help="one JSON object per page")
    p.add_argument("--allow-private", action="append", metavar="HOST[:PORT]", type=_allowed_host,
                   help="let this private/loopback host through the address guard")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("sql", help="run SQL against the database (read-only)")
    p.add_argument("query", metavar="SQL")
    _add_config(p)
    _add_format(p)
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("search", help="search stored articles with the query language")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--limit", type=_whole_number(1), default=50,
                   help="at most this many rows (default 50)")
    _add_config(p)
    _add_format(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "feeds", help="each feed's health; add, remove, pause, resume, rename, import (OPML) "
        "and export feeds",
        description="Without an action: every feed (from the config file and added ones) with "
        "its status, last success, last error, error count and next poll.",
    )
    _add_config(p)
    _add_format(p)
    p.set_defaults(func=cmd_feeds, action="list")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    a = actions.add_parser("list", help="each feed's health (the default)")
    _add_config(a, inherit=True)
    _add_format(a)
    a = actions.add_parser("add", help="add a feed; it is polled on the next pass")
    a.add_argument("url", metavar="URL")
    a.add_argument("--name", help="display name (default: the feed's own title)")
    _add_config(a, inherit=True)
    a = actions.add_parser("remove", help="stop polling an added feed and forget its state")
    a.add_argument("url", metavar="URL")
    _add_config(a, inherit=True)
    a = actions.add_parser("pause", help="stop polling a feed (added or config) for now")
    a.add_argument("url", metavar="URL")
    _add_config(a, inherit=True)
    a = actions.add_parser("resume", help="poll a paused feed again from the next pass")
    a.add_argument("url", metavar="URL")
    _add_config(a, inherit=True)
    a = actions.add_parser("rename", help="change an added feed's display name")
    a.add_argument("url", metavar="URL")
    a.add_argument("name", metavar="NAME")
    _add_config(a, inherit=True)
    a = actions.add_parser("import", help="add every feed of an OPML file")
    a.add_argument("file", metavar="FILE.opml")
    _add_config(a, inherit=True)
    a = actions.add_parser("export", help="print every feed as OPML 2.0")
    _add_config(a, inherit=True)

    p = sub.add_parser(
        "alerts", help="list the alert outbox, send pending alerts now, or backtest a rule",
        description="list: the outbox (pending, sending, sent, failed), with who holds the "
        "'sending' ones. send: deliver due alerts now and say when the next attempt is due "
        "(exit 1 if one was not delivered). test RULE: the stored stories RULE would have "
        "alerted on.")
    p.add_argument("action", nargs="?", choices=["list", "send", "test"], default="list")
    p.add_argument("rule", nargs="?", help="the rule to backtest (with 'test')")
    p.add_argument("--limit", type=_whole_number(1), default=100,
                   help="at most this many stories (test)")
    p.add_argument("--now", action="store_true",
                   help="send: also the alerts waiting out a retry backoff (digests still "
                   "wait for the end of their period)")
    _add_config(p)
    _add_format(p)
    p.set_defaults(func=cmd_alerts)

    p = sub.add_parser("backup", help="copy the database to a new file, whole, even while a "
                       "pass loads (file mode)")
    p.add_argument("dest", metavar="FILE", help="the copy to make (a new file)")
    _add_config(p)
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("compact", help="lake mode: merge small data files and expire old "
                       "snapshots; file mode: checkpoint the database")
    _add_config(p)
    p.add_argument("--keep-days", type=_whole_number(0, 3650), default=7,
                   help="lake mode: keep this many days of snapshots (time travel); default 7")
    p.set_defaults(func=cmd_compact)

    # stories, story, status, init, serve: the analyst's commands (issue 18).
    from pipeline import cli_browse

    cli_browse.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _standard_streams()
    # Ctrl-C lands anywhere: in the imports before a command (duckdb, pydantic:
    # most of the first second), or in a DuckDB statement, whose Python client
    # turns it into RuntimeError("Query interrupted") raised from the
    # KeyboardInterrupt. Either way it is the same sentence and exit code.
    from pipeline.interrupts import Terminated

    try:
        return _command(argv)
    except Terminated:  # SIGTERM during `run --once`
        print("newsmon: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        if not _interrupted(exc):
            raise
    print("newsmon: interrupted", file=sys.stderr)
    return 130


def _standard_streams() -> None:
    """Open /dev/null on a standard descriptor the caller closed (``newsmon sql
    ... >&-``, a daemon's child): the first file opened took its number, so the
    database was descriptor 1, and every write to stdout (a worker process's,
    the broken-pipe handler's) went to it; and print() had no sys.stdout, a
    traceback. What is written to a closed stdout is dropped, as when the
    reader of a pipe goes away."""
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, mode)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    # The process's own streams, open until it exits: no context manager.
    if sys.stdout is None:
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8",  # noqa: SIM115
                          errors="backslashreplace", closefd=False)


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` was raised because of a KeyboardInterrupt."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _command(argv: Sequence[str] | None) -> int:
    if isinstance(sys.stdout, io.TextIOWrapper):
        # Rows, JSON (RFC 8259: UTF-8), CSV and OPML (which declares UTF-8) are
        # UTF-8 whatever the locale: under a Latin-1 one (LANG=de_DE.ISO-8859-1,
        # PYTHONIOENCODING=latin-1) a Russian title was a UnicodeEncodeError
        # traceback, and `feeds export` wrote Latin-1 under its UTF-8 declaration.
        sys.stdout.reconfigure(encoding="utf-8")
    # The imports behind the commands (duckdb's among them: its module, on the
    # main thread, took a Ctrl-C that landed in its own imports for theirs and
    # went on, the command then ran to its end, exit 0): a Ctrl-C is kept and
    # raised once they are done, as during sql's open.
    with ctrl_c_kept():
        parser = build_parser()
        from pipeline.config import ConfigError
        from pipeline.store import StoreError
        from pipeline.store.staging import StagingError
    given = sys.argv[1:] if argv is None else list(argv)
    for value in given:
        # Bytes that are not UTF-8 come in as lone surrogates, which no query,
        # URL or id holds (DuckDB refused them with a traceback).
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            shown = os.fsencode(value).decode("utf-8", "backslashreplace")
            print(f"newsmon: the argument {shown} is not UTF-8 text; give it as UTF-8",
                  file=sys.stderr)
            return 2
    args = parser.parse_args(given)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except (UserError, ConfigError, StoreError, StagingError, OutputError) as exc:
        # A message echoes what was typed or read (a query, SQL, a URL, a config
        # value): ESC or BEL in it must not reach the terminal as controls.
        print(f"newsmon: {plain(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`newsmon sql ... | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    # `python -m pipeline.cli` runs this file as __main__, a second copy of the module;
    # pipeline.cli_browse raises pipeline.cli's UserError, which only its main() catches.
    from pipeline.cli import main as _main

    sys.exit(_main())
