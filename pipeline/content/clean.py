"""The clean stage: cut the boilerplate lines that survive extraction.

trafilatura finds the main block of a page, but captions, credits, donation
widgets, "READ MORE:" links, banners and teaser cards placed *inside* that
block come out with the article. This stage removes them, line by line:

1. line rules from ``data/clean_rules.yaml``: the generic table, plus the
   rules of the site the page belongs to (matched on the URL's domain or on
   the page's og:site_name, Miniflux-style);
2. context rules, which need to see more than one line (they are code, their
   thresholds are constants below):

   - ``repeated_headline``: the headline printed again at the top of the text;
   - ``headline_variant``: a differently worded headline at the top (the
     page's <title> is written for search engines, the display headline for
     readers: "HS Roundup: ..." vs "High School Roundup: ...");
   - ``caption_neighbour``: a short, unpunctuated line directly next to a line
     a caption rule removed (the caption above a credit, the headline of a
     teaser card under its image);
   - ``related_list``: the short, unpunctuated headlines that follow a "More
     on this topic:" style heading. (A list of headlines at the end of the
     text whose heading the extractor dropped is left alone: on the
     benchmark such lists were as often the article's own, e.g. a list of
     qualified teams.)
   - ``glued_credit``: a credit glued to the lead that follows it. In a
     ``<br>``-separated body the extractor joins an inline credit and the
     text after it into one line ("© ReutersThe bridge will stay closed
     until Friday, ..."), which a credit rule would remove whole, lead and
     all. Where a lower-case letter, digit or closing bracket meets a
     capitalised word with no space between, and the part before matches a
     caption rule while the part after is prose, only the part before is
     removed (reported under the caption rule's name, ``+glued``) and the
     sentence stays;
   - ``name_caption``: a photo caption that only names people and places
     ("Russian President Vladimir Putin with Israeli Prime Minister Benjamin
     Netanyahu."): it ends like a sentence but has no verb, because every
     word is capitalised or one of the rules file's connectors ("with",
     "avec", "mit", "président"); a capitalised word with a lower-case part
     after a hyphen ("Cross-posted", "Re-elected") is no name;
   - ``comment_thread``: the readers' comments under a blog post. A blog
     signs each comment with a dateline naming its writer ("Posted by: Tim
     Bray | Mar 26, 2007 2:16:31 PM"), as it signs the post ("Posted by
     Kathy on April 6, 2007 | Permalink"). Where the body (past the head)
     holds datelines (a ``dateline`` rule's removals) signed by at least
     COMMENT_MIN_AUTHORS different names, the lines between the first and
     the last of them are the comments, and go, prose or not: the proof is
     their place, after the post's own signature and between signatures of
     other writers. A live blog's entries sit between timestamps too, but
     stamped with the time of day or as updates ("Updated 10:32 by Jane
     Smith"), while a comment's signature carries its day (a year) and is
     never an update: only such signatures count. A dateline in the head
     (the article's own) never counts.

Never a sentence: a rule fires only on a line it can show is not prose. A
line is *prose* when it has the shape of a sentence (:func:`is_prose`: enough
words, enough of them lower-case, and a sentence ending; or, unpunctuated,
the length of running text, like a sentence closed by a parenthesis). A prose
line is kept unless the rule that matched it is an exact-line rule (the rules
file lists that very line as junk) or says ``on_prose: remove``: the rules
whose match is itself the proof ("READ MORE: ...", a line opening with "©",
"Do you like this content?", a photo credit closing a caption). The context
rules only take labels, and a prose line is never a label; two have their own
proof: ``repeated_headline`` the page's title, ``name_caption`` a line with
no word that could be a verb (a French caption with its lower-case titles
can have a sentence's shape).

The output keeps one paragraph per line. Lines are kept as they are except for
whitespace: runs of it (no-break spaces included) become one space, as
trafilatura itself does, so the same article cleans to the same text whether
it came through our extractor or an older one. Blank lines are dropped and
not reported. Every removed line is returned in :attr:`Cleaned.removed` with
its position in the input (0-based line index, blank lines counted; "\r\n"
and "\r" end a line like "\n") and the name of the rule that fired, so a
user can audit the cut.

Removal is deliberately conservative: a lost sentence of the article cannot be
recovered by any later stage, a stray caption costs little. A rule fires only
on lines it is confident about, with a word limit where a long line could be a
real paragraph.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, model_validator
from pydantic import Strict as Strict_

from pipeline.datafile import Strict, Text, load, validate
from pipeline.models import Cleaned, RemovedLine

__all__ = [
    "CleanRules",
    "Rule",
    "RuleError",
    "SiteRules",
    "clean",
    "is_prose",
    "load_rules",
    "parse_rules",
]

# The head of the text is where header junk sits (site header, headline,
# byline, donation bar): the lines before the first body paragraph, a line of
# at least BODY_MIN_WORDS words ending like a sentence (Sputnik's 14-word
# section tagline must not count), and at most HEAD_LINES lines (the deepest
# header in the seeds has 7).
HEAD_LINES = 10
BODY_MIN_WORDS = 20
# Context rules only touch lines this short: teaser headlines and captions are
# 5-20 words, real paragraphs are longer and end with punctuation.
CONTEXT_MAX_WORDS = 20
# Share of words a top line must have in common with the title (of the longer
# of the two) to count as a headline variant. On the benchmark the true
# variants share 0.78-0.90, teaser headlines of the same series 0.5.
HEADLINE_OVERLAP = 0.7
# "More on this topic:" lists seldom show more than a handful of teasers.
RELATED_LIST_MAX = 8
# The shape of a sentence (is_prose). Ending in sentence punctuation: at
# least PROSE_MIN_WORDS words ("The two leaders last met in Paris." is 7).
# Without it (a sentence whose closing parenthesis swallowed its full stop,
# a sentence cut by the extractor): at least PROSE_UNPUNCTUATED_WORDS, which
# teaser headlines and captions seldom reach (on the two benchmark sets the
# context rules removed captions and teasers of up to 12 words; the longer
# lines they took, 17 and 18 words, were a headline the gold text keeps and
# a reader appeal). Either way, at least PROSE_MIN_LOWER words and a share
# PROSE_LOWER_SHARE of the words must start lower-case (or in a script
# without case): running text has verbs, articles and prepositions; a Title
# Case headline or a list of names has few.
PROSE_MIN_WORDS = 6
PROSE_UNPUNCTUATED_WORDS = 15
PROSE_MIN_LOWER = 2
PROSE_LOWER_SHARE = 0.3
# name_caption: "Putin with Netanyahu." is too short to tell from a sentence
# such as "Putin Resigned." in Title Case; four words are a full name and more.
NAME_CAPTION_MIN_WORDS = 4
# comment_thread: datelines signed by this many different names after the head,
# each with its day and none an update, are a post's signature and its
# readers' (a post and one reply are too little to tell a thread).
COMMENT_MIN_AUTHORS = 3

_TERMINAL = frozenset(".!?…")
_CLOSERS = "\"'\u201d\u2019\u00bb)]*"  # straight and curly closing quotes
_WORD = re.compile(r"\w+")
_LETTERS = re.compile(r"[\W\d_]+")
# Punctuation around a word, and an elided French article: "(Putin,", "d'Israël".
_WORD_EDGES = re.compile(r"^\W+|\W+$")
# Hyphen, en and em dashes, bullets.
_LIST_MARKS = frozenset("-\u2013\u2014\u2022*\u00b7\u25ba\u25aa")
_ELISION = re.compile(r"^(?:[dl]|qu)['\u2019](?=\w)", re.IGNORECASE)
_EXACT_TRAILERS = ":.… \t"
# " | ", " - ", en and em dashes, " : ", middle dots between title and site.
_TITLE_SEPARATORS = re.compile(r"\s+[|\-\u2013\u2014:\u00b7\u2022]\s+")
# Where two texts were glued with no space: "ReutersThe", "AFPThe", "2019The":
# the capital that starts the second (the match), after a letter, digit or
# closing bracket and before a lower-case letter. Written to start with the
# capital, so that re skips to capitals (a character set first); the same
# places as the lookbehind and lookahead around an empty match, 5 times faster.
_GLUE = re.compile(r"[A-Z](?<=[A-Za-z\d)\]][A-Z])(?=[a-z])")
# The writer a dateline names: "Posted by: Tim Bray | Mar 26, 2007", "Posted by
# Kathy on April 6, 2007", "Publié par Jean Dupont le 12/03/2019", "Veröffentlicht
# von Max Muster am ...", "Publicado por Ana el ...", "Автор: Иван Петров | ...".
_SIGNED_BY = re.compile(
    r"\b(?:by|par|von|por|автор)\s*:?\s+(?P<name>[^|·,]{1,40}?)\s*"
    r"(?:[|·,]|\s(?:on|at|le|à|am|um|el|en|в)\s|\s\d|$)",
    re.IGNORECASE,
)
# comment_thread: a reader's comment is signed with its day (a year in the
# line: comments come over days, and a signature says when), never as an
# update; a live blog's entries are stamped with the time of day ("10:32 by
# Jane Smith") or as updates ("Updated 10:32 by ..."), the article's own.
_SIGNATURE_YEAR = re.compile(r"\b(?:1[89]|20)\d\d\b")
_UPDATE_STAMP = re.compile(
    r"^(?:last )?(?:updated|mis à jour|modifié|aktualisiert|actualizado|обновлено)\b",
    re.IGNORECASE,
)
# The part before the glue must end in a word of at least this many letters,
# so a name such as "McDonald" (glue after "Mc") is never split.
GLUED_HEAD_MIN_LETTERS = 3

Where = Literal["any", "head"]


class RuleError(ValueError):
    """The rules file is malformed; the message names the offending rule."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One named line rule: a regex or a set of exact lines."""

    name: str
    group: str
    pattern: re.Pattern[str] | None = None
    lines: frozenset[str] = frozenset()
    max_words: int | None = None
    where: Where = "any"
    min_run: int = 1
    # True for the rules whose match proves the line is not the article's
    # prose even when it has a sentence's shape (an appeal, a "READ MORE:"
    # label, a credit): see "Never a sentence" in the module docstring.
    removes_prose: bool = False

    def matches(self, normalized: str, words: int) -> bool:
        """Whether the rule fires on the line, the prose guard included."""
        if self.max_words is not None and words > self.max_words:
            return False
        if self.pattern is not None:
            # The guard after the search: few lines match any pattern, so
            # the sentence test runs on few lines.
            found = self.pattern.search(normalized) is not None
            return found and (self.removes_prose or not is_prose(normalized))
        # An exact line is its own proof: the rules file lists it as junk.
        return _exact_key(normalized) in self.lines


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteRules:
    key: str
    domains: tuple[str, ...]
    names: frozenset[str]  # casefolded og:site_name values
    rules: tuple[Rule, ...]

    def applies_to(self, host: str, site_name: str | None) -> bool:
        if site_name is not None and site_name.strip().casefold() in self.names:
            return True
        return any(host == d or host.endswith("." + d) for d in self.domains)


@dataclass(frozen=True, slots=True, kw_only=True)
class CleanRules:
    """The clean stage's line rules (``data/clean_rules.yaml``), compiled; not a
    set of saved queries (that is :class:`pipeline.query.RuleSet`)."""

    generic: tuple[Rule, ...]
    sites: tuple[SiteRules, ...]
    # The lower-case words a caption of names may hold (name_caption).
    name_connectors: frozenset[str] = frozenset()

    def for_page(self, url: str, site_name: str | None) -> tuple[Rule, ...]:
        """Site rules first, so their (more specific) name is the one reported."""
        host = (urlsplit(url).hostname or "").lower().removeprefix("www.")
        specific = [r for s in self.sites if s.applies_to(host, site_name) for r in s.rules]
        return (*specific, *self.generic)


def clean(
    text: str,
    *,
    title: str | None,
    url: str,
    site_name: str | None,
    rules: CleanRules | None = None,
) -> Cleaned:
    """Remove boilerplate lines from extracted ``text``.

    ``rules`` defaults to the packaged ``data/clean_rules.yaml``.
    """
    ruleset = rules if rules is not None else load_rules()
    raw = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = [line.strip() for line in raw]
    # Rules match the whitespace-collapsed line (no-break spaces included),
    # so they can be written with plain spaces; the output uses it too.
    normalized = [" ".join(line.split()) for line in lines]
    nonblank = [i for i, line in enumerate(lines) if line]
    page_rules = ruleset.for_page(url, site_name)
    glued = _glued_credits(page_rules, nonblank, normalized)
    head = _head(nonblank, normalized)

    verdicts: dict[int, Rule] = {}
    _apply_line_rules(page_rules, nonblank, normalized, head, verdicts)
    removed_by = {i: rule.name for i, rule in verdicts.items()}
    _repeated_headline(title, site_name, nonblank, normalized, head, removed_by)
    _caption_neighbours(nonblank, normalized, verdicts, removed_by,
                        glued={r.position for r in glued})
    _related_lists(nonblank, normalized, verdicts, removed_by)
    _name_captions(nonblank, normalized, ruleset.name_connectors, removed_by)
    _comment_thread(nonblank, normalized, head, verdicts, removed_by)

    kept = [normalized[i] for i in nonblank if i not in removed_by]
    removed = sorted(
        [*glued, *(RemovedLine(position=i, line=lines[i], rule=removed_by[i])
                   for i in removed_by)],
        key=lambda r: r.position,
    )
    return Cleaned(text="\n".join(kept), removed=tuple(removed))


def _glued_credits(
    rules: Sequence[Rule], nonblank: Sequence[int], normalized: list[str]
) -> list[RemovedLine]:
    """Cut a caption glued to the sentence after it; the sentence stays (see the docstring).

    ``normalized`` is edited in place: the line becomes the sentence alone.
    """
    captions = [r for r in rules if r.group == "caption"]
    cut: list[RemovedLine] = []
    for i in nonblank:
        line = normalized[i]
        for glue in _GLUE.finditer(line):
            before = line[: glue.start()].rstrip()
            # Its last word (rsplit: splitting the whole head at every glue
            # of a long line was most of this function's time).
            last_word = _LETTERS.sub("", before.rsplit(None, 1)[-1]) if before else ""
            if len(last_word) < GLUED_HEAD_MIN_LETTERS:
                continue
            after = line[glue.start() :]
            if not is_prose(after):
                continue
            words = _word_count(before)
            rule = next((r for r in captions if r.matches(before, words)), None)
            if rule is not None and not is_prose(before):
                cut.append(RemovedLine(position=i, line=before, rule=f"{rule.name}+glued"))
                normalized[i] = after
                break
    return cut


def _apply_line_rules(
    rules: Sequence[Rule],
    nonblank: Sequence[int],
    normalized: Sequence[str],
    head: frozenset[int],
    verdicts: dict[int, Rule],
) -> None:
    # Rule.matches() written out, each rule's parts fetched once per page, not
    # once per line; the rules of the head and of the rest listed once.
    head_plan = _plan(rules)
    body_plan = _plan(r for r in rules if r.where == "any")
    candidates: dict[int, Rule] = {}
    for i in nonblank:
        line = normalized[i]
        words = _word_count(line)
        key = None  # the exact-line key, made for the first exact rule reached
        for rule, limit, search, removes_prose, lines in (head_plan if i in head else body_plan):
            if words > limit:
                continue
            if search is not None:
                if search(line) is None or (not removes_prose and is_prose(line)):
                    continue
            else:
                if key is None:
                    key = _exact_key(line)
                if key not in lines:
                    continue
            candidates[i] = rule
            break
    # min_run: a rule that needs company keeps only the lines that have it.
    run: list[int] = []
    for i in [*nonblank, -1]:
        current = candidates.get(i)
        if run and current is not candidates[run[0]]:
            first = candidates[run[0]]
            if len(run) >= first.min_run:
                verdicts.update(dict.fromkeys(run, first))
            run = []
        if current is not None:
            run.append(i)


_Step = tuple[Rule, float, Callable[[str], object] | None, bool, frozenset[str]]


def _plan(rules: Iterable[Rule]) -> tuple[_Step, ...]:
    """Each rule as (rule, word limit, its pattern's search, removes_prose, exact lines)."""
    return tuple(
        (r, r.max_words if r.max_words is not None else math.inf,
         r.pattern.search if r.pattern is not None else None, r.removes_prose, r.lines)
        for r in rules
    )


def _repeated_headline(
    title: str | None,
    site_name: str | None,
    nonblank: Sequence[int],
    normalized: Sequence[str],
    head: frozenset[int],
    removed_by: dict[int, str],
) -> None:
    if not title:
        return
    forms = _title_forms(title, site_name)
    for i in nonblank:
        if i in head and i not in removed_by and _tokens(normalized[i]) in forms:
            removed_by[i] = "repeated_headline"
    # A reworded headline only as the first line left: further down, a line
    # close to the title is more likely a sub-heading of the article.
    first = next((i for i in nonblank if i not in removed_by), None)
    if first is not None and first in head and _looks_like_label(normalized[first]):
        tokens = _tokens(normalized[first])
        if any(_overlap(tokens, form) >= HEADLINE_OVERLAP for form in forms):
            removed_by[first] = "headline_variant"


def _overlap(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Shared distinct words over the distinct words of the longer text."""
    sa, sb = set(a), set(b)
    longest = max(len(sa), len(sb))
    return len(sa & sb) / longest if longest else 0.0


def _caption_neighbours(
    nonblank: Sequence[int],
    normalized: Sequence[str],
    verdicts: Mapping[int, Rule],
    removed_by: dict[int, str],
    glued: set[int],
) -> None:
    """The caption text beside a credit, the teaser headline under its image.

    Only direct neighbours of a caption-rule removal, one hop, never chained:
    a neighbour that a context rule removed does not pull in its own
    neighbour. A credit cut from the front of a sentence (``glued``) has
    only the line above it for a neighbour: the line below follows the
    sentence, not the credit.
    """
    for pos, i in enumerate(nonblank):
        rule = verdicts.get(i)
        if i in glued:
            neighbours: tuple[int, ...] = (pos - 1,)
        elif rule is not None and rule.group == "caption":
            neighbours = (pos - 1, pos + 1)
        else:
            continue
        for npos in neighbours:
            if 0 <= npos < len(nonblank):
                j = nonblank[npos]
                if j not in removed_by and _looks_like_label(normalized[j]):
                    removed_by[j] = "caption_neighbour"


def _related_lists(
    nonblank: Sequence[int],
    normalized: Sequence[str],
    verdicts: Mapping[int, Rule],
    removed_by: dict[int, str],
) -> None:
    """The teaser headlines listed under a "More on this topic:" heading."""
    for pos, i in enumerate(nonblank):
        rule = verdicts.get(i)
        if rule is None or rule.group != "heading":
            continue
        for j in nonblank[pos + 1 : pos + 1 + RELATED_LIST_MAX]:
            if j in removed_by:
                continue
            if not _looks_like_label(normalized[j]):
                break
            removed_by[j] = "related_list"


def _name_captions(
    nonblank: Sequence[int],
    normalized: Sequence[str],
    connectors: frozenset[str],
    removed_by: dict[int, str],
) -> None:
    for i in nonblank:
        if i not in removed_by and _names_only(normalized[i], connectors):
            removed_by[i] = "name_caption"


def _comment_thread(
    nonblank: Sequence[int],
    normalized: Sequence[str],
    head: frozenset[int],
    verdicts: Mapping[int, Rule],
    removed_by: dict[int, str],
) -> None:
    """The comments between datelines signed by different writers (see the docstring)."""
    signed: list[tuple[int, str]] = []
    for i in nonblank:
        rule = verdicts.get(i)
        if rule is None or rule.group != "dateline" or i in head:
            continue
        line = normalized[i]
        if _UPDATE_STAMP.match(line) or not _SIGNATURE_YEAR.search(line):
            continue  # a live blog's stamp, not a comment's signature
        found = _SIGNED_BY.search(line)
        if found is not None:
            signed.append((i, " ".join(found["name"].casefold().split())))
    if len({name for _, name in signed}) < COMMENT_MIN_AUTHORS:
        return
    first, last = signed[0][0], signed[-1][0]
    for i in nonblank:
        if first < i < last and i not in removed_by:
            removed_by[i] = "comment_thread"


def _names_only(line: str, connectors: frozenset[str]) -> bool:
    """A full stop after nothing but names: "X with Y.", "X et Y à Paris."

    Digits rule a line out: "Arsenal 2 Chelsea 1." is a result the article
    reports, and a caption with a date is rare enough to keep.
    """
    words = line.split()
    if not NAME_CAPTION_MIN_WORDS <= len(words) <= CONTEXT_MAX_WORDS:
        return False
    if line.rstrip(_CLOSERS)[-1:] != "." or any(ch.isdigit() for ch in line):
        return False
    # A list item ("- Fort Smith, Ark.") is the article's own list, and a
    # line with a colon ("Thunder: Host the Lakers on Friday.") may have a
    # capitalised verb after it.
    if line[0] in _LIST_MARKS or ":" in line:
        return False
    names = 0
    for raw in words:
        word = _ELISION.sub("", _WORD_EDGES.sub("", raw))
        letters = _LETTERS.sub("", word)
        if not letters:
            continue
        if letters[0].isupper():
            # A capitalised compound with a lower-case part is a common word
            # in a sentence's first place ("Cross-posted from the Daily Example Blog.",
            # "Re-elected ..."), not a name ("Jean-Pierre", "Saint-Denis").
            if any(part[:1].islower() for part in word.split("-")[1:]):
                return False
            names += 1
        elif word.casefold() not in connectors:
            return False
    return names >= 2


def is_prose(line: str) -> bool:
    """The shape of a sentence of the article; see the PROSE_* constants."""
    words = line.split()
    needed = PROSE_MIN_WORDS if _ends_sentence(line) else PROSE_UNPUNCTUATED_WORDS
    if len(words) < needed:
        return False
    lower = 0
    for word in words:
        # The word's first letter: its first character when that is a letter
        # (most words; a regex substitution per word was most of the cost).
        first = word[0]
        if not first.isalpha():
            letters = _LETTERS.sub("", word)
            first = letters[0] if letters else ""
        # A caseless first letter (Korean, Chinese, Arabic) counts as lower:
        # only a capital can mark a name or a Title Case headline.
        if first and not first.isupper():
            lower += 1
    return lower >= PROSE_MIN_LOWER and lower >= PROSE_LOWER_SHARE * len(words)


def _head(nonblank: Sequence[int], normalized: Sequence[str]) -> frozenset[int]:
    head = []
    for i in nonblank[:HEAD_LINES]:
        line = normalized[i]
        if _word_count(line) >= BODY_MIN_WORDS and _ends_sentence(line):
            break
        head.append(i)
    return frozenset(head)


def _ends_sentence(line: str) -> bool:
    return line.rstrip(_CLOSERS)[-1:] in _TERMINAL


def _looks_like_label(line: str) -> bool:
    """Short and without sentence punctuation: a headline, caption or label.

    An unpunctuated line as long as running text is not a label however it
    ends (a sentence closed by a parenthesis: "... (in Russian)").
    """
    return (
        bool(line)
        and _word_count(line) <= CONTEXT_MAX_WORDS
        and not _ends_sentence(line)
        and not is_prose(line)
    )


def _title_forms(title: str, site_name: str | None) -> frozenset[tuple[str, ...]]:
    """The title, and the title without a " | Site" / " - Site" suffix or prefix."""
    forms = {_tokens(title)}
    parts = _TITLE_SEPARATORS.split(title)
    if len(parts) > 1:
        forms.add(_tokens(" ".join(parts[:-1])))
        forms.add(_tokens(" ".join(parts[1:])))
    if site_name:
        site = _tokens(site_name)
        for form in list(forms):
            if form[-len(site) :] == site and len(form) > len(site):
                forms.add(form[: -len(site)])
            if form[: len(site)] == site and len(form) > len(site):
                forms.add(form[len(site) :])
    forms.discard(())
    return frozenset(forms)


def _tokens(text: str) -> tuple[str, ...]:
    return tuple(t.casefold() for t in _WORD.findall(text))


def _word_count(line: str) -> int:
    return len(line.split())


# The related_heading lines that a template also gives a section of the
# article itself (a live blog's "Latest news", a newsletter's "Top stories",
# a listicle's "Trending now", an FAQ's "More", a collapsed body's "Read
# more"): as a line the cleaner removes them, but they are no proof that the
# block under them is other stories (extract._drop_related_blocks).
GENERIC_RELATED_LABELS: frozenset[str] = frozenset({
    "related", "read more", "read also", "read next", "see also", "also", "more",
    "trending", "trending now", "most read", "most popular", "latest news", "top stories",
    "recommended", "more from this section", "voir aussi", "leer más", "по теме",
})


def is_related_label(text: str, *, specific: bool = False) -> bool:
    """Whether ``text`` is, whole, the label of a block of other stories
    (the ``related_heading`` rule's lines: "You may also like", "Lire
    aussi", "Você pode gostar..."), in the packaged rules; with ``specific``,
    not one of the :data:`GENERIC_RELATED_LABELS` a section of the article
    can carry too."""
    key = _exact_key(" ".join(text.split()))
    if specific and key in GENERIC_RELATED_LABELS:
        return False
    return key in _related_lines()


@cache
def _related_lines() -> frozenset[str]:
    """The ``related_heading`` rule's lines (keys), of the packaged rules."""
    return frozenset(line for rule in load_rules().generic if rule.name == "related_heading"
                     for line in rule.lines)


def _exact_key(line: str) -> str:
    return line.rstrip(_EXACT_TRAILERS).casefold()


# --- loading the rules file ---------------------------------------------------

def _connector(value: object) -> object:
    # YAML reads a bare `on` or `y` as a boolean: quote such words.
    if not isinstance(value, str) or value != value.casefold():
        raise ValueError(f"{value!r} is not a lower-case word (quote words YAML reads as "
                         "true or false: 'on', 'y')")
    return value


Group = Literal["caption", "related", "heading", "widget", "promo", "header", "dateline"]
Count = Annotated[int, Strict_(), Field(ge=1)]  # a bool is no count


class RuleEntry(Strict):
    """One line rule as the rules file writes it (keys explained in its header)."""

    name: Text
    group: Group
    regex: str | None = None
    lines: tuple[str, ...] | None = None
    max_words: Count | None = None
    where: Where = "any"
    min_run: Count = 1
    case: Literal["sensitive", "insensitive"] = "insensitive"
    on_prose: Literal["keep", "remove"] = "keep"

    @model_validator(mode="after")
    def _one_matcher(self) -> RuleEntry:
        if (self.regex is None) == (self.lines is None):
            raise ValueError("give exactly one of regex or lines")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as err:
                raise ValueError(f"bad regex: {err}") from None
        return self

    def rule(self, prefix: str) -> Rule:
        pattern = None
        if self.regex is not None:
            pattern = re.compile(self.regex, 0 if self.case == "sensitive" else re.IGNORECASE)
        return Rule(
            name=prefix + self.name,
            group=self.group,
            pattern=pattern,
            lines=frozenset(_exact_key(" ".join(line.split())) for line in self.lines or ()),
            max_words=self.max_words,
            where=self.where,
            min_run=self.min_run,
            removes_prose=self.on_prose == "remove",
        )


class SiteEntry(Strict):
    """One site's rules: matched on the page's domain or its og:site_name."""

    key: Text
    domains: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    rules: tuple[RuleEntry, ...]


class RulesFile(Strict):
    """clean_rules.yaml."""

    generic: tuple[RuleEntry, ...]
    sites: tuple[SiteEntry, ...] = ()
    name_caption_connectors: tuple[Annotated[str, BeforeValidator(_connector)], ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> RulesFile:
        seen: set[str] = set()
        names = [r.name for r in self.generic]
        names += [f"{s.key}.{r.name}" for s in self.sites for r in s.rules]
        for name in names:
            if name in seen:
                raise ValueError(f"duplicate rule name {name}")
            seen.add(name)
        return self


@cache
def load_rules() -> CleanRules:
    """The packaged rules, parsed and compiled once per process."""
    source = resources.files("pipeline").joinpath("data/clean_rules.yaml")
    return _compile(load(source.read_bytes(), RulesFile, origin=str(source), error=RuleError,
                         named=True))


def parse_rules(data: object, *, origin: str = "rules file") -> CleanRules:
    """Validate already-parsed rules; raise :class:`RuleError` naming the culprit."""
    return _compile(validate(RulesFile, data, origin=origin, error=RuleError, named=True))


def _compile(rules: RulesFile) -> CleanRules:
    return CleanRules(
        generic=tuple(r.rule("") for r in rules.generic),
        sites=tuple(
            SiteRules(
                key=site.key,
                domains=tuple(d.lower() for d in site.domains),
                names=frozenset(n.casefold() for n in site.names),
                rules=tuple(r.rule(site.key + ".") for r in site.rules),
            )
            for site in rules.sites
        ),
        name_connectors=frozenset(rules.name_caption_connectors),
    )
