"""The extract stage on the seed site's pages, and on pages with nothing to extract."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.content.clean import clean
from pipeline.content.extract import ExtractionError, extract
from pipeline.models import Cleaned, Extracted

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedPage:
    seed: str  # the id shared by seeds/articles and seeds/expected
    page: str  # file under seeds/site
    title: str
    site_name: str
    author: str | None
    published: datetime


PAGES = [
    SeedPage(
        seed="000_64357cb52d7391a5",
        page="frontline-russia-israel-working-group.html",
        title="Russia And Israel To Form Working Group On Withdrawal Of Foreign Forces From Syria",
        site_name="Frontline Digest",
        author=None,
        published=datetime(2019, 2, 26, 18, 10, tzinfo=UTC),  # "told reporters on February 26"
    ),
    SeedPage(
        seed="001_2c1bc55939869abd",
        page="southfront-netanyahu-foreign-forces.html",
        title="Netanyahu: Israel And Russia Will Work To Remove All Foreign Forces From Syria",
        site_name="SouthFront",
        author=None,
        published=datetime(2019, 3, 3, 18, 30, tzinfo=UTC),
    ),
    SeedPage(
        seed="002_8d3c3d73544a7484",
        page="sputnik-israel-russia-group-foreign-forces.html",
        title="Israel, Russia Mull Creating Group on Foreign Forces Pullout From Syria - Source",
        site_name="Sputnik International",
        author=None,
        # 19:40 in Moscow (+03:00)
        published=datetime(2019, 2, 27, 16, 40, tzinfo=UTC),
    ),
    SeedPage(
        seed="003_038213745faeba08",
        page="amn-netanyahu-russia-pullout.html",
        title="Netanyahu: Israel, Russia to cooperate on pullout of foreign forces from Syria",
        site_name="AMN Al-Masdar News",
        author="Radio Free Europe",
        published=datetime(2019, 3, 4, 7, 52, tzinfo=UTC),
    ),
    SeedPage(
        seed="004_9d3568ec65f61390",
        page="levant-russia-israel-working-group.html",
        title=(
            "Russia and Israel will form a working group with the participation of a number"
            " of countries to study the issue of the removal of foreign troops from Syria"
        ),
        site_name="Levant Ledger",
        author="Levant Ledger Newsdesk",
        # 08:05 in Beirut (+02:00)
        published=datetime(2019, 2, 28, 6, 5, tzinfo=UTC),
    ),
]
IDS = [p.seed[:3] for p in PAGES]

# Page chrome around the articles that must never reach the text.
CHROME = [
    "cookies",
    "Privacy policy",
    "All rights reserved",
    "Military Situation In Syria",
    "Pakistan",
    "Share this",
    "Disqus",
    "Most read",
    "Sign up for our newsletter",
    "Previous article",
    "RELATED ARTICLES",
    "Read also",
    "Iran says Israel's strikes",
]


def url_of(page: SeedPage) -> str:
    return f"http://127.0.0.1:8000/{page.page}"


def extract_and_clean(page: SeedPage) -> tuple[Extracted, Cleaned]:
    url = url_of(page)
    extracted = extract((SEEDS / "site" / page.page).read_bytes(), url=url)
    cleaned = clean(extracted.text, title=extracted.title, url=url, site_name=extracted.site_name)
    return extracted, cleaned


def test_every_seed_has_a_page() -> None:
    seeds = sorted(p.stem for p in (SEEDS / "articles").glob("*.txt"))
    assert [p.seed for p in PAGES] == seeds
    assert sorted(p.name for p in (SEEDS / "site").glob("*.html")) == sorted(p.page for p in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_metadata(page: SeedPage) -> None:
    extracted = extract((SEEDS / "site" / page.page).read_bytes(), url=url_of(page))
    assert extracted.title == page.title
    assert extracted.site_name == page.site_name
    assert extracted.language == "en"
    assert extracted.published == page.published
    assert extracted.published is not None and extracted.published.utcoffset() is not None
    if page.author is None:
        assert extracted.author is None
    else:
        assert extracted.author is not None and page.author in extracted.author


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_extract_then_clean_keeps_every_body_line_and_no_junk(page: SeedPage) -> None:
    extracted, cleaned = extract_and_clean(page)
    # one paragraph per line, no blank lines
    assert all(line.strip() == line and line for line in extracted.text.split("\n"))

    expected = (SEEDS / "expected" / f"{page.seed}.txt").read_text("utf-8").splitlines()
    for line in expected:
        assert line in cleaned.text, f"lost body line {line[:60]!r}"

    lines = cleaned.text.splitlines()
    seed = (SEEDS / "articles" / f"{page.seed}.txt").read_text("utf-8").splitlines()
    junk = {" ".join(s.split()) for s in seed} - set(expected) - {""}
    assert junk, "every seed carries some junk"
    for line in junk:
        assert line not in lines, f"kept junk {line!r}"
    for words in CHROME:
        assert words.casefold() not in cleaned.text.casefold(), f"kept page chrome {words!r}"
    # extraction and cleaning give back the body, in order, and nothing else
    assert lines == expected


def test_the_seed_pages_leave_the_cleaner_real_work() -> None:
    """Some junk gets past trafilatura on these pages, as on the real ones."""
    removed = []
    for page in PAGES:
        _, cleaned = extract_and_clean(page)
        removed += [r.rule for r in cleaned.removed]
    assert len(removed) >= 10
    assert {"repeated_headline", "read_more", "caption_neighbour", "reprint_note"} <= set(removed)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"  \n\t ", "empty body"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "not an HTML"),
    ],
)
def test_nothing_to_extract(body: bytes, reason: str) -> None:
    with pytest.raises(ExtractionError, match=re.escape(reason)) as caught:
        extract(body, url="http://127.0.0.1:8000/x")
    assert reason in caught.value.reason


def test_a_page_without_an_article_is_rejected() -> None:
    section_front = b"""<!DOCTYPE html><html lang="en"><head><title>World | Example Times</title>
    <meta property="og:site_name" content="Example Times"></head><body>
    <header><nav><ul><li><a href="/world">World</a></li><li><a href="/business">Business</a></li>
    <li><a href="/sport">Sport</a></li></ul></nav></header>
    <main><h1>World</h1><ul class="river">
    <li><a href="/a">Israel, Russia to form Syria working group</a></li>
    <li><a href="/b">Pakistan says it shot down two Indian jets</a></li>
    <li><a href="/c">Trump and Kim meet in Hanoi</a></li></ul></main>
    <footer><p>&copy; 2019 Example Times</p></footer></body></html>"""
    # trafilatura's precision mode finds only the h1; its balanced mode finds
    # the menu and the headlines, which is no article either.
    with pytest.raises(ExtractionError, match=r"main text too short: 1 of at least 15 words"):
        extract(section_front, url="http://127.0.0.1:8000/world")


def _page(head: str, html_attrs: str = "") -> bytes:
    paragraph = (
        "<p>Israel and Russia will set up a working group with several other countries to"
        " address the issue of removing all foreign forces from Syria, an official said.</p>"
    )
    return (
        f"<!DOCTYPE html><html{html_attrs}><head><title>T</title>{head}</head>"
        f"<body><article>{paragraph * 3}</article></body></html>"
    ).encode()


@pytest.mark.parametrize(
    ("page", "language"),
    [
        (_page("", ' lang="en-US"'), "en"),
        (_page("", ' lang="FR"'), "fr"),
        (_page('<meta property="og:locale" content="de_DE">'), "de"),
        (_page('<meta http-equiv="Content-Language" content="pt-BR">'), "pt"),
        (_page(""), None),
        (_page("", ' lang="x-klingon-tlh"'), None),
    ],
)
def test_declared_language(page: bytes, language: str | None) -> None:
    assert extract(page, url="http://127.0.0.1:8000/x").language == language


def test_a_bare_day_is_taken_as_utc_midnight() -> None:
    page = _page('<meta property="article:published_time" content="2019-02-27">')
    assert extract(page, url="http://127.0.0.1:8000/x").published == datetime(
        2019, 2, 27, tzinfo=UTC
    )


def test_trafilatura_stays_behind_the_extract_module() -> None:
    importers = sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "pipeline").rglob("*.py")
        if re.search(r"^\s*(?:import|from)\s+trafilatura\b", path.read_text("utf-8"), re.M)
    )
    assert importers == ["pipeline/content/extract.py"]


# -- metadata: trafilatura's fields, by its own functions, without what we do not keep ----------

_BYLINE_PAGE = b"""<html><head><title>Ceasefire holds in the north - The Levant Ledger</title>
<meta property="og:description" content="Both sides kept to the truce overnight, observers said.">
</head><body>
<div class="sidebar"><span class="author">Sidebar Columnist</span></div>
<article><h1>Ceasefire holds in the north</h1>
<p class="byline">By <span class="author-name">Amira Haddad</span>
<time datetime="2025-03-02T08:30:00+02:00">2 March 2025</time></p>
<p>The ceasefire held overnight in the north, observers said on Sunday, the first quiet night
in a week of shelling along the frontier between the two sides of the valley.</p>
<p>Residents returned to the market in the morning, and the council reopened two schools
that had been closed since the start of the fighting.</p></article>
<div class="tags"><a href="/category/politics/">Politics</a></div></body></html>"""


def _seed_and_golden_pages() -> list[tuple[str, bytes]]:
    site = SEEDS / "site"
    pages = [(p.name, p.read_bytes()) for p in sorted(site.glob("*.html"))]
    golden = Path(__file__).parent / "testdata" / "extract"
    pages += [(p.name, p.read_bytes()) for p in sorted(golden.glob("*.html"))]
    return [*pages, ("byline", _BYLINE_PAGE)]


@pytest.mark.parametrize(("name", "body"), _seed_and_golden_pages(),
                         ids=[n for n, _ in _seed_and_golden_pages()])
def test_metadata_is_trafilaturas_for_the_fields_we_keep(name: str, body: bytes) -> None:
    # extract() reads metadata with trafilatura's own functions but skips the
    # categories, tags and licence it does not keep, and searches the page for
    # an author with trafilatura's XPaths rewritten without re:test(): every
    # field we keep must be what trafilatura's extract_metadata gives.
    import trafilatura
    from trafilatura.metadata import extract_metadata

    from pipeline.content import extract as module

    url = "https://ledger.example/2025/03/ceasefire"
    theirs = extract_metadata(trafilatura.load_html(body), url,
                              {**module._DATE_OPTIONS}, True)
    ours = module._metadata(trafilatura.load_html(body), url=url)
    for field in ("title", "author", "date", "sitename", "description"):
        assert getattr(ours, field) == getattr(theirs, field), (name, field)


def test_the_author_from_the_byline_not_from_the_sidebar() -> None:
    extracted = extract(_BYLINE_PAGE, url="https://ledger.example/2025/03/ceasefire")
    assert extracted.author == "Amira Haddad"
    assert extracted.published is not None
    assert extracted.published.date() == datetime(2025, 3, 2, tzinfo=UTC).date()
    assert extracted.title == "Ceasefire holds in the north"


# -- the tree's repairs before extraction keep what was there ----------------------------------

def _article_page(body: str, head: str = "") -> bytes:
    return (f"<!DOCTYPE html><html><head><title>Council vote</title>{head}</head>"
            f"<body><article>{body}</article></body></html>").encode()


_PARAGRAPH = ("The council voted on Tuesday to rebuild the harbour wall that the winter storms"
              " broke in two places, after a debate that lasted most of the afternoon.")


def test_a_date_on_an_empty_element_is_read_before_the_repairs_remove_it() -> None:
    # htmldate reads itemprop="datePublished" on an empty <span>; the repair
    # that removes empty elements must come after the metadata.
    page = _article_page('<span itemprop="datePublished" content="2021-03-04T10:00:00"></span>'
                         + f"<p>{_PARAGRAPH}</p>" * 3)
    extracted = extract(page, url="http://127.0.0.1:8000/x")
    assert extracted.published is not None
    assert extracted.published.date() == datetime(2021, 3, 4, tzinfo=UTC).date()


def test_text_after_an_empty_block_starts_a_line() -> None:
    # An empty <p> or <div class="clear"> ends a line in the browser: its tail
    # is the next paragraph, not glued to the one before.
    runs = [f"Paragraph {n}. {_PARAGRAPH}" for n in range(1, 4)]
    page = _article_page(f'<div>{runs[0]}<p></p>{runs[1]}<div class="clear"></div>{runs[2]}'
                         "</div>")
    lines = extract(page, url="http://127.0.0.1:8000/x").text.splitlines()
    for run in runs:
        assert run in lines
    assert not any("afternoon.Paragraph" in line for line in lines)


def test_a_span_inside_a_sentence_is_not_broken_off() -> None:
    # A <span> holding line breaks inside a paragraph continues the sentence
    # before it: no line break is put before its text.
    page = _article_page(
        f"<p>{_PARAGRAPH}</p><p>The mayor said that <span>the wall would be rebuilt before the"
        " next winter storms reach the harbour<br>with money from the regional fund<br>and from"
        f" the port's own reserves</span>, and left the meeting.</p><p>{_PARAGRAPH}</p>")
    text = extract(page, url="http://127.0.0.1:8000/x").text
    assert "The mayor said that the wall would be rebuilt" in text
