"""The README's tables are true: every config key and default it documents is
``pipeline/config.py``'s, every key there is documented, and the tables and
columns of *The database* are the schema's (a fresh database, its
``information_schema``)."""

from __future__ import annotations

import argparse
import importlib
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from support import readme

from pipeline import store, strict_yaml
from pipeline.cli import build_parser
from pipeline.config import Settings, parse_settings

# -- configuration --------------------------------------------------------------------------

CONFIG_TABLES = (  # (headings, header) of each table that documents config keys
    (("Configuration",), ("key", "default", "meaning")),
    (("Limits and their defaults",), ("key", "default", "what it limits")),
    (("Stories",), ("setting", "default", "meaning")),
    (("Scaling out: lake mode", "Configuration"), ("key", "default", "meaning")),
)
# A default the README words rather than writes: what the code holds for it.
WORDED = {"one per core": 0, "none": None, "<database folder>/staging": None,
          "<database folder>/outbox": None}
UNITS = {"s": 1, "KiB": 1024, "MiB": 1024 * 1024}
_UNSET = object()


def _models_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds (directly, optional, or as a tuple of them), and
    whether it is a list of them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            model, many = _models_in(arg)
            if model is not None:
                return model, many
    if origin is tuple and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0], True
    return None, False


def config_keys(model: type[BaseModel] = Settings, prefix: str = "") -> dict[str, Any]:
    """Every leaf key of the config file (``fetch.timeout``, ``feeds[].url``) and its
    default (``_UNSET`` when the key is required)."""
    keys: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        sub, many = _models_in(field.annotation)
        if sub is not None:
            keys.update(config_keys(sub, f"{prefix}{name}{'[]' if many else ''}."))
            if many:
                keys[f"{prefix}{name}[]"] = field.get_default(call_default_factory=True)
            continue
        default = field.get_default(call_default_factory=True)
        keys[prefix + name] = _UNSET if default is PydanticUndefined else default
    return keys


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return tuple(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def parse_default(text: str) -> Any:
    """A default as the README writes it: `true`, 5 MiB, 20 s, `[]`, 0.23, none."""
    literal = re.fullmatch(r"`([^`]*)`", text)
    value = literal.group(1) if literal else text
    if value in WORDED:
        return WORDED[value]
    if value in ("true", "false"):
        return value == "true"
    if value in ("[]", "{}"):
        return () if value == "[]" else {}
    number = re.fullmatch(r"(\d[\d,]*(?:\.\d+)?)(?: (s|KiB|MiB))?", value)
    if number is not None:
        return float(number.group(1).replace(",", "")) * UNITS.get(number.group(2) or "s", 1)
    return value


def _defaults(cell: str, n: int) -> list[str | None]:
    """The cell's defaults, one per key of its row; None for a blank cell."""
    if not cell:
        return [None] * n
    values = [v.strip() for v in cell.split(", ")]
    assert len(values) == n, f"{n} keys but {len(values)} defaults in {cell!r}"
    return list(values)


def documented() -> Iterator[tuple[str, str | None]]:
    """Each (key, default as written or None) the README's config tables give,
    and each sub-key of a list (``alerts[].mode``) its row names."""
    text = readme.text()
    for headings, header in CONFIG_TABLES:
        under = text
        for heading in headings:
            under = readme.section(heading, under)
        for row in readme.table(under, header):
            keys = readme.code_spans(row[0])
            assert keys, f"no key in the row {row}"
            for key, default in zip(keys, _defaults(row[1], len(keys)), strict=True):
                yield key, default
                if key.endswith("[]"):
                    # `name`, `mode` (`instant` or `digest`), `updates` (`false`), ...
                    first_sentence = row[2].split(". ")[0]
                    for sub, worded in re.findall(r"`(\w+)`(?: \(([^()]*)\))?", first_sentence):
                        # (`false`), (1), or (`instant` or `digest`; default `instant`)
                        value = re.fullmatch(r"`[^`]*`|\d+", worded) or re.search(
                            r"\bdefault (`[^`]*`|\d+)", worded)
                        yield f"{key}.{sub}", value and value.group(value.re.groups)


def test_every_documented_config_key_is_a_key_of_the_config() -> None:
    real = config_keys()
    for key, _ in documented():
        if key.endswith(".*"):
            assert any(k.startswith(key[:-1]) for k in real), f"README: no config key {key}"
        else:
            assert key in real, f"README documents {key!r}, which pipeline/config.py has not"


def test_every_config_key_is_documented() -> None:
    keys = {key for key, _ in documented()}
    # A list's own row (`alerts[]`) is optional: its items' keys are what is set.
    missing = sorted(k for k in set(config_keys()) - keys if not k.endswith("[]"))
    assert not missing, f"config keys the README's tables do not name: {missing}"


def test_every_documented_default_is_the_configs() -> None:
    real = config_keys()
    given: dict[str, list[str]] = {}
    for key, default in documented():
        if key in real:
            given.setdefault(key, [])
            if default is not None:
                given[key].append(default)
    for key, defaults in given.items():
        expected = real[key]
        if not defaults:
            # A blank default: the key is required, or absent means nothing.
            assert expected is _UNSET or expected in (None, (), {}, False), (
                f"README gives {key} no default; pipeline/config.py has {expected!r}")
            continue
        for written in defaults:
            assert expected is not _UNSET, f"README gives the required key {key} a default"
            assert parse_default(written) == _plain(expected), (
                f"README: {key} defaults to {written}; pipeline/config.py: {expected!r}")



def test_every_default_named_in_the_text_is_the_configs() -> None:
    """`fetch.timeout` (20 s), `stream.batch_articles` articles (50): prose too."""
    real = config_keys()
    prose = re.sub(r"\s+", " ", readme.text())
    named = re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`(?: [a-z]+)? \((\d[\d,.]*(?: (?:s|KiB|MiB))?)\)",
                       prose)
    checked = [(key, written) for key, written in named if key in real]
    assert len(checked) >= 12
    for key, written in checked:
        assert parse_default(written) == _plain(real[key]), (
            f"README: {key} ({written}); pipeline/config.py: {real[key]!r}")

@pytest.mark.parametrize(("written", "value"), [
    ("`true`", True), ("5 MiB", 5 * 1024 * 1024.0), ("20 s", 20.0), ("0.23", 0.23),
    ("2048", 2048.0), ("`[]`", ()), ("none", None), ("`news.duckdb`", "news.duckdb"),
])
def test_defaults_are_read_as_written(written: str, value: Any) -> None:
    assert parse_default(written) == value


def test_a_wrong_default_or_key_is_caught() -> None:
    real = config_keys()
    assert parse_default("15") != _plain(real["fetch.timeout"])
    assert "fetch.timout" not in real and "poll.interval_minutes" in real



def test_every_yaml_example_is_a_valid_config() -> None:
    examples = readme.blocks("yaml")
    assert len(examples) >= 3
    for block in examples:
        data, lines = strict_yaml.load_with_lines(block.text)
        parse_settings(data, source=f"README.md line {block.line}", lines=lines)

# -- the database ---------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def _without_parentheses(text: str) -> str:
    while (shorter := re.sub(r"\([^()]*\)", "", text)) != text:
        text = shorter
    return text


def documented_columns(cell: str) -> dict[str, str | None]:
    """Column name -> type where the README states one (`topics VARCHAR[]`), from
    the code spans of a cell; spans that are not column names (`c:SY`) are left out."""
    columns: dict[str, str | None] = {}
    for span in readme.code_spans(cell):
        for piece in _without_parentheses(span).split(","):
            words = piece.split()
            if words and _IDENTIFIER.fullmatch(words[0]):
                columns[words[0]] = " ".join(words[1:]) or None
    return columns


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    database = tmp_path_factory.mktemp("schema") / "news.duckdb"
    with store.connect(database) as con:
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'main' ORDER BY table_name, ordinal_position").fetchall()
        keys = con.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints()"
            " WHERE constraint_type = 'PRIMARY KEY'").fetchall()
    tables: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        tables.setdefault(table, {})[column] = data_type
    for table, columns in keys:
        tables[table]["(primary key)"] = ", ".join(columns)
    return tables


def database_table() -> list[list[str]]:
    return readme.table(readme.section("The database"), ("table", "key", "columns"))


def test_the_documented_tables_are_the_schemas(schema: dict[str, dict[str, str]]) -> None:
    listed = [readme.code_spans(row[0])[0] for row in database_table()]
    assert sorted(listed) == sorted(schema), "README's tables against the schema's"


def test_each_tables_key_and_columns_are_documented(schema: dict[str, dict[str, str]]) -> None:
    for name, key, cell in database_table():
        table = readme.code_spans(name)[0]
        real = dict(schema[table])
        key_columns = [k.strip() for k in _without_parentheses(
            " ".join(readme.code_spans(key)).replace("(", "").replace(")", "")).split(",")]
        assert ", ".join(key_columns) == real.pop("(primary key)"), f"{table}: its key"
        columns = documented_columns(cell)
        unknown = sorted(set(columns) - set(real))
        assert not unknown, f"README: {table} has no column {unknown}"
        missing = sorted(set(real) - set(columns) - set(key_columns))
        assert not missing, f"README does not name {table}'s columns {missing}"
        for column, data_type in columns.items():
            assert data_type is None or data_type == real[column], (
                f"README: {table}.{column} is {data_type}; the schema: {real[column]}")


def test_all_times_are_timestamptz(schema: dict[str, dict[str, str]]) -> None:
    assert "All times are `TIMESTAMPTZ` in UTC." in readme.section("The database")
    naive = [f"{t}.{c}" for t, columns in schema.items() for c, d in columns.items()
             if d in ("TIMESTAMP", "DATE", "TIME")]
    assert not naive


def test_a_wrong_column_is_caught() -> None:
    assert documented_columns("`id, url, topics VARCHAR[], status (a/b)`, `c:SY`") == {
        "id": None, "url": None, "topics": "VARCHAR[]", "status": None}


# -- the command line -----------------------------------------------------------------------


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for action in parser._actions for o in action.option_strings
            if o.startswith("--") and o not in ("--help", "--config")}


def cli_options() -> dict[str, set[str]]:
    """Each command's long options (a `feeds` action's count as `feeds`'), but
    --help and --config, which every command has."""
    commands: dict[str, set[str]] = {}
    for action in build_parser()._subparsers._group_actions:  # type: ignore[union-attr]
        for name, sub in action.choices.items():
            options = _long_options(sub)
            for nested in sub._subparsers._group_actions if sub._subparsers else ():
                for child in nested.choices.values():
                    options |= _long_options(child)
            commands[name] = options
    return commands


def documented_options() -> dict[str, set[str]]:
    section = readme.section("The command line")
    documented: dict[str, set[str]] = {}
    for row in readme.table(section, ("command", "what it does")):
        for span in readme.code_spans(row[0]):
            command = span.split()[1]
            documented.setdefault(command, set()).update(re.findall(r"--[a-z][a-z-]*", span))
    for options in documented.values():
        options -= {"--help", "--config"}  # every command's, said once above the table
    return documented


def test_every_command_and_option_is_in_the_command_table() -> None:
    real, documented = cli_options(), documented_options()
    assert sorted(documented) == sorted(real), "the command table's commands against the CLI's"
    for command, options in real.items():
        assert documented[command] == options, (
            f"newsmon {command}: the README names {sorted(documented[command])}, "
            f"the parser has {sorted(options)}")


def test_the_global_options_are_documented() -> None:
    section = readme.section("The command line")
    for option in _long_options(build_parser()):
        assert f"`{option}`" in section, f"README, The command line: no {option}"


# -- files and names ------------------------------------------------------------------------

ROOT = readme.README.parent
TREE = ("pipeline/", "tests/", "benchmarks/", "dags/", "deploy/", "seeds/", "docs/",
        "../shared/")


def test_every_file_the_readme_names_exists() -> None:
    named = {span.split(":")[0] for span in readme.code_spans(readme.text())
             if span.startswith(TREE) and " " not in span}
    assert len(named) >= 40
    # NAME.txt and the like are patterns, not files.
    missing = sorted(p for p in named if not re.search(r"\b[A-Z]{2,}\b", p)
                     and not (ROOT / p).exists())
    assert not missing, f"README names files that do not exist: {missing}"


def test_every_python_name_the_readme_gives_exists() -> None:
    named = {span for span in readme.code_spans(readme.text())
             if re.fullmatch(r"pipeline(\.\w+)+", span)}
    assert named
    for name in sorted(named):
        parts = name.split(".")
        for split in range(len(parts), 0, -1):
            try:
                obj: Any = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            for attribute in parts[split:]:
                assert hasattr(obj, attribute), f"README names {name}, which does not exist"
                obj = getattr(obj, attribute)
            break
