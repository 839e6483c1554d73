"""How many words a text holds, in scripts written with spaces between words and without.

``len(text.split())`` counts a paragraph of Chinese or Japanese as one word (the
scripts put no space between words), so a 2,600-character Chinese report of 35
paragraphs read as 35 words and was rejected as a stub. Here a run of such a
script counts as its characters over the script's mean word length: Han, kana
(Chinese about 1.6 characters a word, Japanese about 2.5: 2 for both), and Thai,
Lao, Khmer and Myanmar, which space phrases, not words (about 5). Korean spaces
its words and is counted by its spaces, as every other script.
"""

from __future__ import annotations

import re
from typing import Final

# Han (the unified ideographs, extension A, compatibility), hiragana, katakana.
_CJK_RANGES: Final = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Thai, Lao, Myanmar, Khmer.
_SOUTHEAST_RANGES: Final = "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff"
_CJK: Final = re.compile(f"[{_CJK_RANGES}]")
_SOUTHEAST: Final = re.compile(f"[{_SOUTHEAST_RANGES}]")
_UNSPACED: Final = re.compile(f"[{_CJK_RANGES}{_SOUTHEAST_RANGES}]")
CJK_CHARS_PER_WORD: Final = 2
SOUTHEAST_CHARS_PER_WORD: Final = 5


def count(text: str) -> int:
    """The words of ``text``: its space-separated tokens, but the characters of an
    unspaced script over that script's word length (a token that mixes them, as
    "2019年3月", counts its unspaced letters only). One scan when there are none."""
    if _UNSPACED.search(text) is None:
        return len(text.split())
    spaced = sum(1 for token in text.split() if _UNSPACED.search(token) is None)
    cjk = len(_CJK.findall(text))
    southeast = len(_SOUTHEAST.findall(text))
    return spaced + -(-cjk // CJK_CHARS_PER_WORD) + -(-southeast // SOUTHEAST_CHARS_PER_WORD)
