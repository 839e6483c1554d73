"""The ``newsmon`` command as users run it: the installed console script in a
subprocess, its exit code and what it writes on stdout and stderr.

Every user error is exit code 2 with one sentence on stderr and no traceback;
``--json`` is strict JSON; lists read as lists in every format.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest
from support.disk import tmpfs

from pipeline import store

# The console script pip installed beside this interpreter (pyproject's
# [project.scripts]); `python -m pipeline.cli` runs the same main() if the
# venv was made without scripts.
_SCRIPT = Path(sys.executable).with_name("newsmon")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "pipeline.cli"]

DEEP = "(" * 200 + "syria" + ")" * 200


def newsmon(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


def user_error(result: subprocess.CompletedProcess[str]) -> str:
    """The first stderr line of a user error (exit 2, no traceback)."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip(), "an error needs a sentence"
    return result.stderr.splitlines()[0]


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    line = user_error(result)
    assert result.stderr.count("\n") == 1, result.stderr
    return line


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A config with one (never fetched) feed and an empty database with the schema."""
    (tmp_path / "newsmon.yaml").write_text(
        "database: news.duckdb\nfeeds:\n  - url: https://example.org/rss\n", encoding="utf-8")
    with store.connect(tmp_path / "news.duckdb"):
        pass
    return tmp_path


# -- user errors: one sentence, exit 2 -------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sql", ""], "newsmon: no SQL to run: the statement is empty"),
        (["sql", "   "], "newsmon: no SQL to run: the statement is empty"),
        (["sql", ";"], "newsmon: no SQL to run: the text has no statement (only ';' or comments)"),
        (["sql", "-- x"],
         "newsmon: no SQL to run: the text has no statement (only ';' or comments)"),
        (["sql", "SELECT 1 a, 2 a"],
         "newsmon: two columns are named 'a': give each its own name (... AS a_2), or the"
         " output would lose one of them"),
        (["sql", "--json", "SELECT 1 a, 2 a"], "newsmon: two columns are named 'a'"),
        # Before: exit 0 with the last result only, the others dropped without a word.
        (["sql", "SELECT count(*) FROM articles; SHOW TABLES"],
         "newsmon: the SQL holds 2 queries that return rows (SELECT, SELECT) and newsmon sql"
         " prints one result: run each on its own"),
        (["search", "syria", "--limit", "-1"],
         "newsmon search: argument --limit: must be at least 1, got -1"
         " (see `newsmon search --help`)"),
        (["search", "syria", "--limit", "many"],
         "newsmon search: argument --limit: 'many' is not a whole number"),
        (["alerts", "test", "x", "--limit", "0"],
         "newsmon alerts: argument --limit: must be at least 1, got 0"),
        (["extract", "missing.html"], "newsmon: missing.html: no such file"),
        # Before: accepted, and allowing nothing (no URL names '::::').
        (["extract", "missing.html", "--allow-private", "::::"],
         "newsmon extract: argument --allow-private: '::::' is not an IPv6 address"),
        (["extract", "missing.html", "--allow-private", "intranet:0"],
         "newsmon extract: argument --allow-private: 'intranet:0' has no port 1-65535"),
    ],
)
def test_user_errors_are_one_sentence_and_exit_2(
    workdir: Path, args: Sequence[str], expected: str
) -> None:
    assert one_line_error(newsmon(*args, cwd=workdir)).startswith(expected)


def test_a_database_of_another_program_or_an_empty_one_is_one_sentence(
        tmp_path: Path) -> None:
    (tmp_path / "newsmon.yaml").write_text("database: news.duckdb\n", encoding="utf-8")
    with duckdb.connect(str(tmp_path / "news.duckdb")) as con:
        con.execute("CREATE TABLE articles (x INTEGER)")
    for args in (["stories"], ["status"], ["compact"], ["feeds", "add", "https://example.org/rss"]):
        line = one_line_error(newsmon(*args, cwd=tmp_path))
        assert "is not a newsmon database: it holds other tables (articles)" in line, args
    (tmp_path / "news.duckdb").unlink()
    duckdb.connect(str(tmp_path / "news.duckdb")).close()  # empty: no tables at all
    # The read-only commands never write, not even newsmon's schema: they say
    # what to do (the pipeline's first read gives the file its schema).
    for args in (["stories"], ["status"], ["sql", "SELECT 1"], ["search", "syria"]):
        line = one_line_error(newsmon(*args, cwd=tmp_path))
        assert "no newsmon tables here yet" in line and "newsmon run --once" in line, args
    with duckdb.connect(str(tmp_path / "news.duckdb"), read_only=True) as con:
        assert con.execute("SHOW TABLES").fetchall() == []


def test_a_staging_folder_or_demo_folder_that_cannot_be_written_is_one_sentence(
        tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder", encoding="utf-8")
    (tmp_path / "newsmon.yaml").write_text(
        "database: news.duckdb\nstaging_dir: afile\nfeeds:\n  - url: http://127.0.0.1:9/rss\n",
        encoding="utf-8")
    line = one_line_error(newsmon("run", "--once", cwd=tmp_path))
    assert "cannot use the staging folder" in line and "afile" in line, line
    line = one_line_error(newsmon("demo", "--database", "afile/news.duckdb", cwd=tmp_path))
    assert line.startswith("newsmon: cannot write the demo's files in afile"), line


def test_run_refuses_negative_workers_before_polling(tmp_path: Path) -> None:
    (tmp_path / "newsmon.yaml").write_text(
        "database: news.duckdb\nfeeds:\n  - url: https://example.org/rss\n", encoding="utf-8")
    line = one_line_error(newsmon("run", "--once", "--workers", "-1", cwd=tmp_path))
    assert line.startswith("newsmon run: argument --workers: must be at least 1, got -1")
    # Nothing ran: a pass would have created the database and its staging folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newsmon.yaml"]


def test_extract_reads_the_other_files_and_still_exits_2(workdir: Path) -> None:
    page = workdir / "page.html"
    page.write_text("<html><head><title>Talks</title></head><body><article><p>"
                    + "Delegations met in Geneva on Monday to discuss the ceasefire. " * 8
                    + "</p></article></body></html>", encoding="utf-8")
    result = newsmon("extract", "missing.html", str(page), "--json", cwd=workdir)
    assert one_line_error(result) == "newsmon: missing.html: no such file"
    (printed,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert printed["source"] == str(page) and "Geneva" in printed["text"]


def test_extract_refuses_a_file_larger_than_a_page_may_be_without_reading_it_all(
        workdir: Path) -> None:
    huge = workdir / "disk.img"
    with huge.open("wb") as handle:  # sparse: 2 GiB on no disk
        handle.truncate(2 * 2**30)
    page = workdir / "page.html"
    page.write_text("<html><body><article>" + "<p>The ministers met in Moscow on Wednesday"
                    " and agreed to set up a working group on Syria.</p>" * 5
                    + "</article></body></html>", encoding="utf-8")
    started = time.monotonic()
    result = newsmon("extract", str(huge), str(page), cwd=workdir)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"newsmon: {huge}: larger than 10 MiB"), result.stderr
    assert "working group on Syria" in result.stdout  # the other file still ran
    assert time.monotonic() - started < 30


def test_an_argument_that_is_not_utf8_is_one_sentence(workdir: Path) -> None:
    # Before: DuckDB's "Unable to cast Python instance" or UnicodeEncodeError tracebacks.
    for args in ([b"sql", b"SELECT '\xff'"], [b"stories", b"--topic", b"\xff"],
                 [b"story", b"s-\xff"]):
        result = subprocess.run([*map(os.fsencode, COMMAND), *args], cwd=workdir,
                                capture_output=True, timeout=60, check=False)
        stderr = result.stderr.decode()
        assert result.returncode == 2 and "Traceback" not in stderr, stderr
        assert stderr.startswith("newsmon: the argument ") and "\\xff" in stderr, stderr
        assert "is not UTF-8 text" in stderr


def test_sql_reads_the_database_and_no_other_file(workdir: Path, tmp_path: Path) -> None:
    # Before: COPY ... TO over news.duckdb itself exited 0 and left 4 bytes.
    db = workdir / "news.duckdb"
    before = db.read_bytes()
    for statement in (f"COPY (SELECT 1 AS x) TO '{db}' (FORMAT csv)",
                      f"COPY (SELECT 1 AS x) TO '{tmp_path / 'x.csv'}' (FORMAT csv)",
                      "SELECT * FROM read_csv('/etc/passwd')",
                      f"ATTACH '{tmp_path / 'y.duckdb'}' AS y",
                      "SET enable_external_access = true"):
        line = user_error(newsmon("sql", statement, cwd=workdir))
        assert "disabled by configuration" in line or "locked" in line, (statement, line)
    assert db.read_bytes() == before
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.duckdb").exists()
    result = newsmon("sql", "SELECT count(*) AS n FROM feeds", cwd=workdir)
    assert result.returncode == 0 and "n" in result.stdout, result.stderr


def test_sql_errors_keep_duckdbs_hint_and_caret(workdir: Path) -> None:
    result = newsmon("sql", "SELECT * FROM article", cwd=workdir)
    first = user_error(result)
    assert first == "newsmon: SQL error: Catalog Error: Table with name article does not exist!"
    lines = result.stderr.splitlines()
    assert 'Did you mean "articles"?' in lines
    statement = lines.index("LINE 1: SELECT * FROM article")
    # The caret sits under the table name.
    assert lines[statement + 1].index("^") == lines[statement].index("article")


def test_a_query_nested_200_deep_is_refused_in_search(workdir: Path) -> None:
    first = user_error(newsmon("search", DEEP, cwd=workdir))
    assert first == ("newsmon: query: nested too deeply (more than 50 levels of parentheses"
                     " and NOT): expected a flatter query at column 51")


@pytest.mark.parametrize("args", [
    ["search", "syria AND (\x1b]0;owned\x07\x1b[2J"],
    ["stories", "--query", "syria AND (\x1b]0;owned\x07\x1b[2J"],
    ["sql", "SELECT * FROM \"\x1b]0;owned\x07\x1b[2J\""],
])
def test_an_error_echoing_what_was_typed_prints_no_control_characters(
        workdir: Path, args: list[str]) -> None:
    # Before: the echo sent ESC and BEL to the terminal (retitled the window, cleared it).
    result = newsmon(*args, cwd=workdir)
    user_error(result)
    assert "\ufffd]0;owned\ufffd\ufffd[2J" in result.stderr, result.stderr
    assert not any((ord(c) < 32 and c not in "\n") or 127 <= ord(c) < 160
                   for c in result.stderr), result.stderr


@pytest.mark.parametrize(
    ("config", "where"),
    [
        (f'topics:\n  deep: "{DEEP}"\n', "line 2: topics.deep"),
        (f'alerts:\n  - name: deep\n    query: "{DEEP}"\n    to: [a@example.org]\n',
         "line 3: alerts[0].query"),
    ],
)
def test_a_query_nested_200_deep_is_refused_in_the_config(
    tmp_path: Path, config: str, where: str
) -> None:
    (tmp_path / "newsmon.yaml").write_text(config, encoding="utf-8")
    first = user_error(newsmon("feeds", cwd=tmp_path))
    assert first == (f"newsmon: newsmon.yaml: {where}: nested too deeply (more than 50 levels"
                     " of parentheses and NOT): expected a flatter query at column 51")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"feeds:\n  - url: https://example.org/rss\n    name: Caf\xe9\n",
         "newsmon: newsmon.yaml: not UTF-8 text: byte 0xe9 at line 3, column 14"
         " (save the file as UTF-8)"),
        (b"feeds:\n  - url: https://example.org/a\nfeeds:\n  - url: https://example.org/b\n",
         "newsmon: newsmon.yaml: line 3: feeds: repeated key (first at line 1)"),
        (b"feeds:\n  - url: https://example.org/a\n    url: https://example.org/b\n",
         "newsmon: newsmon.yaml: line 3: feeds[0].url: repeated key (first at line 2)"),
        (b"feeds:\n  - url: https://exa mple.org/rss\n",
         "newsmon: newsmon.yaml: line 2: feeds[0].url: 'https://exa mple.org/rss': the host"
         " 'exa mple.org' contains ' '"),
        # Before: "Input is not a valid path for <class 'pathlib.Path'>".
        (b"database:\nfeeds:\n  - url: https://example.org/rss\n",
         "newsmon: newsmon.yaml: line 1: database: must be a file path, not None"),
    ],
)
def test_config_file_problems_are_one_sentence(
    tmp_path: Path, text: bytes, expected: str
) -> None:
    (tmp_path / "newsmon.yaml").write_bytes(text)
    assert one_line_error(newsmon("feeds", cwd=tmp_path)) == expected


# -- output: strict JSON, lists as lists -----------------------------------------------------


def test_json_output_is_strict_and_lists_stay_lists(workdir: Path) -> None:
    result = newsmon(
        "sql", "--json",
        "SELECT 'nan'::DOUBLE AS x, 'inf'::DOUBLE AS y, ['SY', 'RU'] AS countries,"
        " [1.5, 'nan'::DOUBLE] AS scores, {'k': 'v'} AS s,"
        " TIMESTAMPTZ '2026-01-02 03:04:05+00' AS t",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    # json.loads accepts NaN by default: parse refusing the non-standard constants.
    row = json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in JSON output"))
    assert row == {"x": None, "y": None, "countries": ["SY", "RU"], "scores": [1.5, None],
                   "s": {"k": "v"}, "t": "2026-01-02T03:04:05+00:00"}


def test_sql_writes_decimals_exactly_and_intervals_as_duckdb_does(workdir: Path) -> None:
    # Before: --json gave 1.2345678901234568e+17 and 1.1; --csv gave "1 day, 2:00:00".
    result = newsmon("sql", "--json", "SELECT 123456789012345678.123::DECIMAL(38,3) AS big,"
                     " 1.10::DECIMAL(18,2) AS price", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{"big": 123456789012345678.123, "price": 1.10}\n'
    result = newsmon("sql", "--csv", "SELECT INTERVAL '1 day 2 hours' AS i,"
                     " 0.0000001::DECIMAL(18,7) AS tiny", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["i,tiny", "1 day 02:00:00,0.0000001"]


def test_csv_and_table_print_lists_as_json_not_python(workdir: Path) -> None:
    query = "SELECT ['SY', 'RU'] AS countries, 'x' AS name"
    csv_out = newsmon("sql", "--csv", query, cwd=workdir)
    assert csv_out.returncode == 0, csv_out.stderr
    assert csv_out.stdout.splitlines() == ["countries,name", '"[""SY"", ""RU""]",x']
    table = newsmon("sql", query, cwd=workdir)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[2] == '["SY", "RU"]  x'
    assert "['SY'" not in csv_out.stdout + table.stdout


def test_sql_prints_floats_json_and_blobs_as_duckdb_reads_them(workdir: Path) -> None:
    # Before: 0.10000000149011612 (a float32 widened to a double), the JSON
    # column as a quoted string, and the BLOB as bare hex that reads as text.
    query = ("SELECT 0.1::FLOAT AS f, [0.1::REAL] AS fl, {'a': 0.3::FLOAT} AS fs,"
             " '{\"a\": [1, 2.50]}'::JSON AS j, 'null'::JSON AS jn,"
             " ('\\x00' || 'a' || '\\x5C\\xFF')::BLOB AS b")
    result = newsmon("sql", "--json", query, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ('{"f": 0.1, "fl": [0.1], "fs": {"a": 0.3}, "j": {"a": [1, 2.50]},'
                             ' "jn": null, "b": "\\\\x00a\\\\x5C\\\\xFF"}\n')
    result = newsmon("sql", "--csv", query, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "f,fl,fs,j,jn,b", '0.1,[0.1],"{""a"": 0.3}","{""a"": [1, 2.50]}",null,\\x00a\\x5C\\xFF']
    table = newsmon("sql", query, cwd=workdir)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[2].split() == [
        "0.1", "[0.1]", '{"a":', "0.3}", '{"a":', "[1,", "2.50]}", "null", "\\x00a\\x5C\\xFF"]


def test_a_query_too_large_for_duckdb_is_a_sentence(workdir: Path) -> None:
    # It parses; RE2 (inside DuckDB) refuses a pattern of 3,000 prefixes.
    huge = " OR ".join(f"w{i}*" for i in range(3000))
    assert one_line_error(newsmon("search", huge, cwd=workdir)) == (
        "newsmon: query: DuckDB could not run it (Invalid Input Error: pattern too large"
        " - compile failed); try a shorter query")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["search", "syria", "--limit", "99999999999999999999"],
         "newsmon search: argument --limit: must be at most 9223372036854775807"),
        (["run", "--once", "--workers", "100000"],
         "newsmon run: argument --workers: must be at most 256, got 100000"),
    ],
)
def test_option_values_past_their_maximum_are_refused(
    workdir: Path, args: Sequence[str], expected: str
) -> None:
    assert one_line_error(newsmon(*args, cwd=workdir)).startswith(expected)


def test_extract_decodes_a_url_with_the_charset_its_server_declares(workdir: Path) -> None:
    # The page declares no charset; its server says ISO-8859-2 (Polish). The
    # fetch stage decodes so, and `newsmon extract URL` must too: a detector's
    # guess reads the bytes as Latin-1 ("zatwierdzi\u00b3a" for "zatwierdzi\u0142a").
    import http.server
    import threading

    sentence = ("Rada miasta zatwierdzi\u0142a w poniedzia\u0142ek bud\u017cet na przysz\u0142y "
                "rok, a \u015bciana ratusza zostanie odnowiona.")
    body = ("<html><head><title>Bud\u017cet</title></head><body><article><p>"
            + " ".join([sentence] * 8) + "</p></article></body></html>").encode("iso-8859-2")

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=iso-8859-2")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        result = newsmon("extract", f"http://{host}/budget", "--allow-private", host, "--json",
                         cwd=workdir)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    (printed,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert sentence in printed["text"]


def test_backup_copies_what_the_write_ahead_log_holds_into_one_file(workdir: Path) -> None:
    """A stream's loads stay in news.duckdb.wal until it folds them in; a copy
    of news.duckdb alone misses them, and the two files copied one by one
    while a pass loads may not belong together. ``newsmon backup`` copies both
    under DuckDB's shared lock and folds the log into the copy."""
    with store.connect(workdir / "news.duckdb", checkpoint=False) as con:
        con.execute("INSERT INTO meta VALUES ('only in the log', '1')")
    live_log = workdir / "news.duckdb.wal"
    assert live_log.stat().st_size > 0
    done = newsmon("backup", "copy.duckdb", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"backed up {workdir / 'news.duckdb'} to copy.duckdb (")
    assert not (workdir / "copy.duckdb.wal").exists()
    assert [p.name for p in workdir.iterdir() if "partial" in p.name] == []
    with duckdb.connect(str(workdir / "copy.duckdb"), read_only=True) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'only in the log'"
                           ).fetchone() == ("1",)
    assert live_log.stat().st_size > 0  # the live file is left as it was
    assert one_line_error(newsmon("backup", "copy.duckdb", cwd=workdir)) == (
        "newsmon: copy.duckdb exists already; name a new file for the backup")
    assert one_line_error(newsmon("backup", "nowhere/copy.duckdb", cwd=workdir)) == (
        "newsmon: nowhere: no such folder for the backup")


# -- hostile environments: one sentence, nothing lost ------------------------------------------


def test_a_config_reached_through_a_symlink_keeps_its_paths_beside_the_link(
        tmp_path: Path) -> None:
    """Before, relative paths started in the link target's folder: a config
    linked in from a dotfiles checkout put news.duckdb in the checkout, and a
    ConfigMap's (``newsmon.yaml -> ..data/newsmon.yaml``) in a folder replaced
    at each update."""
    checkout = tmp_path / "dotfiles"
    versioned = checkout / "..2026_12_07"
    versioned.mkdir(parents=True)
    (versioned / "newsmon.yaml").write_text(
        "database: news.duckdb\nfeeds:\n  - url: https://example.org/rss\n", encoding="utf-8")
    (checkout / "..data").symlink_to(versioned.name)
    project = tmp_path / "project"
    project.mkdir()
    (project / "newsmon.yaml").symlink_to(checkout / "..data" / "newsmon.yaml")
    added = newsmon("feeds", "add", "https://example.org/b", cwd=project)
    assert added.returncode == 0, added.stderr
    assert (project / "news.duckdb").is_file()
    assert [p.name for p in versioned.iterdir()] == ["newsmon.yaml"]
    # Named through a relative path, from elsewhere: the same database.
    status = newsmon("status", "--config", "project/newsmon.yaml", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"database   {project / 'news.duckdb'} ("), status.stdout


def test_a_config_file_too_large_to_be_one_is_refused_after_4_mib(tmp_path: Path) -> None:
    """Before: ``--config /dev/zero`` read until memory ran out; a 13 MB file
    of feeds took minutes to validate."""
    started = time.monotonic()
    line = one_line_error(newsmon("status", "--config", "/dev/zero", cwd=tmp_path))
    assert line.startswith("newsmon: /dev/zero: larger than 4 MiB, more than a config file"
                           " holds: is it the right file?"), line
    assert time.monotonic() - started < 20
    big = tmp_path / "newsmon.yaml"
    big.write_bytes(b"feeds:\n" + b"".join(b"  - url: https://example.org/%07d\n" % i
                                           for i in range(130_000)))
    assert big.stat().st_size > 4 * 2**20
    line = one_line_error(newsmon("status", cwd=tmp_path))
    assert line.startswith("newsmon: newsmon.yaml: larger than 4 MiB"), line


# The command as a terminal starts it, with Ctrl-C's default action, however
# the tests were started: a shell without job control starts a command put in
# the background (`bash .ci/run &`) with SIGINT ignored, its children inherit
# that, and Python then installs no KeyboardInterrupt handler: a CI run started
# so saw every Ctrl-C of these tests ignored (exit 0, the scan never stopped).
FROM_A_TERMINAL = ["env", "--default-signal=INT", *COMMAND]


def _running_query(workdir: Path) -> subprocess.Popen[str]:
    # About 10 s of DuckDB on 2 cores: a Ctrl-C that lands just as DuckDB
    # starts the statement is only seen when it ends (DuckDB's client).
    return subprocess.Popen([*FROM_A_TERMINAL, "sql", "SELECT count(*) FROM range(3000000000) a,"
                             " range(10) b"], cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _opened(proc: subprocess.Popen[str], file: Path, timeout: float = 30) -> None:
    """Wait until ``proc`` has ``file`` open (the statement runs right after)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(Path(f"/proc/{proc.pid}/fd/{fd}").resolve() == file
                   for fd in os.listdir(f"/proc/{proc.pid}/fd")):
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"{file} never opened")


def test_ctrl_c_in_a_duckdb_statement_or_while_starting_is_interrupted_not_a_traceback(
        workdir: Path) -> None:
    """Before: DuckDB turned Ctrl-C in a statement into RuntimeError('Query
    interrupted'), a traceback and exit 1; in the first second (the imports)
    it was a KeyboardInterrupt traceback."""
    proc = _running_query(workdir)
    _opened(proc, workdir / "news.duckdb")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert (proc.returncode, stderr) == (130, "newsmon: interrupted\n")
    for delay in (0.3, 0.5, 0.7):  # python -m pipeline.cli takes about 1 s to import
        proc = _running_query(workdir)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
        assert (proc.returncode, stderr) == (130, "newsmon: interrupted\n"), delay


def test_a_command_started_with_ctrl_c_ignored_keeps_ignoring_it(workdir: Path) -> None:
    """A command started with SIGINT ignored (nohup, `newsmon sql ... &` in a
    script) was ended, exit 130 and no rows, by a Ctrl-C that reached it while
    it imported or opened the database: the handler that keeps a Ctrl-C for
    after the imports was installed over the ignored one."""
    proc = subprocess.Popen(["env", "--ignore-signal=INT", *COMMAND, "sql", "--csv",
                             "SELECT 42 AS x"], cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.05)  # env has set SIGINT ignored and started python (its imports: ~1 s)
    while proc.poll() is None:  # a Ctrl-C every 20 ms, to the end
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=60)
    assert (proc.returncode, stdout, stderr) == (0, "x\n42\n", "")


def test_ctrl_c_stops_a_long_statement_at_once_wherever_it_lands(workdir: Path) -> None:
    """Before: on the main thread DuckDB's client looks for Ctrl-C only between
    two of its tasks. A statement whose rows are read as they stream (a scan
    that finds its one row at the end) was never interrupted: Ctrl-C was seen
    when the whole statement had ended (16-25 s for this scan of 5 billion
    numbers on a loaded machine, so never for this one), and a Ctrl-C in a
    count was at times seen at its end too, or not at all (rows, exit 0).
    The statement now runs beside a main thread that only waits for it."""
    scan = "SELECT range FROM range(1000000000000) WHERE range = 999999999999"
    for delay in (0.1, 0.6, 1.2):
        proc = subprocess.Popen([*FROM_A_TERMINAL, "sql", "--csv", scan], cwd=workdir,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _opened(proc, workdir / "news.duckdb")
        time.sleep(delay)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError(f"a Ctrl-C {delay} s after the open had not stopped the "
                                 "statement 30 s later") from None
        waited = time.monotonic() - sent
        assert (proc.returncode, stderr) == (130, "newsmon: interrupted\n"), delay
        assert waited < 5, (delay, waited)


def _session_processes(session: int) -> list[tuple[int, str]]:
    """The processes alive in ``session`` (a zombie is dead: only its exit
    status is left, for a parent gone too), with their command lines."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        if int(fields[3]) == session and fields[0] != "Z":
            found.append((int(entry), command.replace(b"\0", b" ").decode(errors="replace")))
    return found


@pytest.mark.parametrize(("stop", "code", "said"), [(signal.SIGINT, 130, "interrupted"),
                                                    (signal.SIGTERM, 143, "terminated")])
def test_a_pass_stopped_while_its_workers_start_ends_at_once_and_leaves_no_process(
        tmp_path: Path, seed_site: Any, stop: signal.Signals, code: int, said: str) -> None:
    """Before: a Ctrl-C while the extraction workers started (each builds its
    tagger, one after the other) waited for all of them: 5.0 s with 2 workers,
    6.0 s with 4 (after 0.4-0.9 s now). SIGTERM ended the process where it
    stood (-15), and its workers, children of the fork server, started on and
    printed a BrokenPipeError traceback each. Nothing was stored either way,
    and the next pass stores the feed's articles."""
    (tmp_path / "newsmon.yaml").write_text(
        f"database: news.duckdb\nfeeds:\n  - url: {seed_site.feed_url}\n"
        f"fetch:\n  allow_private: ['127.0.0.1:{seed_site.port}']\n", encoding="utf-8")
    # A session of its own: every process it starts is found by its session
    # id, the fork server and the workers (its children) too, once it is gone.
    proc = subprocess.Popen([*FROM_A_TERMINAL, "run", "--once", "--quiet", "--workers", "4"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        # The fork server and a first worker forked from it: the workers start.
        deadline = time.monotonic() + 60
        while len([c for _, c in _session_processes(proc.pid)
                   if "multiprocessing.forkserver" in c]) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.01)
        sent = time.monotonic()
        proc.send_signal(stop)
        _, stderr = proc.communicate(timeout=60)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert waited < 3, (waited, stderr)
    assert (proc.returncode, stderr) == (code, f"newsmon: {said}\n")
    left = _session_processes(proc.pid)
    deadline = time.monotonic() + 1  # a killed process is gone within moments
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = _session_processes(proc.pid)
    assert left == []
    with duckdb.connect(str(tmp_path / "news.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM articles").fetchone() == (0,)
    again = newsmon("run", "--once", "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "stored 5 article(s)" in again.stdout, again.stdout


@pytest.mark.parametrize("args", [["alerts", "send"], ["compact"]])
def test_a_command_that_tends_a_database_creates_none_at_a_mistyped_path(
        tmp_path: Path, args: list[str]) -> None:
    """Before: each created the database and its folders and said '0 sent, 0
    failed, 0 pending' or 'checkpointed', exit 0."""
    (tmp_path / "newsmon.yaml").write_text(
        "database: nwes/news.duckdb\nfeeds:\n  - url: https://example.org/rss\n",
        encoding="utf-8")
    line = one_line_error(newsmon(*args, cwd=tmp_path))
    assert line == (f"newsmon: {tmp_path / 'nwes' / 'news.duckdb'}: no database here yet;"
                    " run `newsmon run --once` first")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newsmon.yaml"]


def test_backup_that_cannot_read_a_delivery_journal_is_one_sentence_and_leaves_no_copy(
        workdir: Path) -> None:
    """The journals' outcomes belong in the copy (what a round sent and has not
    marked): one that cannot be read fails the backup, never a copy without it."""
    (workdir / "news.duckdb.deliveries.1-abcdef").mkdir()
    line = one_line_error(newsmon("backup", "copy.duckdb", cwd=workdir))
    assert line == ("newsmon: cannot read the delivery journal "
                    f"{workdir / 'news.duckdb.deliveries.1-abcdef'}: Is a directory")
    assert [p.name for p in workdir.iterdir() if "copy" in p.name] == []


def test_backup_into_a_read_only_folder_is_one_sentence(workdir: Path) -> None:
    """Before: removing the partial copy failed too (EROFS, even for a file
    that is not there) and replaced the sentence with a traceback."""
    with tmpfs(workdir / "ro", "1m") as mount:
        done = subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot make the tmpfs read-only: {done.stderr.strip()}")
        line = one_line_error(newsmon("backup", "ro/copy.duckdb", cwd=workdir))
        assert line == "newsmon: cannot write the backup ro/copy.duckdb: Read-only file system"
        assert list(mount.iterdir()) == []


@pytest.mark.parametrize("command", [("status",), ("sql", "SELECT 1"),
                                     ("feeds", "add", "https://example.org/b")])
def test_a_database_path_that_is_a_loop_of_links_or_a_device_says_what_to_do(
        workdir: Path, command: tuple[str, ...]) -> None:
    """Before: a loop of symbolic links was "no database here yet" to a reader
    and DuckDB's "Too many levels of symbolic links" to a writer; /dev/null
    was a damaged database to move aside, or "Could not fsync file"."""
    (workdir / "loop-a").symlink_to("loop-b")
    (workdir / "loop-b").symlink_to("loop-a")
    (workdir / "loop.yaml").write_text("database: loop-a\n", encoding="utf-8")
    (workdir / "null.yaml").write_text("database: /dev/null\n", encoding="utf-8")
    line = one_line_error(newsmon(*command, "--config", "loop.yaml", cwd=workdir))
    assert line == (f"newsmon: {workdir / 'loop-a'} is a loop of symbolic links, not a database"
                    " file: set `database:` to a file's path (newsmon creates the file)")
    line = one_line_error(newsmon(*command, "--config", "null.yaml", cwd=workdir))
    assert line == ("newsmon: /dev/null is a device, pipe or socket, not a database file: set"
                    " `database:` to a file's path (newsmon creates the file)")


def test_a_database_path_that_is_a_folder_or_on_a_read_only_disk_says_what_to_do(
        workdir: Path) -> None:
    """Before: DuckDB's 'IO Error: Could not read from file ...: Is a directory'
    (``database: ''`` names the config's folder) and '... Cannot open file ...:
    Read-only file system', with nothing said about what to do."""
    (workdir / "folder.yaml").write_text("database: ''\n", encoding="utf-8")
    line = one_line_error(newsmon("status", "--config", "folder.yaml", cwd=workdir))
    assert line == (f"newsmon: {workdir} is a folder, not a database file: set `database:` to"
                    " a file's path (newsmon creates the file)")
    with tmpfs(workdir / "ro", "4m") as mount:
        (mount / "news.duckdb").write_bytes((workdir / "news.duckdb").read_bytes())
        done = subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot make the tmpfs read-only: {done.stderr.strip()}")
        (workdir / "ro.yaml").write_text("database: ro/news.duckdb\n", encoding="utf-8")
        line = one_line_error(newsmon("feeds", "add", "https://example.org/b", "--config",
                                      "ro.yaml", cwd=workdir))
        assert line == (f"newsmon: {mount / 'news.duckdb'}: cannot open the database to write:"
                        " Read-only file system; give newsmon a file and folder it may write"
                        " (or copy it to one and set `database:` to the copy); `status`,"
                        " `stories` and `sql` still read it")
        read = newsmon("status", "--config", "ro.yaml", cwd=workdir)
        assert read.returncode == 0, read.stderr


def test_output_is_utf8_under_a_locale_that_is_not(workdir: Path) -> None:
    """Before, under a Latin-1 locale a Russian title was a UnicodeEncodeError
    traceback (exit 1), and ``feeds export`` wrote Latin-1 bytes under its
    ``encoding="UTF-8"`` declaration."""
    latin1 = {**os.environ, "PYTHONIOENCODING": "latin-1"}

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*COMMAND, *args], cwd=workdir, capture_output=True, env=latin1,
                              timeout=60, check=False)

    for fmt in ("--json", "--csv", None):
        result = run("sql", "SELECT 'Путин · 😀' AS name", *([fmt] if fmt else []))
        assert result.returncode == 0, result.stderr.decode("latin-1")
        assert "Путин · 😀" in result.stdout.decode("utf-8"), fmt
    assert run("feeds", "add", "https://example.org/ru", "--name", "Новости").returncode == 0
    exported = run("feeds", "export")
    assert exported.returncode == 0, exported.stderr.decode("latin-1")
    assert exported.stdout.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert 'text="Новости"' in exported.stdout.decode("utf-8")


def test_a_closed_stdout_drops_the_output_and_never_becomes_the_database(
        workdir: Path) -> None:
    """Before, with stdout closed (``>&-``) the database was the first file
    opened, so descriptor 1, where any write to stdout went; and printing the
    rows was a traceback ('NoneType' object has no attribute 'write')."""
    def closed_stdout(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *COMMAND, *args],
                              cwd=workdir, capture_output=True, text=True, timeout=60,
                              check=False)

    for args in (["sql", "SELECT 1 AS one"], ["search", "syria"], ["feeds", "export"],
                 ["feeds", "add", "https://example.org/b"]):
        result = closed_stdout(*args)
        assert (result.returncode, result.stderr) == (0, ""), args
    holder = subprocess.Popen(["sh", "-c", 'exec "$@" >&-', "sh", *FROM_A_TERMINAL, "sql",
                               "SELECT count(*) FROM range(3000000000) a, range(10) b"],
                              cwd=workdir, stderr=subprocess.PIPE, text=True)
    try:
        _opened(holder, workdir / "news.duckdb")
        assert Path(f"/proc/{holder.pid}/fd/1").resolve() == Path(os.devnull)
    finally:
        holder.send_signal(signal.SIGINT)
        holder.communicate(timeout=120)
    with duckdb.connect(str(workdir / "news.duckdb"), read_only=True) as con:
        assert con.execute("SELECT url FROM feeds").fetchall() == [("https://example.org/b",)]


def test_an_smtp_password_file_that_does_not_read_is_one_sentence(workdir: Path) -> None:
    """Before: a traceback (FileNotFoundError, IsADirectoryError,
    UnicodeDecodeError), and ``/dev/zero`` never ended."""
    (workdir / "newsmon.yaml").write_text(
        "database: news.duckdb\nfeeds:\n  - url: https://example.org/rss\n"
        "smtp:\n  url: smtp://127.0.0.1:9\n", encoding="utf-8")
    (workdir / "latin1.txt").write_bytes(b"caf\xe9\n")
    for given, problem in (
            ("missing.txt", "cannot read the SMTP password: No such file or directory; point it"
                            " at the file that holds the password"),
            (str(workdir), "cannot read the SMTP password: Is a directory; point it at the file"
                           " that holds the password"),
            ("latin1.txt", "the password file is not UTF-8 text (save it as UTF-8)"),
            ("/dev/zero", "larger than 64 KiB, not a file that holds a password")):
        result = subprocess.run(
            [*COMMAND, "alerts", "send"], cwd=workdir, capture_output=True, text=True,
            timeout=60, check=False,
            env={**os.environ, "NEWSMON_SMTP_PASSWORD_FILE": given})
        assert one_line_error(result) == f"newsmon: NEWSMON_SMTP_PASSWORD_FILE={given}: {problem}"


def test_an_smtp_ca_file_that_cannot_be_used_is_one_sentence(workdir: Path) -> None:
    """Before: each round said 'cannot reach SMTP server 127.0.0.1:9: [Errno 2]
    No such file or directory', a temporary failure retried for ever, exit 1."""
    (workdir / "not-a-cert.pem").write_text("hello\n", encoding="utf-8")
    for ca_file, reason in (("missing.pem", "No such file or directory"),
                            ("not-a-cert.pem", "[X509: NO_CERTIFICATE_OR_CRL_FOUND]")):
        (workdir / "newsmon.yaml").write_text(
            "database: news.duckdb\nfeeds:\n  - url: https://example.org/rss\n"
            f"smtp:\n  url: smtps://127.0.0.1:9\n  ca_file: {ca_file}\n", encoding="utf-8")
        line = one_line_error(newsmon("alerts", "send", cwd=workdir))
        assert line.startswith(f"newsmon: smtp.ca_file {workdir / ca_file}: cannot use it:"
                               f" {reason}"), line
        assert line.endswith("; point it at the PEM certificate of the server's CA"), line


def test_the_browse_commands_refuse_a_lake_instead_of_reading_a_file_beside_it(
        workdir: Path) -> None:
    """They read the DuckDB file only (README, lake mode). Before, in lake mode
    they showed news.duckdb, a file left from before the switch, as if it were
    the lake (or, without one, said to run `newsmon run --once`, which loads
    the lake)."""
    (workdir / "newsmon.yaml").write_text(
        "store:\n  mode: lake\n  catalog: 'dbname=newsmon_lake host=127.0.0.1 port=9'\n"
        "  data_path: lake/\n  staging_url: staging/\n"
        "feeds:\n  - url: https://example.org/rss\n", encoding="utf-8")
    for args in (["status"], ["stories"], ["story", "s-1"], ["serve", "--port", "8765"]):
        assert one_line_error(newsmon(*args, cwd=workdir)) == (
            f"newsmon: newsmon {args[0]} reads a DuckDB file, not a lake (not built yet): in"
            ' lake mode use `newsmon sql` (README, "Scaling out: lake mode")')



def _peak_mib(*args: str, cwd: Path) -> int:
    """The peak resident memory (MiB) of ``newsmon args`` with stdout thrown away."""
    with open(os.devnull, "w") as sink, (cwd / "stderr.txt").open("w+") as errors:
        child = subprocess.Popen([*COMMAND, *args], cwd=cwd, stdout=sink, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        assert child.returncode == 0, errors.read()
    return usage.ru_maxrss // 1024


def test_sql_exports_a_large_result_as_it_reads_it(workdir: Path) -> None:
    """An export of a whole large archive (`sql ... --csv > dump.csv`) read
    every row into Python first: 600,000 rows of 100 characters took ~160
    MiB more than a single row (~10 MiB now). CSV and JSON lines are written
    as DuckDB streams the result, a chunk at a time."""
    big = "SELECT range AS n, repeat('x', 100) AS pad FROM range(600000)"
    small = "SELECT range AS n, repeat('x', 100) AS pad FROM range(1)"
    for fmt in ("--csv", "--json"):
        grown = _peak_mib("sql", fmt, big, cwd=workdir) - _peak_mib("sql", fmt, small,
                                                                     cwd=workdir)
        assert grown < 60, (fmt, grown)
    csv_text = newsmon("sql", "--csv", "SELECT range AS n FROM range(5000)", cwd=workdir).stdout
    assert csv_text.splitlines() == ["n", *map(str, range(5000))]


def test_a_table_shows_its_first_10000_rows_and_says_there_are_more(workdir: Path) -> None:
    table = newsmon("sql", "SELECT range AS n FROM range(10001)", cwd=workdir).stdout
    lines = table.splitlines()
    assert lines[2:4] == ["0", "1"] and lines[-2] == "9999"
    assert lines[-1] == ("(the first 10,000 rows; there are more: use --csv or --json for all of"
                         " them, or LIMIT)")
    exact = newsmon("sql", "SELECT range AS n FROM range(10000)", cwd=workdir).stdout
    assert exact.splitlines()[-2:] == ["9999", "(10000 rows)"]


def test_sql_runs_statements_before_its_one_query(workdir: Path) -> None:
    result = newsmon("sql", "--csv", "CREATE TEMP TABLE t AS SELECT 42 AS x; SELECT x FROM t",
                     cwd=workdir)
    assert (result.returncode, result.stdout.split()) == (0, ["x", "42"]), result.stderr


def test_a_feed_or_page_on_a_private_address_says_which_allow_list_entry_lets_it(
        tmp_path: Path, seed_site: Any) -> None:
    """A new user's first feed served from 127.0.0.1: `feeds add` said what to
    do (`... unless fetch.allow_private lists '127.0.0.1:PORT'`), but the same
    feed in the config file failed at the poll with `refused: 127.0.0.1 is a
    loopback address` only, in the warning and the feed's last_error; and
    `extract URL` likewise, never naming --allow-private."""
    entry = f"127.0.0.1:{seed_site.port}"
    (tmp_path / "newsmon.yaml").write_text(
        f"database: news.duckdb\nfeeds:\n  - url: {seed_site.feed_url}\n", encoding="utf-8")
    result = newsmon("run", "--once", "--quiet", cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    advice = ("refused: 127.0.0.1 is a loopback address; newsmon does not fetch private,"
              f" loopback or link-local addresses unless fetch.allow_private lists '{entry}'")
    assert advice in result.stderr, result.stderr
    (feed,) = [json.loads(line)
               for line in newsmon("feeds", "--json", cwd=tmp_path).stdout.splitlines()]
    assert feed["last_error"] == advice, feed

    page = f"http://{entry}/no-such-page.html"
    result = newsmon("extract", page, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr == (f"newsmon: {page}: refused: 127.0.0.1 is a loopback address;"
                             " newsmon does not fetch private, loopback or link-local addresses"
                             f" unless --allow-private lists '{entry}'\n")


def test_the_feeds_table_shows_a_last_error_whole_under_its_feed(
        tmp_path: Path, seed_site: Any) -> None:
    """Before: the table cut `last_error` at 80 characters, and the advice at
    the end of the sentence (`... unless fetch.allow_private lists
    '127.0.0.1:PORT'`) was the part cut: `... private, loopback or link-lo…`.
    It is now on lines of its own under the feed's row, wrapped to the
    terminal; --json and --csv keep it a column, whole."""
    entry = f"127.0.0.1:{seed_site.port}"
    (tmp_path / "newsmon.yaml").write_text(
        f"database: news.duckdb\nfeeds:\n  - url: {seed_site.feed_url}\n    name: Seed\n",
        encoding="utf-8")
    assert newsmon("run", "--once", "--quiet", cwd=tmp_path).returncode == 0
    assert newsmon("feeds", "add", "https://example.org/rss", "--name", "Quiet",
                   cwd=tmp_path).returncode == 0  # not polled yet: no error
    advice = ("refused: 127.0.0.1 is a loopback address; newsmon does not fetch private,"
              f" loopback or link-local addresses unless fetch.allow_private lists '{entry}'")
    table = subprocess.run([*COMMAND, "feeds"], cwd=tmp_path, capture_output=True, text=True,
                           env={**os.environ, "COLUMNS": "72"}, timeout=60, check=True).stdout
    lines = table.splitlines()
    assert lines[0].split() == ["name", "url", "fetch_url", "origin", "status", "last_success",
                                "errors", "next_poll", "entries"]
    seed = next(n for n, line in enumerate(lines) if line.startswith("Seed "))
    note = list(itertools.takewhile(lambda line: line.startswith("  "), lines[seed + 1:]))
    assert note[0].startswith("  last_error: refused: "), table
    assert " ".join(line.strip() for line in note) == f"last_error: {advice}"
    assert len(note) > 1 and all(len(line) <= 71 for line in note), note
    assert lines[seed + 1 + len(note)].startswith("Quiet "), table  # no error, no line
    assert "…" not in table
    assert lines[-1] == "(2 rows)"
    csv_rows = newsmon("feeds", "--csv", cwd=tmp_path).stdout.splitlines()
    assert csv_rows[0].split(",")[6] == "last_error" and advice in csv_rows[1]


def test_a_pass_that_polled_no_feed_says_none_was_due_and_how_to_poll_now(
        tmp_path: Path, seed_site: Any) -> None:
    """The feed failed (not allow-listed yet) and waits out its backoff; the
    fixed config's next `run --once` polled nothing and said only `polled 0
    feed(s)`, exit 0, as if the fix had not worked."""
    config = tmp_path / "newsmon.yaml"
    config.write_text(f"database: news.duckdb\nfeeds:\n  - url: {seed_site.feed_url}\n",
                      encoding="utf-8")
    assert "polled 1 feed(s) (1 failed)" in newsmon("run", "--once", "--quiet",
                                                    cwd=tmp_path).stdout
    with config.open("a", encoding="utf-8") as handle:
        handle.write(f"fetch:\n  allow_private: ['127.0.0.1:{seed_site.port}']\n")
    result = newsmon("run", "--once", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "polled 0 feed(s) (0 failed): 0 new entries"
    assert lines[-1] == ("no feed was due: each is polled when its schedule says (`newsmon"
                         " feeds` shows the next poll); `newsmon run --once --all` polls every"
                         " feed now")
    result = newsmon("run", "--once", "--all", "--quiet", cwd=tmp_path)
    assert "stored 5 article(s)" in result.stdout, (result.stdout, result.stderr)
    assert "no feed was due" not in result.stdout
