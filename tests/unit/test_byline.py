"""The page's own author, from one walk: the same answer as trafilatura's search."""

from __future__ import annotations

import pytest
import trafilatura
from trafilatura.metadata import extract_author

from pipeline.content.byline import UNDECIDED, byline
from pipeline.content.extract import _page_author

_LONG = "word " * 40

PAGES = {
    "rel author": ('<p>x</p><a rel="author" href="/a">Amira Haddad</a>', "Amira Haddad"),
    "author-name class": ('<span class="post-author-name">Omar Saleh</span>', "Omar Saleh"),
    "first xpath before second": (
        '<div class="byline">By Lina Nasser</div><span class="authorName">Sami Aziz</span>',
        "Sami Aziz"),
    "second xpath": ('<p class="byline">By Lina Nasser</p>', "By Lina Nasser"),
    "third xpath, any element": ('<li class="writer-box">Karim Said</li>', "Karim Said"),
    "inside a sidebar: deleted": (
        '<div class="sidebar"><span class="author">Sidebar Columnist</span></div>'
        '<span class="author-name">Amira Haddad</span>', "Amira Haddad"),
    "inside comments: deleted": (
        '<section id="comments-7"><p class="byline">Commenter Name</p></section>', None),
    "a figure's credit: deleted": (
        '<figure><span class="author">Photo Agency</span></figure>', None),
    "too long, the next one": (
        f'<div class="author">{_LONG}</div><span class="byline">Rana Ali</span>', "Rana Ali"),
    "too short": ('<span class="author">A</span>', None),
    "no author anywhere": ('<div class="story"><p>Text of the story.</p></div>', None),
    "an author element": ("<author>Nour Khalil</author>", "Nour Khalil"),
    "a time inside the byline": (
        '<p class="byline">By Lina Nasser <time>2 March</time> in Beirut</p>', UNDECIDED),
    "rel me, trafilatura's quirk": ("<p><rel>me</rel>Hadi Younes</p>", UNDECIDED),
    "data-component Byline": ('<div data-component="ArticleByline">Maya Tarek</div>',
                              "Maya Tarek"),
}


def _tree(fragment: str) -> object:
    page = f"<html><head><title>t</title></head><body>{fragment}</body></html>"
    return trafilatura.load_html(page)


@pytest.mark.parametrize("name", PAGES)
def test_the_walk_decides_as_trafilaturas_search(name: str) -> None:
    fragment, expected = PAGES[name]
    assert byline(_tree(fragment)) == expected or (
        expected is UNDECIDED and byline(_tree(fragment)) is UNDECIDED)


@pytest.mark.parametrize("name", PAGES)
def test_the_author_is_trafilaturas(name: str) -> None:
    fragment, _ = PAGES[name]
    assert _page_author(_tree(fragment)) == extract_author(_tree(fragment))
