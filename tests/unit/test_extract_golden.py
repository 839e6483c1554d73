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
  container, after its end: the heading precision mode keeps is refused;
- ``lead_after_photo_block``: a ``<br>``-separated news report whose lead
  follows a photo block (image, caption, credit) inside the body, beside a
  ``<p>``-formatted teaser box: the lead is the photo block's tail;
- ``bare_post_beside_sidebar``: a blog post of bare ``<br>``-separated text
  beside a ``<p>``-formatted "About me" sidebar: its first paragraph is the
  post container's own text, before the first ``<br>``;
- ``bare_lead_before_paragraphs``: a news report in ``<p>`` paragraphs whose
  lead is bare text between a photo block and the first ``<p>``;
- ``paragraph_after_empty_element``: a post whose paragraphs start after an
  empty element (a WordPress ``<span id="more-N">`` marker, an empty
  ``<strong>``, two empty ones in a row), whose text precision mode deletes
  with the element;
- ``post_beside_bookshelf``: a two-line blog post beside a table of the
  author's books; precision mode takes the table, readability the post,
  balanced mode both. The page's ``<meta name="description">`` restates the
  post, while the description trafilatura keeps is the blog's name;
- ``article_with_hidden_slideshow``: a news report with a slideshow in its
  body whose captions, all but the first, are hidden (``display:none``);
  precision mode takes the report, readability the report and every
  caption, three times as long, and balanced mode hands back readability's
  text (its fallback, for a text more than twice its own): one opinion
  counted twice would outvote the report;
- ``latest_news_cards_after_article``: a council report followed, in the
  same container, by a "Latest news" list whose items each hold a heading,
  a summary with a "Read more" link and a date: cards of other articles,
  which precision mode keeps after the report;
- ``article_in_layout_table``: a software release note laid out with
  ``<table>``: a header row (logo, links), a menu cell (a table of links)
  and a cell holding the note's heading, paragraphs (one with a ``<br>``)
  and a small data table with a header row. trafilatura read every row as
  one line of cells: the note in one line with the menu's rows beside it.
- ``article_in_chunks``: a feature whose body is cut into three chunks
  between adverts, each ``div.body`` in a grid row of its own (Wired's
  template): every extractor took the first chunk only.

Two more constructed pages sit in this file (they test one rule each): a
post whose text announces a list with a colon and whose list and closing
paragraph precision mode prunes (``UNFINISHED_POST``), and a post that ends
on "Related posts:" over paragraphs of headline links, which recall mode
keeps (``RELATED_LIST_POST``).

The choice between candidates is tested on its own below with bodies of the
kinds issue 17 lists (a wrong block, a menu, a fragment), and so is the way
readability's HTML becomes lines.
"""

from __future__ import annotations

import time
from pathlib import Path

import lxml.html
import pytest

from pipeline.content.clean import clean
from pipeline.content.extract import (
    DOUBT_BELOW,
    Candidate,
    _drop_link_cards,
    _drop_related_blocks,
    _join_article_chunks,
    _keep_inline_spans,
    agreement,
    choose,
    declared_descriptions,
    evidence,
    extract,
    fuller,
    readability_text,
    refuse_form_lines,
    refuse_teaser_cards,
    unfinished,
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
    assert CASES == ["article_in_chunks", "article_in_layout_table",
                     "article_with_hidden_slideshow",
                     "bare_lead_before_paragraphs",
                     "bare_post_beside_sidebar", "comment_form", "latest_news_cards_after_article",
                     "lead_after_caption", "lead_after_photo_block",
                     "paragraph_after_empty_element", "post_beside_bookshelf", "wrapped_body",
                     "wrong_block"]


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


@pytest.mark.parametrize(("name", "lead"), [
    ("lead_after_photo_block", "The harbour flooded on Monday morning after the sea wall failed"),
    ("bare_post_beside_sidebar", "Last spring I sold the car I had driven for eleven years"),
    ("bare_lead_before_paragraphs", "The owners of the packing plant on the river road"),
    ("paragraph_after_empty_element", "Then one morning the removal van stood in the street"),
    ("paragraph_after_empty_element", "It was cowardly, and I knew it even then"),
    ("paragraph_after_empty_element", "My mother says that a letter is never too late"),
])
def test_text_that_trafilatura_drops_is_kept(name: str, lead: str) -> None:
    # trafilatura keeps the text after each <br> and the <p> paragraphs, but
    # not a block's own text before the first one, nor the tail of a photo
    # block (the lead); precision mode deletes an empty element with the
    # text that follows it.
    extracted = extract((TESTDATA / f"{name}.html").read_bytes(),
                        url=f"http://127.0.0.1:8000/{name}")
    assert any(line.startswith(lead) for line in extracted.text.splitlines())


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


def test_two_blocks_together_are_no_vote() -> None:
    # Balanced mode took the biography and the article: it agrees with both
    # only because it is both, and would win by that. It is left out, and
    # the description decides between the two blocks.
    candidates = [Candidate("precision", BIOGRAPHY), Candidate("readability", ARTICLE),
                  Candidate("balanced", BIOGRAPHY + "\n" + ARTICLE)]
    description = "The ferry to the outer islands sails again on Monday after repairs."
    assert choose(candidates, links=frozenset(), description=description).name == "readability"


CARDS_PAGE = """<html><body><div class="content">
<p>The rope works will become a library, the council decided.</p>
<ol>
<li><h3>Step one</h3><p>Mend the roof before the winter.</p></li>
<li><h3>Step two</h3><p>Open the reading room in the spring.</p></li>
</ol>
<p>Work starts in May.</p>
<ul>
<li><h3>Ferry timetable changes</h3><p>Two crossings are cancelled.</p></li>
<li><h3>Choir wins the cup</h3><p>Forty children sang.</p></li>
<li><h3>New bus shelter</h3><p>The old one was damaged.</p></li>
</ul>
<ul><li><h3>A lone card</h3><p>With no other.</p></li></ul>
</div></body></html>"""


def test_the_cards_a_text_ends_with_are_refused() -> None:
    tree = lxml.html.fromstring(CARDS_PAGE)
    body = ["The rope works will become a library, the council decided.",
            "- Step one Mend the roof before the winter.",
            "- Step two Open the reading room in the spring.",
            "Work starts in May."]
    cards = ["- Ferry timetable changes Two crossings are cancelled.",
             "- Choir wins the cup Forty children sang.",
             "- New bus shelter The old one was damaged."]
    # The closing run of cards goes; the headed list inside the text stays.
    assert refuse_teaser_cards("\n".join(body + cards), tree) == "\n".join(body)
    # One card at the end is no run; cards that are the whole text stay.
    assert refuse_teaser_cards("\n".join(body + cards[:1]), tree) == "\n".join(body + cards[:1])
    assert refuse_teaser_cards("\n".join(cards), tree) == "\n".join(cards)
    # An item of a list with one headed item is no card.
    lone = "- A lone card With no other."
    lones = "\n".join([*body, lone, lone])
    assert refuse_teaser_cards(lones, tree) == lones
    # A list item with no heading is no card.
    plain = lxml.html.fromstring("<ul><li>Ferry timetable changes</li><li>Choir wins</li></ul>")
    text = "Work starts in May.\n- Ferry timetable changes\n- Choir wins"
    assert refuse_teaser_cards(text, plain) == text


def test_a_twin_of_readability_is_one_vote_when_the_primary_lies_inside_it() -> None:
    # Balanced mode fell back to readability's text: the two agree word for
    # word. The primary is all inside it, so it is no wrong block; the twin
    # is one opinion, and the primary stands on a tie.
    slideshow = "\n".join(f"Photo {n}: boats, nets and gulls at the quay on a grey morning."
                          for n in range(12))
    whole = ARTICLE + "\n" + slideshow
    candidates = [Candidate("precision", ARTICLE), Candidate("readability", whole),
                  Candidate("balanced", whole)]
    assert choose(candidates, links=frozenset(), description=None).name == "precision"
    # Balanced mode's own text (half the captions, not readability's text)
    # is a second opinion: the vote stands, and the text between the other
    # two agrees most.
    half = "\n".join(whole.splitlines()[:-6])
    own = [*candidates[:2], Candidate("balanced", half)]
    assert choose(own, links=frozenset(), description=None).name == "balanced"
    # A primary with words outside readability's text is not inside it: the
    # vote stands, and the twins win it.
    outside = [Candidate("precision", ARTICLE + "\nIn collaboration with the Coast Gazette"),
               *candidates[1:]]
    assert choose(outside, links=frozenset(), description=None).name == "readability"
    # And the description still decides between the primary and readability.
    description = "Photo 3: boats, nets and gulls at the quay."
    assert choose(candidates, links=frozenset(),
                  description=description).name == "readability"


def test_every_declared_description_is_evidence() -> None:
    first_half = "\n".join(ARTICLE.splitlines()[:2])
    second_half = "\n".join(ARTICLE.splitlines()[2:])
    candidates = [Candidate("precision", second_half), Candidate("readability", first_half)]
    declared = ("Island News", "The ferry to the outer islands sails again on Monday.")
    # trafilatura kept the site's name as the description; the page's own
    # meta description restates the lead.
    assert choose(candidates, links=frozenset(), description="Island News").name == "precision"
    assert choose(candidates, links=frozenset(), description="Island News",
                  descriptions=declared).name == "readability"
    page = lxml.html.fromstring(
        '<html><head><meta itemprop="description" content="Island News">'
        '<meta name="description" content="The ferry  sails again.">'
        '<meta property="og:description" content="The ferry sails again.">'
        "</head><body><p>x</p></body></html>")
    assert declared_descriptions(page) == ("Island News", "The ferry sails again.")
    # Attribute values in any case, as pages write them.
    shouting = lxml.html.fromstring(
        '<html><head><meta name="Description" content="The ferry sails again.">'
        '<meta property="OG:Description" content="It sails on Monday.">'
        '<meta name="description-extra" content="Not a description.">'
        "</head><body><p>x</p></body></html>")
    assert declared_descriptions(shouting) == ("The ferry sails again.", "It sails on Monday.")


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


# A post like Dragnet's page 415: the paragraph announces a list ("at the
# following stops:"), and precision mode drops the list and the paragraph
# after it (they sit in plain <div>s, the last one mostly links). readability
# stops after the first item, so the two agree and raise no doubt.
UNFINISHED_POST = """<html><head><title>Island ferry</title></head><body>
<div id="wrapper"><div class="container rounded"><div id="home">
  <div id="post">
    <h2>The island ferry sails again with five harbours on its spring timetable</h2>
    <div class="date"><span>By Maria Olsen, 8 March 2026</span></div>
    <p>As promised in our<a href="/repairs.html"> report on the repairs</a>, the landing stage is
    ready. And what's more, thanks to <a href="http://islandferry.example">the island ferry
    company</a>, you can now reach the outer islands (and all the small harbours) at the
    following stops:</p>
<div>\u2022 North Quay, the main harbour</div>
<div>
<div>\u2022 Fishermen's Landing on the west island</div>
<div>\u2022 The old pier at Skarholm</div>
<div>\u2022 Lighthouse Bay, when the weather allows</div>
<div>\u2022 South Point, on request only</div>
<p />
<div>
<a href="/fares">Tickets are sold on board</a>. Children under twelve <a href="/free">travel
free</a> (see the <a href="/spring">spring timetable</a>).</div>
<p />
</div>
  </div>
</div></div></div>
<div class="sidebar"><h3>Most read</h3><ul>
<li><a href="/wall">Council approves new harbour wall</a></li>
<li><a href="/quotas">Fishing quotas cut again</a></li></ul></div>
</body></html>"""

RELATED_LIST_POST = """<html><head><title>Harbour wall</title></head><body>
<div id="wrapper"><div class="container rounded"><div id="home">
  <div id="post">
    <h2>The council approves a new harbour wall after the winter storms</h2>
    <p>The council approved a new harbour wall on Thursday, three months after a storm tore
    away part of the landing stage and closed the pier for the winter.</p>
    <p>The wall will be built of granite from the quarry on the west island, and the work is to
    start in May, when the ferry timetable allows it.</p>
    <p>Fishermen said the wall was overdue: the old one had been patched for thirty years and
    gave no shelter from the north-westerly gales.</p>
    <p>Related posts:</p>
<p><a href="/quotas">Fishing quotas cut again for the third year</a></p>
<p><a href="/lighthouse">Lighthouse open to visitors this summer</a></p>
<p><a href="/ferry">The island ferry sails again on Monday</a></p>
  </div>
</div></div></div>
</body></html>"""


def test_a_text_that_ends_on_a_colon_gets_what_it_announces() -> None:
    url = "http://127.0.0.1:8000/unfinished"
    body = UNFINISHED_POST.encode()
    found = evidence(body, url=url)
    assert found is not None
    primary = found.candidates[0].text
    # The page's premise: precision mode stops at the colon.
    assert primary.endswith("following stops:")
    assert "South Point" not in primary
    assert "South Point" not in found.candidates[1].text  # readability: no doubt
    assert agreement(primary, found.candidates[1].text) >= DOUBT_BELOW
    extracted = extract(body, url=url)
    cleaned = clean(extracted.text, title=extracted.title, url=url,
                    site_name=extracted.site_name)
    lines = cleaned.text.splitlines()
    # The list it announces; the link line after it is recall mode's to judge.
    assert lines[-6:] == [
        "As promised in our report on the repairs, the landing stage is ready. And what's more,"
        " thanks to the island ferry company, you can now reach the outer islands (and all the"
        " small harbours) at the following stops:",
        "\u2022 North Quay, the main harbour",
        "\u2022 Fishermen's Landing on the west island",
        "\u2022 The old pier at Skarholm",
        "\u2022 Lighthouse Bay, when the weather allows",
        "\u2022 South Point, on request only",
    ]
    assert "Most read" not in cleaned.text
    assert "harbour wall" not in cleaned.text


def test_a_related_list_after_the_colon_is_not_added() -> None:
    url = "http://127.0.0.1:8000/related"
    body = RELATED_LIST_POST.encode()
    found = evidence(body, url=url)
    assert found is not None
    assert unfinished(found.candidates[0].text)  # the rule fires ...
    extracted = extract(body, url=url)
    assert extracted.text.splitlines()[-2].startswith("Fishermen said the wall was overdue")
    # ... and recall mode's text, which has the headlines (links of the
    # page), is no continuation.
    for headline in ("Fishing quotas", "Lighthouse open", "island ferry sails"):
        assert headline not in extracted.text


def test_only_a_text_that_ends_on_a_colon_is_unfinished() -> None:
    assert unfinished(ARTICLE + "\nThe ferry calls at these harbours:")
    assert unfinished("Die F\u00e4hre h\u00e4lt hier:  \n")
    assert not unfinished(ARTICLE)
    assert not unfinished("The harbour master said: the pier is safe again.")
    assert not unfinished("")


def test_the_fuller_text_replaces_an_unfinished_one_only_when_it_continues_it() -> None:
    announced = ARTICLE + "\nThe ferry calls at these harbours:"
    chosen = Candidate("precision", announced)
    harbours = "North Quay\nFishermen's Landing\nSouth Point, on request only"
    continued = Candidate("recall", announced + "\n" + harbours)
    assert fuller(chosen, continued, links=frozenset()) is continued
    # Another block, even a longer one, is no continuation.
    other = Candidate("recall", BIOGRAPHY + "\n" + MENU + "\n" + ARTICLE.splitlines()[0])
    assert fuller(chosen, other, links=frozenset()) is chosen
    # What it adds is the page's link text (a list of headlines): no continuation.
    with_menu = Candidate("recall", announced + "\n" + MENU)
    assert fuller(chosen, with_menu, links=frozenset(MENU.splitlines())) is chosen
    assert fuller(chosen, with_menu, links=frozenset()) is with_menu
    # Not longer: nothing to gain.
    assert fuller(chosen, Candidate("recall", ARTICLE), links=frozenset()) is chosen


LISTICLE_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>The four best laptops of the year | Gadget Desk</title></head>
<body><div id="nav"><a href="/">Gadget Desk</a> <a href="/reviews">Reviews</a></div>
<div class="content">
<h1>The four best laptops of the year</h1>
<p>We tested thirty laptops over the summer, running each through a week of office work, a day
of video editing and a battery test that played films until the screen went dark.</p>
<p>These four stood out, and each suits a different kind of buyer, so read the short reviews
below before you spend your money.</p>
<ol>
<li><h2>The Aster 14</h2><p>The best laptop for most people: its keyboard is a pleasure to type
on, the battery lasted eleven hours in our test, and it weighs little more than a kilogram.</p></li>
<li><h2>The Borealis Pro</h2><p>The fastest machine we tested exported our video project in half
the time of the others, though its fans were loud and its battery lasted six hours.</p></li>
<li><h2>The Cirrus Air</h2><p>A budget choice that does not feel cheap: the screen is dim outdoors,
but the case and the trackpad are as good as those of laptops twice its price.</p></li>
<li><h2>The Delta Flip</h2><p>Its screen folds back into a tablet, which makes it the best choice
for students who take notes by hand, and its pen comes in the box.</p></li>
</ol>
</div>
<div id="footer"><a href="/about">About us</a></div>
</body></html>"""
LISTICLE_ENTRIES = [
    "- The Aster 14 The best laptop for most people: its keyboard is a pleasure to type on, the "
    "battery lasted eleven hours in our test, and it weighs little more than a kilogram.",
    "- The Borealis Pro The fastest machine we tested exported our video project in half the time "
    "of the others, though its fans were loud and its battery lasted six hours.",
    "- The Cirrus Air A budget choice that does not feel cheap: the screen is dim outdoors, but "
    "the case and the trackpad are as good as those of laptops twice its price.",
    "- The Delta Flip Its screen folds back into a tablet, which makes it the best choice for "
    "students who take notes by hand, and its pen comes in the box.",
]


def test_a_listicle_keeps_its_numbered_entries() -> None:
    # "The four best laptops": the article ends with a numbered list whose
    # items each hold a heading and the article's own review. They link
    # nowhere: they are no teaser cards, and all four stay.
    extracted = extract(LISTICLE_PAGE.encode(), url="http://127.0.0.1:8000/listicle")
    assert extracted.text.splitlines()[-4:] == LISTICLE_ENTRIES


def test_a_listicle_with_shop_links_and_permalinks_keeps_its_entries() -> None:
    # A review links to a shop and a CMS anchors each heading (href="#..."):
    # those links lead to no other article, and the entries stay.
    shop = LISTICLE_PAGE.replace(
        "</p></li>", ' <a href="https://shop.example/deal">See the price at Best Buy</a></p></li>')
    anchored = shop
    for name in ("Aster 14", "Borealis Pro", "Cirrus Air", "Delta Flip"):
        slug = name.split()[0].lower()
        anchored = anchored.replace(f"<h2>The {name}</h2>",
                                    f'<h2><a href="#{slug}" id="{slug}">The {name}</a></h2>')
    for page in (shop, anchored):
        text = extract(page.encode(), url="http://127.0.0.1:8000/listicle").text
        for entry in LISTICLE_ENTRIES:
            review = entry.split(" ", 4)[4]  # after "- The <name> <name>"
            assert review.removesuffix(".") in text


def test_numbered_cards_that_link_out_are_refused() -> None:
    # A ranked list of other articles ("most read") links each headline: cards.
    page = lxml.html.fromstring(
        '<div><p>Work starts in May.</p><ol>'
        '<li><h3><a href="/news/1">Ferry timetable changes</a></h3><p>Two are cancelled.</p></li>'
        '<li><h3><a href="/news/2">Choir wins the cup</a></h3><p>Forty children sang.</p></li>'
        '</ol></div>')
    text = ("Work starts in May.\n- Ferry timetable changes Two are cancelled.\n"
            "- Choir wins the cup Forty children sang.")
    assert refuse_teaser_cards(text, page) == "Work starts in May."
    # The same numbered items without their links are the article's own entries.
    for anchor in page.iter("a"):
        anchor.drop_tag()
    assert refuse_teaser_cards(text, page) == text


def test_a_candidate_close_to_readability_is_no_twin() -> None:
    # Balanced mode's own text that differs from readability's by one
    # caption (agreement 0.97) is a second opinion, not readability's text
    # handed back: it keeps its vote, and the text between the other two
    # agrees most. Only the same words make a twin.
    slideshow = [f"Photo {n}: boats, nets and gulls at the quay on a grey morning."
                 for n in range(30)]
    whole = "\n".join([ARTICLE, *slideshow])
    close = "\n".join([ARTICLE, *slideshow[:-1]])
    assert 0.95 <= agreement(whole, close) < 1.0
    candidates = [Candidate("precision", ARTICLE), Candidate("readability", whole),
                  Candidate("balanced", close)]
    assert choose(candidates, links=frozenset(), description=None).name == "balanced"
    # The same words in other lines are still readability's text: one vote.
    relined = " ".join(whole.splitlines())
    twins = [*candidates[:2], Candidate("balanced", relined)]
    assert choose(twins, links=frozenset(), description=None).name == "precision"


_RESULTS_PAGE = """<html><head><meta charset="utf-8"><title>Regional league: results</title></head>
<body><div class="nav"><a href="/">Home</a> <a href="/sport">Sport</a></div>
<article><h1>Regional league: Saturday's results</h1>
<p>Harbour Town stayed top of the regional league on Saturday after a narrow win away at
Millbrook, while Eastcliff's poor run continued with a home defeat against the newly promoted
side from Westford.</p>
<p>The full results from the afternoon's fixtures are below, with notes from the referees'
reports where matches were interrupted or abandoned.</p>
<table class="results">
<tr><td>Millbrook</td><td>1-2</td><td>Harbour Town</td><td>Attendance 412</td></tr>
<tr><td>Eastcliff</td><td>0-3</td><td>Westford</td><td>Attendance 288</td></tr>
<tr><td>Northgate</td><td>2-2</td><td>Southend Rovers</td><td>Match stopped for twenty minutes
in the second half after a floodlight failed.<br>Play resumed once the power came back and the
referee added the lost time.<br>The league will review the incident at its next meeting on
Tuesday.</td></tr>
<tr><td>Kingsbridge</td><td>4-0</td><td>Old Quay</td><td>{last}</td></tr>
</table>
<p>Harbour Town play Westford at home next Saturday in what is now the match of the season,
with three points separating the sides at the top of the table.</p>
</article></body></html>"""


@pytest.mark.parametrize("last", [
    "Attendance 530",
    # a long referee's report (100+ words) is still one cell of a data row
    "<br>".join(["The match was held up for half an hour after a spectator fell ill in the "
                 "main stand, and the referee took the players off the pitch while the "
                 "paramedics treated him and the stewards cleared a path to the ambulance."] * 4),
    # one small table nested in a data cell is no layout either
    "<table><tr><td>Attendance</td><td>530</td></tr><tr><td>Receipts</td><td>2,100</td></tr></table>",
])
def test_a_data_table_with_a_long_notes_cell_keeps_its_rows(last: str) -> None:
    # A results table without <th> whose one cell holds a referee's note in
    # three <br> lines (or a nested table) is still data: its rows of short
    # cells are the scores. Unwrapped as layout, precision mode dropped them.
    text = extract(_RESULTS_PAGE.format(last=last).encode(),
                   url="http://127.0.0.1:8000/results").text
    for home, score, away in (("Millbrook", "1-2", "Harbour Town"),
                              ("Eastcliff", "0-3", "Westford"),
                              ("Kingsbridge", "4-0", "Old Quay")):
        assert f"{home} | {score} | {away}" in text


def test_a_page_laid_out_in_a_three_row_table_is_read_as_blocks() -> None:
    # Logo | menu, side menu | article, copyright | contact: two rows of two
    # short cells look like data, but the article's cell holds a headline
    # and six paragraphs: the table is the page's layout.
    paras = "".join(
        f"<p>Paragraph {i}: the regional council voted on Tuesday to close the old harbour "
        "bridge for repairs, which engineers say will take most of the coming year.</p>"
        for i in range(6))
    page = f"""<html><head><meta charset="utf-8"><title>Harbour bridge to close</title></head>
<body><table width="100%">
<tr><td><img src="logo.gif"> Harbour Gazette</td>
<td><a href="/">Home</a> | <a href="/news">News</a></td></tr>
<tr><td><a href="/a">Local</a><br><a href="/b">Sport</a></td>
<td><h1>Harbour bridge to close</h1>{paras}
<p>The council said the closure was unavoidable.</p></td></tr>
<tr><td>&copy; 2004 Harbour Gazette</td><td><a href="/contact">Contact us</a></td></tr>
</table></body></html>"""
    lines = extract(page.encode(), url="http://127.0.0.1:8000/bridge").text.splitlines()
    assert [line[:11] for line in lines if "Paragraph" in line] == [
        f"Paragraph {i}" for i in range(6)]


_BRIDGE_PARAGRAPHS = "".join(
    f"<p>Paragraph {i}: the regional council voted on Tuesday to close the old harbour bridge "
    "for repairs, which engineers say will take most of the coming year.</p>" for i in range(6))
_BRIDGE_ARTICLE = f"<h1>Harbour bridge to close</h1>{_BRIDGE_PARAGRAPHS}"
_LOGO = '<td><img src="logo.gif"> Harbour Gazette</td>'
_MENU = '<td><a href="/">Home</a> | <a href="/news">News</a></td>'
_SIDE = '<td><a href="/a">Local</a><br><a href="/b">Sport</a></td>'
_FOOT = '<td>&copy; 2004 Harbour Gazette</td><td><a href="/contact">Contact us</a></td>'


@pytest.mark.parametrize("rows", [
    # a banner of three rows (date, search, subscribe, weather)
    f"<tr>{_LOGO}{_MENU}</tr><tr><td>Tuesday 12 May 2004</td><td><a href='/s'>Search</a></td>"
    "</tr><tr><td><a href='/sub'>Subscribe</a></td><td><a href='/w'>Weather: 14C</a></td></tr>"
    f"<tr>{_SIDE}<td>{_BRIDGE_ARTICLE}</td></tr><tr>{_FOOT}</tr>",
    # three columns: menu | article | advert
    f"<tr>{_LOGO}{_MENU}<td>Search</td></tr>"
    f"<tr>{_SIDE}<td>{_BRIDGE_ARTICLE}</td><td><a href='/ad'>Advert</a></td></tr>"
    f"<tr>{_FOOT}<td>Top</td></tr>",
])
def test_classic_table_layouts_are_read_as_blocks(rows: str) -> None:
    # Menus, adverts and spacers are no data: cells of links or of nothing.
    page = ('<html><head><meta charset="utf-8"><title>Harbour bridge to close</title></head>'
            f'<body><table width="100%">{rows}</table></body></html>')
    lines = extract(page.encode(), url="http://127.0.0.1:8000/bridge").text.splitlines()
    assert [line[:11] for line in lines if "Paragraph" in line] == [
        f"Paragraph {i}" for i in range(6)]


def test_a_results_table_with_linked_team_names_keeps_its_rows() -> None:
    # Team names are links to the teams' pages: a cell that is one link is
    # still a datum in a row of three, and the referee's note in <p>s does
    # not make the table a page's layout.
    note = ("<p>Referee's note: the match was stopped for ten minutes after a floodlight failed "
            "in the second half, and play resumed once the ground staff had restored power.</p>"
            "<p>The home side lodged a complaint about the delay with the league afterwards.</p>")
    teams = [("Rovers", "United"), ("City", "Athletic"), ("Albion", "Wanderers"),
             ("County", "Town")]
    rows = "".join(f'<tr><td><a href="/t/{h}">{h}</a></td><td>{i}-{i + 1}</td>'
                   f'<td><a href="/t/{a}">{a}</a></td></tr>' for i, (h, a) in enumerate(teams))
    rows += f'<tr><td colspan="3">{note}</td></tr>'
    paragraphs = "".join(
        f"<p>Paragraph {i}: the league confirmed the weekend results on Monday after a review "
        "of the match reports from every ground.</p>" for i in range(5))
    page = ('<html><head><meta charset="utf-8"><title>Weekend results</title></head><body>'
            f"<article><h1>Weekend results</h1>{paragraphs}<table>{rows}</table></article>"
            "</body></html>")
    text = extract(page.encode(), url="http://127.0.0.1:8000/results").text
    for i, (home, away) in enumerate(teams):
        assert f"{home} | {i}-{i + 1} | {away}" in text
    assert "Referee's note" in text


def _words(n: int, topic: str) -> str:
    """A paragraph of ``n`` words about ``topic``."""
    filler = ("and", "the", "council", "said")
    return " ".join(f"{topic}{i % 7}" if i % 5 == 0 else filler[i % 4] for i in range(n))


def _chunk(cls: str, topic: str, paragraphs: int = 3) -> str:
    return f'<div class="{cls}">' + "".join(
        f"<p>{_words(40, topic)}</p>" for _ in range(paragraphs)) + "</div>"


def _joined(page: str, cls: str) -> int:
    """How many elements of class ``cls`` a page has after the chunks are joined."""
    tree = lxml.html.fromstring(page)
    _join_article_chunks(tree)
    return len(tree.xpath(f'//div[@class="{cls}"]'))


def test_chunks_of_one_body_between_adverts_are_joined_in_order() -> None:
    rows = "".join(f'<div class="row">{_chunk("body", f"part{n}x")}'
                   '<div class="ad">Advertisement</div></div>' for n in range(3))
    tree = lxml.html.fromstring(f"<html><body><article><h1>Title</h1>{rows}</article>"
                                "</body></html>")
    _join_article_chunks(tree)
    (body,) = tree.xpath('//div[@class="body"]')
    assert [p.text.split()[0][:5] for p in body] == ["part0"] * 3 + ["part1"] * 3 + ["part2"] * 3
    assert len(tree.xpath('//div[@class="ad"]')) == 3  # the adverts stay where they were


def test_a_short_chunk_between_two_long_ones_is_joined_in_its_place() -> None:
    rows = "".join(f'<div class="row">{_chunk("body", f"part{n}x", paragraphs)}'
                   '<div class="ad">Advertisement</div></div>'
                   for n, paragraphs in enumerate((3, 1, 3)))
    tree = lxml.html.fromstring(f"<html><body><article><h1>Title</h1>{rows}</article>"
                                "</body></html>")
    _join_article_chunks(tree)
    (body,) = tree.xpath('//div[@class="body"]')
    assert [p.text.split()[0][:5] for p in body] == ["part0"] * 3 + ["part1"] + ["part2"] * 3


def test_a_listicles_headings_stay_with_their_entries() -> None:
    entries = "".join(
        f'<div class="list-item"><h2>Entry number {n} of the list</h2><div class="item-body">'
        + "".join(f"<p>{_words(40, f'entry{n}x')}</p>" for _ in range(3)) + "</div></div>"
        for n in range(1, 5))
    page = ('<html><head><meta charset="utf-8"><title>Four entries</title></head><body>'
            f"<article><h1>Four entries</h1>{entries}</article></body></html>")
    text = extract(page.encode(), url="http://127.0.0.1:8000/list").text
    for n in range(1, 5):
        assert f"Entry number {n} of the list" in text
        assert text.index(f"Entry number {n} of the list") < text.index(f"entry{n}x0")


def test_a_removed_chunks_tail_text_is_kept() -> None:
    page = (f'<html><body><div class="row">{_chunk("body", "one")}</div>'
            f'<div class="row">{_chunk("body", "two")}tail words stay</div></body></html>')
    tree = lxml.html.fromstring(page)
    _join_article_chunks(tree)
    assert "tail words stay" in tree.text_content()
    assert len(tree.xpath('//div[@class="body"]')) == 1


@pytest.mark.parametrize(("page", "cls", "why"), [
    # comment bodies repeat one element too (five: more than the post)
    ("<html><body><div class='post'>{post}</div><div id='comments'>"
     + "".join(f"<div class='row'>{_chunk('body', f'c{n}x')}</div>" for n in range(5))
     + "</div></body></html>", "body", "comments"),
    # an infinite scroll: the next article has its own title
    ("<html><body>" + "".join(f"<div class='story'><h1>Story {n}</h1>{_chunk('body', f's{n}x')}"
                              "</div>" for n in range(2)) + "</body></html>", "body", "a title"),
    # a sidebar of teasers, each in one element, holds less than the article
    ("<html><body><div class='main'>{post}</div><div class='side'>"
     + "".join(f"<div class='entry'>{_chunk('teaser', f't{n}x', 2)}</div>" for n in range(2))
     + "</div></body></html>", "teaser", "less than the article"),
    # a fact check's quoted claim in the body's class, in a box of its own
    ("<html><body><div class='claim-box'>" + _chunk("wsw", "claim", 2) + "</div>"
     "<div class='content'>" + _chunk("wsw", "body", 8) + "</div></body></html>", "wsw",
     "another slot"),
    # two articles, each in its own <article>
    ("<html><body>" + "".join(f"<article><div class='row'>{_chunk('body', f'a{n}x')}</div>"
                              "</article>" for n in range(2)) + "</body></html>", "body",
     "two articles"),
    # a listicle: each entry's heading outside its text (joined, the headings
    # would all come after the text)
    ("<html><body><article><h1>Ten tips</h1>" + "".join(
        f"<div class='item'><h2>Tip {n}</h2>{_chunk('item-body', f'i{n}x')}</div>"
        for n in range(4)) + "</article></body></html>", "item-body", "a heading between"),
    # a live blog: each update's time and title outside its text
    ("<html><body><h1>Live</h1>" + "".join(
        f"<div class='entry'><time>1{n}:00</time><h3>Update {n}</h3>"
        f"{_chunk('entry-body', f'u{n}x')}</div>" for n in range(3)) + "</body></html>",
     "entry-body", "a heading between"),
    # the next story in the same template, titled with an <h2>
    ("<html><body>" + "".join(f"<div class='story'><h{n + 1}>Story {n}</h{n + 1}>"
                              f"{_chunk('body', f's{n}x')}</div>" for n in range(2))
     + "</body></html>", "body", "another story"),
    # a pull quote between two parts of the text
    ("<html><body><article><div class='row'>" + _chunk("body", "one") + "</div>"
     "<div class='row'><p>The council has never been so divided over a tram, she said.</p>"
     "</div><div class='row'>" + _chunk("body", "two") + "</div></article></body></html>",
     "body", "a paragraph between"),
    # forum posts (reviews, widgets): one element of a list each, each named
    ("<html><body><h1>Thread</h1>" + "".join(
        f"<div class='post' id='p{n}'><span>member{n}</span>{_chunk('content', f'f{n}x')}</div>"
        for n in range(4)) + "</body></html>", "content", "posts"),
])
def test_repeated_elements_that_are_no_body_cut_in_chunks_stay_apart(
        page: str, cls: str, why: str) -> None:
    post = "".join(f"<p>{_words(40, 'post')}</p>" for _ in range(10))
    page = page.replace("{post}", post)
    before = len(lxml.html.fromstring(page).xpath(f'//div[@class="{cls}"]'))
    assert before >= 2
    assert _joined(page, cls) == before, why


_PIER_PARAGRAPHS = "".join(
    f"<p>Paragraph {i}: the harbour board met on Tuesday to discuss the repairs to the old "
    "pier, which engineers say will take most of the coming year.</p>" for i in range(4))


def _article_text(title: str, body: str) -> str:
    """What extract() keeps of a page whose <article> is ``title`` over ``body``."""
    page = (f'<html><head><meta charset="utf-8"><title>{title}</title></head><body>'
            f"<article><h1>{title}</h1>{body}</article></body></html>")
    return extract(page.encode(), url="http://127.0.0.1:8000/article").text


@pytest.mark.parametrize("attributes", ['class="link"', 'class="bottom-line"',
                                        'style="border-bottom: 1px dotted"'])
def test_a_span_in_the_middle_of_a_sentence_is_never_cut_out(attributes: str) -> None:
    # Precision mode deletes a <span> whose class is "link" (or starts with
    # "bottom", or whose style draws a border) with its text: a CMS that
    # wraps its inline links so cut "has reported that the NFL will fine
    # Rudolph for his role" to "has reported that for his role".
    text = _article_text("Pier repairs", _PIER_PARAGRAPHS + (
        f'<p>The chairman has said that <span {attributes}><a href="/news/pier-fines">the board '
        "will fine the contractor</a></span> for the delays, which cost the town its summer "
        "ferry service.</p>"))
    assert ("The chairman has said that the board will fine the contractor for the delays"
            in text)


@pytest.mark.parametrize("attributes", [
    'style="display:none"', 'class="tooltip hidden"', 'class="share-quote"',
    'class="link" style="display: none"'])
def test_a_hidden_span_in_the_middle_of_a_sentence_stays_hidden(attributes: str) -> None:
    # Only what precision mode alone cuts out keeps its place: a span that
    # trafilatura drops in every mode is no word of the sentence.
    text = _article_text("Pier repairs", _PIER_PARAGRAPHS + (
        f"<p>The chairman said the board <span {attributes}>BUY CHEAP WATCHES</span> will fine "
        "the contractor for the delays, which cost the town its summer ferry service.</p>"))
    assert "The chairman said the board will fine the contractor" in text
    assert "WATCHES" not in text


def test_spans_in_a_long_paragraph_take_linear_time() -> None:
    """Ten times the spans take about ten times as long, not a hundred (a
    ratio in one process: a bound in seconds failed on a loaded machine)."""

    def seconds(n: int) -> float:
        best = float("inf")
        for _ in range(3):
            spans = "".join(f'<span class="link">word{i}</span> tail{i} ' for i in range(n))
            tree = lxml.html.fromstring(f"<html><body><p>Start {spans}</p></body></html>")
            started = time.process_time()
            _keep_inline_spans(tree)
            best = min(best, time.process_time() - started)
            assert not tree.xpath("//span[@class]")
        return best

    small, large = seconds(1_000), seconds(10_000)
    assert large < 30 * small + 0.05, (small, large)


@pytest.mark.parametrize(("html", "kept"), [
    ('<p>Before <span class="link"><a href="/x">the link</a></span> after.</p>', False),
    ('<p><b>Before</b> <span class="link">the link</span> after.</p>', False),
    # not in the middle of a paragraph's text: trafilatura decides as before
    ('<p><span class="link"><a href="/x">Read more</a></span></p>', True),
    ('<p>Read more: <span class="link"><a href="/x">the next story</a></span></p>', True),
    ('<div>Before <span class="link">the link</span> after.</div>', True),
])
def test_only_a_span_between_a_paragraphs_words_loses_its_class(html: str, kept: bool) -> None:
    tree = lxml.html.fromstring(f"<html><body>{html}</body></html>")
    _keep_inline_spans(tree)
    assert (tree.find(".//span").get("class") == "link") is kept


_POST = ("<p>Viver uma verdadeira experiência amorosa é um dos maiores prazeres da vida. Gostar "
         "é sentir com a alma, mas expressar os sentimentos depende das ideias de cada um. "
         "Condicionamos o amor às nossas necessidades e acabamos com ele. Vivemos uma vida "
         "tentando fazer com que os outros se responsabilizem pelas nossas necessidades. "
         "Queremos ser amados e não nos amamos, queremos ser compreendidos e não nos "
         "compreendemos. Cada um é o único responsável pelas suas próprias necessidades.</p>")
_OTHER_POSTS = "".join(
    f'<article id="post-{n}" class="fundo postbox"><center><img src="/i/{n}.jpg"></center>'
    f'<div><center><a class="baixar" href="https://example.com.br/post-{n}">Whatsapp</a> '
    f'<a class="baixar" href="https://example.com.br/i/{n}.jpg">Baixar</a></center></div>'
    f"<p>Outro texto número {n}: a vida requer da gente otimismo e coragem para esperar o "
    "melhor e fazer o melhor acontecer. O pessimismo só faz engessar o sorriso e travar as "
    "articulações, não deixa ninguém sair do lugar. O que a gente precisa aprender é a não "
    "reclamar na primeira queda, mas levantar e partir para a luta novamente.</p></article>"
    for n in range(6))


def _related_page(label: str) -> bytes:
    return ('<html><head><meta charset="utf-8"><title>Quem se ama</title></head><body>'
            '<div class="container row"><div class="primary columns">'
            f'<article class="fundo articlebox"><h1>Quem se ama</h1>{_POST}</article>'
            f'<article id="post-1" class="fundo postbox"><h3 class="relatedpoststitle">{label}'
            f"</h3>{_OTHER_POSTS}</article></div></div></body></html>").encode()


def test_a_block_of_other_posts_under_a_related_label_is_not_the_article() -> None:
    # A theme puts its related posts, each a whole <article> with its text,
    # in a container whose class trafilatura does not know: readability and
    # balanced mode read them as the article's continuation (on the
    # ScrapingHub page this comes from, they outvoted precision mode: 709
    # words for a 139-word post). No candidate is offered them now.
    found = evidence(_related_page("Você pode gostar..."),
                     url="http://127.0.0.1:8000/quem-se-ama")
    assert found is not None
    for candidate in found.candidates:
        assert "Viver uma verdadeira" in candidate.text, candidate.name
        assert "Outro texto" not in candidate.text, candidate.name


def test_the_same_block_under_a_heading_that_is_no_label_stays() -> None:
    found = evidence(_related_page("Mais três reflexões sobre o amor"),
                     url="http://127.0.0.1:8000/quem-se-ama")
    assert found is not None
    assert "Outro texto número 0" in found.candidates[1].text  # readability's


@pytest.mark.parametrize(("html", "dropped"), [
    ('<div><h3>Related stories</h3><a href="/a">A</a> <a href="/b">B</a></div>', True),
    ('<div><h3>Lire aussi :</h3><a href="/a">A</a> <a href="/b">B</a></div>', True),
    # one link is no block of stories
    ('<div><h3>Related stories</h3><a href="/a">A</a> <a href="#top">Top</a></div>', False),
    # the label after the block's own text: an inline box, the article goes on
    ('<div><p>The council met.</p><h3>Related stories</h3><a href="/a">A</a>'
     '<a href="/b">B</a></div>', False),
    # a label a section of the article carries too: a live blog's, an FAQ's
    *(((f'<section><h2>{label}</h2><p>The council met on <a href="/a">Tuesday</a>.</p>'
         '<p>It voted for the <a href="/b">bridge</a>.</p></section>'), False)
      for label in ("Latest news", "Related", "More", "Read more", "Trending now", "Also")),
])
def test_only_a_block_that_a_related_label_opens_is_dropped(html: str, dropped: bool) -> None:
    tree = lxml.html.fromstring(f"<html><body><main>{html}</main></body></html>")
    _drop_related_blocks(tree)
    assert (not tree.xpath("//h2|//h3")) is dropped


@pytest.mark.parametrize("body", [
    # a "Trending" strip the template writes straight into the page's wrapper,
    # before the article: the wrapper is no block of other stories
    '<div class="page"><h2>Trending</h2><ul><li><a href="/r/1">Ferry fares rise</a></li>'
    '<li><a href="/r/2">New pier opens</a></li></ul><article><h1>Pier repairs</h1>'
    f"{_PIER_PARAGRAPHS}</article></div>",
    # a column whose title is a label: the title is the article's
    '<article><h1>Trending</h1><p>Paragraph 0: the harbour board met on Tuesday, '
    '<a href="/board">the board</a> said, to discuss <a href="/pier">the pier</a>.</p>'
    f"{_PIER_PARAGRAPHS}</article>",
])
def test_a_label_before_the_pages_title_drops_no_article(body: str) -> None:
    page = ('<html><head><meta charset="utf-8"><title>Pier repairs</title></head>'
            f"<body>{body}</body></html>")
    text = extract(page.encode(), url="http://127.0.0.1:8000/pier").text
    assert "Paragraph 3: the harbour board met on Tuesday" in text



def test_labels_after_a_long_first_child_take_linear_time() -> None:
    # Each label's block is the same; its first text, found once.
    words = "word " * 320_000
    labels = "<h2>More</h2>" * 16_000
    tree = lxml.html.fromstring(f"<html><body><main><div><div>{words}</div>{labels}</div>"
                                "</main></body></html>")
    started = time.perf_counter()
    _drop_related_blocks(tree)
    assert time.perf_counter() - started < 2
    assert len(tree.findall(".//h2")) == 16_000

_CARD = ('<span class="rollover-people"><a href="/people/jane-roe">Jane Roe</a>'
         '<span class="rollover-people-block"><span><img src="/i/roe.jpg">'
         '<a class="name" href="/people/jane-roe">Jane Anne Roe</a>'
         '<a href="/news/1">Governor defends the harbour budget in a tense session</a> '
         '<a href="/news/2">Ferry operators ask the state for a winter subsidy</a> '
         '<a class="more" href="/people/jane-roe">MORE</a></span></span></span>')


def test_a_hover_card_in_a_sentence_is_cut_out_and_the_name_stays() -> None:
    # The Hill's people cards: a span the stylesheet hides, read into the
    # sentence ("Rep. Ilhan OmarIlhan OmarHillicon Valley: ...").
    text = _article_text("Budget", (
        f"<p>State Gov. {_CARD} (R) is defending the harbour budget against its critics in the "
        f"legislature.</p>{_PIER_PARAGRAPHS}"))
    assert ("State Gov. Jane Roe (R) is defending the harbour budget against its critics"
            in text)
    assert "Ferry operators" not in text and "Jane Anne Roe" not in text


@pytest.mark.parametrize(("span", "kept"), [
    # the hover card alone goes (the name's link stays)
    (_CARD, "Jane Roe"),
    # a sentence's links with its own words between them stay
    ('<span class="names"><a href="/p/1">Joe Biden</a>, <a href="/p/2">Bernie Sanders</a> and '
     '<a href="/p/3">Elizabeth Warren</a></span>',
     "Joe Biden, Bernie Sanders and Elizabeth Warren"),
    # one link, however long, is the sentence's
    ('<span class="link"><a href="/n/1">the board will fine the contractor for every week of '
     "delay</a></span>", "the board will fine the contractor for every week of delay"),
    # few words: two short links
    ('<span><a href="/a">Paris</a> <a href="/b">Lyon</a></span>', "Paris Lyon"),
    # a list the sentence names, links with spaces or commas between: no card
    ('<span class="names"><a href="/p/1">Joe Biden</a> <a href="/p/2">Bernie Sanders</a> '
     '<a href="/p/3">Elizabeth Warren</a> <a href="/p/4">Kamala Harris</a></span>',
     "Joe Biden Bernie Sanders Elizabeth Warren Kamala Harris"),
    ('<span class="cite"><a href="https://doi.org/10.1/a">Smith et al., 2020</a>; '
     '<a href="https://doi.org/10.1/b">Jones and Lee, 2019</a></span>',
     "Smith et al., 2020; Jones and Lee, 2019"),
])
def test_only_a_span_of_links_alone_is_a_hover_card(span: str, kept: str) -> None:
    tree = lxml.html.fromstring(f"<html><body><p>Before {span} after.</p></body></html>")
    _drop_link_cards(tree)
    assert " ".join(tree.find(".//p").text_content().split()) == f"Before {kept} after."
