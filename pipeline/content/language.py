"""Offline language identification (py3langid; its model ships in the wheel)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Below this normalised probability the detector is guessing (measured on short
# titles); the page's own declaration is then the better answer.
MIN_CONFIDENCE = 0.80
# The first 500 characters decide the language; more only costs time.
# py3langid itself is 95% of detect's time, linear in the sample (a walk byte
# by byte, then scoring the features found): 1,000 characters instead of 3,000
# halved it (180 -> 90 ms on the 181 pages of benchmarks/processing.py), 500
# instead of 1,000 halve it again, and every sample length from 400 to 3,000
# gives the same language on all 628 texts checked: both extraction benchmark
# sets (581 pages, as the process stage cleans them), the seeds and the
# signal set (en, fr, ru, de, pt, ko, ja, it, id); 300 changes one.
SAMPLE_CHARS = 500


@dataclass(frozen=True, slots=True)
class LanguageDetector:
    _identifier: Any

    def detect(self, text: str, *, declared: str | None = None) -> str | None:
        sample = text[:SAMPLE_CHARS]
        fallback = declared.split("-")[0].lower() if declared else None
        if len(sample.split(maxsplit=4)) < 5:  # fewer than five words
            return fallback
        code, confidence = self._identifier.classify(sample)
        if confidence < MIN_CONFIDENCE and fallback:
            return fallback
        return str(code)


def load_detector() -> LanguageDetector:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageDetector(LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True))
