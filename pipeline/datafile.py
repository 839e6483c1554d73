"""YAML files as pydantic models: the config file and the shipped data files.

Every file newsmon reads as data (``newsmon.yaml``, ``pipeline/data/*.yaml``:
topics, countries, people, clean rules) goes the same way: bytes through
:mod:`pipeline.strict_yaml` (UTF-8, no repeated key, a value's line when it
cannot be read), then a pydantic model that holds the file's shape, its
defaults and its checks. Each problem is one line naming the file, the line,
the key and what is wrong::

    newsmon.yaml: line 3: feeds[0].nmae: unknown key (a typo?)
    people.yaml: line 12: people[4] (Jane Doe).aliases[0]: must be a non-empty string

The models subclass :class:`Strict` (unknown keys are errors: they are
usually typos) and use :data:`Text` for names and phrases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from pipeline import strict_yaml

__all__ = ["Strict", "Text", "describe", "load", "validate"]

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """A mapping in a YAML file: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value


Text = Annotated[str, AfterValidator(_text)]
"""A string with something in it besides white space: a name, an alias, a phrase."""


def load(raw: bytes, model: type[M], *, origin: str, error: type[Exception],
         named: bool = False) -> M:
    """Decode, parse and validate the bytes of one YAML file.

    ``origin`` names the file in every message; ``error`` is the exception
    raised, its message one line per problem. ``named``: a list item that has a
    ``name`` is shown with it (``people[4] (Jane Doe)``)."""
    try:
        data, lines = strict_yaml.load_with_lines(strict_yaml.decode(raw))
    except strict_yaml.StrictYamlError as exc:
        raise error(f"{origin}: {exc}") from None
    return validate(model, data, origin=origin, error=error, lines=lines, named=named)


def validate(model: type[M], data: object, *, origin: str, error: type[Exception],
             lines: strict_yaml.Lines | None = None, named: bool = False) -> M:
    """``data`` (parsed YAML) as ``model``; ``error`` names the file, line and key."""
    if not isinstance(data, dict):
        shown = "an empty file" if data is None else f"a {type(data).__name__}"
        raise error(f"{origin}: expected a mapping of keys at the top level, not {shown}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(describe(exc, data, origin=origin, lines=lines, named=named)) from None


def describe(exc: ValidationError, data: object, *, origin: str,
             lines: strict_yaml.Lines | None = None, named: bool = False) -> str:
    """One line per problem: ``origin: line N: key.path: what is wrong``."""
    out = []
    for item in exc.errors():
        loc, message = _problem(item)
        line = lines.line(loc) if lines is not None else None
        where = f"line {line}: " if line is not None else ""
        out.append(f"{origin}: {where}{_location(loc, data, named=named)}: {message}")
    return "\n".join(out)


# Pydantic's words for the types a YAML value can have.
_SHAPES = {"dict_type": "a mapping", "model_type": "a mapping", "list_type": "a list",
           "tuple_type": "a list", "string_type": "a string", "int_type": "a whole number",
           "int_parsing": "a whole number", "int_from_float": "a whole number",
           "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
           "bool_parsing": "true or false", "path_type": "a file path"}


def _problem(item: ErrorDetails) -> tuple[tuple[str | int, ...], str]:
    """Where the problem is (without pydantic's own markers) and what it is."""
    loc = tuple(part for part in item["loc"] if part != "[key]")
    kind, given = item["type"], item.get("input")
    if kind == "extra_forbidden":
        return loc, "unknown key (a typo?)"
    if kind == "missing" and loc:
        return loc[:-1], f"needs a {loc[-1]!r} key"
    if kind == "literal_error":
        return loc, f"must be {item.get('ctx', {}).get('expected')}, not {_shown(given)}"
    if kind in _SHAPES:
        return loc, f"must be {_SHAPES[kind]}, not {_shown(given)}"
    message = str(item["msg"]).removeprefix("Value error, ")
    if message.startswith("Input should"):
        message = f"{message.removeprefix('Input ')}, not {_shown(given)}"
    return loc, message


def _shown(value: object) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _location(loc: Sequence[str | int], data: object, *, named: bool) -> str:
    """``feeds[0].url``, following ``data`` so that a mapping's key is never shown
    as a list index (YAML's unquoted ``NO:`` is the key False, pydantic's 0);
    ``named``: a list item's name beside its index."""
    out = ""
    node: Any = data
    for part in loc:
        if isinstance(node, list) and isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if 0 <= part < len(node) else None
            name = node.get("name") if isinstance(node, dict) else None
            if named and isinstance(name, str) and name.strip():
                out += f" ({name})"
            continue
        if isinstance(node, dict):
            key = next((k for k in node if k == part and type(k) is not type(part)), part)
            node = node.get(key)
        else:
            key, node = part, None
        out += f".{key}" if out else str(key)
    return out or "(top level)"
