# Dotless i and other letters folded to ASCII are the point here:
# ruff: noqa: RUF001
"""People tagging: who on the watchlist an article names.

Public verb: :func:`tag_people`; data: :func:`load_watchlist` (the shipped
``pipeline/data/people.yaml`` plus any :class:`PersonSpec` from the config).

Rules:

- A **full name or alias** ("Vladimir Putin", "Владимир Путин", "Abu Mazen",
  "MBS") tags its person wherever it appears.
- A **surname alone** ("Putin", "Poutine", "Путина") tags its person when
  exactly one person on the watchlist has that surname. It must be written
  with its capitals: "Trump" is a name, "trump card" is not.
- A **shared surname** ("Sharif": Shehbaz and Nawaz; "Aoun"; "Johnson") and a
  **weak surname**, one that is also a common word or name outside the
  watchlist ("May", "Abe", "Kim", "Harris"), count only when the full name of
  one of their people is also in the article. The mention goes to that person;
  if several are named in full, to the one named last before it (or, if none
  is named before it, the first named after it).
- Phrases listed under ``not_people`` ("Xi'an", "Costa Rica") count for
  nothing.

Every form also matches without diacritics (Erdoğan, Erdogan) and, for the
Arabic article, with ``al-``/``el-`` written with a space or dropped ("Bashar
al-Assad", "Bashar al Assad", "Bashar Assad"; "al-Assad", "Assad").

``PersonTag.mentions`` counts full and surname mentions in title and body;
``evidence`` is the sentence of the first full-name mention (the title if it
is there), else of the first mention. Tags are in order of first mention.
Matching uses the same compiled phrase index as :mod:`pipeline.signal.places`: about
0.45 ms per 5 KB article for the default watchlist (~1,000 forms), best of 7
runs on the 2-core development machine.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from pipeline.content.sentences import clip, split_sentences
from pipeline.datafile import Strict, Text, load
from pipeline.signal.places import PhraseIndex

__all__ = [
    "PersonSpec",
    "PersonTag",
    "Watchlist",
    "WatchlistError",
    "load_watchlist",
    "tag_people",
    "variants",
]


class WatchlistError(ValueError):
    """The watchlist file or an added person is malformed (the message says where)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonSpec:
    """One person to watch, as the data file or the config gives it."""

    name: str
    aliases: tuple[str, ...] = ()
    surnames: tuple[str, ...] | None = None  # None: the last word of name
    weak_surnames: tuple[str, ...] = ()  # count only next to this person's full name


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonTag:
    name: str  # PersonSpec.name
    mentions: int
    evidence: str


_Kind = Literal["full", "surname", "shared", "none"]


@dataclass(frozen=True, slots=True)
class _Ref:
    kind: _Kind
    who: tuple[int, ...]  # indices into Watchlist.people


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Watchlist:
    """The people to watch, compiled; build it with :func:`load_watchlist`."""

    people: tuple[PersonSpec, ...]
    index: PhraseIndex[_Ref]


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------

class PersonEntry(Strict):
    """One person in people.yaml (the fields are explained in its header)."""

    name: Text
    aliases: tuple[Text, ...] = ()
    surnames: tuple[Text, ...] | None = None
    weak_surnames: tuple[Text, ...] = ()
    country: str | None = None  # for people reading the file
    role: str | None = None  # for people reading the file

    def spec(self) -> PersonSpec:
        return PersonSpec(name=self.name, aliases=self.aliases, surnames=self.surnames,
                          weak_surnames=self.weak_surnames)


class WatchlistFile(Strict):
    """people.yaml: the people, and phrases that hold a surname but are no person."""

    people: tuple[PersonEntry, ...]
    not_people: tuple[Text, ...] = ()


def load_watchlist(path: str | Path | None = None, extra: Iterable[PersonSpec] = ()) -> Watchlist:
    """Parse and compile a watchlist; ``None`` is the shipped default.

    *extra* adds people (from the config file). A person whose name is already
    on the list (case-insensitive) gets the extra aliases and surnames added.
    """
    if path is None:
        specs, blocked = _default_specs()
    else:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise WatchlistError(f"{path}: cannot read the watchlist: {exc.strerror}") from None
        specs, blocked = _parse(raw, str(path))
    return _compile(_merge(specs, tuple(extra)), blocked)


@functools.cache
def _default_specs() -> tuple[tuple[PersonSpec, ...], tuple[str, ...]]:
    source = resources.files("pipeline").joinpath("data/people.yaml")
    return _parse(source.read_bytes(), str(source))


def _parse(raw: bytes, origin: str) -> tuple[tuple[PersonSpec, ...], tuple[str, ...]]:
    data = load(raw, WatchlistFile, origin=origin, error=WatchlistError, named=True)
    return tuple(p.spec() for p in data.people), data.not_people


def _merge(base: tuple[PersonSpec, ...], extra: tuple[PersonSpec, ...]) -> list[PersonSpec]:
    people = list(base)
    by_name = {p.name.casefold(): i for i, p in enumerate(people)}
    for spec in extra:
        if not spec.name.strip():
            raise WatchlistError(f"an added person has an empty name: {spec!r}")
        i = by_name.get(spec.name.casefold())
        if i is None:
            by_name[spec.name.casefold()] = len(people)
            people.append(spec)
            continue
        old = people[i]
        surnames = old.surnames
        if spec.surnames is not None:
            surnames = (*_surnames(old), *spec.surnames)
        people[i] = PersonSpec(
            name=old.name,
            aliases=(*old.aliases, *spec.aliases),
            surnames=surnames,
            weak_surnames=(*old.weak_surnames, *spec.weak_surnames),
        )
    return people


def _surnames(spec: PersonSpec) -> tuple[str, ...]:
    if spec.surnames is not None:
        return spec.surnames
    return (spec.name.split()[-1],)


def _compile(people: list[PersonSpec], blocked: Iterable[str]) -> Watchlist:
    full: dict[str, set[int]] = {}
    strong: dict[str, set[int]] = {}
    weak: dict[str, set[int]] = {}
    for i, spec in enumerate(people):
        for written in (spec.name, *spec.aliases):
            for form in variants(written):
                full.setdefault(form, set()).add(i)
        for written in _surnames(spec):
            for form in variants(written, surname=True):
                strong.setdefault(form, set()).add(i)
        for written in spec.weak_surnames:
            for form in variants(written, surname=True):
                weak.setdefault(form, set()).add(i)

    refs: dict[str, _Ref] = {}
    for form in full.keys() | strong.keys() | weak.keys():
        who_full = full.get(form, set())
        who_strong = strong.get(form, set())
        everyone = who_full | who_strong | weak.get(form, set())
        if len(everyone) == 1 and who_full:
            refs[form] = _Ref("full", tuple(everyone))
        elif len(everyone) == 1 and who_strong:
            refs[form] = _Ref("surname", tuple(everyone))
        else:
            refs[form] = _Ref("shared", tuple(sorted(everyone)))
    for phrase in blocked:
        refs.setdefault(phrase, _Ref("none", ()))
    return Watchlist(people=tuple(people), index=PhraseIndex(refs.items()))


_PARTICLE = re.compile(r"\b([Aa]l|[Ee]l)-(?=\w)")
_FOLD_EXTRA = str.maketrans({"ı": "i", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d"})


def variants(written: str, *, surname: bool = False) -> list[str]:
    """A form and its spelling variants: no diacritics, ``al-`` spaced or dropped."""
    forms = [written]
    if _PARTICLE.search(written):
        forms.append(_PARTICLE.sub(r"\1 ", written))
        dropped = _PARTICLE.sub("", written)
        if surname or len(dropped.split()) > 1:  # "al-Assad" -> "Assad" as a surname only
            forms.append(dropped)
    folded = [_fold(f) for f in forms]
    return list(dict.fromkeys(f for f in (*forms, *folded) if f.strip()))


def _fold(text: str) -> str:
    # Strip accents from Latin letters only: NFKD would also break Russian
    # й into и + breve.
    out = []
    for ch in text.translate(_FOLD_EXTRA):
        base = unicodedata.normalize("NFKD", ch)
        out.append(base[0] if base[0].isascii() and len(base) > 1 else ch)
    return "".join(out)


# --------------------------------------------------------------------------
# The verb
# --------------------------------------------------------------------------


def tag_people(
    *, title: str, text: str, watchlist: Watchlist,
    sentences: list[tuple[int, int]] | None = None,
) -> tuple[PersonTag, ...]:
    """The watchlist people the article names (rules in the module doc).

    *sentences* are ``split_sentences(text)``, for a caller that has them
    already (:func:`pipeline.signal.tag.tag` splits once for all its taggers).
    """
    # Title hits get negative positions so they sort before the body.
    hits = [(h.start - len(title) - 1, h) for h in watchlist.index.find(title)]
    hits += [(h.start, h) for h in watchlist.index.find(text)]

    first_full: dict[int, int] = {}
    first_any: dict[int, int] = {}
    mentions: dict[int, int] = {}
    shared: list[tuple[int, tuple[int, ...]]] = []
    for pos, hit in hits:
        ref = hit.payload
        if ref.kind == "shared":
            shared.append((pos, ref.who))
            continue
        if ref.kind == "none":
            continue
        person = ref.who[0]
        mentions[person] = mentions.get(person, 0) + 1
        first_any.setdefault(person, pos)
        if ref.kind == "full":
            first_full.setdefault(person, pos)
    for pos, who in shared:
        owner = _attribute(pos, who, first_full)
        if owner is not None:
            mentions[owner] += 1

    if not mentions:
        return ()
    if sentences is None:
        sentences = split_sentences(text)
    starts = [s for s, _ in sentences]
    tags = []
    for person in sorted(mentions, key=lambda p: first_any[p]):
        where = first_full.get(person, first_any[person])
        tags.append(
            PersonTag(
                name=watchlist.people[person].name,
                mentions=mentions[person],
                evidence=_evidence(title, text, sentences, starts, where),
            )
        )
    return tuple(tags)


def _attribute(pos: int, who: tuple[int, ...], first_full: dict[int, int]) -> int | None:
    named = [(first_full[p], p) for p in who if p in first_full]
    if not named:
        return None
    before = [np for np in named if np[0] < pos]
    return max(before)[1] if before else min(named)[1]


def _evidence(
    title: str, text: str, sentences: list[tuple[int, int]], starts: list[int], pos: int
) -> str:
    if pos < 0:
        sentence = title
    elif not sentences:
        sentence = text
    else:
        start, end = sentences[max(0, bisect.bisect_right(starts, pos) - 1)]
        sentence = text[start:end]
    return clip(sentence)
