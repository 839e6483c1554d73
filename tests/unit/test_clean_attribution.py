"""benchmarks.clean_attribution: the per-rule tally counts gold and junk tokens right."""

from __future__ import annotations

from benchmarks.clean_attribution import extraction_gap, rule_attribution, shape, survivors
from pipeline.models import Cleaned, RemovedLine


def test_a_rule_is_charged_the_gold_and_the_junk_it_removed() -> None:
    truth = "Bridge closed\nThe bridge will stay closed until Friday."
    final = "The bridge will stay closed until Friday."
    report = Cleaned(text=final, removed=(
        RemovedLine(position=0, line="Bridge closed", rule="repeated_headline"),
        RemovedLine(position=2, line="Share Print Email", rule="widget"),
    ))
    tallies, f1_off, f1_as_is = rule_attribution([truth], [final], [report])
    assert (tallies["repeated_headline"].gold, tallies["repeated_headline"].junk) == (2, 0)
    assert (tallies["widget"].gold, tallies["widget"].junk) == (0, 3)
    assert tallies["repeated_headline"].examples == ["Bridge closed"]
    # Putting the headline back gains recall; the widget back costs precision.
    assert f1_off["repeated_headline"] > f1_as_is > f1_off["widget"]


def test_the_extraction_gap_counts_what_the_baseline_keeps_and_we_lose() -> None:
    truth = "One two three.\nFour five six."
    gap = extraction_gap([truth], ["One two three."], ["One two three.\nFour five six.\nMenu"], 5)
    assert (gap.gold_lost, gap.junk_avoided, gap.junk_added, gap.pages_losing) == (3, 1, 0, 1)
    assert gap.examples == [(0, "Four five six.")]
    assert gap.lost_where == {"after": 3}


def test_survivors_are_the_lines_the_gold_lacks_by_shape() -> None:
    truth = "The bridge will stay closed until Friday."
    final = "The bridge will stay closed until Friday.\nPosted by Jane on April 6, 2019\nMenu"
    found = survivors([truth], [final])
    assert set(found) == {"date line (<= 12 words)", "1-3 words"}
    assert found["date line (<= 12 words)"].tokens == 7
    assert shape("When will the bridge open again?") == "question (<= 20 words)"
