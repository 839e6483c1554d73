"""YAML as a configuration format should be read: every problem an error with its line.

PyYAML's ``safe_load`` is lenient where a config file must not be:

- a repeated key silently keeps the last value (YAML 1.2 §3.2.1.1 says keys
  are unique, PyYAML does not check), so a second ``feeds:`` block drops the
  first one without a word;
- a value that looks like a date but is not one (``2026-13-45``) escapes as a
  ``ValueError`` from ``datetime``, without a line number;
- an explicit tag on a value it does not fit (``!!timestamp soon``, an empty
  ``!!int``) ends in ``AttributeError`` or ``IndexError`` from inside PyYAML;
- nesting is recursive, so ``[[[[...`` a thousand deep ends in
  ``RecursionError``.

:func:`load` turns each of these into :class:`StrictYamlError` with a one-line
message naming the line (and, for a repeated key, the key's path and where it
first appeared). Bytes that are not UTF-8 are refused by :func:`decode` with
the line and column of the first bad byte. :func:`load_with_lines` also says
on which line each key and list item stands, so that a later validation error
(:mod:`pipeline.datafile`) can name the line as well as the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

__all__ = ["MAX_DEPTH", "Lines", "StrictYamlError", "decode", "load", "load_with_lines"]

Loc = tuple[str | int, ...]

# A config file nests four or five levels (alerts[0].to[1]); 64 leaves room
# for anchors and hand-written lists while staying far below Python's
# recursion limit, which PyYAML's composer and constructor recurse into.
MAX_DEPTH = 64


class StrictYamlError(Exception):
    """The text is not valid YAML for a config file; ``str()`` is one line without the source."""


def decode(data: bytes) -> str:
    """``data`` as UTF-8 text (a BOM is dropped); StrictYamlError names the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise StrictYamlError(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}, column {column}"
            " (save the file as UTF-8)"
        ) from None


@dataclass(frozen=True, slots=True)
class Lines:
    """Where each key and list item of a document stands: ``("feeds", 0, "url")``
    is the line of the ``url`` key in the first feed (1-based)."""

    at: Mapping[Loc, int]

    def line(self, loc: Sequence[str | int]) -> int | None:
        """The line of ``loc``, or of the nearest enclosing key or item it is under."""
        for end in range(len(loc), 0, -1):
            found = self.at.get(tuple(loc[:end]))
            if found is not None:
                return found
        return None


def load(text: str) -> object:
    """The one YAML document in ``text`` (None when empty), with the checks above."""
    return load_with_lines(text)[0]


def load_with_lines(text: str) -> tuple[object, Lines]:
    """:func:`load`, and the line of every key and list item in the document."""
    try:
        loader = _Loader(text)
    except ReaderError as exc:  # the reader checks every character up front
        raise StrictYamlError(_unreadable(text, exc)) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, Lines({})
        lines = _check_keys(node)
        return loader.construct_document(node), lines
    except ReaderError as exc:
        raise StrictYamlError(_unreadable(text, exc)) from None
    except yaml.MarkedYAMLError as exc:
        raise StrictYamlError(_describe(exc)) from None
    finally:
        loader.dispose()


def _unreadable(text: str, exc: ReaderError) -> str:
    position = exc.position
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return (f"invalid YAML at line {line}, column {column}: character U+{exc.character:04X}"
            " is not allowed in YAML (a control character?)")


def _describe(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = exc.problem or exc.context or "not valid YAML"
    if isinstance(exc, _RepeatedKey | _TooDeep | _BadValue):
        return f"line {mark.line + 1 if mark else '?'}: {problem}"
    return f"invalid YAML{where}: {problem}"


class _RepeatedKey(ConstructorError):
    pass


class _TooDeep(ComposerError):
    pass


class _BadValue(ConstructorError):
    pass


class _Loader(yaml.SafeLoader):
    """SafeLoader with a depth limit and values that fail with their line."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _TooDeep(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        if isinstance(node, ScalarNode) and not _fits_tag(node):
            # An explicit tag on a value it does not fit (`!!timestamp x`):
            # PyYAML's constructors assume the resolver's pattern matched and
            # fail with AttributeError or KeyError otherwise.
            tag = str(node.tag).rsplit(":", 1)[-1]
            raise _BadValue(None, None, f"{str(node.value)[:60]!r} is not a valid !!{tag}",
                            node.start_mark)
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:
            # A value of the right shape that is still no value: month 13.
            tag = str(node.tag).rsplit(":", 1)[-1]
            shown = repr(node.value)[:60] if isinstance(node, ScalarNode) else f"this {tag}"
            raise _BadValue(None, None, f"cannot read {shown} as {tag}: {exc}",
                            node.start_mark) from None


def _patterns(tag: str) -> list[re.Pattern[str]]:
    return [pattern for resolvers in yaml.SafeLoader.yaml_implicit_resolvers.values()
            for resolved, pattern in resolvers if resolved == tag]


_YAML = "tag:yaml.org,2002:"
# What a value with each typed tag must look like: the patterns SafeLoader
# itself uses to give plain scalars these types (a float may be written as an int).
_TAG_PATTERNS = {
    f"{_YAML}{name}": _patterns(f"{_YAML}{name}") for name in ("bool", "int", "timestamp")
}
_TAG_PATTERNS[f"{_YAML}float"] = _patterns(f"{_YAML}float") + _patterns(f"{_YAML}int")


def _fits_tag(node: ScalarNode) -> bool:
    patterns = _TAG_PATTERNS.get(str(node.tag))
    return patterns is None or any(p.match(str(node.value)) for p in patterns)


def _check_keys(root: Node) -> Lines:
    """Refuse a key repeated in one mapping, naming its path and both lines;
    return the line of every key and item."""
    at: dict[Loc, int] = {}
    for node, loc in _nodes(root):
        at.setdefault(loc, node.start_mark.line + 1)
        if not isinstance(node, MappingNode):
            continue
        first: dict[tuple[str, str], ScalarNode] = {}
        for key, _ in node.value:
            if not isinstance(key, ScalarNode):
                continue  # a complex key: PyYAML refuses it as unhashable when building
            if key.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` is how YAML spells "these keys, unless overridden"
            at[(*loc, str(key.value))] = key.start_mark.line + 1
            seen = first.setdefault((key.tag, key.value), key)
            if seen is not key:
                raise _RepeatedKey(
                    None, None,
                    f"{_path((*loc, str(key.value)))}: repeated key "
                    f"(first at line {seen.start_mark.line + 1})",
                    key.start_mark,
                )
    return Lines(at)


def _path(loc: Loc) -> str:
    """``("feeds", 1, "url")`` as ``feeds[1].url``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _nodes(root: Node) -> Iterator[tuple[Node, Loc]]:
    """Every mapping and sequence under ``root`` with its place, without recursion."""
    stack: list[tuple[Node, Loc]] = [(root, ())]
    seen: set[int] = set()  # aliases point back at nodes already visited
    while stack:
        node, loc = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            yield node, loc
            for key, value in node.value:
                name = str(key.value) if isinstance(key, ScalarNode) else "?"
                stack.append((value, (*loc, name)))
        elif isinstance(node, SequenceNode):
            yield node, loc
            stack.extend((item, (*loc, i)) for i, item in enumerate(node.value))
        else:
            yield node, loc
