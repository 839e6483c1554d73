"""The background corpus behind the clusterer's document frequencies.

A newsroom's own statistics (the ``term_stats`` table) start empty, and over
the first hundreds of articles every word of one busy story looks "common"
and every word of a quiet one "rare". The background is what a large corpus
says before that: the share of 120-word leads that hold a word, from the word
frequencies of the ``wordfreq`` package (English; its data is inside the
wheel), counted as ``BACKGROUND_DOCS`` documents beside the stored ones. A word
wordfreq does not know (a name, another language's word) gets 0 there, so its
weight comes from the stored statistics alone; one it hardly knows that many
stored documents hold is taken to be as common in the background as there
(``pipeline.signal.cluster.TermStats.seen``): unknown to English is not rare.
Deterministic, so it changes nothing about batching.
"""

from __future__ import annotations

from functools import lru_cache

BACKGROUND_DOCS = 20_000
_LEAD_WORDS = 120  # pipeline.signal.cluster.LEAD_WORDS: the words a document is counted over


@lru_cache(maxsize=1 << 18)
def share(term: str) -> float:
    """The share of background documents holding ``term`` (0.0 if unknown)."""
    if not term or term[0].isdigit() or ":" in term:  # numbers, names ("c:SY", "p:...")
        return 0.0
    from wordfreq import word_frequency

    return min(1.0, _LEAD_WORDS * float(word_frequency(term, "en")))


def warm_up() -> None:
    """Read wordfreq's tables now (~1 s on the first lookup)."""
    share("news")
