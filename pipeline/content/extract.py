"""The extract stage: the main text and metadata of an article page.

This is the only module that imports trafilatura. It gets the bytes our own
HTTP client fetched (trafilatura's downloader is never used), parses it once,
extracts candidate bodies from that tree (trafilatura's precision mode,
readability, on doubtful pages trafilatura's balanced mode, and on a text
that ends on a colon its recall mode), keeps the one the evidence favours
(:func:`choose`, :func:`fuller`), drops the lines that are a
comment section's or a form's (:func:`refuse_form_lines`), and converts trafilatura's
``Document`` into our :class:`~pipeline.models.Extracted` right here, so no
trafilatura type travels further.

A page with nothing usable raises :class:`ExtractionError` rather than
returning None: the caller records ``error.reason`` in the ``rejected`` table,
and "no main text" is a different story from "not HTML" when someone looks at
why a feed's articles are missing. Any other exception is a bug, not a bad
page, and propagates.

The text keeps trafilatura's line structure, one paragraph per line: the
clean stage works on lines.
"""

from __future__ import annotations

import bisect
import codecs
import contextlib
import itertools
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import lxml.etree
import lxml.html
import trafilatura
from htmldate import find_date
from trafilatura import metadata as trafilatura_metadata
from trafilatura import utils as trafilatura_utils
from trafilatura import xpaths as trafilatura_xpaths
from trafilatura.json_metadata import normalize_authors
from trafilatura.readability_lxml import Document as ReadabilityDocument
from trafilatura.settings import CUT_EMPTY_ELEMS, Document

from pipeline.charset import declared_charset
from pipeline.content.byline import UNDECIDED, byline
from pipeline.content.clean import is_related_label
from pipeline.content.words import count as word_count
from pipeline.models import Extracted

__all__ = [
    "DOUBT_BELOW",
    "FULLER_MAX_LINK_SHARE",
    "FULLER_MIN_CONTAINED",
    "MIN_CARDS",
    "MIN_WORDS",
    "NESTED_CONTAINS",
    "TWIN_AGREEMENT",
    "UNION_CONTAINS",
    "UNION_PARTS_BELOW",
    "Candidate",
    "Evidence",
    "ExtractionError",
    "agreement",
    "choose",
    "declared_descriptions",
    "evidence",
    "extract",
    "fuller",
    "load_html",
    "readability_text",
    "refuse_form_lines",
    "refuse_teaser_cards",
    "unfinished",
]

# How a page is extracted (issue 17), chosen with benchmarks/extraction_compare.py
# on both page sets (the ScrapingHub 181 and 400 Dragnet pages), tuned on their
# even halves and checked on the odd ones; the figures are in the README.
#
# 0. The tree, before any extractor: the source's line breaks become spaces,
#    a table that lays the page out becomes blocks (trafilatura reads a table
#    as rows of data cells), empty elements go with their tails kept
#    (precision mode would drop the text after them), and a bare text run
#    that starts a block of paragraphs or follows a photo caption in it gets
#    a <br> (trafilatura drops it).
# 1. The primary: trafilatura's precision mode without its fallback
#    extractors (fast=True), metadata included. Its fallbacks (readability,
#    jusText) replaced a result by length alone; we run readability ourselves
#    and use it as evidence instead.
# 2. readability on the same parsed tree (about a third of a trafilatura
#    call): a second opinion. When its words agree with the primary's
#    (agreement >= DOUBT_BELOW), the primary stands: most pages end here.
# 3. Doubt: trafilatura's balanced mode (fallbacks included) gives a third
#    candidate, and the candidate that agrees most with the other two wins,
#    less its share of link text, plus the share of the page's description
#    it contains (see choose()). A wrong block -- an author biography, a
#    sidebar list -- agrees with nobody; the article agrees with one other.
#    A candidate that is two others' blocks together (a post and a sidebar)
#    is no vote; the choice is between the blocks (_union_of()). Nor is
#    balanced mode handing back readability's text (its fallback) when the
#    primary lies whole inside it: one opinion, counted once (_twin_of()).
# 4. Unfinished: when the chosen text ends on a colon ("... on the following
#    devices:"), what it announces was left out -- precision mode prunes the
#    list or the paragraphs that follow. Then trafilatura's recall mode
#    (fast, no metadata) gives one more candidate, kept when it contains the
#    chosen text and adds lines that are not link text (fuller()). One page
#    in 30-60 ends on a colon; a page's own end ("Related posts:") over a
#    list of headline links adds nothing.
# 5. The chosen text loses the lines that are, whole, an element of a form or
#    of a box named as comments, sign-up, widget, tags (refuse_form_lines):
#    what trafilatura leaves of a comment section or a newsletter box.
#    And it loses the cards it ends with: list items that each hold a heading
#    (refuse_teaser_cards), other articles' headlines and summaries; in a
#    numbered list only items that link out (a listicle's entries stay).
#
# Other settings (measured on the ScrapingHub set):
#   include_comments=False reader comments are not the article (precision
#                          +0.003; the benchmark's bodies leave them out).
#   include_tables=True    (default) off costs 0.012 of recall: tables in
#                          news articles are content (results, figures).
#   deduplicate=False      (default) on costs 0.017 of recall: it drops
#                          repeated paragraphs that belong to the body.
#   metadata               title, author, date, site name, description, by
#                          trafilatura's own functions (_metadata) without
#                          the categories, tags and licence it would add
#                          (htmldate's extensive search is kept: the same
#                          dates on every page of a 146-page sample).
_EXTRACTION_OPTIONS: Final[dict[str, Any]] = {
    "favor_precision": True,
    "fast": True,
    "include_comments": False,
    "include_tables": True,
    "include_images": False,
    "include_links": False,
    "include_formatting": False,
    "deduplicate": False,
    # Metadata is ours (_metadata): trafilatura's adds categories, tags and
    # a licence we do not keep, a fifth of the extraction call.
    "with_metadata": False,
}
# htmldate returns a bare day by default; ask for the time and the offset
# when the page gives them, so we can convert to UTC.
_DATE_OPTIONS: Final[dict[str, Any]] = {
    "outputformat": "%Y-%m-%dT%H:%M:%S%z",
    "original_date": True,
    "extensive_search": True,
}
# The doubtful pages' third candidate: balanced mode with trafilatura's own
# fallbacks, no metadata (the primary has it).
_BALANCED_OPTIONS: Final[dict[str, Any]] = {
    **_EXTRACTION_OPTIONS,
    "favor_precision": False,
    "fast": False,
    "with_metadata": False,
}

# The unfinished page's candidate: recall mode, without the fallbacks (on
# the tuning half they add nothing there) or metadata.
_RECALL_OPTIONS: Final[dict[str, Any]] = {
    **_EXTRACTION_OPTIONS,
    "favor_precision": False,
    "favor_recall": True,
    "with_metadata": False,
}

# Fewer words than this is not an article but a stub (consent wall, "page not
# found", a section front that only lists links). The shortest of the 181
# benchmark articles has 18 words.
MIN_WORDS: Final = 15

# Below this agreement between the primary and readability, the page is
# doubtful and a third candidate is extracted. On the tuning halves 0.5 and
# 0.7 score alike (0.7 fetches the third candidate on a third more pages);
# about one page in five is doubtful.
DOUBT_BELOW: Final = 0.5
# A candidate's score: mean agreement with the others, minus LINK_WEIGHT
# times the share of its text that is link text (a menu, a list of
# headlines), plus DESCRIPTION_WEIGHT times the share of the page's
# description (og:description, at least DESCRIPTION_MIN_WORDS words) found in
# it: the lead usually restates it. Each adds about 0.001-0.002 of F1 on
# the tuning halves; agreement does the rest.
LINK_WEIGHT: Final = 1.0
DESCRIPTION_WEIGHT: Final = 0.1
DESCRIPTION_MIN_WORDS: Final = 5
# Two blocks in one: a candidate that holds at least UNION_CONTAINS of each
# other candidate's words, where those others share less than UNION_PARTS_BELOW
# (they found different blocks of the page: a post and a sidebar), is the
# two blocks together; it agrees with both only because it is both, so it
# is no vote, and choose() picks between the blocks. Two parts of one
# article share its topic's words (0.3 on the one such page of the tuning
# halves); a post and a sidebar share function words (0.02-0.15). Any bound
# from 0.16 to 0.29 gives the same figures, and 0.8-0.95 for the containment.
UNION_CONTAINS: Final = 0.9
UNION_PARTS_BELOW: Final = 0.25
# One opinion counted twice: balanced mode (fast=False) replaces its own text
# by readability's -- the same algorithm on the same tree -- when that is
# more than twice as long (trafilatura's fallback), and the two then agree
# word for word. When the primary lies whole inside readability's text
# (NESTED_CONTAINS of its words: no word of another block), nothing says it
# is a wrong block; the only question is whether readability's extra text is
# article, and a copy of readability cannot answer it. The twin (agreement
# >= TWIN_AGREEMENT with an earlier candidate) is then left out, and the
# choice is the primary's against readability's on link text and the
# description, the primary winning a tie, as when they agree. The twin is
# word for word readability's text (agreement 1: the same words, however
# split into lines); a candidate that merely agrees at 0.95 (ScrapingHub
# b3c19dd5: readability less a breadcrumb, 0.966) is another opinion and
# keeps its vote. On both sets every twin caught at 0.95 that changed a
# choice agrees at exactly 1. The nesting bound is the tuning halves' (at
# 0.9 one more page changes: a primary holding a headline readability lacks).
TWIN_AGREEMENT: Final = 1.0
NESTED_CONTAINS: Final = 0.99
# The recall-mode text replaces an unfinished one when it holds at least
# this share of the unfinished text's words (it continues the same text,
# not another block) and at most FULLER_MAX_LINK_SHARE of what it adds is
# link text (a list of headlines is no continuation).
FULLER_MIN_CONTAINED: Final = 0.9
FULLER_MAX_LINK_SHARE: Final = 0.5
# A list whose items each hold a heading is a list of cards: other articles'
# headlines and summaries ("latest news", "more from this site"). The text's
# closing run of at least MIN_CARDS such items, from a list of at least
# MIN_CARDS of them, goes (refuse_teaser_cards). In a numbered list only the
# items that link out count: a listicle's entries are numbered and headed too.
MIN_CARDS: Final = 2

_WORD = re.compile(r"\w+")
# _decode: a page's head ends here (or by _HEAD_BYTES); runs of ASCII and
# whole UTF-8 sequences (possessive: no state kept per character).
_HEAD_END: Final = re.compile(rb"</head\s*>", re.IGNORECASE)
_HEAD_BYTES: Final = 16384
_VALID_UTF8: Final = re.compile(
    rb"(?:[\x00-\x7f]+|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]"
    rb"|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})++")
_CONTINUATIONS: Final = re.compile(rb"[\x80-\xbf]*")
# windows-1252's punctuation bytes (Word's quotes, dashes, ellipsis), 0x80-0x9F.
_WORD_PUNCTUATION: Final = bytes(range(0x80, 0xA0))
# _stray_bytes_stand_alone: this many stray bytes of any kind may be pasted.
_FEW_STRAYS: Final = 3
_SPACE = re.compile(r"\s+")
_SPACES_IN_LINE = re.compile(r"[^\S\n]+")
_LANG_TAG = re.compile(r"([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*")
_LANG_XPATHS: Final = (
    "/html/@lang",
    "/html/@xml:lang",
    "//meta[translate(@http-equiv,'CONTENT-LANGUAGE','content-language')"
    "='content-language']/@content",
    "//meta[@property='og:locale']/@content",
)
# Every description the page declares: trafilatura's metadata keeps one (an
# itemprop "description" of the blog's name can hide the post's own
# <meta name="description">), and any of them restating a candidate's lead is
# evidence for it (choose()).
_KEYS: Final = (
    "concat(' ', translate(concat(@name, ' ', @property, ' ', @itemprop),"
    " 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), ' ')"
)
_DESCRIPTIONS: Final = lxml.etree.XPath(
    "//meta[" + " or ".join(f"contains({_KEYS}, ' {key} ')" for key in
                            ("description", "og:description", "twitter:description"))
    + "]/@content"
)
# The page's text with a line break in it, except where it is kept. Only
# text with words in it: whitespace between tags is most of a page's text
# nodes (the indentation) and checking them all costs 0.08 of a trafilatura
# call; this costs 0.03.
_SOURCE_BREAKS: Final = lxml.etree.XPath(
    "//text()[not(parent::script or parent::style)][contains(., '\n')][normalize-space()]"
    "[not(ancestor::pre or ancestor::textarea)]"
)
# In readability's summary (a small tree) the whitespace between inline tags
# too: it is joined into lines where a break in it would split a sentence.
_ALL_SOURCE_BREAKS: Final = lxml.etree.XPath(
    "//text()[contains(., '\n')][not(ancestor::pre or ancestor::textarea)]"
)
# Where a page keeps what is not the article around it: a form, or an
# element whose class or id names comments and replies, sign-up and
# promotion boxes, widgets, tag lists or breadcrumbs. Searched in the
# lower-cased attribute ("comment" also finds "comments", "commentlist",
# "comment-body"). Chosen on the tuning halves, word group by word group:
# footer, sidebar and bio cost ScrapingHub's pages; related, share, social,
# advert and sponsor change nothing.
_FORM_CLASSES: Final = re.compile(
    r"comment|respond|reply|disqus|subscribe|newsletter|signup|promo|widget|tags|breadcrumb"
)
# The elements trafilatura deletes when empty (CUT_EMPTY_ELEMS); in precision
# mode with their tails (_free_tails_of_empty_elements).
_EMPTY_CUT: Final = tuple(sorted(CUT_EMPTY_ELEMS))
# A block of paragraphs -- 2+ <br> or <p> children -- whose bare text run
# (its own text before the first child, or the tail of a block child such as
# a photo caption) trafilatura would drop gets a <br> before it
# (_break_before_runs). The inline elements do not end a run (trafilatura
# strips them or keeps them inside the line).
_BREAK_HOSTS: Final = frozenset({
    "div", "section", "article", "main", "center", "span", "font", "body", "form",
})
_INLINE: Final = frozenset({
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "font", "i", "img",
    "kbd", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "time",
    "tt", "u", "var", "wbr",
})
_MIN_PARAGRAPH_MARKS: Final = 2
# A layout table's cell holds a table or a block of text: at least
# _LAYOUT_MIN_BLOCKS of these elements and _LAYOUT_MIN_WORDS words
# (_unwrap_layout_tables).
_LAYOUT_BLOCKS: Final = ("p", "br", "div", "ul", "ol", "blockquote", *("h1", "h2", "h3", "h4"))
_LAYOUT_MIN_BLOCKS: Final = 2
_LAYOUT_MIN_WORDS: Final = 30
_ROW_GROUPS: Final = frozenset({"tbody", "thead", "tfoot"})
# A table with this many rows of two or more cells that hold no block is data.
_LAYOUT_MAX_DATA_ROWS: Final = 2
# ... unless those rows are at most _LAYOUT_FRAME_ROWS (a banner and a footer)
# and one of its cells holds a heading or _LAYOUT_ARTICLE_WORDS words: an article.
_LAYOUT_FRAME_ROWS: Final = 2
_LAYOUT_ARTICLE_WORDS: Final = 100
# An article body cut into chunks between adverts (_join_article_chunks): a
# chunk holds at least this many words in its own paragraphs (two or three
# paragraphs; a caption or a teaser has fewer).
_CHUNK_MIN_WORDS: Final = 60
# A hover card in a sentence: a span of nothing but this many links, this
# many words or more (_drop_link_cards).
_CARD_MIN_LINKS: Final = 2
_CARD_MIN_WORDS: Final = 8
# A block of other stories links to at least this many (_drop_related_blocks).
_RELATED_MIN_LINKS: Final = 2
# Between two chunks: adverts ("Advertisement", "Story continues below
# advertisement"), no more words than this and no heading.
_CHUNK_GAP_WORDS: Final = 5
_SILENT: Final = frozenset({"script", "style", "noscript", "template"})
_COMMENTISH: Final = re.compile(r"comment|disqus|dsq-|repl(?:y|ies)|respons", re.IGNORECASE)
_HEADINGS: Final = ("h1", "h2", "h3", "h4", "h5", "h6")
# _keep_inline_spans: what precision mode alone cuts out (its first XPath is
# <header>), and what trafilatura cuts out in every mode (hidden, share
# widgets, adverts). trafilatura's own lists (2.x): a release without them
# leaves every span as it is, as before this repair.
_PRECISION_CUTS: Final = tuple(getattr(trafilatura_xpaths, "PRECISION_DISCARD_XPATH", ())[1:])
_ALWAYS_CUT: Final = tuple(getattr(trafilatura_xpaths, "OVERALL_DISCARD_XPATH", ()))
# readability's HTML to lines: a new line at each of these elements.
_BLOCKS: Final = frozenset({
    "p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr", "pre", "br",
    "article", "section", "td", "dd", "dt", "figcaption", "table", "ul", "ol",
})


class ExtractionError(Exception):
    """Nothing usable in a page; ``reason`` says why, for the rejected table."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Candidate:
    """One extractor's body for a page: ``name`` for reports, ``text`` one paragraph a line."""

    name: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """Every candidate :func:`extract` may weigh for a page, and what :func:`choose` uses.

    For measuring the choice (benchmarks/extraction_choice.py): extract()
    itself computes the third candidate on doubtful pages only.
    """

    candidates: tuple[Candidate, ...]  # precision, readability, balanced
    tree: Any  # the parsed page, for refuse_form_lines()
    links: frozenset[str]
    description: str | None
    descriptions: tuple[str, ...]  # every one the page declares (declared_descriptions())
    title: str | None
    site_name: str | None


# -- parsing: trafilatura's tree, with lxml's element class lookup in C --------------------------

# trafilatura's parser settings (a copy of its parser), with lxml's own lookup (load_html()).
_PARSER: Final = trafilatura_utils.HTML_PARSER.copy()
_PARSER.set_element_class_lookup(lxml.etree.ElementDefaultClassLookup(
    element=lxml.html.HtmlElement, comment=lxml.html.HtmlComment,
    pi=lxml.html.HtmlProcessingInstruction, entity=lxml.html.HtmlEntity,
))


def load_html(body: bytes) -> Any:
    """The page's tree as ``trafilatura.load_html(body)`` makes it, or None when it is no HTML.

    trafilatura's steps for bytes, one by one (the same decoding, repairs,
    parser settings, fallback to bytes and "not HTML" test), with two
    differences. A page that is not valid UTF-8 but declares it is decoded
    as UTF-8, as a browser does (:func:`_decode`), not by a detector's
    guess. And the parser's element class lookup: lxml.html's parser gives
    each element its Python class through ``HtmlElementClassLookup.lookup``,
    a method written in Python that lxml calls whenever Python code meets an
    element without a live proxy: each step of a walk, each XPath result, in
    trafilatura, readability, htmldate and our own walks (about 900,000
    calls extracting the 181 pages of benchmarks/processing.py, 6% of the
    extraction call). Here the lookup is lxml's own, in C, with the same
    classes: every element an ``HtmlElement``, comments ``HtmlComment``.
    Only lxml.html's form classes are gone (``FormElement``,
    ``InputElement``: ``.fields``, ``.value``), which nothing on the
    extraction path uses. Copies of the tree keep the parser, so
    trafilatura's and readability's copies walk as cheaply.
    """
    text = _decode(body)
    beginning = text[:50].lower()
    dubious = trafilatura_utils.is_dubious_html(beginning)
    text = trafilatura_utils.repair_faulty_html(text, beginning)
    tree = None
    from_bytes = False
    try:
        tree = lxml.html.fromstring(text, parser=_PARSER)
    except ValueError:  # "Unicode strings with encoding declaration are not supported."
        tree, from_bytes = _parse_bytes(text), True
    except Exception:  # noqa: BLE001 - as trafilatura: a failed parse is no tree
        tree = None
    if (tree is None or len(tree) < 1) and not from_bytes:
        tree = _parse_bytes(text)
    if tree is not None and dubious and len(tree) < 2:
        return None  # not (well-formed) HTML
    return tree


def _decode(body: bytes) -> str:
    """The page's text: trafilatura's ``decode_file``, but a UTF-8 page with stray bytes is UTF-8.

    trafilatura decodes bytes that are valid UTF-8 as UTF-8 and otherwise
    takes a charset detector's guess for the whole page. One stray byte (a
    quote pasted from Word as one windows-1252 byte, a mangled entity) then
    turns every accented letter and curly quote of a UTF-8 article into
    mojibake (a curly apostrophe as three Mac Roman letters, which split the
    word it sits in), and on a page of plain ASCII the guess can be a CJK
    codec that swallows the next letter. When the page declares UTF-8 (a
    byte-order mark, else its first ``<meta>`` charset in its head:
    :func:`pipeline.charset.declared_charset`) and its invalid bytes look
    pasted (:func:`_stray_bytes_stand_alone`), it is decoded as UTF-8 and
    each stray byte as the windows-1252 character it was typed as
    (BeautifulSoup's ``UnicodeDammit.detwingle`` does the same for Word's
    quotes). A page in another encoding under a UTF-8 declaration (Latin-1,
    windows-1251, Shift_JIS: letters in 0xA0-0xFF among the strays) keeps the
    detector's guess. Only pages that are not valid UTF-8 pay for the checks.
    """
    content = trafilatura_utils.handle_compressed_file(body)
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    end = _HEAD_END.search(content, 0, _HEAD_BYTES)
    declared = declared_charset("", content, scan=end.start() if end else _HEAD_BYTES)
    if declared in ("utf-8", "utf-8-sig") and _stray_bytes_stand_alone(content):
        return content.decode("utf-8", errors=_STRAYS_AS_CP1252).removeprefix("\ufeff")
    text: str = trafilatura_utils.decode_file(content)
    return text


def _stray_as_cp1252(error: UnicodeError) -> tuple[str, int]:
    """A decoding error handler: the invalid bytes read as windows-1252."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    # The continuation bytes (0x80-0xBF) that follow are invalid too (no
    # sequence starts with one): the whole run in one call.
    run = _CONTINUATIONS.match(error.object, error.end)  # "*": always matches
    end = run.end() if run is not None else error.end
    return error.object[error.start : end].decode("cp1252", errors="replace"), end


_STRAYS_AS_CP1252: Final = "newsmon-strays-as-cp1252"
codecs.register_error(_STRAYS_AS_CP1252, _stray_as_cp1252)


def _stray_bytes_stand_alone(content: bytes) -> bool:
    """The bytes that are no UTF-8 are pasted characters, not another encoding's text.

    A UTF-8 page's stray bytes are characters pasted from Word: its quotes,
    dashes and ellipsis (windows-1252's 0x80-0x9F, control codes in every
    ISO-8859 encoding, so never another script's letters), or the
    continuation bytes a mangled entity left behind (``&acirc;\x80\x99`` for
    a curly apostrophe). So: any number of stray bytes in 0x80-0x9F (a long
    feature pasted from Word has hundreds) and at most :data:`_FEW_STRAYS`
    others (a pasted "£" or non-breaking space; one stray byte on a plain
    ASCII page, where the detector can pick a CJK codec that swallows the
    next letter).
    A page in another encoding under a UTF-8 declaration (Latin-1,
    windows-1250/1251/1254, Shift_JIS, Big5, EUC-KR) has letters in
    0xA0-0xFF among its strays, more than a few, and keeps the detector's
    guess.
    """
    strays = _VALID_UTF8.sub(b"", content)  # the stray bytes alone, at C speed
    return len(strays.translate(None, _WORD_PUNCTUATION)) <= _FEW_STRAYS


def _parse_bytes(text: str) -> Any:
    try:
        return lxml.html.fromstring(text.encode("utf8", "surrogatepass"), parser=_PARSER)
    except Exception:  # noqa: BLE001 - as trafilatura: no tree
        return None


def _prepare(tree: Any, *, url: str) -> Document:
    """The page's metadata, then the tree made ready for the extractors (in place).

    The metadata first: a date can sit on an empty element the repairs remove.
    """
    _collapse_source_breaks(tree)
    meta = _metadata(tree, url=url)
    _unwrap_layout_tables(tree)
    _join_article_chunks(tree)
    _drop_link_cards(tree)
    _keep_inline_spans(tree)
    _drop_related_blocks(tree)
    _free_tails_of_empty_elements(tree)
    _break_before_runs(tree)
    return meta


def evidence(body: bytes, *, url: str) -> Evidence | None:
    """The candidates of ``body`` as :func:`extract` makes them; None if it is not HTML."""
    tree = load_html(body) if body.strip() else None
    if tree is None:
        return None
    meta = _prepare(tree, url=url)
    document = _bare_extraction(tree, url=url, options=_EXTRACTION_OPTIONS)
    balanced = _bare_extraction(tree, url=url, options=_BALANCED_OPTIONS)
    return Evidence(
        candidates=(Candidate("precision", _text(document.text if document else None)),
                    Candidate("readability", readability_text(deepcopy(tree))),
                    Candidate("balanced", _text(balanced.text if balanced else None))),
        tree=tree,
        links=_link_texts(tree),
        description=_optional(meta.description),
        descriptions=declared_descriptions(tree),
        title=_optional(meta.title),
        site_name=_optional(meta.sitename),
    )


def extract(body: bytes, *, url: str) -> Extracted:
    """Extract the article in ``body``, the raw bytes of the page at ``url``.

    Raises:
        ExtractionError: empty body, not HTML, or no main text of at least
            :data:`MIN_WORDS` words.
    """
    if not body.strip():
        raise ExtractionError("empty body")
    # Parse once: the same tree gives the declared language, the link texts
    # and every candidate (bare_extraction copies a tree it is given;
    # readability, which edits its input, gets a copy).
    tree = load_html(body)
    if tree is None:
        raise ExtractionError("not an HTML document")
    meta = _prepare(tree, url=url)
    document = _bare_extraction(tree, url=url, options=_EXTRACTION_OPTIONS)
    primary = Candidate("precision", _text(document.text if document else None))
    second = Candidate("readability", readability_text(deepcopy(tree)))
    chosen = primary
    if agreement(primary.text, second.text) < DOUBT_BELOW:
        balanced = _bare_extraction(tree, url=url, options=_BALANCED_OPTIONS)
        third = Candidate("balanced", _text(balanced.text if balanced else None))
        chosen = choose([primary, second, third], links=_link_texts(tree),
                        description=_optional(meta.description),
                        descriptions=declared_descriptions(tree))
    if unfinished(chosen.text):
        recall = _bare_extraction(tree, url=url, options=_RECALL_OPTIONS)
        chosen = fuller(chosen, Candidate("recall", _text(recall.text if recall else None)),
                        links=_link_texts(tree))
    text = refuse_teaser_cards(refuse_form_lines(chosen.text, tree), tree)
    if not text:
        raise ExtractionError("no main text found")
    words = word_count(text)
    if words < MIN_WORDS:
        raise ExtractionError(f"main text too short: {words} of at least {MIN_WORDS} words")
    return Extracted(
        title=_optional(meta.title),
        text=text,
        author=_optional(meta.author),
        published=_utc(meta.date),
        language=_declared_language(tree),
        site_name=_optional(meta.sitename),
    )


def choose(
    candidates: Sequence[Candidate],
    *,
    links: frozenset[str],
    description: str | None,
    descriptions: Sequence[str] = (),
) -> Candidate:
    """The candidate the evidence favours; on a tie the first one in play (the primary,
    unless it is set aside as two blocks together).

    Evidence, per candidate: its mean :func:`agreement` with the others, less
    :data:`LINK_WEIGHT` times the share of its characters in lines that are
    the text of a link of the page (``links``, whitespace-collapsed), plus
    :data:`DESCRIPTION_WEIGHT` times the largest share of a description's
    words it contains (``description``, trafilatura's, and ``descriptions``,
    the others the page declares). Not its length: a long wrong block is as
    long as an article.

    A candidate that is two others together (:func:`_union_of`) is no vote:
    it agrees with both only because it holds both blocks, a post and the
    sidebar beside it, and would win by that alone. The choice is then
    between the blocks. Nor is a twin of another candidate when the first
    one (the primary) lies whole inside it (:func:`_twin_of`): balanced mode
    handing back readability's text is one opinion, not two.
    """
    if len(candidates) < 2:
        return candidates[0]
    bags = [_bag(c.text) for c in candidates]
    twin = _twin_of(bags)
    if twin is not None:
        candidates = [c for i, c in enumerate(candidates) if i != twin]
        bags = [b for i, b in enumerate(bags) if i != twin]
    union = _union_of(bags)
    if union is not None:
        rest = [i for i in range(len(candidates)) if i != union]
        candidates, bags = [candidates[i] for i in rest], [bags[i] for i in rest]
    stated = [_bag(d) for d in (description, *descriptions)
              if d is not None and len(_WORD.findall(d)) >= DESCRIPTION_MIN_WORDS]
    best, best_score = candidates[0], float("-inf")
    for i, candidate in enumerate(candidates):
        if not candidate.text:
            continue
        others = [_similarity(bags[i], bag) for j, bag in enumerate(bags) if j != i]
        score = sum(others) / len(others) - LINK_WEIGHT * _link_share(candidate.text, links)
        if stated:
            score += DESCRIPTION_WEIGHT * max(_containment(bag, bags[i]) for bag in stated)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _twin_of(bags: Sequence[Counter[str]]) -> int | None:
    """The index of a later bag that repeats an earlier one holding the first bag whole.

    Of three or more bags: bag ``j`` agrees with an earlier bag ``i`` (both
    after the first) at least :data:`TWIN_AGREEMENT` (1: the same words),
    and ``i`` holds at least :data:`NESTED_CONTAINS` of the first bag's
    words. Balanced mode's fallback hands back readability's text when it is
    more than twice its own; counted as a second vote, it outvotes a primary
    that is all inside it. A bag that only comes close is another opinion.
    None otherwise (an empty first bag is inside nothing).
    """
    if len(bags) < 3 or not bags[0]:
        return None
    for i in range(1, len(bags)):
        if _containment(bags[0], bags[i]) < NESTED_CONTAINS:
            continue
        for j in range(i + 1, len(bags)):
            if _similarity(bags[i], bags[j]) >= TWIN_AGREEMENT:
                return j
    return None


def _union_of(bags: Sequence[Counter[str]]) -> int | None:
    """The index of the bag that holds all the others when they are different blocks.

    Only the longest bag can be it (it holds the others). It holds each
    other one (:data:`UNION_CONTAINS` of its words) and is more than each (a
    twin of one is no union: two extractors that agree), and those share
    less than :data:`UNION_PARTS_BELOW` with each other: two extractors found
    two blocks, a third took both. None otherwise (fewer than three bags, an
    empty one, or no such bag). The cheap test first: most doubtful pages'
    other two agree.
    """
    if len(bags) < 3 or any(not bag for bag in bags):
        return None
    whole = max(range(len(bags)), key=lambda i: bags[i].total())
    parts = [bag for i, bag in enumerate(bags) if i != whole]
    if any(_similarity(a, b) >= UNION_PARTS_BELOW
           for k, a in enumerate(parts) for b in parts[k + 1:]):
        return None
    if all(_containment(part, bags[whole]) >= UNION_CONTAINS
           and _containment(bags[whole], part) < UNION_CONTAINS for part in parts):
        return whole
    return None


def declared_descriptions(tree: Any) -> tuple[str, ...]:
    """Every description the page's meta tags declare, whitespace-collapsed, each once."""
    seen: dict[str, None] = {}
    for value in _DESCRIPTIONS(tree):
        text = " ".join(str(value).split())
        if text:
            seen.setdefault(text)
    return tuple(seen)


def unfinished(text: str) -> bool:
    """True when ``text`` ends on a colon: it announces something that is not there.

    "... in the following devices:" as the last line means the list was
    pruned; an article does not end that way. Punctuation, not wording:
    the same in every language that uses the colon.
    """
    end = text.rstrip()
    return end.endswith((":", "\uff1a"))


def fuller(chosen: Candidate, other: Candidate, *, links: frozenset[str]) -> Candidate:
    """``other`` when it continues ``chosen``; else ``chosen``.

    It continues when it is longer, holds at least
    :data:`FULLER_MIN_CONTAINED` of ``chosen``'s words (the same text, not
    another block), and its lines that ``chosen`` lacks are at most
    :data:`FULLER_MAX_LINK_SHARE` link text (not a list of headlines).
    """
    mine, theirs = _bag(chosen.text), _bag(other.text)
    if theirs.total() <= mine.total() or _containment(mine, theirs) < FULLER_MIN_CONTAINED:
        return chosen
    have = {" ".join(line.split()) for line in chosen.text.splitlines()}
    added = "\n".join(line for line in other.text.splitlines()
                      if " ".join(line.split()) not in have)
    if _link_share(added, links) > FULLER_MAX_LINK_SHARE:
        return chosen
    return other


def refuse_form_lines(text: str, tree: Any) -> str:
    """``text`` without the lines that are, whole, an element of a form or a boilerplate box.

    Structure, not wording: a line goes when an element inside a ``<form>``
    or inside an element whose class or id says what it is
    (:data:`_FORM_CLASSES`: comments, sign-up boxes, widgets, tag lists)
    has exactly that text -- a comment heading, a comment form's labels,
    "Sign up for our newsletter". A region that holds the text itself (its
    longest line, or its first and last) is the page's wrapper -- many sites
    put the whole page in one ``<form>`` -- and is no evidence. Only
    whole-element matches count: an article line quoted inside a longer
    comment stays.
    """
    lines = text.splitlines()
    if not lines:
        return text
    normalized = [" ".join(line.split()) for line in lines]
    longest = max(normalized, key=len)
    refused: set[str] = set()
    searched: set[Any] = set()
    for region in _form_regions(tree):
        if any(ancestor in searched for ancestor in region.iterancestors()):
            continue  # inside a region already searched
        content = " ".join(region.text_content().split())
        if longest in content or (normalized[0] in content and normalized[-1] in content):
            continue  # it holds the text: the page's wrapper, not a box beside it
        searched.add(region)
        inside = {line for line in normalized if line in content}
        if not inside:
            continue
        for element in region.iter():
            if isinstance(element.tag, str):
                block = " ".join(element.text_content().split())
                if block in inside:
                    refused.add(block)
    if not refused:
        return text
    return "\n".join(line for line, key in zip(lines, normalized, strict=True)
                     if key not in refused)


def refuse_teaser_cards(text: str, tree: Any) -> str:
    """``text`` without the teaser cards it ends with.

    A card is a list item that holds a heading (``<h1>``-``<h6>``): a list
    of them, at least :data:`MIN_CARDS`, is a list of other articles'
    headlines and summaries (the site's latest news beside a post), which
    precision mode keeps when it sits in the article's container. An
    article's own lists hold words, not headings, but for one: a numbered
    list (``<ol>``) of headed entries, a listicle's ("Ten best laptops":
    each a name and the article's review). There a card is an item that
    links out (:func:`_links_out`: its heading links to another page).
    Structure, not wording:
    a line goes when it is, whole, the text of such an item (trafilatura's
    "- " before a list item aside), and only in the run of at least
    :data:`MIN_CARDS` such lines that ends the text after other lines; a
    headed list inside the text, or one that is all of it, stays.
    """
    lines = text.splitlines()
    if len(lines) <= MIN_CARDS:
        return text
    cards = _card_texts(tree)
    if not cards:
        return text
    end = len(lines)
    while end > 0 and _list_item_text(lines[end - 1]) in cards:
        end -= 1
    if end == 0 or len(lines) - end < MIN_CARDS:
        return text
    return "\n".join(lines[:end])


def _card_texts(tree: Any) -> set[str]:
    """The texts of the items of every list of :data:`MIN_CARDS`+ cards, without whitespace.

    Without any: a heading and the paragraph after it are one line of the
    text, with or without a space between them in the page's source. In a
    numbered list (``<ol>``) only the items that link out are cards: the
    author numbered the article's own entries (a listicle's reviews, steps),
    while a ranked list of other articles ("most read") links each one.
    """
    lists: dict[Any, list[Any]] = {}
    for item in tree.iter("li"):
        if next(item.iter(*_HEADINGS), None) is not None:
            lists.setdefault(item.getparent(), []).append(item)
    texts: set[str] = set()
    for parent, items in lists.items():
        if parent is not None and parent.tag == "ol":
            items = [item for item in items if _links_out(item)]
        if len(items) >= MIN_CARDS:
            texts.update(text for item in items if (text := "".join(item.text_content().split())))
    return texts


def _links_out(item: Any) -> bool:
    """Whether a list item's heading links to another page, or the item sits inside a link.

    A card's headline is the link to its article. A link elsewhere in the
    item (a review's shop link) or a heading's anchor to itself
    (``href="#..."``, a CMS's permalink) leads to no other article.
    """
    heading = next(item.iter(*_HEADINGS), None)
    anchors = [*(heading.iter("a") if heading is not None else ()), *item.iterancestors("a")]
    return any(_leads_away(a.get("href")) for a in anchors)


def _leads_away(href: str | None) -> bool:
    """A link's target is another page: not empty, not an anchor in this one, not a script."""
    target = (href or "").strip()
    return bool(target) and not target.startswith("#") and not target.lower().startswith(
        "javascript:")


def _list_item_text(line: str) -> str:
    """A line as :func:`_card_texts` keys an item: no list mark ("- "), no whitespace."""
    text = line.strip()
    return "".join((text[2:] if text.startswith("- ") else text).split())


def _form_regions(tree: Any) -> list[Any]:
    """The forms and named boxes of :func:`refuse_form_lines`, in document order.

    A walk with a regular expression: an XPath ``translate()`` test on every
    element costs five times as much, and an XPath preselection of the
    elements with a class or an id no less than the walk.
    """
    regions = []
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag == "form":
            regions.append(element)
            continue
        names = f"{element.get('class') or ''} {element.get('id') or ''}"
        if names != " " and _FORM_CLASSES.search(names.lower()):
            regions.append(element)
    return regions


def agreement(a: str, b: str) -> float:
    """Shared words (a multiset, case-folded) over the words of the longer text: 0 to 1."""
    return _similarity(_bag(a), _bag(b))


def readability_text(tree: Any) -> str:
    """The body readability-lxml (trafilatura's fork) finds in ``tree``, one block a line.

    It edits ``tree``: pass a copy of a tree that is used again.
    """
    document = _Readability(tree, min_text_length=25)
    try:
        summary = document.summary()
    except Exception:  # noqa: BLE001 - its own failures (an empty page, odd markup) are no body
        return ""
    if not summary.strip() or document.article is None:
        return ""
    # A block starts and ends a line; the source's own line breaks do not
    # (see _collapse_source_breaks). itertext() gives the text in reading
    # order, a comment's tail but not the comment.
    root = document.article
    root.tail = None
    _collapse_source_breaks(root, _ALL_SOURCE_BREAKS)
    for element in root.iter(*_BLOCKS):
        element.text = "\n" + (element.text or "")
        element.tail = "\n" + (element.tail or "")
    return _text(_SPACES_IN_LINE.sub(" ", "".join(root.itertext())))


class _Readability(ReadabilityDocument):
    """readability that keeps the article it serialises: reading it back costs a parse."""

    __slots__ = ("article",)

    def __init__(self, doc: Any, min_text_length: int = 25) -> None:
        super().__init__(doc, min_text_length=min_text_length)
        self.article: Any = None

    def sanitize(self, node: Any, candidates: Any) -> str:
        summary: str = super().sanitize(node, candidates)
        self.article = node
        return summary


def _collapse_source_breaks(tree: Any, breaks: lxml.etree.XPath | None = None) -> None:
    """Turn the line breaks of the HTML source into spaces, outside ``<pre>`` and ``<textarea>``.

    A browser shows a paragraph wrapped at 80 columns in the source as one
    paragraph; trafilatura keeps those breaks in text that sits in a
    ``<div>`` between ``<br>`` tags, and a paragraph would reach the cleaner
    (which works on lines) in pieces. ``<br>`` and block tags still make the
    lines. ``breaks`` selects the text nodes (default: those with words).
    """
    for text in (breaks or _SOURCE_BREAKS)(tree):
        parent = text.getparent()
        if text.is_tail:
            parent.tail = _SPACE.sub(" ", text)
        else:
            parent.text = _SPACE.sub(" ", text)


def _drop_related_blocks(tree: Any) -> None:
    """Remove the blocks of other stories that a label heads (in place).

    A block whose first text is a heading that is, whole, the label of other
    stories ("You may also like", "Lire aussi", "Você pode gostar...": the
    clean stage's ``related_heading`` lines, :func:`pipeline.content.clean.is_related_label`)
    and that holds at least :data:`_RELATED_MIN_LINKS` links to other pages
    is not the article: a theme that puts its related posts, each a whole
    ``<article>`` with its text, in a container trafilatura's class names do
    not know, had them read as the article's continuation (a 139-word post
    followed by 556 words of three other posts). A label that is not its
    block's first text (an inline "Related" box in the middle of the body,
    the article going on around it) is left to the cleaner, and so is a block
    that holds an ``<h1>``: the page's title, in the wrapper a "Trending"
    strip opens, or itself a label (a column called "Trending"). So is a
    label a section of the article can carry too (``specific``: "Latest
    news" over a live blog, "Top stories" in a newsletter, "Related", "More",
    "Read more": :data:`pipeline.content.clean.GENERIC_RELATED_LABELS`).
    """
    first_texts: dict[Any, Any] = {}  # a block's first child with text, found once
    for heading in list(tree.iter(*_HEADINGS)):
        if not is_related_label(heading.text_content(), specific=True):
            continue
        block = heading.getparent()
        if block is None or block.tag in ("body", "html") or block.getparent() is None:
            continue
        if block not in first_texts:
            first_texts[block] = _first_text_child(block)
        if first_texts[block] is not heading:
            continue
        if next(block.iter("h1"), None) is not None:
            continue  # the page's title: its wrapper, or a title that is a label ("Trending")
        links = sum(map(_leads_away, (a.get("href") for a in block.iter("a"))))
        if links < _RELATED_MIN_LINKS:
            continue
        _remove_keeping_tail(block)


def _remove_keeping_tail(element: Any) -> None:
    """Remove ``element`` from its parent; the text after it (its tail) stays."""
    parent = element.getparent()
    if element.tail:
        previous = element.getprevious()
        if previous is None:
            parent.text = (parent.text or "") + element.tail
        else:
            previous.tail = (previous.tail or "") + element.tail
    parent.remove(element)


def _first_text_child(block: Any) -> Any:
    """The child of ``block`` that holds its first text (None: the block's own text is first)."""
    if (block.text or "").strip():
        return None
    for element in block:
        if element.text_content().strip() or (element.tail or "").strip():
            return element
    return None


def _drop_link_cards(tree: Any) -> None:
    """Remove the hover cards hidden in a paragraph's sentences (in place).

    A ``<span>`` inside a ``<p>`` whose whole text is the text of at least
    :data:`_CARD_MIN_LINKS` links to other pages, :data:`_CARD_MIN_WORDS`
    words or more, is no part of the sentence around it: a name's hover
    card ("Kristi Noem" shows "Kristi Lynn Noem", three of her headlines and
    "MORE" in a span the page's stylesheet hides), read into the sentence.
    A sentence's own links are words among words: the span around them
    holds text outside its links, or fewer of them, or its links have a
    space or a comma between them (a list of names the sentence gives, a
    citation); a card's lines run together ("Kristi Lynn NoemSouth Dakota
    governor...": two links with nothing between).
    """
    # The innermost first: the card, not the name's span around it (its link
    # and the card's together are links only too).
    for span in reversed(list(tree.iter("span"))):
        if next(span.iterancestors("p"), None) is None:
            continue
        links = [a for a in span.iter("a") if _leads_away(a.get("href"))]
        if len(links) < _CARD_MIN_LINKS:
            continue
        words = span.text_content().split()
        linked = sum(len(a.text_content().split()) for a in links)
        if len(words) < _CARD_MIN_WORDS or linked < len(words):
            continue
        if any(next(a.iterancestors("a"), None) is not None for a in links):
            continue  # a link inside a link: no card
        if not any(_run_together(a) for a in links):
            continue  # a list the sentence names ("Joe Biden, Bernie Sanders"): no card
        _remove_keeping_tail(span)


def _run_together(link: Any) -> bool:
    """Whether the next link follows ``link`` with nothing between (a card's
    lines: "Kristi Lynn NoemSouth Dakota governor..."; a sentence's links
    have a space or a comma between them)."""
    following = link.getnext()
    return (not link.tail and following is not None and following.tag == "a"
            and link.text_content()[-1:].strip() != ""
            and following.text_content()[:1].strip() != "")


def _keep_inline_spans(tree: Any) -> None:
    """Drop the class, id and style of a ``<span>`` in the middle of a paragraph's text.

    Only a span that precision mode alone cuts out (:data:`_PRECISION_CUTS`:
    class "link", "bottom...", a border): a span that trafilatura drops in
    every mode (``display:none``, a "hidden" class, a share widget's "Click
    to tweet", :data:`_ALWAYS_CUT`) is no word of the sentence and keeps its
    attributes. One walk of each paragraph, however many spans it holds.
    """
    paragraphs: dict[Any, set[Any]] = {}
    for span in tree.iter("span"):
        if (span.get("class") or span.get("id") or span.get("style")) and (
                span.tail or "").strip():
            paragraph = next(span.iterancestors("p"), None)
            if paragraph is not None:
                paragraphs.setdefault(paragraph, set()).add(span)
    # The XPaths run on those paragraphs only (a tree-wide run of trafilatura's
    # lists cost a tenth of its extraction call).
    for paragraph, candidates in paragraphs.items():
        cut = {span for xpath in _PRECISION_CUTS for span in xpath(paragraph)} & candidates
        if not cut:
            continue
        cut.difference_update(element for xpath in _ALWAYS_CUT for element in xpath(paragraph))
        for span in _after_text(paragraph, cut):
            for name in ("class", "id", "style"):
                span.attrib.pop(name, None)


def _after_text(paragraph: Any, elements: set[Any]) -> list[Any]:
    """The ``elements`` (descendants of ``paragraph``) that some of its text comes before."""
    seen = bool((paragraph.text or "").strip())
    found = []
    for event, node in lxml.etree.iterwalk(paragraph, events=("start", "end", "comment", "pi")):
        if node is paragraph:
            continue
        if event == "start":
            if seen and node in elements:
                found.append(node)
            elif not seen:
                seen = bool((node.text or "").strip())
        elif not seen:  # an element's end, a comment: its tail follows
            seen = bool((node.tail or "").strip())
    return found


def _paragraph_words(element: Any) -> int:
    """The words of ``element``'s own paragraphs (its ``<p>`` children)."""
    return sum(len(child.text_content().split()) for child in element if child.tag == "p")


def _in_comments(element: Any) -> bool:
    """Whether ``element`` or an ancestor is named as comments (class or id)."""
    return any(_COMMENTISH.search(f"{e.get('class') or ''} {e.get('id') or ''}")
               for e in itertools.chain((element,), element.iterancestors()))


class _Order:
    """The document order of a tree's nodes, taken once (_join_article_chunks)."""

    def __init__(self, tree: Any) -> None:
        self.nodes = list(tree.iter())
        self.index = {node: i for i, node in enumerate(self.nodes)}
        self.h1 = [i for i, node in enumerate(self.nodes) if node.tag == "h1"]

    def end(self, element: Any) -> int:
        """The position of ``element``'s last descendant (its own if it has none)."""
        last = element
        for last in element.iter():  # noqa: B007 - the last one is wanted
            pass
        return self.index[last]


def _heading_between(order: _Order, first: Any, last: Any) -> bool:
    """Whether an ``<h1>`` (another article's title) lies after the start of
    ``first`` and before ``last``, outside ``first``."""
    i = bisect.bisect_right(order.h1, order.end(first))
    return i < len(order.h1) and order.h1[i] < order.index[last]


def _same_slot(order: _Order, chunks: list[Any]) -> list[Any]:
    """``chunks`` and the elements of their slot between them that hold fewer
    words (a chunk of one short paragraph between two adverts), in order."""
    first = chunks[0]
    parent = first.getparent()
    slot = (first.tag, first.get("class"), parent.tag, parent.get("class"))
    members = set(chunks)
    starts = [order.index[chunk] for chunk in chunks]
    found: list[Any] = []
    covered = -1  # the end of the last element taken: none inside another
    for i in range(starts[0], starts[-1] + 1):
        node = order.nodes[i]
        if i <= covered:
            continue
        if node not in members:
            if node.tag != slot[0] or node.get("class") != slot[1]:
                continue
            up = node.getparent()
            end = order.end(node)
            following = starts[bisect.bisect_right(starts, i)]
            if up is None or (up.tag, up.get("class")) != slot[2:] or end >= following:
                continue
        found.append(node)
        covered = order.end(node)
    return found


def _gap(order: _Order, before: Any, after: Any) -> tuple[int, bool]:
    """The words between ``before`` and ``after`` (outside both), and whether
    a heading is among them."""
    inside_after = set(after.iterancestors())
    parts = [before.tail or ""]
    for ancestor in before.iterancestors():
        if ancestor in inside_after:
            break
        parts.append(ancestor.tail or "")
    heading = False
    silent = -1  # the end of a script or style: its text is no page text
    for i in range(order.end(before) + 1, order.index[after]):
        node = order.nodes[i]
        if isinstance(node.tag, str) and i > silent:
            heading = heading or node.tag in _HEADINGS
            if node.tag in _SILENT:
                silent = order.end(node)
            else:
                parts.append(node.text or "")
        if node not in inside_after:  # so it ends before ``after`` starts
            parts.append(node.tail or "")
    return len("".join(" " + part for part in parts).split()), heading


def _join_article_chunks(tree: Any) -> None:
    """Join an article body cut into chunks back into one element (in place).

    Some templates cut the body into chunks between adverts: Wired's
    ``div.body`` in one grid row each, the body's paragraphs in two to ten
    copies of one element. trafilatura takes the first element its patterns
    match, readability the largest: each extractor gets one chunk (on the two
    Wired pages of the ScrapingHub set, 502 and 584 words of 1,420 and 1,372).
    Chunks are elements (``div``, ``section``) with the same tag and class,
    each with at least :data:`_CHUNK_MIN_WORDS` words in its own paragraphs,
    whose parents have the same tag and class too (one slot of the template,
    repeated: a fact check's quoted claim in the body's class but in a box of
    its own is no chunk), none inside another, all in one ``<article>`` (or
    none), with no ``<h1>`` between the first and the last (an infinite scroll's
    next article has its own title), and none in comments (class or id: a
    blog's comment bodies repeat one element too). Of such groups only the
    one with the most words is joined, and only when together they hold more
    than any other element's paragraphs: joined, they are the page's main
    text (a sidebar's teasers, repeated, hold less than the article). None
    of them, or of their parents, has an id (forum posts, reviews, a blog's
    widgets: items of a list, each named). The group then takes the
    elements of its slot between its chunks that hold fewer words (a short
    chunk between two adverts), and it is joined only when between each two
    of them lie adverts alone: no heading (a listicle's entries, a live blog's
    updates, the next story), at most :data:`_CHUNK_GAP_WORDS` words (a pull
    quote, a caption): joined, whatever lay between would move after the
    text. Each later chunk's children move to the end of the first, in
    order; what lay between them (adverts) stays where it was.
    """
    groups: dict[tuple[str, str], list[Any]] = {}
    words: dict[Any, int] = {}
    for element in tree.iter("div", "section", "article", "td", "main"):
        count = _paragraph_words(element)
        if count >= _CHUNK_MIN_WORDS:
            words[element] = count
            name = element.get("class")
            if name and element.tag in ("div", "section"):
                groups.setdefault((element.tag, name), []).append(element)
    candidates = [chunks for chunks in groups.values() if len(chunks) >= 2]
    if not candidates:
        return
    order = _Order(tree)
    best: list[Any] = []
    for chunks in candidates:
        if _one_body(order, chunks) and (
                sum(map(words.__getitem__, chunks)) > sum(map(words.__getitem__, best))):
            best = chunks
    members = set(best)
    if not best or sum(map(words.__getitem__, best)) <= max(
            (n for element, n in words.items() if element not in members), default=0):
        return
    best = _same_slot(order, best)
    for before, after in itertools.pairwise(best):
        count, heading = _gap(order, before, after)
        if heading or count > _CHUNK_GAP_WORDS:
            return  # a heading, a caption, a pull quote: joined, they would move
    first = best[0]
    for chunk in best[1:]:
        first.extend(list(chunk))
        _remove_keeping_tail(chunk)


def _one_body(order: _Order, chunks: list[Any]) -> bool:
    """Whether ``chunks`` (same tag and class) read as one body cut in pieces
    (see :func:`_join_article_chunks`)."""
    if any(map(_in_comments, chunks)):
        return False
    if any(chunk.get("id") or chunk.getparent().get("id") for chunk in chunks):
        return False  # items of a list, each named: forum posts, reviews, widgets
    if len({(chunk.getparent().tag, chunk.getparent().get("class")) for chunk in chunks}) > 1:
        return False
    members = set(chunks)
    if any(not members.isdisjoint(chunk.iterancestors()) for chunk in chunks):
        return False  # nested: one element's paragraphs counted twice
    if len({next(chunk.iterancestors("article"), None) for chunk in chunks}) > 1:
        return False
    return not _heading_between(order, chunks[0], chunks[-1])


def _unwrap_layout_tables(tree: Any) -> None:
    """Turn the tables that lay a page out into the blocks they stand for.

    A page laid out with ``<table>`` puts its article in a cell (one big cell,
    often a table inside a table) as paragraphs, ``<br>`` runs and lists.
    trafilatura reads every table as data: a row becomes one line of cells
    joined by "|", the paragraphs of a cell run together, and a list in a
    cell is dropped outside recall mode. A table is layout when none of its
    own cells is a header (``<th>``) and one of them holds a table or a block
    of text: :data:`_LAYOUT_MIN_BLOCKS` paragraphs, ``<br>`` or lists and
    :data:`_LAYOUT_MIN_WORDS` words, and fewer than
    :data:`_LAYOUT_MAX_DATA_ROWS` of its rows are data (:func:`_is_data_row`:
    a results table keeps its rows of scores when one cell holds a referee's
    note), or at most :data:`_LAYOUT_FRAME_ROWS` are and a cell holds an
    article (:func:`_holds_article`: the short rows are a banner and a
    footer). Its own rows and cells become ``<div>`` (a nested data table
    stays a table): one pass over the tables, their rows and cells.
    """
    for table in list(tree.iter("table")):
        rows = [child for child in table if child.tag == "tr"]
        groups = [child for child in table if child.tag in _ROW_GROUPS]
        for group in groups:
            rows.extend(child for child in group if child.tag == "tr")
        cells = [cell for row in rows for cell in row if cell.tag in ("td", "th")]
        if not cells or any(cell.tag == "th" for cell in cells):
            continue
        holds = {cell: _holds_blocks(cell) for cell in cells if cell.tag == "td"}
        if not any(holds.values()):
            continue
        # Rows of two or more short cells of text are data, whatever one cell
        # holds: a results table with a referee's note, a price list with a
        # nested table of cash and card prices. A cell of links (a menu, an
        # advert) or of nothing (a spacer, a logo) is no datum. Unless a cell
        # holds a whole text (a heading, or _LAYOUT_ARTICLE_WORDS words) and
        # the short rows are no more than a banner and a footer.
        data_rows = sum(1 for row in rows if _is_data_row(row, holds))
        if data_rows >= _LAYOUT_MAX_DATA_ROWS and not (
                data_rows <= _LAYOUT_FRAME_ROWS
                and any(_holds_article(cell) for cell, held in holds.items() if held)):
            continue
        for element in (table, *groups, *rows, *cells):
            element.tag = "div"


def _is_data_row(row: Any, holds: Mapping[Any, bool]) -> bool:
    """Two or more data cells and no cell holding a block (:func:`_unwrap_layout_tables`).

    A data cell has text of its own (:func:`_holds_text`), or, in a row of
    three or more, is one link (a linked team name or headline).
    """
    if any(holds.get(cell, False) for cell in row):
        return False
    data = sum(1 for cell in row if cell.tag == "td" and (
        _holds_text(cell) or (len(row) >= 3 and _is_one_link(cell))))
    return data >= 2


def _holds_article(cell: Any) -> bool:
    """A cell that holds a heading or :data:`_LAYOUT_ARTICLE_WORDS` words: a page's text.

    Beside at most one other cell of text (menus, adverts and spacers beside
    it do not count): a cell beside two or more (a home side, a score, an
    away side) is a data row's notes.
    """
    row = cell.getparent()
    if row is not None and sum(
            1 for other in row
            if other is not cell and other.tag == "td" and _holds_text(other)) > 1:
        return False
    if next(cell.iter(*_HEADINGS), None) is not None:
        return True
    return len(cell.text_content().split()) >= _LAYOUT_ARTICLE_WORDS


def _holds_text(cell: Any) -> bool:
    """A cell with text of its own: some words, under half of them the text of links."""
    words = len(cell.text_content().split())
    if not words:
        return False
    linked = sum(len(a.text_content().split()) for a in cell.iter("a"))
    return linked * 2 < words


def _is_one_link(cell: Any) -> bool:
    """A cell whose words are one link's: a linked team or headline in a row of data."""
    anchors = list(cell.iter("a"))
    return len(anchors) == 1 and bool(anchors[0].text_content().split()) and (
        anchors[0].text_content().split() == cell.text_content().split())


def _holds_blocks(cell: Any) -> bool:
    """A cell that holds a table, or a block of text (:func:`_unwrap_layout_tables`)."""
    if next(cell.iter("table"), None) is not None:
        return True
    marks = itertools.islice(cell.iter(*_LAYOUT_BLOCKS), _LAYOUT_MIN_BLOCKS)
    if sum(1 for _ in marks) < _LAYOUT_MIN_BLOCKS:
        return False
    return len(cell.text_content().split()) >= _LAYOUT_MIN_WORDS


def _free_tails_of_empty_elements(tree: Any) -> None:
    """Delete the empty elements trafilatura deletes, but keep the text that follows them.

    trafilatura's first pass deletes empty ``<span>``, ``<strong>``,
    ``<div>`` and the like (:data:`_EMPTY_CUT`), and in precision mode their
    tails go with them: the text that follows in the source. A paragraph that
    starts after an empty element (``<p><strong></strong>It was ...``, a
    WordPress ``<span id="more-7770"></span>`` marker) was lost whole. The
    other modes keep the tail (joined to the text before it), as this does
    for every mode: one walk over those elements. An inline one's tail joins
    the text before it; an empty block's (``<p></p>``, a ``<div
    class="clear">``) starts a line after a ``<br>`` in its place, as the
    browser shows it. All the empty ones go, not only those with words after
    them: a tail joined to an empty neighbour that stayed would be lost with it.
    """
    empty = [element for element in tree.iter(*_EMPTY_CUT)
             if element.text is None and len(element) == 0]
    for element in empty:
        parent = element.getparent()
        if parent is None:
            continue
        if element.tag not in _INLINE and _has_words(element.tail):
            # An empty block (<p></p>, a <div class="clear">) ends a line: the
            # text after it starts the next one, as a <br> would.
            br = parent.makeelement("br", {})
            br.tail = element.tail
            parent.replace(element, br)
            continue
        _remove_keeping_tail(element)


def _break_before_runs(tree: Any) -> None:
    """Give each bare text run of a block of paragraphs the ``<br>`` it lacks.

    A post written as text between ``<br>`` tags (not in ``<p>``) reaches
    trafilatura as line breaks with paragraphs in their tails, and it keeps
    those; but the run before the first ``<br>`` is the block's own text, and
    a run right after a photo caption is that caption's tail, and it keeps
    neither unless the page has almost no ``<p>`` text (then it reads whole
    ``<div>`` elements). That run is the lead, the most important sentence of
    a news report. The same holds for a bare paragraph between the ``<p>``
    paragraphs of a body. A ``<br>`` before it makes it one more line like
    the others. Wrapping the runs in ``<p>`` instead changes what
    trafilatura reads (the page's ``<p>`` text decides whether it reads
    ``<div>`` text at all) and lost most of two posts. A block qualifies with
    :data:`_MIN_PARAGRAPH_MARKS` ``<br>`` or ``<p>`` children: one pass over
    those elements, then the children of the blocks found.
    """
    marks: Counter[Any] = Counter(mark.getparent() for mark in tree.iter("br", "p"))
    for host, count in marks.items():
        if count < _MIN_PARAGRAPH_MARKS or host is None or host.tag not in _BREAK_HOSTS:
            continue
        if host.tag not in _INLINE and _has_words(host.text):
            # Not in a <span> or <font>: its text continues the line before it.
            br = host.makeelement("br", {})
            br.tail, host.text = host.text, None
            host.insert(0, br)
        for child in list(host):
            if not isinstance(child.tag, str) or child.tag == "br" or child.tag in _INLINE:
                continue
            if _has_words(child.tail):
                br = host.makeelement("br", {})
                br.tail, child.tail = child.tail, None
                child.addnext(br)


def _has_words(text: str | None) -> bool:
    return bool(text and not text.isspace())


def _bag(text: str) -> Counter[str]:
    return Counter(_WORD.findall(text.casefold()))


def _similarity(a: Counter[str], b: Counter[str]) -> float:
    longest = max(a.total(), b.total())
    return (a & b).total() / longest if longest else 0.0


def _containment(part: Counter[str], whole: Counter[str]) -> float:
    size = part.total()
    return (part & whole).total() / size if size else 0.0


def _link_texts(tree: Any) -> frozenset[str]:
    texts = (" ".join(a.text_content().split()) for a in tree.iter("a"))
    return frozenset(t for t in texts if t)


def _link_share(text: str, links: frozenset[str]) -> float:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    total = sum(len(line) for line in lines)
    linked = sum(len(line) for line in lines if line in links)
    return linked / total if total else 1.0


def _metadata(tree: Any, *, url: str) -> Document:
    """The page's title, author, date, site name and description.

    trafilatura's ``extract_metadata`` for the fields we keep, in its order
    and with its functions (meta tags, then JSON-LD, then the page itself),
    without the categories, tags and licence it also searches for (a fifth
    of an extraction call, for fields newsmon does not store). Read-only:
    the page's author comes from a walk (:func:`_page_author`), and when that
    cannot decide, from trafilatura's search on a copy.
    """
    meta = trafilatura_metadata.examine_meta(tree)
    if meta.author and " " not in meta.author:
        meta.author = None  # a bare handle, as trafilatura judges it
    # trafilatura's own JSON-LD bugs leave the meta tags standing, as in its version.
    with contextlib.suppress(Exception):
        meta = trafilatura_metadata.extract_meta_json(tree, meta)
    meta.title = meta.title or trafilatura_metadata.extract_title(tree)
    meta.author = meta.author or _page_author(tree)
    meta.url = meta.url or trafilatura_metadata.extract_url(tree, url)
    meta.date = find_date(tree, **_DATE_OPTIONS, url=meta.url)
    meta.sitename = meta.sitename or trafilatura_metadata.extract_sitename(tree)
    if meta.sitename:
        meta.sitename = meta.sitename.lstrip("@")
        if "." not in meta.sitename and not meta.sitename[0].isupper():
            meta.sitename = meta.sitename.title()
    elif meta.url and (match := trafilatura_metadata.META_URL.match(meta.url)):
        meta.sitename = match[1]
    meta.clean_and_trim()
    return meta


def _page_author(tree: Any) -> str | None:
    """trafilatura's ``extract_author``: from one walk (:func:`byline`) when that can decide."""
    found = byline(tree)
    if found is UNDECIDED:
        author: str | None = trafilatura_metadata.extract_author(tree)
        return author
    return normalize_authors(None, found) if isinstance(found, str) else None


def _bare_extraction(tree: Any, *, url: str, options: Mapping[str, Any]) -> Document | None:
    document = trafilatura.bare_extraction(tree, url=url, **options)
    # None: trafilatura found no main text. It returns a dict only when asked
    # to (as_dict), which we never do.
    return document if isinstance(document, Document) else None


def _text(value: object) -> str:
    if not isinstance(value, str):
        return ""
    # Keep one paragraph per line, without the blank lines and trailing
    # spaces that the cleaner would only have to skip.
    return "\n".join(line.strip() for line in value.splitlines() if line.strip())


def _optional(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _utc(value: object) -> datetime | None:
    """htmldate's string (with the page's offset when it gives one) as UTC.

    A bare day or a time without offset is taken as UTC: the page did not say
    otherwise, and a day is all the precision such pages offer.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _declared_language(tree: Any) -> str | None:
    """The page's own language declaration, as an ISO 639 code ("en-US" -> "en").

    Only what the page declares: guessing from the text is the tag stage's
    job, and a declared tag is what `lang:` searches should see.
    """
    for xpath in _LANG_XPATHS:
        for value in tree.xpath(xpath):
            match = _LANG_TAG.fullmatch(str(value).strip())
            if match:
                return match.group(1).lower()
    return None
