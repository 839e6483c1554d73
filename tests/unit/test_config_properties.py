"""load_settings() on arbitrary bytes and on random YAML shaped like a config:
a Settings or a ConfigError that names the file, never another exception.

Found this way (and fixed in pipeline.strict_yaml): a control character
(PyYAML's ReaderError escaped the old handler), an empty ``!!int`` (IndexError),
``!!timestamp`` on a non-date (AttributeError).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import ConfigError, Settings, load_settings

# YAML's syntax and the config's own words, so random text gets past the
# first character often enough to reach the constructor and the validator.
FRAGMENTS = [
    "feeds:", "url:", " ", "  ", "\n", "- ", "https://example.org/rss", "http://exa mple.org",
    "[", "]", "{", "}", ",", "&a ", "*a", "<<: ", '"', "'", "2026-13-45", "2001-01-01",
    "topics:", "alerts:", "name:", "query:", "to:", "x@example.org", "syria", "(", ")", "NOT ",
    "!!python/object:os.system", "!!binary", "? ", ":", "#", "---", "...", "%YAML 1.1",
    "poll:", "interval_minutes:", "1e999", "-1", ".nan", "null", "~", "database:", "fetch:",
    "allow_private:", "smtp:", "\t", "\x00", "\ufeff", "é", "|", ">", "!!int", "!!float",
    "!!timestamp", "!!bool", "0x", "0o7", "1_000", "people:", "aliases:", "retention_days:",
    "true", "9" * 30,
]
texts = st.one_of(st.text(max_size=60), st.lists(st.sampled_from(FRAGMENTS), max_size=40)
                  .map("".join))
raw_bytes = st.one_of(texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
                      st.binary(max_size=40))

KEYS = [
    "database", "staging_dir", "feeds", "url", "name", "topics", "default_topics", "people",
    "aliases", "alerts", "query", "to", "mode", "period", "min_sources", "smtp", "timeout",
    "fetch", "allow_private", "poll", "interval_minutes", "min_interval_minutes", "cluster",
    "threshold", "process", "workers", "retention_days", "max_feed_bytes", "syria",
]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from(["https://example.org/rss", "http://127.0.0.1:1/", "smtp://h:25",
                     "smtp://u:p@h", "a@b", "digest", "daily", "syria AND (x", "((a))",
                     "NOT a", "news.duckdb", "\x00"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.integers()), inner, max_size=5),
    ),
    max_leaves=20,
)
documents = st.one_of(st.dictionaries(st.sampled_from(KEYS), values, max_size=6), values)


def check(path: Path) -> None:
    try:
        result = load_settings(path)
    except ConfigError as exc:
        lines = str(exc).splitlines()
        assert lines[0].startswith(f"{path}: ") and len(lines[0]) > len(f"{path}: "), str(exc)
        # Each further line is another problem naming the file, or a query
        # error's echo and caret (indented).
        assert all(line.startswith((f"{path}: ", "  ")) for line in lines[1:]), str(exc)
        return
    assert isinstance(result, Settings)


@settings(max_examples=300, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw_bytes)
def test_any_bytes_give_settings_or_a_config_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "newsmon.yaml"
    path.write_bytes(data)
    check(path)


@settings(max_examples=300, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents)
def test_any_config_shaped_yaml_gives_settings_or_a_config_error(
    tmp_path: Path, document: object
) -> None:
    path = tmp_path / "newsmon.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    check(path)


@pytest.mark.parametrize("text", ["!!int", "a: \x1f", "t: !!timestamp x", "b: !!bool maybe"])
def test_the_cases_hypothesis_found_stay_fixed(tmp_path: Path, text: str) -> None:
    path = tmp_path / "newsmon.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: "):
        load_settings(path)
