"""Charts drawn on the server as SVG: no script, no chart library, no CDN.

Every text that reaches the SVG (outlet names come from feeds) is escaped
here; the output is markup that the templates insert as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from pipeline.browse import Count, Report

__all__ = ["bar_chart", "bucket_label", "timeline"]

_FONT = 'font-family="sans-serif" font-size="11" fill="#444"'
# A digit of _FONT is about 6.2 units wide: a bar shows its count above it
# when the count fits in the bar's step with this much to spare.
_DIGIT_WIDTH, _LABEL_SPARE = 6.5, 4.0


def bucket_label(moment: datetime, hourly: bool) -> str:
    """A bar's bucket as the chart and its table of numbers name it."""
    return moment.strftime("%Y-%m-%d %H:00" if hourly else "%Y-%m-%d")



def bar_chart(counts: Sequence[Count], *, hourly: bool, title: str,
              width: int = 820, height: int = 240) -> str:
    """Reports per bucket as bars, with the peak on the y axis and dates below,
    and each bar's count above it where it fits (a bar's <title> is a
    tooltip, which only a mouse reaches; the page adds a table of them all)."""
    left, right, top, bottom = 56, 56, 30, 38  # room for a centred date under each end
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((c.reports for c in counts), default=0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" font-family="sans-serif" font-size="13" fill="#222">'
        f"{escape(title)}</text>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#999"/>',
    ]
    if not counts or peak == 0:
        parts.append(f'<text x="{left + 8}" y="{top + plot_h // 2}" {_FONT}>'
                     "no reports match</text></svg>")
        return "".join(parts)
    for value in sorted({0, peak // 2, peak}):
        y = top + plot_h - plot_h * value / peak
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>'
                     f"{value}</text>")
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                     'stroke="#eee"/>')
    step = plot_w / len(counts)
    gap = min(2.0, step * 0.2)
    labelled = step >= len(f"{peak:,}") * _DIGIT_WIDTH + _LABEL_SPARE
    for i, c in enumerate(counts):
        h = plot_h * c.reports / peak
        x, y = left + i * step + gap / 2, top + plot_h - h
        width_ = max(step - gap, 1)
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width_:.1f}" '
            f'height="{h:.1f}" fill="#2f6f9f"><title>{bucket_label(c.start, hourly)}: '
            f"{c.reports} report{'s' if c.reports != 1 else ''}</title></rect>")
        if labelled and c.reports:
            parts.append(f'<text class="bar-count" x="{x + width_ / 2:.1f}" y="{y - 4:.1f}" '
                         f'text-anchor="middle" {_FONT}>{c.reports:,}</text>')
    for i in sorted({0, len(counts) // 2, len(counts) - 1}):
        x = left + i * step + step / 2
        parts.append(f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" '
                     f'y2="{top + plot_h + 4}" stroke="#999"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 14}" text-anchor="middle" {_FONT}>'
                     f"{bucket_label(counts[i].start, hourly)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def timeline(reports: Sequence[Report], *, width: int = 820) -> str:
    """One row per report (oldest at the top): the outlet, and a dot at its time
    on an axis from the story's first report to its last."""
    timed = [r for r in reports if r.time is not None]
    row_h, left, right, top = 24, 190, 24, 14
    height = top + row_h * max(len(timed), 1) + 34
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="timeline of reports">',
             "<title>Timeline of reports</title>"]
    if not timed:
        parts.append(f'<text x="8" y="{top + 12}" {_FONT}>no report has a time</text></svg>')
        return "".join(parts)
    times = [r.time for r in timed if r.time is not None]
    first, last = min(times), max(times)
    span = (last - first).total_seconds() or 1.0
    plot_w = width - left - right
    axis_y = top + row_h * len(timed) + 4
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" '
                 'stroke="#999"/>')
    previous_x: float | None = None
    for i, r in enumerate(timed):
        moment = r.time
        assert moment is not None
        y = top + row_h * i + row_h / 2
        x = left + plot_w * (moment - first).total_seconds() / span
        name = r.source if len(r.source) <= 28 else r.source[:27] + "…"
        parts.append(f'<text x="{left - 10}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>'
                     f"{escape(name)}</text>")
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                     'stroke="#f0f0f0"/>')
        if previous_x is not None:
            parts.append(f'<line x1="{previous_x:.1f}" y1="{y - row_h:.1f}" x2="{x:.1f}" '
                         f'y2="{y:.1f}" stroke="#9bbbd4"/>')
        parts.append(f'<circle class="report" cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#2f6f9f">'
                     f"<title>{escape(r.source)}: {moment:%Y-%m-%d %H:%M} UTC</title></circle>")
        previous_x = x
    for moment, anchor, x in ((first, "start", left), (last, "end", left + plot_w)):
        parts.append(f'<text x="{x}" y="{axis_y + 16}" text-anchor="{anchor}" {_FONT}>'
                     f"{moment:%Y-%m-%d %H:%M} UTC</text>")
    parts.append("</svg>")
    return "".join(parts)
