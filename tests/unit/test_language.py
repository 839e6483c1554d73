"""Language detection: py3langid over the text's first SAMPLE_CHARS characters."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.content.language import SAMPLE_CHARS, load_detector

SIGNAL = Path(__file__).resolve().parents[2] / "benchmarks" / "signal" / "articles"

ENGLISH = ("The ceasefire held overnight in the north, observers said on Sunday, the first quiet "
           "night in a week of shelling along the frontier between the two sides of the valley. ")
FRENCH = ("Le cessez-le-feu a tenu pendant la nuit dans le nord, ont indiqué dimanche les "
          "observateurs, première nuit calme après une semaine de bombardements le long de la "
          "frontière entre les deux côtés de la vallée. ")


@pytest.fixture(scope="module")
def detector():  # type: ignore[no-untyped-def]
    return load_detector()


@pytest.mark.parametrize(("name", "expected"), [
    ("algeria-en.txt", "en"), ("algeria-fr.txt", "fr"), ("wg-ru.txt", "ru"), ("wg-de.txt", "de"),
])
def test_signal_articles(detector, name: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    assert detector.detect((SIGNAL / name).read_text("utf-8")) == expected


def test_only_the_sample_is_read(detector) -> None:  # type: ignore[no-untyped-def]
    english = ENGLISH * (SAMPLE_CHARS // len(ENGLISH) + 1)
    assert len(english) >= SAMPLE_CHARS
    assert detector.detect(english + FRENCH * 40) == "en"
    assert detector.detect(FRENCH * 40) == "fr"


def test_fewer_than_five_words_is_the_declaration(detector) -> None:  # type: ignore[no-untyped-def]
    assert detector.detect("Ceasefire holds", declared="en-GB") == "en"
    assert detector.detect("Ceasefire holds") is None
