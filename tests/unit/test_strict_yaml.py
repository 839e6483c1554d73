"""strict_yaml: what safe_load lets through silently or as a stray exception, refused
with its line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipeline.strict_yaml import MAX_DEPTH, StrictYamlError, decode, load


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("feeds:\n  - url: a\nfeeds:\n  - url: b\n",
         "line 3: feeds: repeated key (first at line 1)"),
        ("feeds:\n  - url: a\n  - url: b\n    name: x\n    url: c\n",
         "line 5: feeds[1].url: repeated key (first at line 3)"),
        ("fetch: {timeout: 1, timeout: 2}\n",
         "line 1: fetch.timeout: repeated key (first at line 1)"),
        ("topics:\n  war: a\n  'war': b\n", "line 3: topics.war: repeated key (first at line 2)"),
    ],
)
def test_a_repeated_key_names_its_path_and_both_lines(text: str, message: str) -> None:
    with pytest.raises(StrictYamlError) as info:
        load(text)
    assert str(info.value) == message


def test_the_same_key_in_different_mappings_is_fine() -> None:
    text = "feeds:\n  - url: a\n  - url: b\nsmtp:\n  url: c\n"
    assert load(text) == {"feeds": [{"url": "a"}, {"url": "b"}], "smtp": {"url": "c"}}


def test_merge_keys_may_be_overridden() -> None:
    text = "base: &b {to: [a@x.org], mode: instant}\nrule:\n  <<: *b\n  mode: digest\n"
    assert load(text) == {"base": {"to": ["a@x.org"], "mode": "instant"},
                          "rule": {"to": ["a@x.org"], "mode": "digest"}}


@pytest.mark.parametrize("opening", ["[", "{a: "])
def test_deep_nesting_is_refused_not_a_recursion_error(opening: str) -> None:
    text = opening * 2000
    with pytest.raises(StrictYamlError, match=f"line 1: nested more than {MAX_DEPTH} levels"):
        load(text)


def test_nesting_up_to_the_limit_loads() -> None:
    depth = MAX_DEPTH - 1
    value = load("[" * depth + "x" + "]" * depth)
    for _ in range(depth):
        assert isinstance(value, list)
        (value,) = value
    assert value == "x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("when: 2026-13-45\n", "line 1: cannot read '2026-13-45' as timestamp: month must be in"),
        ("n: !!int\n", "line 1: '' is not a valid !!int"),
        ("t: !!timestamp soon\n", "line 1: 'soon' is not a valid !!timestamp"),
        ("b: !!bool maybe\n", "line 1: 'maybe' is not a valid !!bool"),
        ("a: \x1f\n", "invalid YAML at line 1, column 4: character U+001F is not allowed"),
        ("a: [\n", "invalid YAML at line 2, column 1: expected the node content"),
        ("a: 1\n---\nb: 2\n", "invalid YAML at line 2, column 1: but found another document"),
    ],
)
def test_bad_values_are_errors_with_their_line(text: str, message: str) -> None:
    with pytest.raises(StrictYamlError) as info:
        load(text)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_typed_values_that_fit_their_tag_still_load() -> None:
    assert load("a: !!float 1\nb: !!int 0x1f\nc: 2026-01-02\nd: !!str 12\n") == {
        "a": 1.0, "b": 31, "c": date(2026, 1, 2), "d": "12"}


def test_empty_text_is_none() -> None:
    assert load("") is None
    assert load("# only a comment\n") is None


def test_decode_drops_a_bom_and_names_the_first_bad_byte() -> None:
    assert decode("\ufefffeeds: []\n".encode()) == "feeds: []\n"
    with pytest.raises(StrictYamlError) as info:
        decode(b"a: 1\nname: Caf\xe9\n")
    assert str(info.value) == ("not UTF-8 text: byte 0xe9 at line 2, column 10"
                               " (save the file as UTF-8)")


# The shipped data files are read through strict_yaml by their modules
# (pipeline.datafile); a key repeated there (a topic defined twice) would stop
# every process that tags, so check here too.
DATA = Path(__file__).resolve().parents[2] / "pipeline" / "data"


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.yaml")))
def test_shipped_data_files_have_no_repeated_keys(name: str) -> None:
    assert load(decode((DATA / name).read_bytes())) is not None
