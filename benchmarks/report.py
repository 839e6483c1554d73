"""What every benchmark hands the harness: rows of figures, each beside its baseline
and its goal, and the command that reproduces them; and how they are printed.

Sizes: ``full`` is what ``make bench`` runs (under 15 minutes on the 2-core
machine), ``quick`` a few minutes (``python -m benchmarks --quick``), ``tiny``
a few seconds: only for ``tests/unit/test_bench_smoke.py``, which checks that
every benchmark still runs and reports its rows (its figures mean nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Size = Literal["tiny", "quick", "full"]
SIZES: tuple[Size, ...] = ("tiny", "quick", "full")


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    measure: str
    value: str  # the figure with its unit: "647 feeds/s"
    baseline: str = ""  # the same-run baseline it is compared with, if any
    ratio: str = ""  # value / baseline (or the share the goal is about): "0.9x"
    goal: str = ""
    met: bool | None = None  # None: no goal on this row


@dataclass(slots=True, kw_only=True)
class Section:
    key: str  # the module: benchmarks.<key>
    title: str
    command: str  # the exact command that measures these figures on its own
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # markdown paragraphs
    seconds: float = 0.0  # how long it ran

    @property
    def goals(self) -> list[Row]:
        return [r for r in self.rows if r.met is not None]


def verdict(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "MISSED")


def x(value: float) -> str:
    if value < 10:
        return f"{value:.2f}x"
    return f"{value:.1f}x" if value < 100 else f"{value:,.0f}x"


_COLUMNS = ("measure", "figure", "baseline (same run)", "ratio", "goal", "")


def _cells(row: Row) -> tuple[str, ...]:
    return (row.measure, row.value, row.baseline, row.ratio, row.goal, verdict(row.met))


def console(sections: Sequence[Section]) -> str:
    """A plain-text table of every section, for the terminal."""
    lines: list[str] = []
    all_rows = [_cells(r) for s in sections for r in s.rows]
    widths = [max([len(c)] + [len(r[i]) for r in all_rows]) for i, c in enumerate(_COLUMNS)]
    widths[0] = min(widths[0], 60)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c[:w].ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    for s in sections:
        lines.append(f"== {s.title} ({s.seconds:.0f} s): {s.command}")
        lines.append(line(_COLUMNS))
        lines.extend(line(_cells(r)) for r in s.rows)
        lines.append("")
    return "\n".join(lines)


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def markdown_table(rows: Sequence[Row]) -> list[str]:
    out = ["| " + " | ".join(_COLUMNS[:-1]) + " | |", "|" + "---|" * len(_COLUMNS)]
    for r in rows:
        cells = list(_cells(r))
        if r.met is False:
            cells[-1] = "**MISSED**"
        out.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    return out
