"""Extraction golden cases from constructed pages, and the evidence that picks a body.

``testdata/extract/<name>.html`` is a page, ``<name>.html-result`` the text that
extract + clean must give for it (served as http://127.0.0.1:8000/<name>):

- ``wrong_block``: the article is bare text with ``<br>`` breaks, beside an
  author biography in ``<p>`` paragraphs, the block precision mode likes;
- ``lead_after_caption``: a ``<br>``-separated body opening with a photo
  caption and an inline credit glued to the lead sentence;
- ``wrapped_body``: a ``<br>``-separated body whose paragraphs are wrapped
  in the HTML source, with inline links and emphasis: one line each;
- ``comment_form``: a ``<br>``-separated body whose comment section (a
  "0 Comments" heading and a comment form) sits in the article's own
  container, after its end: the heading precision mode keeps is refused.

The choice between candidates is tested on its own below with bodies of the
kinds issue 17 lists (a wrong block, a menu, a fragment), and so is the way
readability's HTML becomes lines.
"""

from __future__ import annotations

from pathlib import Path

import lxml.html
import pytest

from pipeline.content.clean import clean
from pipeline.content.extract import (
    Candidate,
    agreement,
    choose,
    extract,
    readability_text,
    refuse_form_lines,
)

TESTDATA = Path(__file__).parent / "testdata" / "extract"
CASES = sorted(p.stem for p in TESTDATA.glob("*.html"))

ARTICLE = "\n".join([
    "The ferry to the outer islands sails again on Monday after a winter of repairs.",
    "The pier was closed in November when a storm tore away part of the landing stage.",
    "Two crossings a day will run in March, rising to five in April.",
    "Shopkeepers welcomed the news, saying deliveries had been irregular all winter.",
])
BIOGRAPHY = "\n".join([
    "Maria Olsen is a senior editor who writes about transport and fisheries.",
    "Born in a fishing village, she studied history at the university in the capital.",
    "She is the author of a book about the last sailing ships of this coast.",
])
MENU = "\n".join(["Council approves new harbour wall", "Fishing quotas cut again",
                  "Lighthouse open to visitors this summer", "Weather", "Sport"])


def test_there_are_golden_pages() -> None:
    assert CASES == ["comment_form", "lead_after_caption", "wrapped_body", "wrong_block"]


@pytest.mark.parametrize("name", CASES)
def test_golden_page(name: str) -> None:
    url = f"http://127.0.0.1:8000/{name}"
    extracted = extract((TESTDATA / f"{name}.html").read_bytes(), url=url)
    cleaned = clean(extracted.text, title=extracted.title, url=url,
                    site_name=extracted.site_name)
    assert cleaned.text + "\n" == (TESTDATA / f"{name}.html-result").read_text("utf-8")


def test_the_lead_after_a_glued_credit_is_kept_and_the_credit_reported() -> None:
    url = "http://127.0.0.1:8000/lead_after_caption"
    extracted = extract((TESTDATA / "lead_after_caption.html").read_bytes(), url=url)
    cleaned = clean(extracted.text, title=extracted.title, url=url,
                    site_name=extracted.site_name)
    assert cleaned.text.startswith("The Mill Street bridge will stay closed until Friday")
    assert ("© Reuters", "copyright_credit+glued") in {(r.line, r.rule) for r in cleaned.removed}


def test_a_wrong_block_agrees_with_nobody_and_loses() -> None:
    primary = Candidate("precision", BIOGRAPHY)
    chosen = choose([primary, Candidate("readability", ARTICLE),
                     Candidate("balanced", ARTICLE + "\n" + MENU)],
                    links=frozenset(), description=None)
    assert chosen.name == "readability"


def test_link_text_counts_against_a_candidate() -> None:
    first = ARTICLE.splitlines()[0]
    candidates = [Candidate("precision", MENU + "\n" + first),
                  Candidate("readability", first + "\nWeather"),
                  Candidate("balanced", MENU + "\n" + first + "\nWeather")]
    # By agreement alone the primary, menu and all, stands; once the menu's
    # lines are known to be links of the page, the body without them wins.
    assert choose(candidates, links=frozenset(), description=None).name == "precision"
    links = frozenset(MENU.splitlines())
    assert choose(candidates, links=links, description=None).name == "readability"


def test_the_description_favours_the_body_that_restates_it() -> None:
    first_half = "\n".join(ARTICLE.splitlines()[:2])
    second_half = "\n".join(ARTICLE.splitlines()[2:])
    candidates = [Candidate("precision", second_half), Candidate("readability", first_half)]
    description = "The ferry to the outer islands sails again on Monday after repairs."
    assert choose(candidates, links=frozenset(), description=None).name == "precision"
    assert choose(candidates, links=frozenset(), description=description).name == "readability"


def test_the_primary_wins_a_tie_and_an_empty_candidate_never_wins() -> None:
    same = [Candidate("precision", ARTICLE), Candidate("readability", ARTICLE)]
    assert choose(same, links=frozenset(), description=None).name == "precision"
    empty_first = [Candidate("precision", ""), Candidate("readability", ARTICLE),
                   Candidate("balanced", ARTICLE)]
    assert choose(empty_first, links=frozenset(), description=None).name == "readability"


def test_agreement_is_the_shared_share_of_the_longer_text() -> None:
    assert agreement(ARTICLE, ARTICLE) == 1.0
    assert agreement(ARTICLE, "") == 0.0
    assert agreement("a b c d", "A B") == 0.5
    assert agreement(ARTICLE, BIOGRAPHY) < 0.5


def test_readability_lines_follow_blocks_not_the_source_layout() -> None:
    # A paragraph wrapped in the source, with a link holding bold text (its
    # tail must follow the bold text, not precede it), a comment, and text
    # after a block, which starts a line of its own.
    page = b"""<html><body><div id="story">
<p>The harbour board met on Friday and agreed to\nrepair the old pier before the
summer, after <a href="/vote">a vote <b>of nine</b> to two</a> in favour of the plan.</p>
<p>Work starts in April <!-- ad slot --> and should take about six weeks, the board said.</p>
The ferry will use the north landing until the repairs are finished in June.
</div></body></html>"""
    tree = lxml.html.document_fromstring(page)
    assert readability_text(tree).splitlines() == [
        "The harbour board met on Friday and agreed to repair the old pier before the summer, "
        "after a vote of nine to two in favour of the plan.",
        "Work starts in April and should take about six weeks, the board said.",
        "The ferry will use the north landing until the repairs are finished in June.",
    ]


def test_preformatted_text_keeps_its_lines() -> None:
    paragraphs = "".join(f"<p>{line}</p>" for line in ARTICLE.splitlines())
    page = (f"<html><body><article><h1>Ferry timetable</h1>{paragraphs}"
            "<pre>Monday   07:00\nTuesday  07:30\nFriday   08:00</pre>"
            f"<p>{BIOGRAPHY.splitlines()[0]}</p></article></body></html>").encode()
    text = extract(page, url="http://127.0.0.1:8000/timetable").text
    assert "Monday   07:00\nTuesday  07:30\nFriday   08:00" in text


def _page(body: str) -> object:
    return lxml.html.fromstring(f"<html><body>{body}</body></html>")


def test_the_comment_heading_after_the_article_is_refused() -> None:
    url = "http://127.0.0.1:8000/comment_form"
    extracted = extract((TESTDATA / "comment_form.html").read_bytes(), url=url)
    assert "0 Comments" not in extracted.text.splitlines()
    assert extracted.text.splitlines()[-1].startswith("Shopkeepers on the largest island")


def test_lines_that_are_an_element_of_a_comment_section_a_form_or_a_box_are_refused() -> None:
    lines = ARTICLE.splitlines()
    tree = _page(
        "<div class='story'>" + "".join(f"<p>{line}</p>" for line in lines) + "</div>"
        "<div id='comments'><h3>2 Comments</h3>"
        "<div class='comment-body'><p>Good news for the islands at last.</p></div></div>"
        "<form><label>Website</label></form>"
        "<div class='newsletter-box'><p>Sign up for our weekly newsletter</p></div>"
    )
    text = "\n".join([*lines, "2 Comments", "Good news for the islands at last.", "Website",
                      "Sign up for our weekly newsletter"])
    assert refuse_form_lines(text, tree) == ARTICLE


def test_a_form_that_holds_the_whole_page_is_not_evidence() -> None:
    lines = ARTICLE.splitlines()
    tree = _page(
        "<form id='aspnetForm'><div class='story'>"
        + "".join(f"<p>{line}</p>" for line in lines) + "</div>"
        "<div class='comments'><p>Nothing here yet.</p></div></form>"
    )
    assert refuse_form_lines(ARTICLE, tree) == ARTICLE
    # inside the wrapper, a comment section is still one
    assert refuse_form_lines(ARTICLE + "\nNothing here yet.", tree) == ARTICLE


def test_an_article_line_quoted_in_a_longer_comment_stays() -> None:
    lines = ARTICLE.splitlines()
    quoted = lines[1]
    tree = _page(
        "<div class='story'>" + "".join(f"<p>{line}</p>" for line in lines) + "</div>"
        f"<div class='comment'><p>You wrote: {quoted} Not quite: it was December.</p></div>"
    )
    assert refuse_form_lines(ARTICLE, tree) == ARTICLE
