"""What goes on to extraction (fetch.html_problem) and how its bytes are decoded
(pipeline.charset.utf8_html)."""

# Russian test text: its Cyrillic letters are meant, not look-alikes.
# ruff: noqa: RUF001

from __future__ import annotations

import codecs

import pytest
from trafilatura.utils import decode_file

from pipeline.charset import declared_charset, utf8_html
from pipeline.sources.pages import html_problem

PAGE = b"<!DOCTYPE html><html><head><title>t</title></head><body><p>text</p></body></html>"


@pytest.mark.parametrize(
    ("content_type", "body", "problem"),
    [
        ("text/html; charset=utf-8", PAGE, None),
        ("application/xhtml+xml", b'<?xml version="1.0"?>'
         b'<html xmlns="http://www.w3.org/1999/xhtml"><body><p>x</p></body></html>', None),
        ("application/octet-stream", PAGE, None),
        ("application/octet-stream", codecs.BOM_UTF8 + b"\n  " + PAGE, None),
        ("", b"<div>no doctype</div><body><p>text</p></body>", None),
        ("text/html", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
         "not HTML: the body is a PDF document"),
        ("text/html", b"\x89PNG\r\n\x1a\n\x00\x00", "not HTML: the body is a PNG image"),
        ("application/json", b'{"title": "x"}', "not HTML: the body is JSON"),
        ("text/html", b' \n{"title": "<b>x</b>"}', "not HTML: the body is JSON"),
        ("text/html", b'[{"id": 1}]', "not HTML: the body is JSON"),
        ("text/html", b'<?xml version="1.0"?>\n<rss version="2.0"><channel/></rss>',
         "not HTML: the body is an RSS or Atom feed"),
        ("application/atom+xml", b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">',
         "not HTML: the body is an RSS or Atom feed"),
        ("text/plain", b"just some words, no markup", "not HTML: content type text/plain"),
        ("image/png", PAGE, "not HTML: content type image/png"),
        ("", b"plain bytes", "not HTML: content type missing"),
        ("text/html", b"", "empty page"),
        ("text/html", b" \r\n\t", "empty page"),
    ],
    ids=["html", "xhtml", "html-as-octet-stream", "html-with-bom-as-octet-stream",
         "no-type-but-html", "pdf-as-html", "png-as-html", "json", "json-as-html",
         "json-array-as-html", "rss-as-html", "atom", "text", "png-type", "no-type-no-html",
         "empty", "blank"],
)
def test_html_problem(content_type: str, body: bytes, problem: str | None) -> None:
    assert html_problem(content_type, body) == problem


RUSSIAN = "Переговоры о выводе иностранных войск из Сирии продолжатся в Москве."
POLISH = "Rozmowy w sprawie wycofania obcych wojsk będą kontynuowane w Moskwie. Zażółć gęślą jaźń."


def page(text: str, *, head: str = "") -> str:
    return (f"<!DOCTYPE html><html><head>{head}<title>t</title></head>"
            f"<body><p>{text}</p></body></html>")


def test_meta_charset_is_read() -> None:
    body = page(RUSSIAN, head='<meta charset="windows-1251">').encode("cp1251")
    assert declared_charset("text/html", body) == "cp1251"
    assert RUSSIAN in utf8_html(body, "text/html").decode("utf-8")


def test_http_equiv_content_type_is_read() -> None:
    head = '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">'
    body = page(RUSSIAN, head=head).encode("koi8_r")
    assert RUSSIAN in utf8_html(body, "text/html").decode("utf-8")


def test_http_charset_alone_decodes_what_guessing_gets_wrong() -> None:
    body = page(POLISH * 3).encode("iso8859_2")
    assert POLISH not in decode_file(body)  # trafilatura's own guess: ISO-8859-1
    assert POLISH in utf8_html(body, "text/html; charset=ISO-8859-2").decode("utf-8")


def test_http_charset_alone_windows_1251() -> None:
    body = page(RUSSIAN).encode("cp1251")
    assert RUSSIAN in utf8_html(body, 'text/html; charset="windows-1251"').decode("utf-8")


def test_http_charset_wins_over_meta_as_in_browsers() -> None:
    body = page(RUSSIAN, head='<meta charset="utf-8">').encode("cp1251")
    assert declared_charset("text/html; charset=windows-1251", body) == "cp1251"


def test_byte_order_mark_wins_over_everything() -> None:
    body = codecs.BOM_UTF8 + page(RUSSIAN, head='<meta charset="koi8-r">').encode("utf-8")
    converted = utf8_html(body, "text/html; charset=windows-1251")
    assert converted.decode("utf-8").startswith("<!DOCTYPE html>")  # BOM gone
    assert RUSSIAN in converted.decode("utf-8")


def test_latin_1_means_windows_1252_as_in_browsers() -> None:
    body = page("\u201cquoted\u201d \u20ac5").encode("cp1252")  # bytes 0x93, 0x94, 0x80
    assert "\u201cquoted\u201d \u20ac5" in utf8_html(body, "text/html; charset=iso-8859-1").decode()


def test_utf_16_in_a_meta_tag_means_utf_8() -> None:
    body = page(RUSSIAN, head='<meta charset="utf-16">').encode("utf-8")
    assert utf8_html(body, "text/html") is body


@pytest.mark.parametrize("label", ["no-such-charset", "base64", "zlib", "undefined", ""])
def test_unusable_labels_leave_the_bytes_to_the_extractor(label: str) -> None:
    body = page(RUSSIAN).encode("cp1251")
    assert utf8_html(body, f"text/html; charset={label}") == body


def test_undeclared_pages_are_left_to_the_extractor() -> None:
    body = page(RUSSIAN).encode("cp1251")
    assert declared_charset("text/html", body) is None
    assert utf8_html(body, "text/html") is body
