"""The extract stage: the main text and metadata of an article page.

This is the only module that imports trafilatura. It gets the bytes our own
HTTP client fetched (trafilatura's downloader is never used), runs
``bare_extraction`` once, and converts trafilatura's ``Document`` into our
:class:`~pipeline.models.Extracted` right here, so no trafilatura type travels
further.

A page with nothing usable raises :class:`ExtractionError` rather than
returning None: the caller records ``error.reason`` in the ``rejected`` table,
and "no main text" is a different story from "not HTML" when someone looks at
why a feed's articles are missing. Any other exception is a bug, not a bad
page, and propagates.

The text keeps trafilatura's line structure, one paragraph per line: the
clean stage works on lines.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

import trafilatura
from trafilatura.settings import Document

from pipeline.models import Extracted

__all__ = ["MIN_WORDS", "RETRY_BELOW_CHARS", "RETRY_GAIN", "ExtractionError", "extract"]

# Settings chosen with benchmarks/extraction_quality.py on the 181 pages of the
# ScrapingHub article-extraction benchmark (trafilatura 2.3.1). F1 of
# extract+clean, trafilatura's defaults alone being 0.958:
#
#   balanced (default) mode                      0.966
#   fast=True (no fallback extractors)           0.969, 1.25x quicker
#   favor_precision=True                         0.971
#   favor_precision=True + balanced retry below  0.974  <- chosen
#
#   favor_precision=True   precision 0.942 -> 0.958 before cleaning, recall
#                          0.978 -> 0.971; the retry below wins most of
#                          that recall back.
#   include_comments=False reader comments are not the article (precision
#                          +0.003; the benchmark's bodies leave them out).
#   include_tables=True    (default) off costs 0.012 of recall: tables in
#                          news articles are content (results, figures).
#   deduplicate=False      (default) on costs 0.017 of recall: it drops
#                          repeated paragraphs that belong to the body.
#   with_metadata=True     title, author, date, site name: most of our extra
#                          time over trafilatura's defaults (~25%).
_EXTRACTION_OPTIONS: Final[dict[str, Any]] = {
    "favor_precision": True,
    "include_comments": False,
    "include_tables": True,
    "include_images": False,
    "include_links": False,
    "include_formatting": False,
    "deduplicate": False,
    "with_metadata": True,
    # htmldate returns a bare day by default; ask for the time and the
    # offset when the page gives them, so we can convert to UTC.
    "date_extraction_params": {
        "outputformat": "%Y-%m-%dT%H:%M:%S%z",
        "original_date": True,
        "extensive_search": True,
    },
}

# Fewer words than this is not an article but a stub (consent wall, "page not
# found", a section front that only lists links). The shortest of the 181
# benchmark articles has 18 words.
MIN_WORDS: Final = 15

# The fallback to balanced mode: below this many characters of text, and only
# if balanced mode gives this many times more. On the benchmark any threshold
# from 300 to 2,000 characters picks the same single page (F1 +0.003); a
# lower ratio (1.5) also swaps in pages where the extra text is boilerplate.
RETRY_BELOW_CHARS: Final = 1000
RETRY_GAIN: Final = 2.0

# Some prose: 30 characters without a full stop, then one (CJK ones too).
_SENTENCE = re.compile(r"\w[^.!?\u2026\u3002\uff01\uff1f\n]{30,}[.!?\u2026\u3002\uff01\uff1f]")
_LANG_TAG = re.compile(r"([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*")
_LANG_XPATHS: Final = (
    "/html/@lang",
    "/html/@xml:lang",
    "//meta[translate(@http-equiv,'CONTENT-LANGUAGE','content-language')"
    "='content-language']/@content",
    "//meta[@property='og:locale']/@content",
)


class ExtractionError(Exception):
    """Nothing usable in a page; ``reason`` says why, for the rejected table."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def extract(body: bytes, *, url: str) -> Extracted:
    """Extract the article in ``body``, the raw bytes of the page at ``url``.

    Raises:
        ExtractionError: empty body, not HTML, or no main text of at least
            :data:`MIN_WORDS` words.
    """
    if not body.strip():
        raise ExtractionError("empty body")
    # Parse once: the same tree gives the declared language and feeds the
    # extractor (bare_extraction copies a tree it is given, we keep ours).
    tree = trafilatura.load_html(body)
    if tree is None:
        raise ExtractionError("not an HTML document")
    document = _bare_extraction(tree, url=url, precision=True)
    if _length(document) < RETRY_BELOW_CHARS:
        # Precision mode sometimes keeps only a fragment of the page (on the
        # benchmark: a print notice instead of a whole barrons.com article).
        # The balanced mode is tried on such short results only, and wins
        # only if it finds clearly more, and prose: on a section front it
        # returns the menu and the list of headlines.
        retry = _bare_extraction(tree, url=url, precision=False)
        if (
            retry is not None
            and _length(retry) > RETRY_GAIN * _length(document)
            and _SENTENCE.search(retry.text or "")
        ):
            document = retry
    if document is None:
        raise ExtractionError("no main text found")
    text = _text(document.text)
    words = len(text.split())
    if words < MIN_WORDS:
        raise ExtractionError(f"main text too short: {words} of at least {MIN_WORDS} words")
    return Extracted(
        title=_optional(document.title),
        text=text,
        author=_optional(document.author),
        published=_utc(document.date),
        language=_declared_language(tree),
        site_name=_optional(document.sitename),
    )


def _bare_extraction(tree: Any, *, url: str, precision: bool) -> Document | None:
    document = trafilatura.bare_extraction(
        tree, url=url, **{**_EXTRACTION_OPTIONS, "favor_precision": precision}
    )
    # None: trafilatura found no main text. It returns a dict only when asked
    # to (as_dict), which we never do.
    return document if isinstance(document, Document) else None


def _length(document: Document | None) -> int:
    return len(document.text or "") if document is not None else 0


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
