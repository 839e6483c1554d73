import re
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_settings, parse_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "newsmon.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_full_example_loads_and_resolves_paths(tmp_path: Path) -> None:
    path = write(tmp_path, """
database: data/news.duckdb
feeds:
  - url: https://example.org/rss.xml
    name: Example
topics:
  my-topic: 'Damascus AND "working group"'
alerts:
  - name: syria-foreign-forces
    query: 'topic:syria AND topic:foreign-forces'
    to: [analyst@example.org]
smtp:
  url: smtp://127.0.0.1:1025
fetch:
  allow_private: ['127.0.0.1:8080']
""")
    settings = load_settings(path)
    assert settings.database == tmp_path / "data" / "news.duckdb"
    assert settings.feeds[0].name == "Example"
    assert settings.alerts[0].to == ("analyst@example.org",)
    assert settings.fetch.allow_private == ("127.0.0.1:8080",)
    assert settings.outbox == tmp_path / "data" / "outbox"


def test_unknown_key_is_named_with_file_line_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds:\n  - url: https://example.org/rss\n    nmae: typo\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value) == f"{path}: line 3: feeds[0].nmae: unknown key (a typo?)"


def test_bad_url_and_bad_address_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"feeds\[0\]\.url: must be an http"):
        parse_settings({"feeds": [{"url": "file:///etc/passwd"}]}, source="x.yaml")
    with pytest.raises(ConfigError, match=r"alerts\[0\]\.to: 'nobody' is not an e-mail"):
        parse_settings({"alerts": [{"name": "a", "query": "x", "to": ["nobody"]}]})


def test_query_syntax_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"x.yaml: topics\.broken: "):
        parse_settings({"topics": {"broken": "Syria AND (Iraq"}}, source="x.yaml")


def test_an_alert_on_a_topic_no_article_can_carry_is_a_config_error(tmp_path: Path) -> None:
    """An alert rule's `topic:syira` (a typo for syria) loaded, and the rule
    never fired: only the config's and the shipped topics tag articles."""
    path = write(tmp_path, "alerts:\n  - name: a\n    query: 'Damascus OR topic:syira'\n"
                           "    to: [a@example.org]\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value).startswith(
        f"{path}: line 3: alerts[0].query: topic:syira: no topic is named so, so the rule would"
        " never fire; did you mean topic:syria? the topics are airstrikes, ")
    # A prefix no topic starts with; a topic of the config's own; none at all.
    rule = {"name": "a", "to": ["a@example.org"]}
    with pytest.raises(ConfigError, match=r"^c: alerts\[0\]\.query: topic:energ\*: no topic"):
        parse_settings({"alerts": [{**rule, "query": "x AND NOT topic:energ*"}]}, source="c")
    parse_settings({"topics": {"Energy": "gas"},
                    "alerts": [{**rule, "query": "topic:energ* OR topic:energy"}]})
    with pytest.raises(ConfigError, match=r"there are no topics \(default_topics is false"):
        parse_settings({"default_topics": False, "alerts": [{**rule, "query": "topic:syria"}]})
    # The shipped ones, as written in the README's example.
    parse_settings({"alerts": [{**rule, "query": "topic:syria AND topic:foreign-forces"}]})


def test_a_path_starting_with_a_tilde_is_in_the_home_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`database: ~/news/news.duckdb` made a folder named "~" beside the config
    file, where no one looks for it (and `rm -rf ~` is how one removes it)."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    path = write(tmp_path, "database: ~/news/news.duckdb\noutbox_dir: ~/mail\n"
                           "staging_dir: ~no-such-user-here/staging\n")
    settings = load_settings(path)
    assert settings.database == home / "news" / "news.duckdb"
    assert settings.outbox == home / "mail"
    # No such user: the name as written, relative to the config file's folder.
    assert settings.staging == tmp_path / "~no-such-user-here" / "staging"


def test_password_in_smtp_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="NEWSMON_SMTP_PASSWORD"):
        parse_settings({"smtp": {"url": "smtp://user:secret@mail.example.org"}})


def test_password_comes_from_environment_or_file(tmp_path: Path) -> None:
    smtp = parse_settings({"smtp": {"url": "smtp://mail.example.org:25"}}).smtp
    assert smtp is not None
    assert smtp.password({"NEWSMON_SMTP_PASSWORD": "s3"}) == "s3"
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    assert smtp.password({"NEWSMON_SMTP_PASSWORD_FILE": str(secret)}) == "from-file"
    assert smtp.password({}) is None


def test_missing_file_and_bad_yaml_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")
    path = write(tmp_path, "feeds: [\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+, column \d+"):
        load_settings(path)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://exa mple.org/rss", "the host 'exa mple.org' contains ' '"),
        ("https://exa%20mple.org/rss", "the host 'exa%20mple.org' contains '%'"),
        ("https://example.org:99999/rss", "is not a valid URL: port out of range 0-65535"),
        ("https://example.org:http/rss", "is not a valid URL: port could not be cast"),
        ("http://example.org:0/rss", "port 0 is not a port a server listens on"),
        ("http://[::1/rss", "is not a valid URL: invalid IPv6 URL"),
        ("http://a..b/rss", "'a..b' is not a valid host name"),
        ("http://exa\tmple.org/rss", "contains a control character"),
        ("ftp://example.org/rss", "must be an http:// or https:// URL"),
        ("https:///rss", "must be an http:// or https:// URL"),
    ],
)
def test_feed_urls_that_cannot_be_polled_are_refused_at_load(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"feeds": [{"url": url}]}, source="x.yaml")
    assert str(info.value).startswith("x.yaml: feeds[0].url: ")
    assert problem in str(info.value)


@pytest.mark.parametrize(
    "url",
    ["https://example.org/rss", "http://127.0.0.1:8080/feed", "http://[::1]:8080/feed",
     "https://例え.jp/rss", "https://example.org/my feed.xml", "https://ex_ample.org/"],
)
def test_feed_urls_that_can_be_polled_load(url: str) -> None:
    assert parse_settings({"feeds": [{"url": url}]}).feeds[0].url == url


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"topics": {"deep": "(" * 200 + "a" + ")" * 200}}, "topics.deep"),
        ({"alerts": [{"name": "a", "query": "NOT " * 200 + "a", "to": ["a@x.org"]}]},
         "alerts[0].query"),
    ],
)
def test_a_query_nested_too_deeply_is_a_config_error(data: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(data, source="x.yaml")
    assert str(info.value).startswith(
        f"x.yaml: {where}: nested too deeply (more than 50 levels of parentheses and NOT)")


def test_repeated_keys_and_bad_bytes_name_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds:\n  - url: https://example.org/a\n"
                           "    url: https://example.org/b\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value) == f"{path}: line 3: feeds[0].url: repeated key (first at line 2)"
    path.write_bytes(b"feeds: []\n# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value) == (f"{path}: not UTF-8 text: byte 0xe9 at line 2, column 6"
                               " (save the file as UTF-8)")


def test_a_utf8_bom_is_not_part_of_the_first_key(tmp_path: Path) -> None:
    path = tmp_path / "newsmon.yaml"
    path.write_bytes("\ufeffdefault_topics: false\n".encode())
    assert load_settings(path).default_topics is False


def test_the_old_cluster_window_setting_names_its_replacement() -> None:
    with pytest.raises(ConfigError, match="window_hours was replaced by horizon_hours"):
        parse_settings({"cluster": {"window_hours": 72}})
    assert parse_settings({"cluster": {"horizon_hours": 72}}).cluster.horizon_hours == 72


def test_the_rare_reach_setting_reaches_the_clusterer_and_is_at_least_one_horizon() -> None:
    from pipeline.signal.cluster import RARE_REACH

    assert parse_settings({}).cluster.options().rare_reach == RARE_REACH
    options = parse_settings({"cluster": {"rare_reach": 2, "horizon_hours": 48}}).cluster.options()
    assert options.rare_reach == 2 and options.reach == timedelta(hours=96)
    with pytest.raises(ConfigError, match="rare_reach"):
        parse_settings({"cluster": {"rare_reach": 0.5}})


def test_fetch_and_cluster_defaults_are_the_libraries_own() -> None:
    from pipeline.http import FetchLimits
    from pipeline.signal.cluster import Options

    settings = parse_settings({})
    assert settings.fetch.limits() == FetchLimits()
    assert settings.cluster.options() == Options()


def test_fetch_settings_reach_the_fetcher_each_under_its_own_name() -> None:
    fetch = parse_settings({"fetch": {
        "timeout": 7, "connect_timeout": 2, "read_timeout": 3, "max_feed_bytes": 11,
        "max_page_bytes": 12, "max_redirects": 1, "max_url_length": 99, "concurrency": 9,
        "per_host_concurrency": 4, "host_spacing": 0.5, "allow_private": ["127.0.0.1:8"],
    }}).fetch.limits()
    assert (fetch.total_timeout, fetch.connect_timeout, fetch.read_timeout) == (7, 2, 3)
    assert (fetch.max_feed_bytes, fetch.max_page_bytes, fetch.max_redirects) == (11, 12, 1)
    assert (fetch.max_url_length, fetch.global_concurrency, fetch.per_host_concurrency) == (
        99, 9, 4)
    assert fetch.host_spacing == 0.5
    assert fetch.allow_private == frozenset({"127.0.0.1:8"})


def test_every_problem_names_its_line_the_key_and_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, """
feeds:
  - name: no url
fetch:
  timeout: -1
alerts:
  - name: a
    query: 'syria AND (x'
    to: [a@example.org]
    mode: often
people:
  - name: '  '
""")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    lines = str(err.value).splitlines()
    assert f"{path}: line 3: feeds[0]: needs a 'url' key" in lines
    assert f"{path}: line 5: fetch.timeout: should be greater than 0, not -1" in lines
    assert f"{path}: line 10: alerts[0].mode: must be 'instant' or 'digest', not 'often'" in lines
    assert f"{path}: line 12: people[0].name: must be a non-empty string" in lines
    query = lines.index(f"{path}: line 8: alerts[0].query: unexpected end of query: "
                        'expected ")" (to close the "(" opened at column 11) at column 13')
    assert lines[query + 1:query + 3] == ["  syria AND (x", "              ^"]
    assert len(lines) == 7


def test_a_config_that_is_not_a_mapping_says_what_it_is(tmp_path: Path) -> None:
    path = write(tmp_path, "- url: https://example.org/rss\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value) == f"{path}: expected a mapping of keys at the top level, not a list"


def test_a_topic_name_is_checked_as_a_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings({"topics": {"my topic": "syria"}}, source="x.yaml")
    assert str(err.value) == (
        "x.yaml: topics.my topic: topic name 'my topic' may use letters, digits, '-' and '_'")


def test_the_store_section_defaults_to_the_file_and_checks_a_lake() -> None:
    assert parse_settings({}).store.mode == "file"
    with pytest.raises(ConfigError, match=r"store: mode lake needs catalog and data_path"):
        parse_settings({"store": {"mode": "lake"}})
    with pytest.raises(ConfigError, match=r"store\.catalog: must not contain a password: set "
                                          r"PGPASSWORD"):
        parse_settings({"store": {"mode": "lake", "catalog": "dbname=x password=hunter2",
                                  "data_path": "/shared/lake"}})
    with pytest.raises(ConfigError, match=r"staging_url: must be an s3:// URL or a folder"):
        parse_settings({"store": {"staging_url": "gs://bucket/staging"}})
    lake = parse_settings({"store": {"mode": "lake", "catalog": "dbname=x host=db",
                                     "data_path": "s3://b/lake/",
                                     "staging_url": "/shared/staging"}})
    assert lake.staging == Path("/shared/staging")  # a shared folder is the staging itself
    on_s3 = parse_settings({"database": "/data/news.duckdb",
                            "store": {"staging_url": "s3://b/staging/"}})
    assert on_s3.staging == Path("/data/staging")  # S3: each host's copies stay local


def test_feeds_that_differ_in_a_parameter_that_picks_the_feed_both_load() -> None:
    settings = parse_settings({"feeds": [{"url": "https://example.org/feed.php?rss=world"},
                                         {"url": "https://example.org/feed.php?rss=sport"}]})
    assert len(settings.feeds) == 2


def test_a_relative_smtp_ca_file_is_relative_to_the_config_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: relative to the working directory, unlike database, staging_dir
    # and outbox_dir, and a run started elsewhere could not find it.
    config = tmp_path / "conf"
    config.mkdir()
    path = write(config, "smtp:\n  url: smtps://127.0.0.1:465\n  ca_file: certs/ca.pem\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(path)
    assert settings.smtp is not None and settings.smtp.ca_file == config / "certs" / "ca.pem"
    absolute = write(config, f"smtp:\n  url: smtps://127.0.0.1:465\n  ca_file: {tmp_path}/x.pem\n")
    loaded = load_settings(absolute).smtp
    assert loaded is not None and loaded.ca_file == tmp_path / "x.pem"


@pytest.mark.parametrize(("entry", "problem"), [
    ("::::", "'::::' is not an IPv6 address"),
    ("[::1", "'[::1' is not an IPv6 address"),
    ("intranet:0", "'intranet:0' has no port 1-65535 after its colon"),
    ("127.0.0.1:http", "'127.0.0.1:http' has no port 1-65535 after its colon"),
    ("intra net", "'intra net' is not a host name or IP address"),
])
def test_an_allow_private_entry_no_url_can_name_is_refused(entry: str, problem: str) -> None:
    """Before: accepted, and it allowed nothing (the guard matches the text as written)."""
    with pytest.raises(ConfigError, match=re.escape(f"fetch.allow_private: {problem}")):
        parse_settings({"fetch": {"allow_private": [entry]}})


def test_allow_private_entries_in_every_form_load() -> None:
    entries = ["intranet.example", "feeds_host", "127.0.0.1:8080", "::1", "[::1]",
               "[fe80::1]:8443", " spaced.example "]
    fetch = parse_settings({"fetch": {"allow_private": entries}}).fetch
    assert fetch.allow_private == tuple(entry.strip() for entry in entries)


def test_a_lake_whose_data_path_holds_the_staging_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The lake's compaction deletes every file under store.data_path its
    catalog does not list and a day old (ducklake_delete_orphaned_files): a
    staging there lost the staged runs waiting to load. Refused at load time,
    in one sentence naming both folders; as is the other way round (the
    staging's pruning of old run folders reaching the lake's)."""
    from pipeline.cli import main

    lake = {"mode": "lake", "catalog": "dbname=x host=db"}
    with pytest.raises(ConfigError, match=re.escape(
            "x.yaml: (top level): store.staging_url (/shared/lake/staging) is inside "
            "store.data_path (/shared/lake/), where the lake's compaction deletes every file "
            "its catalog does not list (a staged run's too): give store.staging_url a folder "
            "outside store.data_path")):
        parse_settings({"store": {**lake, "data_path": "/shared/lake/",
                                  "staging_url": "/shared/lake/staging"}}, source="x.yaml")
    with pytest.raises(ConfigError, match=r"store\.staging_url \(s3://b/lake/runs/\) is inside "
                                          r"store\.data_path \(s3://b/lake\)"):
        parse_settings({"store": {**lake, "data_path": "s3://b/lake",
                                  "staging_url": "s3://b/lake/runs/"}})
    with pytest.raises(ConfigError, match=r"staging_dir \(/shared/lake/staging\) is inside "
                                          r"store\.data_path"):  # the default staging_dir
        parse_settings({"database": "/shared/lake/news.duckdb",
                        "store": {**lake, "data_path": "/shared/lake"}})
    with pytest.raises(ConfigError, match=r"store\.data_path \(/shared/st/lake\) is inside "
                                          r"staging_dir \(/shared/st\)"):
        parse_settings({"staging_dir": "/shared/st",
                        "store": {**lake, "data_path": "/shared/st/lake"}})
    # Apart, or a prefix that is not a folder of it: fine.
    parse_settings({"store": {**lake, "data_path": "s3://b/lake/",
                              "staging_url": "s3://b/lake-staging/"}})
    parse_settings({"database": "/data/news.duckdb", "staging_dir": "/data/staging",
                    "store": {**lake, "data_path": "/shared/lake",
                              "staging_url": "s3://b/staging/"}})
    # A relative staging_dir is the config file's folder's: checked once resolved.
    config = tmp_path / "newsmon.yaml"
    config.write_text(f"staging_dir: lake/staging\nstore:\n  mode: lake\n"
                      f"  catalog: dbname=x host=db\n  data_path: {tmp_path / 'lake'}\n",
                      encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(
            f"{config}: staging_dir ({tmp_path / 'lake' / 'staging'}) is inside "
            f"store.data_path ({tmp_path / 'lake'})")):
        load_settings(config)
    # Every command says it in one line, exit 2, before it reads or writes anything.
    assert main(["sql", "--config", str(config), "SELECT 1"]) == 2
    said = capsys.readouterr().err
    assert said.startswith(f"newsmon: {config}: staging_dir (") and said.count("\n") == 1
