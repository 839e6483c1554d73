"""What a word is, and how text is folded before words are compared.

Both engines must cut text into the same words and compare them the same way,
so this module is the single definition:

- text is NFC-normalised, then lowercased one code point at a time (DuckDB's
  ``lower()`` is utf8proc's simple case mapping). Python's ``str.lower()``
  differs in two places, both patched here: U+0130 'İ' lowercases to two code
  points ("i" + U+0307) where DuckDB gives "i", and Python applies the Greek
  final-sigma rule (capital sigma at the end of a word becomes U+03C2) where
  DuckDB always gives U+03C3; we fold U+03C2 to U+03C3 in both engines. Every other code point was
  checked against DuckDB 1.5.5 (see tests/unit/query/test_query_words.py);
- a word is a maximal run of ``\\w`` (Python) = ``[\\pL\\pN_]`` (RE2). The two
  classes agree on every code point assigned in Unicode 14.0 (Python 3.11's
  database); RE2 knows letters assigned later (4,388 code points, e.g. CJK
  extension H), which Python treats as separators.

Folding never changes the length of an NFC string, so an offset into the folded
text is an offset into the NFC text.
"""

from __future__ import annotations

import re
import unicodedata

WORD = re.compile(r"\w+")
# A query word: a run of word characters, optionally ended by the prefix star.
QUERY_WORD = re.compile(r"(\w+)(\*?)")

SQL_WORD_CHAR = r"[\pL\pN_]"
SQL_SEPARATOR = r"[^\pL\pN_]"

# The regular English inflections a plain word also matches ("force" -> "forces").
INFLECTIONS = ("", "s", "es")


# For split_words: ASCII bytes that are not word characters become spaces;
# bytes of multi-byte characters (>= 0x80) are left alone.
_ASCII_SEPARATORS_TO_SPACE = bytes(
    b if b >= 0x80 or chr(b).isalnum() or b == 0x5F else 0x20 for b in range(256)
)
_ASCII = bytes(range(0x80))


def split_words(text: str) -> list[str]:
    """``WORD.findall(text)``, about three times faster.

    Tokenising is most of the cost of matching a new article against the
    topics, and the regex engine takes ~0.2 us a word. Here separators become
    spaces with C-level byte and string operations and ``str.split`` cuts the
    words; ``\\w`` is exactly ``isalnum() or "_"``, and no word character is
    whitespace, so the result is the same (a property test checks it).
    """
    return spaced_words(text).split()


def spaced_words(text: str) -> str:
    """``text`` with every non-word character replaced by a space (same length).

    The words are what ``split()`` cuts out of it, and ``" " + stem`` occurs in
    ``" " + spaced_words(text)`` exactly when a word starts with ``stem``.
    """
    data = text.encode()
    spaced = data.translate(_ASCII_SEPARATORS_TO_SPACE).decode()
    if not spaced.isascii():
        # Deleting the ASCII bytes leaves whole UTF-8 sequences: the non-ASCII characters.
        for char in set(data.translate(None, _ASCII).decode()):
            if not (char.isalnum() or char == "_"):
                spaced = spaced.replace(char, " ")
    return spaced


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def lower(nfc_text: str) -> str:
    """Lowercase as DuckDB does, keeping the length (see the module docstring)."""
    if nfc_text.isascii():
        return nfc_text.lower()
    return nfc_text.replace("\u0130", "i").lower().replace("\u03c2", "\u03c3")


def fold(text: str) -> str:
    """The form in which both engines compare text: NFC, then :func:`lower`."""
    return lower(nfc(text))


def is_word(text: str) -> bool:
    """True if ``text`` is one folded word (what a Term holds)."""
    return WORD.fullmatch(text) is not None and fold(text) == text


def variants(word: str) -> tuple[str, ...]:
    """The words a plain query word matches: itself and its -s / -es forms."""
    return tuple(word + suffix for suffix in INFLECTIONS)
