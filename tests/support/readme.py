"""The README read as data: its sections, fenced code blocks and tables, so
tests can run its examples and hold its tables against the code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"

_FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>[a-z]*)[ ]*$")
_HEADING = re.compile(r"^(#+) (.*)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    """A fenced code block: its language, its first line's number (1-based) and text."""

    lang: str
    line: int
    text: str
    section: str  # the heading it is under


def text() -> str:
    return README.read_text(encoding="utf-8")


def blocks(lang: str, source: str | None = None) -> list[Block]:
    """Every fenced block of ``lang`` (```sql, ```sh, ...), indented ones included."""
    lines = (text() if source is None else source).splitlines()
    found: list[Block] = []
    heading = ""
    i = 0
    while i < len(lines):
        if (h := _HEADING.match(lines[i])) is not None:
            heading = h.group(2)
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent = len(opening.group("indent"))
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"README.md line {i + 1}: a code block never closed")
        if opening.group("lang") == lang:
            body = "\n".join(line[indent:] for line in lines[i + 1:end])
            found.append(Block(lang=lang, line=i + 2, text=body, section=heading))
        i = end + 1
    return found


def section(title: str, source: str | None = None) -> str:
    """The text under the heading ``title``, up to the next heading of its level or above."""
    lines = (text() if source is None else source).splitlines()
    for i, line in enumerate(lines):
        h = _HEADING.match(line)
        if h is not None and h.group(2) == title:
            level = len(h.group(1))
            end = i + 1
            while end < len(lines):
                nxt = _HEADING.match(lines[end])
                if nxt is not None and len(nxt.group(1)) <= level and not _in_code(lines, end):
                    break
                end += 1
            return "\n".join(lines[i + 1:end])
    raise AssertionError(f"README.md has no heading {title!r}")


def _in_code(lines: list[str], index: int) -> bool:
    fences = sum(1 for line in lines[:index] if _FENCE.match(line) or line.strip() == "```")
    return fences % 2 == 1


def tables(source: str) -> list[list[list[str]]]:
    """Every Markdown table in ``source``: rows of cells, the header row first
    (the |---| row left out). ``\\|`` inside a cell is a literal bar."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*source.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|")
                     for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def table(source: str, header: tuple[str, ...]) -> list[list[str]]:
    """The rows (header left out) of the one table in ``source`` with this header."""
    matches = [t for t in tables(source) if tuple(t[0]) == header]
    assert len(matches) == 1, f"{len(matches)} tables with the header {header} (one expected)"
    return matches[0][1:]


def code_spans(cell: str) -> list[str]:
    """The `code` spans of a cell, in order."""
    return re.findall(r"`([^`]*)`", cell)
