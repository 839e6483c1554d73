"""pipeline.content.extract.load_html: trafilatura's tree, with lxml's element class lookup in C."""

from __future__ import annotations

import copy
from pathlib import Path

import lxml.etree
import lxml.html
import pytest
import trafilatura

from pipeline.content.extract import load_html

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "seeds" / "site").glob("*.html")) + sorted(
    (ROOT / "tests" / "unit" / "testdata" / "extract").glob("*.html"))

CRAFTED = {
    "plain": b"<html><head><title>T</title></head><body><p>One.</p><p>Two.</p></body></html>",
    "form and inputs": (b"<html><body><form action='/x'><label for='e'>Mail</label>"
                        b"<input id='e' name='e' value='v'><select><option>a</option></select>"
                        b"<textarea>t</textarea></form><p>Text</p></body></html>"),
    # an encoding declaration: lxml refuses the str, both parse the bytes instead
    "xml declaration": (b"<?xml version='1.0' encoding='utf-8'?><html><body><p>\xc3\xa9t\xc3\xa9"
                        b"</p></body></html>"),
    "self-closed html": b"<html lang='en' /><body><p>Faulty but readable.</p></body>",
    "control characters": b"<html><body><p>a\x00b\x07c</p><!-- gone --></body></html>",
    "latin-1": "<html><head><meta charset='iso-8859-1'></head><body><p>Gr\xfc\xdfe</p></body>"
               "</html>".encode("latin-1"),
    "fragment": b"<div><p>Just a fragment with <b>html</b> words.</p><p>Two.</p></div>",
    "not html": b"just some words, no markup at all",
    "one element": b"<p>one paragraph</p>",
}


def _serialised(tree: object) -> bytes | None:
    return None if tree is None else lxml.etree.tostring(tree, encoding="utf-8")


@pytest.mark.parametrize("body", [*CRAFTED.values(), *(p.read_bytes() for p in PAGES)],
                         ids=[*CRAFTED, *(p.name for p in PAGES)])
def test_the_same_tree_as_trafilatura(body: bytes) -> None:
    assert _serialised(load_html(body)) == _serialised(trafilatura.load_html(body))


def test_the_pages_are_there() -> None:
    assert len(PAGES) >= 5  # the seeds' pages and the extraction test pages


def test_not_html_is_none_as_in_trafilatura() -> None:
    assert trafilatura.load_html(CRAFTED["not html"]) is None
    assert load_html(CRAFTED["not html"]) is None


def test_every_element_is_a_plain_html_element() -> None:
    tree = load_html(CRAFTED["form and inputs"])
    elements = [e for e in tree.iter() if isinstance(e.tag, str)]
    assert {e.tag for e in elements} >= {"form", "label", "input", "select", "textarea", "p"}
    # lxml.html's own parser makes FormElement, InputElement ...: the lookup in Python
    assert all(type(e) is lxml.html.HtmlElement for e in elements)
    assert type(trafilatura.load_html(CRAFTED["form and inputs"]).find(".//form")) \
        is lxml.html.FormElement
    # what trafilatura and readability use is there
    assert tree.find(".//form").text_content() == "Mailat"


def test_copies_keep_the_lookup() -> None:
    # trafilatura and readability work on copies of the tree: the parser goes with them
    tree = copy.deepcopy(load_html(CRAFTED["form and inputs"]))
    assert type(tree.find(".//form")) is lxml.html.HtmlElement
    assert type(tree.find(".//input")) is lxml.html.HtmlElement


def test_a_page_that_declares_utf8_is_utf8_despite_a_stray_byte() -> None:
    # One byte of another encoding (a Windows-1252 apostrophe, 0x92) makes
    # the page invalid UTF-8; trafilatura then decodes all of it by a
    # detector's guess, and every UTF-8 curly quote and accent becomes
    # mojibake. The page declares UTF-8, and the stray byte is read as the
    # windows-1252 character it was typed as.
    body = ("<html><head><meta http-equiv='Content-Type' content='text/html; charset=UTF-8'>"
            "<title>Caf\u00e9</title></head><body><p>The caf\u00e9\u2019s owner said "
            "\u201cwe stay open\u201d on Monday, and the council agreed.</p>"
            "<p>Comment: it\u2019s good news for the street's shops.</p>"
            "</body></html>").encode("utf-8").replace(b"street's", b"street\x92s")
    tree = load_html(body)
    assert tree is not None
    text = tree.text_content()
    assert "The caf\u00e9\u2019s owner said \u201cwe stay open\u201d" in text
    assert "it\u2019s good news for the street\u2019s shops" in text


_MARKET = ("<p>Le maire de Montréal a annoncé jeudi que la rénovation du marché "
           "Jean-Talon commencera à l'été, après des années de débats "
           "à l'hôtel de ville.</p><p>Les commerçants craignent une baisse de "
           "fréquentation pendant les travaux.</p>")


def _market_page(head: str) -> str:
    return (f"<html><head>{head}<title>Marché</title></head><body><article>"
            f"{_MARKET}</article></body></html>")


@pytest.mark.parametrize("head", [
    # A CMS template that declares UTF-8 over a Latin-1 (windows-1252) body.
    '<meta charset="utf-8">',
    # The first declaration wins, as in a browser: a later one is ignored.
    '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">'
    '<meta name="viewport" content="width=device-width"><meta charset="utf-8">',
])
def test_a_latin1_page_is_not_read_as_utf8_because_a_meta_tag_says_so(head: str) -> None:
    tree = load_html(_market_page(head).encode("cp1252"))
    assert tree is not None
    text = tree.text_content()
    assert "Le maire de Montréal a annoncé jeudi" in text
    assert "\ufffd" not in text


def test_a_windows_1251_page_declared_utf8_keeps_its_letters() -> None:
    russian = ("<p>Городской совет "
               "в понедельник "
               "утвердил бюджет "
               "на следующий "
               "год.</p>") * 3
    body = (f'<html><head><meta charset="utf-8"><title>Бюджет</title>'
            f"</head><body><article>{russian}</article></body></html>").encode("cp1251")
    tree = load_html(body)
    assert tree is not None
    assert "Городской совет" in (
        tree.text_content())


def test_quotes_pasted_from_word_into_a_utf8_page_are_read_as_windows_1252() -> None:
    # German quotes pasted from Word as single windows-1252 bytes („ 0x84,
    # “ 0x93) outnumber the page's UTF-8 umlauts; the page is still UTF-8,
    # and the stray bytes are the quotes they were typed as.
    sentence = "Das Büro des Bürgermeisters sagte am Montag: „Gut“."
    body = ('<html><head><meta charset="utf-8"></head><body>'
            + f"<p>{sentence}</p>" * 5 + "</body></html>").encode("utf-8")
    body = body.replace("„".encode(), b"\x84").replace("“".encode(), b"\x93")
    tree = load_html(body)
    assert tree is not None
    assert tree.text_content().count(sentence) == 5


@pytest.mark.parametrize("stray", [b"\x92", b"\x81", b"\xdc"])
def test_an_ascii_page_declared_utf8_with_one_stray_byte_keeps_its_letters(stray: bytes) -> None:
    body = (b'<html><head><meta charset="utf-8"></head><body><p>It' + stray
            + b"s good news for the street, the council said.</p></body></html>")
    tree = load_html(body)
    assert tree is not None
    text = tree.text_content()
    assert text.startswith("It") and text.endswith("s good news for the street, the council said.")
    assert len(text) == len("It_s good news for the street, the council said.")


def test_a_utf8_declaration_after_a_long_script_still_counts() -> None:
    script = "<script>var config = {" + "'key': 'value', " * 400 + "};</script>"
    body = (f'<html><head>{script}<meta charset="utf-8"><title>Café</title></head><body>'
            "<p>The caf\u00e9\u2019s owner said \u201cwe stay open\u201d, and the street "
            "agreed.</p></body></html>").encode().replace(b"agreed", b"agr\xe9ed")
    tree = load_html(body)
    assert tree is not None
    assert ("The caf\u00e9\u2019s owner said \u201cwe stay open\u201d, and the street "
            "agr\u00e9ed.") in tree.text_content()


def test_a_mangled_entitys_leftover_bytes_do_not_make_a_utf8_page_foreign() -> None:
    # A CMS wrote a curly apostrophe's first byte as the entity &acirc; and
    # left its two continuation bytes raw: pairs of stray bytes, but no
    # letters of another script. The page's other UTF-8 text stays right.
    body = ('<html><head><meta charset="utf-8"></head><body>'
            "<p>The caf\u00e9 on the corner and the cr\u00e8che next door reopen on Monday.</p>"
            "<p>The owner&acirc;XXs plan was approved.</p>" * 3
            + "</body></html>").encode().replace(b"XX", b"\x80\x99")
    tree = load_html(body)
    assert tree is not None
    text = tree.text_content()
    assert text.count("The caf\u00e9 on the corner and the cr\u00e8che next door") == 3


_FOREIGN = [
    ("shift_jis", "東京都は月曜日、新しい地震対策の計画を発表した。"
                  "知事によると、学校や病院の耐震化を進める。"),
    ("big5", "行政院長週一在台北主持院會，通過明年度中央政府總預算案。"  # noqa: RUF001
             "院會指出，將加強對基礎建設的投資。"),  # noqa: RUF001
    ("euc_kr", "정부는 월요일 서울에서 새로운 경제 대책을 발표했다. "
               "장관은 내년 예산을 크게 늘리겠다고 말했다."),
    ("cp1250", "Vláda v pondělí schválila návrh zákona o státním rozpočtu "
               "na příští rok, uvedl ministr."),
    ("cp1254", "Hükümet pazartesi günü yeni ekonomik önlemleri açıkladı "  # noqa: RUF001
               "ve ayrıntıları yakında paylaşacak."),  # noqa: RUF001
]


@pytest.mark.parametrize(("codec", "text"), _FOREIGN)
def test_a_page_in_another_encoding_under_a_utf8_declaration_keeps_the_detectors_reading(
        codec: str, text: str) -> None:
    # A template that declares UTF-8 over a body in another encoding: every
    # non-ASCII letter is invalid UTF-8, too many to be pasted characters,
    # and reading them as windows-1252 would garble every word.
    body = (b'<html><head><meta charset="utf-8"><title>News</title></head><body><p>'
            + (text + " ").encode(codec) * 3 + b"</p></body></html>")
    tree = load_html(body)
    assert tree is not None
    assert text in tree.text_content()


@pytest.mark.parametrize("paragraphs", [1, 90])
def test_a_long_feature_pasted_from_word_keeps_every_quote(paragraphs: int) -> None:
    # Four Word quotes a paragraph, one ellipsis run of three ("\u2026\u2019\u201d"),
    # and the page's own UTF-8 accents: 4 to 360 stray bytes, all windows-1252
    # punctuation.
    paragraph = ("\u201cWe\u2019ll rebuild,\u201d said the mayor of Saint-\u00c9tienne, "
                 "\u201cand then\u2026\u2019\u201d")
    body = ('<html><head><meta charset="utf-8"></head><body><article>'
            + f"<p>{paragraph}</p>" * paragraphs + "</article></body></html>").encode()
    for char, byte in (("\u201c", b"\x93"), ("\u201d", b"\x94"), ("\u2019", b"\x92"),
                       ("\u2026", b"\x85")):
        body = body.replace(char.encode(), byte)
    tree = load_html(body)
    assert tree is not None
    assert tree.text_content().count(paragraph) == paragraphs


@pytest.mark.parametrize("pasted", [b"\xa3", b"\xa0"])
def test_word_quotes_with_a_pasted_pound_or_space_keep_the_page_utf8(pasted: bytes) -> None:
    # Text pasted as windows-1252 brings Word's quotes and, now and then, a
    # "£" or a non-breaking space (0xA0 and up): a few such bytes among the
    # quotes are still pasted characters, not another encoding.
    paragraph = ("\u201cWe\u2019ll rebuild the caf\u00e9 in Saint-\u00c9tienne,\u201d "
                 "said the mayor.")
    body = ('<html><head><meta charset="utf-8"></head><body>'
            + f"<p>{paragraph}</p>" * 20 + "<p>It will cost PASTED5m.</p></body></html>").encode()
    for char, byte in (("\u201c", b"\x93"), ("\u201d", b"\x94"), ("\u2019", b"\x92")):
        body = body.replace(char.encode(), byte)
    tree = load_html(body.replace(b"PASTED", pasted))
    assert tree is not None
    text = tree.text_content()
    assert text.count(paragraph) == 20
    assert f"It will cost {pasted.decode('cp1252')}5m." in text
