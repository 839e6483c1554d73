"""``newsmon stories``, ``story``, ``status``, ``init`` and ``serve`` (its refusals),
over the database of a real ``newsmon demo`` and one built by the real load."""

from __future__ import annotations

import csv
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from support import browse_db
from support.demo_run import DemoRun
from support.smtp import free_port
from support.webserver import ipv6_loopback, serve_process

from pipeline import store
from pipeline.cli import main
from pipeline.config import load_settings
from pipeline.starter import STARTER_CONFIG

SEED_OUTLETS = {"AMN Al-Masdar News", "Frontline Digest", "Levant Ledger", "SouthFront",
                "Sputnik International"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """The config of a database of three stories (see support.browse_db)."""
    settings = browse_db.build(tmp_path)
    config = tmp_path / "newsmon.yaml"
    config.write_text(yaml.safe_dump({"database": str(settings.database)}), encoding="utf-8")
    return config


def test_demo_ends_with_the_serve_command(demo_run: DemoRun) -> None:
    last = demo_run.stdout.strip().splitlines()[-4:]
    assert any(f"serve --config {demo_run.config}" in line for line in last), last
    assert any("http://127.0.0.1:8000/" in line for line in last)


def test_stories_shows_the_seed_story_with_its_five_outlets(
        demo_run: DemoRun, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "stories", "--config", str(demo_run.config), "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 1
    story = rows[0]
    assert story["n_sources"] == 5 and set(story["sources"]) == SEED_OUTLETS
    assert {"syria", "foreign-forces"} <= set(story["topics"])
    assert "Vladimir Putin" in story["people"] and "SY" in story["countries"]
    code, out, _ = run(capsys, "stories", "--config", str(demo_run.config))
    assert code == 0 and "Working Group" in out and story["id"] in out and "(1 row)" in out


def test_stories_filters_and_formats(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def ids(*argv: str) -> list[str]:
        code, out, err = run(capsys, "stories", "--config", str(small), "--csv", *argv)
        assert code == 0, err
        return [r["title"] for r in csv.DictReader(io.StringIO(out))]

    assert len(ids()) == 3
    assert ids("--topic", "syria") == [browse_db.SYRIA_TITLE]
    assert ids("--since", "2019-02-28") == ["Earthquake shakes northern Japan"]
    assert ids("--until", "2019-02-27", "--language", "es") == [
        "Thousands flee floods in southern Spain"]
    assert ids("--query", '"working group"', "--person", "Vladimir Putin") == [
        browse_db.SYRIA_TITLE]
    assert ids("--sort", "latest", "--limit", "1") == ["Earthquake shakes northern Japan"]
    code, out, _ = run(capsys, "stories", "--config", str(small), "--limit", "1")
    assert code == 0 and "(the first 1 of 3 stories; --limit N for more)" in out


def test_stories_refuses_bad_input_in_one_line(small: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "stories", "--config", str(small), "--since", "yesterday")
    assert code == 2 and out == "" and err.count("\n") == 1 and "--since 'yesterday'" in err
    code, _, err = run(capsys, "stories", "--config", str(small), "--query", "putin AND")
    assert code == 2 and err.startswith("newsmon: query: ")


def test_a_period_that_ends_before_it_starts_is_refused(
        small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Zero stories without a word read as "nothing happened"."""
    code, out, err = run(capsys, "stories", "--config", str(small), "--since", "2019-03-01",
                         "--until", "2019-02-27")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err == ("newsmon: --until: ends the period before it starts (2019-03-01 00:00 UTC):"
                   " no report can be in between\n")


def test_a_tag_no_report_has_says_so_beside_the_empty_result(
        small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--country zzz` (not a code) found nothing without a word; a value some
    report has, with nothing else matching, stays silent."""
    code, out, err = run(capsys, "stories", "--config", str(small), "--csv", "--country", "zzz",
                         "--topic", "syria", "--language", "xx")
    assert code == 0 and out.splitlines()[1:] == []
    assert err.splitlines() == [
        "newsmon: no report is tagged country 'zzz'; countries are two-letter ISO codes (SY, RU,"
        ' US): `newsmon sql "SELECT unnest(countries) c, count(*) FROM articles GROUP BY c"`'
        " lists them",
        "newsmon: no report is tagged language 'xx'; languages are two-letter ISO 639-1 codes"
        " (en, fr, ru)"]
    code, out, err = run(capsys, "stories", "--config", str(small), "--topic", "syria",
                         "--language", "es")
    assert code == 0 and "(0 rows)" in out and err == ""


def test_search_says_when_a_tag_it_names_is_on_no_article(
        small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`newsmon search 'topic:energy'` (the topic is energy-prices) or
    'country:uk' (GB) printed `(0 rows)` and nothing else, where `stories
    --topic energy` said no report is tagged so and what the values look like."""
    code, out, err = run(capsys, "search", "--config", str(small),
                         "Syria AND (topic:energy OR country:uk) AND NOT lang:english")
    assert code == 0 and out.splitlines()[-1] == "(0 rows)"
    assert err.splitlines() == [
        "newsmon: no article is tagged topic:energy; topics are the config's topic names:"
        ' `newsmon sql "SELECT unnest(topics) t, count(*) FROM articles GROUP BY t"` lists them',
        "newsmon: no article is tagged country:uk; countries are two-letter ISO codes (SY, RU,"
        ' US): `newsmon sql "SELECT unnest(countries) c, count(*) FROM articles GROUP BY c"`'
        " lists them",
        "newsmon: no article is tagged lang:english; languages are two-letter ISO 639-1 codes"
        " (en, fr, ru)"]
    # Tags some article has, with nothing matching them all, or a prefix: silent.
    code, out, err = run(capsys, "search", "--config", str(small), "topic:syria AND lang:es")
    assert code == 0 and "(0 rows)" in out and err == ""
    code, out, err = run(capsys, "search", "--config", str(small), "topic:energ*")
    assert code == 0 and "(0 rows)" in out and err == ""
    code, out, err = run(capsys, "search", "--config", str(small), "topic:syria", "--json")
    assert code == 0 and len(out.splitlines()) == 2 and err == ""


@pytest.mark.parametrize(("value", "message"), [
    ("-3", "must be at least 1, got -3"),
    ("0", "must be at least 1, got 0"),
    ("99999999999999999999", "must be at most 9223372036854775807"),
])
def test_stories_refuses_a_limit_out_of_range(small: Path, capsys: pytest.CaptureFixture[str],
                                              value: str, message: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["stories", "--config", str(small), "--limit", value])
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and out == ""
    assert f"newsmon stories: argument --limit: {message}" in err and "Traceback" not in err


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--since", "999999999d", "--since '999999999d': too far back (before the year 1)"),
    ("--since", "100000000000000h", "--since '100000000000000h': too far back"),
    ("--until", "9999-12-31", "--until '9999-12-31': too far ahead"),
])
def test_stories_refuses_a_moment_past_the_calendar(
        small: Path, capsys: pytest.CaptureFixture[str], option: str, value: str,
        message: str) -> None:
    code, out, err = run(capsys, "stories", "--config", str(small), option, value)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"newsmon: {message}")


def test_story_shows_every_report_and_the_removed_lines(
        demo_run: DemoRun, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "stories", "--config", str(demo_run.config), "--json")
    story_id = json.loads(out)["id"]
    code, text, _ = run(capsys, "story", story_id[:10], "--config", str(demo_run.config))
    assert code == 0
    out = text
    for outlet in SEED_OUTLETS:
        assert outlet in out
    assert [f"== {i}/5" in out for i in range(1, 6)] == [True] * 5
    assert out.count("removed by the cleaner:") == 5
    code, out, _ = run(capsys, "story", story_id, "--config", str(demo_run.config), "--json")
    detail = json.loads(out)
    assert code == 0 and len(detail["reports"]) == 5
    assert {r["source"] for r in detail["reports"]} == SEED_OUTLETS
    removed = [x for r in detail["reports"] for x in r["removed"]]
    assert removed and all(x["line"] and x["rule"] for x in removed)
    for x in removed:  # the terminal shows them too
        assert f"[{x['rule']}] {x['line']}" in text


def test_an_unknown_story_is_a_user_error(demo_run: DemoRun,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "story", "s-nothing", "--config", str(demo_run.config))
    assert code == 2 and out == "" and "no story 's-nothing'" in err


def test_status_on_one_screen(demo_run: DemoRun, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "status", "--config", str(demo_run.config))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) <= 24
    assert lines[0].startswith(f"database   {demo_run.database} (")
    assert "5 articles, 1 story;" in out  # "1 story", not "1 stories"
    assert "5 articles stored" in out and "1 feed polled," in out and "1 new story," in out
    assert "rejected   0 pages not stored" in out
    assert "feeds      1: 1 active" in out
    assert "alerts     0 pending, 0 sending, 1 sent, 0 failed" in out


def test_status_names_failing_feeds_and_failed_alerts(
        small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = load_settings(small).database
    with store.connect(database) as con:
        con.execute("INSERT INTO feeds (url, name, origin, status, error_count, last_error)"
                    " VALUES ('https://down.example/rss', 'Down', 'added', 'failing', 4,"
                    " 'HTTP 503 from the server')")
        con.execute("UPDATE alerts SET status = 'failed', error = '550 mailbox unavailable'")
    code, out, _ = run(capsys, "status", "--config", str(small))
    assert code == 0
    assert "feeds      1: 1 failing" in out
    assert "failing: Down (4 error points; last success -): HTTP 503 from the server" in out
    assert "0 pending, 0 sending, 0 sent, 1 failed" in out
    assert "failed: syria -> analyst@example.org: 550 mailbox unavailable" in out


def test_init_writes_a_valid_starter_and_never_overwrites(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "init")
    config = tmp_path / "newsmon.yaml"
    assert code == 0 and config.read_text(encoding="utf-8") == STARTER_CONFIG
    assert "newsmon run --once" in out and "newsmon serve" in out
    settings = load_settings(config)
    assert len(settings.feeds) >= 1 and len(settings.topics) == 1
    assert len(settings.alerts) == 1 and settings.smtp is None
    assert settings.alerts[0].query.startswith("topic:") and "# " in STARTER_CONFIG

    config.write_text("database: mine.duckdb\n", encoding="utf-8")
    code, out, err = run(capsys, "init")
    assert code == 2 and out == "" and "exists already" in err and err.count("\n") == 1
    assert config.read_text(encoding="utf-8") == "database: mine.duckdb\n"

    other = tmp_path / "sub" / "other.yaml"
    code, out, _ = run(capsys, "init", "--config", str(other))
    assert code == 0 and other.is_file() and f"--config {other}" in out


def test_serve_refuses_a_missing_database(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "newsmon.yaml"
    config.write_text("database: none.duckdb\n", encoding="utf-8")
    code, _, err = run(capsys, "serve", "--config", str(config))
    assert code == 2 and "none.duckdb: no database here yet" in err


@pytest.mark.parametrize(("port", "message"), [
    ("99999", "must be at most 65535, got 99999"), ("-1", "must be at least 1, got -1"),
    # 0 would listen on a port chosen by the system, while it says it serves at ":0/".
    ("0", "must be at least 1, got 0")])
def test_serve_refuses_a_port_out_of_range(small: Path, capsys: pytest.CaptureFixture[str],
                                           port: str, message: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--config", str(small), "--port", port])
    _, err = capsys.readouterr()
    assert exit_.value.code == 2 and f"newsmon serve: argument --port: {message}" in err


def serve_until_it_exits(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline.cli serve`` as its own process on a free port (run as a
    module, like support.webserver's server); a server that started listening would
    never exit by itself, and the timeout fails the test."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "serve", "--config", str(config),
         "--port", str(free_port()), *argv],
        capture_output=True, text=True, timeout=60, check=False)


def test_serve_refuses_a_snapshot_dir_it_cannot_use(small: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("", encoding="utf-8")
    unusable = [(a_file, "not a folder"), (a_file / "sub", "not a folder")]
    if Path("/proc/self").is_dir():  # Linux: no folder can be made in /proc
        unusable.append((Path("/proc/newsmon-snapshots"),
                         "cannot keep the database copies there: No such file or directory"))
    for folder, message in unusable:
        done = serve_until_it_exits(small, "--snapshot-dir", str(folder))
        assert done.returncode == 2, done.stderr
        assert done.stderr == f"newsmon: --snapshot-dir {folder}: {message}\n"


def test_serve_refuses_a_damaged_database_before_listening(tmp_path: Path) -> None:
    damaged = tmp_path / "news.duckdb"
    damaged.write_bytes(random.Random(7).randbytes(64 * 1024))
    config = tmp_path / "newsmon.yaml"
    config.write_text(f"database: {damaged}\n", encoding="utf-8")
    done = serve_until_it_exits(config)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "serving" not in done.stderr
    assert done.stderr.startswith(f"newsmon: {damaged} is damaged (")
    assert "move it aside and restore a backup" in done.stderr


def test_serve_made_its_snapshot_dir_and_said_so(small: Path, tmp_path: Path) -> None:
    folder = tmp_path / "new" / "snapshots"
    with serve_process(small, "--snapshot-dir", str(folder)) as base:
        assert httpx.get(base + "/", timeout=10).status_code == 200
        assert [p.name.startswith("newsmon-serve-") for p in folder.iterdir()] == [True]


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine cannot listen on ::1")
def test_serve_listens_and_answers_on_ipv6_loopback(small: Path) -> None:
    # Before: "cannot listen on ::1:PORT" (the port was probed with an IPv4
    # socket), and past that every request got 400 (the Host header's check).
    with serve_process(small, host="::1") as base:
        assert base.startswith("http://[::1]:")
        page = httpx.get(base + "/", timeout=10)
        assert page.status_code == 200 and browse_db.SYRIA_TITLE in page.text


def test_the_serve_hint_names_the_program_as_it_was_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.demo import serve_hint

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "")
    config = Path("newsmon-demo/newsmon.yaml")
    below = serve_hint(config, str(tmp_path / ".venv" / "bin" / "newsmon"))
    assert "  .venv/bin/newsmon serve --config newsmon-demo/newsmon.yaml\n" in below
    elsewhere = serve_hint(config, "/opt/newsmon/bin/newsmon")
    assert "  /opt/newsmon/bin/newsmon serve --config" in elsewhere
    assert "  newsmon serve --config" in serve_hint(config, "newsmon")
    assert "http://127.0.0.1:8000/" in below
