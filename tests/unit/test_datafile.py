"""datafile: a YAML file into a pydantic model, each problem one line naming the
file, the line, the key and what is wrong."""

from __future__ import annotations

import pytest
from pydantic import Field

from pipeline.datafile import Strict, Text, load, validate


class Item(Strict):
    name: Text
    size: int = 1


class Doc(Strict):
    items: tuple[Item, ...] = ()
    codes: dict[str, int] = Field(default_factory=dict)


class Oops(Exception):
    pass


def problems(text: str, *, named: bool = False) -> list[str]:
    with pytest.raises(Oops) as info:
        load(text.encode(), Doc, origin="d.yaml", error=Oops, named=named)
    return str(info.value).splitlines()


def test_a_valid_file_is_the_model() -> None:
    doc = load(b"items:\n  - name: a\n    size: 2\n", Doc, origin="d.yaml", error=Oops)
    assert doc == Doc(items=(Item(name="a", size=2),))


def test_each_problem_names_its_line_and_key() -> None:
    assert problems("items:\n  - name: a\n  - name: b\n    size: big\n    colour: red\n") == [
        "d.yaml: line 4: items[1].size: must be a whole number, not 'big'",
        "d.yaml: line 5: items[1].colour: unknown key (a typo?)",
    ]


def test_a_missing_key_is_named_on_the_line_of_what_lacks_it() -> None:
    assert problems("items:\n  - size: 2\n") == ["d.yaml: line 2: items[0]: needs a 'name' key"]


def test_named_items_show_their_name() -> None:
    assert problems("items:\n  - name: Jane\n    size: x\n", named=True)[0].startswith(
        "d.yaml: line 3: items[0] (Jane).size: ")


def test_a_key_yaml_reads_as_a_bool_is_shown_as_a_key() -> None:
    # `NO:` is the key False; pydantic's location says 0, a list index.
    assert problems("codes:\n  NO: 1\n") == [
        "d.yaml: line 1: codes.False: must be a string, not False"]


def test_blank_text_and_wrong_shapes_say_what_was_found() -> None:
    assert problems("items:\n  - name: ' '\n") == [
        "d.yaml: line 2: items[0].name: must be a non-empty string"]
    assert problems("items: {name: a}\n") == [
        "d.yaml: line 1: items: must be a list, not a mapping"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "d.yaml: expected a mapping of keys at the top level, not an empty file"),
        (b"- a\n", "d.yaml: expected a mapping of keys at the top level, not a list"),
        (b"items: []\nitems: []\n", "d.yaml: line 2: items: repeated key (first at line 1)"),
        (b"a: \xff\n", "d.yaml: not UTF-8 text: byte 0xff at line 1, column 4"
                       " (save the file as UTF-8)"),
    ],
)
def test_the_file_itself_is_checked_first(raw: bytes, message: str) -> None:
    with pytest.raises(Oops) as info:
        load(raw, Doc, origin="d.yaml", error=Oops)
    assert str(info.value) == message


def test_without_lines_the_key_alone() -> None:
    with pytest.raises(Oops) as info:
        validate(Doc, {"items": [{"name": ""}]}, origin="x", error=Oops)
    assert str(info.value) == "x: items[0].name: must be a non-empty string"
