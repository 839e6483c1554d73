"""An article as the in-memory matcher sees it: folded once, tokenised once.

Every text field (title, text, source, each person's name) becomes a
:class:`_Unit`; a phrase or a NEAR never spans two units. Word sets are built
eagerly (the prefilter and plain terms need nothing else); the positions of a
word, the sorted vocabulary and character spans are built the first time a
phrase, a prefix or a hit asks for them, then kept.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections.abc import Iterable

from ._words import WORD, lower, nfc, spaced_words


class _Unit:
    """One searchable string and its words."""

    __slots__ = (
        "_folded", "_origin", "_positions", "_spans", "_vocab",
        "field", "spaced", "words", "wordset",
    )

    def __init__(self, field: str | None, original: str) -> None:
        self.field = field  # the Hit field, or None where hits are not reported (people)
        normal, self._origin = _nfc_with_origin(original)
        self._folded = lower(normal)
        # The words with single spaces or runs of spaces between, and one in
        # front: a word starts with ``stem`` iff " " + stem occurs in it (see has_prefix).
        self.spaced = " " + spaced_words(self._folded)
        self.words = self.spaced.split()
        self.wordset = frozenset(self.words)
        self._positions: dict[str, list[int]] = {}
        self._vocab: list[str] | None = None
        self._spans: list[tuple[int, int]] | None = None

    def positions(self, word: str) -> list[int]:
        """Where ``word`` occurs, by word index.

        Found with ``list.index`` (a C loop) for the few words a phrase asks
        about: indexing every word of the text up front cost more than all the
        rule evaluation for that text.
        """
        found = self._positions.get(word)
        if found is None:
            found = []
            if word in self.wordset:
                words, i = self.words, -1
                try:
                    while True:
                        i = words.index(word, i + 1)
                        found.append(i)
                except ValueError:
                    pass
            self._positions[word] = found
        return found

    def has_prefix(self, stem: str) -> bool:
        # A substring search in " w1 w2 ..." is C-speed; words never contain spaces.
        # The spaced text is already there: joining the vocabulary per article
        # cost more than the searches.
        return " " + stem in self.spaced

    def words_with_prefix(self, stem: str) -> list[str]:
        if self._vocab is None:
            self._vocab = sorted(self.wordset)
        vocab = self._vocab
        i = bisect.bisect_left(vocab, stem)
        found = []
        while i < len(vocab) and vocab[i].startswith(stem):
            found.append(vocab[i])
            i += 1
        return found

    def char_span(self, first: int, last: int) -> tuple[int, int]:
        """Offsets in the original string of words ``first`` to ``last`` (inclusive)."""
        if self._spans is None:
            self._spans = [m.span() for m in WORD.finditer(self._folded)]
        start, end = self._spans[first][0], self._spans[last][1]
        if self._origin is None:
            return start, end
        return self._origin[start][0], self._origin[end - 1][1]


def _nfc_with_origin(text: str) -> tuple[str, list[tuple[int, int]] | None]:
    """NFC of ``text`` and, if that changed it, the original span of each NFC character.

    Normalisation only acts within a segment that starts at a starter (combining
    class 0) which does not compose with what precedes it, so normalising
    segment by segment gives the same text and tells which original characters
    each output character came from.
    """
    if unicodedata.is_normalized("NFC", text):
        return text, None
    whole = nfc(text)
    pieces: list[str] = []
    origin: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(text) + 1):
        if i < len(text) and (
            unicodedata.combining(text[i])
            or nfc(text[start : i + 1]) != nfc(text[start:i]) + nfc(text[i])
        ):
            continue
        piece = nfc(text[start:i])
        pieces.append(piece)
        origin.extend([(start, i)] * len(piece))
        start = i
    if "".join(pieces) != whole:  # not expected; keep offsets in range rather than fail
        last = max(len(text) - 1, 0)
        origin = [(min(i, last), min(i + 1, len(text))) for i in range(len(whole))]
    return whole, origin


class Document:
    """The fields of one article, prepared for matching many queries.

    Hit offsets refer to the strings given here (``title``, ``text``,
    ``source``), even when they are not NFC-normalised.
    """

    __slots__ = (
        "_facets", "_other_words", "_text_words", "_title_words", "_units",
        "countries", "language", "people", "source", "text", "title", "topics",
    )

    def __init__(
        self,
        *,
        title: str = "",
        text: str = "",
        source: str = "",
        language: str | None = "",
        topics: Iterable[str] = (),
        countries: Iterable[str] = (),
        people: Iterable[str] = (),
    ) -> None:
        self.title = title
        self.text = text
        self.source = source
        self.language = language or ""
        self.topics = tuple(topics)
        self.countries = tuple(countries)
        self.people = tuple(people)
        title_unit, text_unit = _Unit("title", title), _Unit("text", text)
        source_unit = _Unit("source", source)
        people_units = tuple(_Unit(None, name) for name in self.people)
        self._units: dict[str, tuple[_Unit, ...]] = {
            "any": (title_unit, text_unit),
            "title": (title_unit,),
            "text": (text_unit,),
            "source": (source_unit,),
            "person": people_units,
        }
        self._title_words = title_unit.wordset
        self._text_words = text_unit.wordset
        # With the text's, every word of every string: what the RuleSet
        # prefilter looks up. Kept apart from the text's (the bulk): copying
        # those into one union cost ~10 us an article.
        self._other_words = title_unit.wordset.union(
            source_unit.wordset, *(u.wordset for u in people_units)
        )
        self._facets: dict[str, tuple[str, ...]] = {
            "lang": (lower(nfc(self.language)),),
            "topic": tuple(lower(nfc(t)) for t in self.topics),
            "country": tuple(lower(nfc(c)) for c in self.countries),
        }

    def __repr__(self) -> str:
        return f"Document(title={self.title!r}, source={self.source!r}, language={self.language!r})"
