"""A page's declared text encoding, read as a browser reads it.

The byte-order mark first, then the HTTP header's charset, then the first
``<meta>`` charset in the page's first bytes (the WHATWG prescan), with the
labels mapped as browsers map them (``iso-8859-1`` is windows-1252).
Shared by the page fetcher (:mod:`pipeline.sources.pages`) and the
extractor's decoding (:func:`pipeline.content.extract.load_html`).
"""

from __future__ import annotations

import codecs
import re

__all__ = ["declared_charset", "utf8_html"]

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
_HEADER_CHARSET = re.compile(r";\s*charset\s*=\s*[\"']?\s*([^\s;\"']+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]+?charset\s*=\s*[\"']?\s*([A-Za-z0-9_:.+-]+)", re.IGNORECASE)
# The HTML spec reads the first 1024 bytes for <meta charset>; real heads put
# scripts and styles first, and reading a little further costs nothing.
_META_SCAN = 4096
# WHATWG Encoding Standard: what browsers decode these labels as.
_ALIASES = {
    **dict.fromkeys(("iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "ascii",
                     "us-ascii", "cp819", "ibm819", "iso-ir-100", "csisolatin1",
                     "iso_8859-1", "x-cp1252"), "cp1252"),
    "iso-8859-9": "cp1254", "latin5": "cp1254", "iso-8859-11": "cp874", "tis-620": "cp874",
    "x-mac-cyrillic": "mac-cyrillic", "x-mac-roman": "mac-roman", "iso-8859-8-i": "iso-8859-8",
    "x-sjis": "shift_jis", "gb2312": "gbk", "x-gbk": "gbk",
}


def _codec(label: str, *, from_meta: bool = False) -> str | None:
    name = label.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return None
    if from_meta and codec.startswith("utf-16"):
        return "utf-8"  # a meta tag read as ASCII cannot be UTF-16 (WHATWG prescan)
    return codec


def declared_charset(content_type: str, body: bytes, *, scan: int = _META_SCAN) -> str | None:
    """The Python codec for the page's declared encoding, or None if it declares none.

    ``scan``: how many of the body's first bytes to search for ``<meta>``.
    """
    for bom, bom_codec in _BOMS:
        if body.startswith(bom):
            return bom_codec
    match = _HEADER_CHARSET.search(content_type)
    header_codec = _codec(match.group(1)) if match else None
    if header_codec is not None:
        return header_codec
    meta = _META_CHARSET.search(body[:scan])
    if meta:
        return _codec(meta.group(1).decode("ascii", "replace"), from_meta=True)
    return None


def utf8_html(body: bytes, content_type: str) -> bytes:
    """The page as UTF-8, decoded with its declared charset; as it came if it declares none."""
    codec = declared_charset(content_type, body)
    if codec is None or codec == "utf-8":
        return body
    try:
        text = body.decode(codec, errors="replace")
    except (LookupError, UnicodeError):
        # A label naming no text encoding ("base64", "zlib", "undefined"):
        # as good as no label.
        return body
    return text.encode("utf-8")
