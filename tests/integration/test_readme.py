"""The README's examples run: every SQL example (```sql blocks, `SELECT ... FROM`
spans, `newsmon sql "..."`) and every read-only `newsmon` command of its
```sh blocks, against the database of a real ``newsmon demo``; a `$ newsmon`
transcript prints what the README shows. The lake-mode examples run against
the same tables attached under the lake's names (no PostgreSQL needed), and
as written on a real lake when PostgreSQL answers at 127.0.0.1:5432."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from support import factories as f
from support import lake, readme
from support.demo_run import DemoRun

from integration.test_load import reports
from pipeline.cli import main
from pipeline.run import send_stage
from pipeline.store import delivery
from pipeline.store.backend import backend
from pipeline.store.lake import extension_file
from pipeline.store.load import load

# The headings of lake mode's SQL: it runs in your own DuckDB session against the lake.
LAKE_SECTIONS = ("Queries", "Guarantees and their limits")
# Commands that only read: the ones an example may run against the demo database.
READ_ONLY = {"stories", "story", "status", "sql", "search"}
READ_ONLY_ACTIONS = {"feeds": {None, "list"}, "alerts": {None, "list", "test"}}
# A word in capitals stands for a value to fill in (URL, NAME, ID, FILE.opml).
PLACEHOLDER = re.compile(r"[A-Z][A-Z_]+(?:\.\w+)?")


@dataclass(frozen=True, slots=True)
class Example:
    line: int
    argv: tuple[str, ...]  # after `newsmon`, without --config


def _sql_statements(text: str) -> list[str]:
    return [s.query for s in duckdb.extract_statements(text)]


def _newsmon_argv(command: str) -> tuple[str, ...] | None:
    """The arguments after `newsmon` in a shell line, without --config; None when
    the line does not run newsmon."""
    words = shlex.split(command, comments=True)
    for i, word in enumerate(words):
        if word == "newsmon" or word.endswith("/newsmon"):
            rest = words[i + 1:]
            while "--config" in rest:
                at = rest.index("--config")
                del rest[at:at + 2]
            return tuple(rest)
    return None


def _sh_commands(block: readme.Block) -> list[tuple[int, str]]:
    """Each command of a ```sh block (continuation lines joined) with its line."""
    commands: list[tuple[int, str]] = []
    pending: list[str] = []
    start = block.line
    for offset, line in enumerate(block.text.splitlines()):
        if not pending:
            start = block.line + offset
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        try:
            shlex.split("\n".join(pending), comments=True)
        except ValueError:  # a quote open across lines
            continue
        commands.append((start, "\n".join(pending)))
        pending = []
    assert not pending, f"README.md line {start}: a quote never closed"
    return commands


def _reads_only(argv: tuple[str, ...]) -> bool:
    if not argv or any(PLACEHOLDER.fullmatch(word) for word in argv):
        return False
    command, rest = argv[0], [w for w in argv[1:] if not w.startswith("-")]
    if command in READ_ONLY:
        return True
    return (rest[0] if rest else None) in READ_ONLY_ACTIONS.get(command, set())


def examples() -> list[Example]:
    found: list[Example] = []
    text = readme.text()
    for block in readme.blocks("sql"):
        if block.section in LAKE_SECTIONS:
            continue  # test_the_lake_examples_name_real_tables_and_columns
        for statement in _sql_statements(block.text):
            statement = statement.strip()
            line = block.line + block.text[:block.text.index(statement)].count("\n")
            found.append(Example(line, ("sql", statement)))
    for number, line in enumerate(text.splitlines(), start=1):
        for span in readme.code_spans(line):
            if re.fullmatch(r"SELECT .+ FROM .+", span) and "..." not in span:
                found.append(Example(number, ("sql", span)))
            elif span.startswith("newsmon sql ") and "..." not in span:
                argv = _newsmon_argv(span)
                assert argv is not None
                found.append(Example(number, argv))
    for block in readme.blocks("sh"):
        for number, command in _sh_commands(block):
            argv = _newsmon_argv(command)
            if argv is not None and _reads_only(argv):
                found.append(Example(number, argv))
    return found


EXAMPLES = examples()


@pytest.fixture(scope="module")
def ids(demo_run: DemoRun) -> dict[str, str]:
    """The ids the examples' placeholders stand for: the seed story and its lead report."""
    con = duckdb.connect(str(demo_run.database), read_only=True)
    try:
        story, article = con.execute(
            "SELECT id, lead_article_id FROM stories ORDER BY n_sources DESC LIMIT 1").fetchone()
    finally:
        con.close()
    return {"'s-…'": f"'{story}'", "'…'": f"'{article}'"}


def _filled(argv: tuple[str, ...], ids: dict[str, str]) -> tuple[tuple[str, ...], bool]:
    filled, placeholder = [], False
    for word in argv:
        for mark, value in ids.items():
            if mark in word:
                word, placeholder = word.replace(mark, value), True
        filled.append(word)
    return tuple(filled), placeholder


def test_the_readme_has_examples_to_run() -> None:
    commands = {e.argv[0] for e in EXAMPLES}
    assert {"sql", "stories", "status", "search", "feeds"} <= commands, commands
    assert sum(e.argv[0] == "sql" for e in EXAMPLES) >= 10


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"line {e.line}: {e.argv[0]}")
def test_each_example_runs_on_the_demo_database(
        example: Example, demo_run: DemoRun, ids: dict[str, str],
        capsys: pytest.CaptureFixture[str]) -> None:
    argv, placeholder = _filled(example.argv, ids)
    if argv[0] == "sql":
        argv = ("sql", "--json", *argv[1:])
    code = main([*argv[:1], "--config", str(demo_run.config), *argv[1:]])
    out, err = capsys.readouterr()
    assert code == 0, f"README.md line {example.line}: newsmon {shlex.join(argv)}\n{err}"
    if placeholder:  # an example about one story or article finds it
        assert [json.loads(row) for row in out.splitlines()], f"line {example.line}: no rows"


def transcripts() -> list[tuple[int, tuple[str, ...], str]]:
    """The README's plain blocks that show `$ newsmon ...` and what it prints."""
    found = []
    for block in readme.blocks(""):
        first, *rest = block.text.splitlines()
        if first.startswith("$ newsmon "):
            argv = _newsmon_argv(first[2:])
            assert argv is not None
            found.append((block.line, argv, "\n".join(rest)))
    return found


@pytest.mark.parametrize(("line", "argv", "shown"),
                         [pytest.param(*t, id=f"line {t[0]}") for t in transcripts()])
def test_each_transcript_prints_what_the_readme_shows(
        line: int, argv: tuple[str, ...], shown: str, demo_run: DemoRun,
        capsys: pytest.CaptureFixture[str]) -> None:
    main([*argv[:1], "--config", str(demo_run.config), *argv[1:]])
    out, err = capsys.readouterr()
    assert (out + err).rstrip("\n") == shown, f"README.md line {line}"


def test_the_lake_examples_name_real_tables_and_columns(demo_run: DemoRun) -> None:
    """The lake-mode SQL, with the demo file attached as the lake and the delivery
    table made by its own DDL under the catalog's alias; the statements that need
    PostgreSQL or DuckLake (LOAD, ATTACH) only have to parse."""
    blocks = [b for b in readme.blocks("sql") if b.section in LAKE_SECTIONS]
    assert len(blocks) == 2
    con = duckdb.connect(config={"python_enable_replacements": False})
    con.execute(f"ATTACH '{demo_run.database}' AS newsmon_lake (READ_ONLY)")
    con.execute(f"ATTACH ':memory:' AS {delivery.PG_ALIAS}")
    con.execute(f"USE {delivery.PG_ALIAS}")
    for statement in _sql_statements(delivery._DDL):
        if "pg_advisory" not in statement:
            con.execute(statement)
    ran = 0
    for block in blocks:
        for statement in _sql_statements(block.text):
            code = re.sub(r"--[^\n]*", "", statement)
            if re.match(r"\s*(LOAD|INSTALL|ATTACH)\b", code, re.IGNORECASE):
                continue
            con.execute(statement).fetchall()
            ran += 1
    assert ran == 3  # USE, the stories query, the delivery join


def test_newsmon_feeds_shows_the_columns_the_readme_lists(
        demo_run: DemoRun, capsys: pytest.CaptureFixture[str]) -> None:
    paragraph = re.sub(r"\s+", " ", readme.text()).split("`newsmon feeds` shows, for each feed:")[1]
    listed = readme.code_spans(paragraph.split(".")[0])
    assert main(["feeds", "--csv", "--config", str(demo_run.config)]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert listed == header


def test_newsmon_extract_json_has_the_fields_the_readme_lists(
        capsys: pytest.CaptureFixture[str]) -> None:
    row = next(r for r in readme.table(readme.section("The command line"),
                                       ("command", "what it does"))
               if r[0].startswith("`newsmon extract "))
    listed = readme.code_spans(row[1].split("one object per page and line:")[1].split(".")[0])
    page = readme.README.parent / "seeds" / "site" / "amn-netanyahu-russia-pullout.html"
    assert main(["extract", "--json", str(page)]) == 0
    assert listed == list(json.loads(capsys.readouterr().out))


def test_the_lake_examples_run_on_a_real_lake(tmp_path: Path) -> None:
    """The same lake-mode SQL as written, in a DuckDB session of its own, on a lake
    with a PostgreSQL catalog at 127.0.0.1:5432 (skipped, saying why, without one);
    only the catalog's address is the test's, and the extensions are installed
    from the lake extra's wheels first, as the README says."""
    blocks = [b for b in readme.blocks("sql") if b.section in LAKE_SECTIONS]
    readme_dsn = "dbname=newsmon_lake host=db.internal user=newsmon"
    assert all(readme_dsn in b.text for b in blocks)
    with lake.catalog_database() as dsn:
        settings = f.settings(tmp_path, store=lake.store_section(dsn, tmp_path / "lake-data"),
                              alerts=[{"name": "spain", "query": "country:ES",
                                       "to": ["analyst@example.org"]}])
        f.stage(settings, "run-1", reports())
        with backend(settings).writer() as con:
            load(con, settings, "run-1")
        assert send_stage(settings).sent == 1  # to .eml files: the delivery row says sent
        con = duckdb.connect(config={"python_enable_replacements": False})
        try:
            con.execute(f"SET extension_directory = '{tmp_path / 'extensions'}'")
            for name in ("ducklake", "postgres_scanner"):
                con.execute(f"INSTALL '{extension_file(name)}'")
            results = [con.execute(statement.replace(readme_dsn, dsn)).fetchall()
                       for block in blocks for statement in _sql_statements(block.text)]
        finally:
            con.close()
    stories, outbox = results[4], results[-1]
    assert sorted(n for _, n in stories) == [1, 2]
    assert [(rule, status) for rule, _, _, _, status, _, _ in outbox] == [("spain", "sent")]


def test_what_the_readme_says_of_the_demo_is_so(demo_run: DemoRun) -> None:
    """*Two commands*: five reports of one event from five outlets, one story,
    one alert email in the outbox; *Stories*: the seed reports (26 February to
    4 March) are one story."""
    text = re.sub(r"\s+", " ", readme.text())
    assert "the five reports of one event" in text and "from five outlets" in text
    assert "the single story they form, and the one alert email it wrote to" in text
    assert "The seed reports (26 February to 4 March) are one story" in text
    con = duckdb.connect(str(demo_run.database), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        articles, outlets = con.execute(
            "SELECT count(*), count(DISTINCT source) FROM articles").fetchone() or ()
        stories = con.execute("SELECT n_articles, n_sources, strftime(first_seen, '%d %m'),"
                              " strftime(last_seen, '%d %m') FROM stories").fetchall()
    finally:
        con.close()
    assert (articles, outlets) == (5, 5)
    assert stories == [(5, 5, "26 02", "04 03")]
    assert len(list((demo_run.database.parent / "outbox").glob("*.eml"))) == 1


def query_examples() -> list[str]:
    """The queries of the README's query-language table (both columns), but the
    field names alone (`title:`) and the `( … )` of its grammar."""
    spans = [span for row in readme.table(readme.section("Query language"),
                                          ("syntax", "matches"))
             for cell in row for span in readme.code_spans(cell)]
    return [s for s in dict.fromkeys(spans) if not s.endswith(":") and "…" not in s]


def test_every_query_of_the_query_language_table_runs(
        demo_run: DemoRun, capsys: pytest.CaptureFixture[str]) -> None:
    examples = query_examples()
    assert {"syria*", "withdrawal NEAR/6 troops", "title:(Syria OR Iraq)"} <= set(examples)
    found = {}
    for query in examples:
        code = main(["search", "--json", "--config", str(demo_run.config), query])
        out, err = capsys.readouterr()
        assert code == 0, f"README, Query language: {query!r}: {err}"
        found[query] = len(out.splitlines())
    # The seed story is about Syria and foreign forces, and names Putin.
    for query in ("syria", "country:SY", 'person:"Vladimir Putin"',
                  "topic:foreign*", "lang:en"):
        assert found[query] == 5, (query, found)
