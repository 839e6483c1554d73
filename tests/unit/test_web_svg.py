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


def test_each_bar_wide_enough_shows_its_count_as_text() -> None:
    """Not only in a tooltip (a <title> only a mouse reaches): the count is
    drawn above each bar with room for it, an empty bucket left bare."""
    counts = [Count(start=T0 + timedelta(days=i), reports=n)
              for i, n in enumerate([2, 0, 1234])]
    root = ElementTree.fromstring(bar_chart(counts, hourly=False, title="Reports per day"))
    labels = [t for t in root.iter(f"{SVG}text") if t.get("class") == "bar-count"]
    assert [t.text for t in labels] == ["2", "1,234"]
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]
    # Above its own bar, centred on it.
    for label, bar in zip(labels, (bars[0], bars[2]), strict=True):
        centre = float(bar.get("x") or 0) + float(bar.get("width") or 0) / 2
        assert abs(float(label.get("x") or 0) - centre) < 0.2
        assert float(label.get("y") or 0) < float(bar.get("y") or 0)


def test_bars_too_narrow_for_their_count_leave_it_to_the_table() -> None:
    counts = [Count(start=T0 + timedelta(hours=i), reports=100 + i) for i in range(200)]
    root = ElementTree.fromstring(bar_chart(counts, hourly=True, title="Reports per hour"))
    assert not [t for t in root.iter(f"{SVG}text") if t.get("class") == "bar-count"]
