"""The server-side SVG charts: one mark per bucket or report, text escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

from pipeline.browse import Count, Report
from pipeline.web._svg import bar_chart, timeline

T0 = datetime(2019, 3, 1, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def report(n: int, source: str, hours: float) -> Report:
    return Report(id=str(n), source=source, title="t", url="https://x.example/", link=None,
                  author=None, published_at=T0 + timedelta(hours=hours), fetched_at=None,
                  language="en", text="", topics=(), countries=(), people=(), removed=())


def test_bars_one_per_bucket_scaled_to_the_peak() -> None:
    counts = [Count(start=T0 + timedelta(days=i), reports=n) for i, n in enumerate([2, 0, 4])]
    root = ElementTree.fromstring(bar_chart(counts, hourly=False, title="Reports <per> day"))
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert len(bars) == 3
    heights = [float(b.get("height") or 0) for b in bars]
    assert heights[1] == 0 and heights[2] == 2 * heights[0] > 0
    assert [b.findtext(f"{SVG}title") for b in bars][2] == "2019-03-03: 4 reports"
    assert root.findtext(f"{SVG}title") == "Reports <per> day"  # parsed back: it was escaped


def test_an_empty_chart_says_so() -> None:
    svg = bar_chart([], hourly=True, title="Reports per hour")
    assert "no reports match" in svg and 'class="bar"' not in svg


def test_timeline_one_dot_per_report_in_time_order_with_escaped_outlets() -> None:
    reports = [report(1, "<script>x</script>", 0), report(2, "Two", 12), report(3, "Three", 24)]
    svg = timeline(reports)
    root = ElementTree.fromstring(svg)
    dots = [c for c in root.iter(f"{SVG}circle") if c.get("class") == "report"]
    xs = [float(c.get("cx") or 0) for c in dots]
    assert len(dots) == 3 and xs[0] < xs[1] < xs[2]
    assert abs((xs[1] - xs[0]) - (xs[2] - xs[1])) < 0.2  # 12 h apart each
    assert "<script>" not in svg and "&lt;script&gt;x&lt;/script&gt;" in svg
