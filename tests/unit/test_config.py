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


def test_unknown_key_is_named_with_file_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds:\n  - url: https://example.org/rss\n    nmae: typo\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value) == f"{path}: feeds[0].nmae: unknown key (a typo?)"


def test_bad_url_and_bad_address_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"feeds\[0\]\.url: must be an http"):
        parse_settings({"feeds": [{"url": "file:///etc/passwd"}]}, source="x.yaml")
    with pytest.raises(ConfigError, match=r"alerts\[0\]\.to: 'nobody' is not an e-mail"):
        parse_settings({"alerts": [{"name": "a", "query": "x", "to": ["nobody"]}]})


def test_query_syntax_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"x.yaml: topics\.broken: "):
        parse_settings({"topics": {"broken": "Syria AND (Iraq"}}, source="x.yaml")


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


def test_the_old_cluster_window_setting_names_its_replacement() -> None:
    with pytest.raises(ConfigError, match="window_hours was replaced by horizon_hours"):
        parse_settings({"cluster": {"window_hours": 72}})
    assert parse_settings({"cluster": {"horizon_hours": 72}}).cluster.horizon_hours == 72
