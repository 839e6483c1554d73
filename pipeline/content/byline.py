"""The author a page names in its own markup, found in one walk over the page.

When a page's meta tags and JSON-LD name no author, trafilatura searches the
page (``trafilatura.metadata.extract_author``): it copies the tree, deletes
what must not count (comment sections, sidebars, ``<time>``, ``<figure>``:
``AUTHOR_DISCARD_XPATHS``), and tries three XPaths in turn
(``AUTHOR_XPATHS``: ``rel="author"``, ``class="author-name"``, a byline...),
taking the first element whose text is 3 to 119 characters long. Each of
those five XPaths tests some twenty attribute values of every element of the
page; together with the copy they cost a third of a whole trafilatura call
for one optional field.

:func:`byline` reads the same tests (trafilatura 2.3's expressions, written
out below in their order) from one walk over the elements, without copying or
deleting anything: an element inside a discarded one does not exist for the
search, and an element's text is what trafilatura reads from the pruned copy
as long as nothing inside it is discarded. When something inside a candidate
is discarded (a ``<time>`` in a byline), the pruned text differs from the
page's, and :data:`UNDECIDED` says so: the caller runs trafilatura's own
search. tests/unit/test_extract.py checks the result against
``extract_metadata`` page by page.
"""

from __future__ import annotations

import re
from typing import Any, Final

import lxml.etree

__all__ = ["UNDECIDED", "byline"]

UNDECIDED: Final = object()

# AUTHOR_DISCARD_XPATHS[0]: these elements, with one of the class/id tests.
_DISCARD_TAGS: Final = frozenset({"a", "div", "section", "span"})
_DISCARD_CLASSES: Final = frozenset({"comments", "title", "date"})
_DISCARD_CLASS: Final = re.compile(
    r"^[Cc]omments|commentlist|comments-list|sidebar|is-hidden|quote|embedly-instagram"
    r"|article-share|article-support|print|category|meta-date|meta-reviewer"
)
_DISCARD_ID: Final = re.compile(r"^comments|commentlist|comment-list|ProductReviews")
# AUTHOR_DISCARD_XPATHS[1]: //time|//figure.
_DISCARDED_TAGS: Final = frozenset({"time", "figure"})

# AUTHOR_XPATHS[0], "specific and almost specific" (and any <author> element).
_FIRST_TAGS: Final = frozenset({"a", "address", "div", "link", "p", "span", "strong"})
_FIRST_CLASS: Final = re.compile(r"author-?name|AuthorName|authorName")
# AUTHOR_XPATHS[1], "almost generic and generic".
_SECOND_TAGS: Final = frozenset({"a", "div", "h3", "h4", "p", "span"})
_SECOND_CLASSES: Final = frozenset({"byline", "username", "byl", "BBL"})
_SECOND_ID: Final = re.compile(r"author|zuozhe|bianji|xiaobian")
_SECOND_CLASS: Final = re.compile(
    r"author|channel-name|zuozhe|bianji|xiaobian|submitted-by|posted-by|journalist-name"
)
# AUTHOR_XPATHS[2], "last resort: any element".
_THIRD_ID: Final = re.compile(r"[Aa]uthor")
_THIRD_CLASS: Final = re.compile(r"[Aa]uthor|screenname|writer|[Bb]yline")

# extract_metainfo(..., len_limit=120): a text of 3 to 119 characters.
_SHORTEST: Final = 3
_LONGEST: Final = 119


def byline(tree: Any) -> str | object | None:
    """The raw author text trafilatura's page search would take, None, or :data:`UNDECIDED`.

    The text is before ``normalize_authors`` (the caller's, with trafilatura).
    """
    discarded: set[Any] = set()
    found: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
    for element in tree.iter(lxml.etree.Element):  # elements only, not comments
        tag = element.tag
        if tag in _DISCARDED_TAGS:
            discarded.add(element)
        elif tag == "author":
            found[0].append(element)
        elif tag == "rel":
            # trafilatura's first XPath says rel='me' (no @): an element with a
            # child <rel> saying "me", whatever its attributes. Never seen on a
            # page; its own search decides.
            return UNDECIDED
        if not element.keys():
            continue  # most elements: no attribute, no other test can hold
        get = element.get
        cls, id_, itemprop = get("class") or "", get("id") or "", get("itemprop") or ""
        if tag in _DISCARD_TAGS and element is not tree and (
            id_ == "comments" or cls in _DISCARD_CLASSES
            or (id_ and _DISCARD_ID.search(id_)) or (cls and _DISCARD_CLASS.search(cls))
            or "Figure" in (get("data-component") or "")
        ):
            discarded.add(element)
        if tag in _FIRST_TAGS and tag != "author" and _first(element, cls, id_, itemprop):
            found[0].append(element)
        if tag in _SECOND_TAGS and (
            cls in _SECOND_CLASSES or "author" in itemprop
            or (id_ and _SECOND_ID.search(id_)) or (cls and _SECOND_CLASS.search(cls))
        ):
            found[1].append(element)
        if (
            "author" in itemprop or (id_ and _THIRD_ID.search(id_))
            or (cls and _THIRD_CLASS.search(cls)) or "Byline" in (get("data-component") or "")
        ):
            found[2].append(element)
    for candidates in found:
        for element in candidates:
            if element in discarded or any(a in discarded for a in element.iterancestors()):
                continue  # deleted with the discarded element: not in the searched copy
            if discarded and any(d in discarded for d in element.iterdescendants()):
                return UNDECIDED  # its text loses what is deleted inside it
            text = " ".join(" ".join(element.itertext()).split())
            if _SHORTEST <= len(text) <= _LONGEST:
                return text
    return None


def _first(element: Any, cls: str, id_: str, itemprop: str) -> bool:
    return bool(
        element.get("rel") == "author" or id_ == "author" or cls == "author"
        or itemprop == "author name"
        or element.get("data-testid") in ("AuthorCard", "AuthorURL")
        or (cls and _FIRST_CLASS.search(cls))
    )
