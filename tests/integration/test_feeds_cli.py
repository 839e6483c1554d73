"""newsmon feeds remove / pause / resume / rename, and feeds add's checks, through
main() against a real feed server on 127.0.0.1 and a real DuckDB file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from support.feedserver import FeedServer, Reply, rss

from pipeline.cli import main


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        s.route("/cfg.xml", Reply(body=rss([], title="Config Wire").encode()))
        s.route("/added.xml", Reply(body=rss([], title="Added Wire").encode()))
        yield s


@pytest.fixture
def cfg(tmp_path: Path, server: FeedServer) -> list[str]:
    config = tmp_path / "newsmon.yaml"
    config.write_text(json.dumps({
        "database": "news.duckdb", "feeds": [{"url": server.url("/cfg.xml")}],
        "fetch": {"allow_private": [server.host_port]}, "process": {"workers": 1},
    }), encoding="utf-8")
    return ["--config", str(config)]


def listed(capsys: pytest.CaptureFixture[str], cfg: list[str]) -> dict[str, dict[str, object]]:
    capsys.readouterr()
    assert main(["feeds", "--json", *cfg]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return {str(r["url"]).rsplit("/", 1)[1]: r for r in rows}


def run_once(cfg: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["run", "--once", "--all", "--quiet", *cfg]) == 0
    return capsys.readouterr().out


def error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


def test_paused_feeds_are_not_polled_until_resumed(
    server: FeedServer, cfg: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    added, configured = server.url("/added.xml"), server.url("/cfg.xml")
    assert main(["feeds", "add", added, *cfg]) == 0
    # A config feed can be paused too, even before its first poll: it is db state.
    assert main(["feeds", "pause", added, *cfg]) == 0
    assert main(["feeds", "pause", configured, *cfg]) == 0
    assert "paused " + added in capsys.readouterr().out
    feeds = listed(capsys, cfg)
    assert (feeds["added.xml"]["status"], feeds["cfg.xml"]["status"]) == ("paused", "paused")

    assert "polled 0 feed(s)" in run_once(cfg, capsys)  # --all: paused still means paused
    assert (server.hits["/added.xml"], server.hits["/cfg.xml"]) == (0, 0)

    assert main(["feeds", "resume", configured, *cfg]) == 0
    assert "polled 1 feed(s) (0 failed)" in run_once(cfg, capsys)
    assert (server.hits["/added.xml"], server.hits["/cfg.xml"]) == (0, 1)
    assert main(["feeds", "resume", added, *cfg]) == 0
    assert "polled 2 feed(s) (0 failed)" in run_once(cfg, capsys)
    assert (server.hits["/added.xml"], server.hits["/cfg.xml"]) == (1, 2)
    feeds = listed(capsys, cfg)
    assert (feeds["added.xml"]["status"], feeds["cfg.xml"]["status"]) == ("active", "active")


def test_a_feed_written_another_way_is_paused_resumed_and_renamed_as_itself(
    server: FeedServer, cfg: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: matched by the exact URL, so the config feed written with another
    # host case and a fragment was "not a feed here" (or, once added that way,
    # pausing it paused a row nothing polls).
    configured, added = server.url("/cfg.xml"), server.url("/added.xml")
    other = configured.replace("127.0.0.1", "127.0.0.1".upper()).replace("http://", "HTTP://")
    other += "#top"
    assert main(["feeds", "pause", other, *cfg]) == 0
    assert listed(capsys, cfg)["cfg.xml"]["status"] == "paused"
    assert "polled 0 feed(s)" in run_once(cfg, capsys)
    assert server.hits["/cfg.xml"] == 0
    assert main(["feeds", "resume", other, *cfg]) == 0
    assert "polled 1 feed(s) (0 failed)" in run_once(cfg, capsys)

    assert main(["feeds", "add", added, *cfg]) == 0
    assert main(["feeds", "rename", added + "#x", "My Wire", *cfg]) == 0
    assert listed(capsys, cfg)["added.xml"]["name"] == "My Wire"
    with duckdb.connect(str(Path(cfg[1]).parent / "news.duckdb"), read_only=True) as con:
        urls = sorted(u for (u,) in con.execute("SELECT url FROM feeds").fetchall())
    assert urls == sorted([configured, added])  # no row for the other spellings


def test_pause_and_resume_say_when_there_is_nothing_to_do(
    server: FeedServer, cfg: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    added = server.url("/added.xml")
    assert main(["feeds", "add", added, *cfg]) == 0
    assert error(capsys, ["feeds", "resume", added, *cfg]) == f"newsmon: {added} is not paused"
    assert main(["feeds", "pause", added, *cfg]) == 0
    assert error(capsys, ["feeds", "pause", added, *cfg]).startswith(
        f"newsmon: {added} is already paused (since ")
    unknown = server.url("/nope.xml")
    assert error(capsys, ["feeds", "pause", unknown, *cfg]) == (
        f"newsmon: {unknown} is not a feed here (`newsmon feeds` lists them, by url)")


def test_rename_and_remove_an_added_feed(
    server: FeedServer, cfg: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    added = server.url("/added.xml")
    assert main(["feeds", "add", added, *cfg]) == 0
    run_once(cfg, capsys)
    assert listed(capsys, cfg)["added.xml"]["name"] == "Added Wire"  # the feed's own title
    assert main(["feeds", "rename", added, "My Wire", *cfg]) == 0
    run_once(cfg, capsys)  # a later poll keeps the chosen name
    assert listed(capsys, cfg)["added.xml"]["name"] == "My Wire"

    assert main(["feeds", "remove", added, *cfg]) == 0
    assert sorted(listed(capsys, cfg)) == ["cfg.xml"]
    hits = server.hits["/added.xml"]
    run_once(cfg, capsys)
    assert server.hits["/added.xml"] == hits
    with duckdb.connect(str(tmp_path / "news.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM feeds WHERE url = ?", [added]).fetchone() == (0,)
    # Gone means gone: adding it again is a fresh start, not an error.
    assert main(["feeds", "add", added, *cfg]) == 0


def test_an_empty_name_is_refused_when_adding_as_when_renaming(
    server: FeedServer, cfg: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--name ""` was taken as no name (the feed's own title) without a word."""
    added = server.url("/added.xml")
    assert error(capsys, ["feeds", "add", added, "--name", "  ", *cfg]) == (
        "newsmon: the name is empty: give one, or leave --name out for the feed's own title")
    assert sorted(listed(capsys, cfg)) == ["cfg.xml"]


def test_config_feeds_are_renamed_and_removed_in_the_config_file(
    server: FeedServer, cfg: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    configured, config = server.url("/cfg.xml"), cfg[1]
    assert error(capsys, ["feeds", "remove", configured, *cfg]) == (
        f"newsmon: {configured} is in the config file {config}: delete its entry under feeds:"
        " there; newsmon never rewrites that file")
    assert error(capsys, ["feeds", "rename", configured, "X", *cfg]) == (
        f"newsmon: {configured} is in the config file {config}: change its name: there;"
        " newsmon never rewrites that file")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://exa mple.org/rss", "the host 'exa mple.org' contains ' '"),
        ("https://example.org:99999/rss", "port out of range 0-65535"),
        ("ftp://example.org/rss", "must be an http:// or https:// URL"),
        ("http://127.0.0.1:8/rss", "127.0.0.1 is a loopback address; newsmon does not fetch"
         " private, loopback or link-local addresses unless fetch.allow_private lists"
         " '127.0.0.1:8'"),
        ("http://[::1]/rss", "::1 is a loopback address; newsmon does not fetch private,"
         " loopback or link-local addresses unless fetch.allow_private lists '[::1]:80'"),
        ("http://localhost/rss", "localhost is a loopback name (RFC 6761)"),
        ("https://10.0.0.7/rss", "10.0.0.7 is a private address"),
    ],
)
def test_feeds_add_refuses_what_could_never_be_polled(
    cfg: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, reason: str
) -> None:
    said = error(capsys, ["feeds", "add", url, *cfg])
    assert reason in said and said.count(url) == 1, said  # the URL once, not twice
    with duckdb.connect(str(tmp_path / "news.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM feeds").fetchone() == (0,)


def test_feeds_add_lets_an_allow_listed_private_address_through(
    server: FeedServer, cfg: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["feeds", "add", server.url("/added.xml"), *cfg]) == 0  # allow_private lists it
    assert "added.xml" in listed(capsys, cfg)


def test_a_rename_during_a_pass_survives_that_pass_load(
    server: FeedServer, cfg: list[str], tmp_path: Path
) -> None:
    from pipeline.config import load_settings
    from pipeline.run import load_stage, new_run_id, poll_stage

    added = server.url("/added.xml")
    assert main(["feeds", "add", added, *cfg]) == 0
    settings = load_settings(cfg[1])
    run_id = new_run_id()
    poll_stage(settings, run_id, force=True)  # staged with the feed's own title
    assert main(["feeds", "rename", added, "Mine", *cfg]) == 0
    load_stage(settings, run_id)
    with duckdb.connect(str(tmp_path / "news.duckdb"), read_only=True) as con:
        assert con.execute("SELECT name FROM feeds WHERE url = ?", [added]).fetchone() == (
            "Mine",)


# A feed title that clears the screen, turns the text red and rings the bell.
EVIL = "\x1b[2J\x1b[31mEvil\x07"


def test_feed_text_reaches_the_terminal_without_its_control_characters(
    server: FeedServer, cfg: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = server.url("/evil.xml")
    server.route("/evil.xml", Reply(body=rss(
        [{"title": EVIL + " entry", "link": server.url("/gone.html"), "guid": "e1"}],
        title=EVIL).encode()))
    assert main(["feeds", "add", evil, *cfg]) == 0
    run_once(cfg, capsys)
    with duckdb.connect(str(tmp_path / "news.duckdb"), read_only=True) as con:
        assert con.execute("SELECT name FROM feeds WHERE url = ?", [evil]).fetchone() == (EVIL,)

    assert main(["feeds", *cfg]) == 0
    out = capsys.readouterr().out
    assert "\ufffd[2J\ufffd[31mEvil\ufffd" in out
    assert "\x1b" not in out and "\x07" not in out
    assert main(["sql", "SELECT title FROM entries", *cfg]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2] == "\ufffd[2J\ufffd[31mEvil\ufffd entry"
    # JSON escapes them and reads back as stored; CSV is for programs, as stored.
    assert main(["sql", "SELECT title FROM entries", "--json", *cfg]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and json.loads(out) == {"title": EVIL + " entry"}
    assert main(["sql", "SELECT title FROM entries", "--csv", *cfg]) == 0
    assert capsys.readouterr().out.splitlines()[1] == EVIL + " entry"


def test_export_then_import_round_trips_a_name_xml_cannot_hold(
    server: FeedServer, cfg: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = server.url("/evil.xml")
    server.route("/evil.xml", Reply(body=rss([], title=EVIL).encode()))
    assert main(["feeds", "add", evil, *cfg]) == 0
    run_once(cfg, capsys)
    capsys.readouterr()
    assert main(["feeds", "export", *cfg]) == 0
    opml = tmp_path / "feeds.opml"
    opml.write_text(capsys.readouterr().out, encoding="utf-8")

    config = tmp_path / "other.yaml"
    config.write_text(json.dumps({
        "database": "other.duckdb", "fetch": {"allow_private": [server.host_port]},
    }), encoding="utf-8")
    assert main(["feeds", "import", str(opml), "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == "added 2 feed(s), skipped 0"
    with duckdb.connect(str(tmp_path / "other.duckdb"), read_only=True) as con:
        assert con.execute("SELECT name FROM feeds WHERE url = ?", [evil]).fetchone() == (
            "\ufffd[2J\ufffd[31mEvil\ufffd",)


def test_import_prints_a_skipped_address_without_control_characters(
    cfg: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # U+009B is a one-character CSI to a terminal, and XML 1.0 allows it.
    opml = tmp_path / "feeds.opml"
    opml.write_text('<?xml version="1.0" encoding="UTF-8"?><opml version="2.0"><head/><body>'
                    '<outline text="x" xmlUrl="ftp://exa\u009b31mple.org/rss"/></body></opml>',
                    encoding="utf-8")
    capsys.readouterr()
    assert main(["feeds", "import", str(opml), *cfg]) == 0
    err = capsys.readouterr().err
    assert err.startswith("skipped ftp://exa\ufffd31mple.org/rss: "), err
    assert not any((ord(c) < 32 and c != "\n") or 127 <= ord(c) < 160 for c in err), err


def test_a_feed_added_then_put_in_the_config_written_another_way_is_polled_once(
    server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: the config's URL and the added row's were both polled, each pass.
    config = tmp_path / "wire.yaml"
    settings: dict[str, object] = {
        "database": "wire.duckdb", "fetch": {"allow_private": [server.host_port]},
        "process": {"workers": 1}}
    config.write_text(json.dumps(settings), encoding="utf-8")
    cfg = ["--config", str(config)]
    assert main(["feeds", "add", server.url("/./cfg.xml") + "#latest", *cfg]) == 0
    config.write_text(json.dumps({**settings, "feeds": [{"url": server.url("/cfg.xml")}]}),
                      encoding="utf-8")
    assert "polled 1 feed(s) (0 failed)" in run_once(cfg, capsys)
    assert server.hits["/cfg.xml"] == 1
    capsys.readouterr()
    assert main(["feeds", "--json", *cfg]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["url"], r["origin"]) for r in rows] == [(server.url("/cfg.xml"), "config")]


def test_import_refuses_a_file_larger_than_an_opml_file_of_feeds_holds(
    tmp_path: Path, cfg: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: the file was read whole, so ``feeds import /dev/zero`` never
    ended (and ate memory); a 17 MiB file was imported."""
    big = tmp_path / "big.opml"
    big.write_bytes(b'<?xml version="1.0"?><opml version="2.0"><body><!-- '
                    + b"x" * (17 * 2**20)
                    + b' --><outline xmlUrl="https://example.org/rss"/></body></opml>')
    assert error(capsys, ["feeds", "import", str(big), *cfg]) == (
        f"newsmon: {big}: larger than 16 MiB, more than an OPML file of feeds holds: is it"
        " the right file?")
    assert error(capsys, ["feeds", "import", "/dev/zero", *cfg]).startswith(
        "newsmon: /dev/zero: larger than 16 MiB")
    assert list(listed(capsys, cfg)) == ["cfg.xml"]
