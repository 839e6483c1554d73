"""feedparser's own test feeds (``../shared/feeds/feedparser-tests.tar.gz``) as
files a :class:`~support.feedserver.FeedServer` serves.

feedparser's test files carry the HTTP response headers a test expects as
``Header:`` lines in the comment at the top (after the XML declaration, if any)::

    <!--
    Header:      Content-type: application/atom+xml; charset="utf-8"
    Description: ...
    -->

feedparser's own test server (``tests/runtests.py``) sends them as real
headers and a content type guessed from the file name when none is given;
:func:`corpus_files` reads them the same way, and :func:`serve` routes every
file, so a poll sees what feedparser's HTTP tests see.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from support.feedserver import FeedServer, Reply

ARCHIVE = (Path(__file__).resolve().parents[2] / ".." / "shared" / "feeds"
           / "feedparser-tests.tar.gz")

# feedparser's test server: br"^Header:\s+([^:]+):(.+)$" (multiline). An empty
# value is read here too ("Last-Modified:" tests a blank header), where
# feedparser's pattern skips it.
_HEADER = re.compile(rb"^Header:[ \t]+([^:\r\n]+):[ \t]*(.*?)[ \t]*\r?$", re.MULTILINE)
# feedparser's server guesses with mimetypes, which depends on the machine's
# /etc/mime.types (text/xml or application/xml); one fixed answer here.
_CONTENT_TYPES = {".xml": "application/xml", ".json": "application/json"}


@dataclass(frozen=True, slots=True, kw_only=True)
class CorpusFile:
    path: str  # "/tests/wellformed/rss/channel_title.xml": the URL path it is served at
    body: bytes
    content_type: str
    headers: dict[str, str]  # the other Header: lines, as written


def unpack(archive: Path, into: Path) -> Path:
    """Unpack the archive under ``into``; the folder holding ``tests/``."""
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def corpus_files(root: Path) -> list[CorpusFile]:
    """Every file under ``root`` (sorted by path) with its headers."""
    files = []
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        body = file.read_bytes()
        headers: dict[str, str] = {}
        for name, value in _HEADER.findall(body):  # as feedparser's server: the whole file
            headers[name.decode("latin-1").strip()] = value.decode("latin-1")
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"),
                            _CONTENT_TYPES.get(file.suffix, "application/octet-stream"))
        files.append(CorpusFile(
            path="/" + file.relative_to(root).as_posix(), body=body, content_type=content_type,
            headers={k: v for k, v in headers.items() if k.lower() != "content-type"},
        ))
    return files


def response_headers(file: CorpusFile) -> dict[str, str]:
    """The headers the file is served with, lower-case names (as feedparser
    gets them when it fetches a URL itself)."""
    return {"content-type": file.content_type, **{k.lower(): v for k, v in file.headers.items()}}


def serve(server: FeedServer, files: list[CorpusFile]) -> None:
    for file in files:
        server.route(file.path, Reply(body=file.body, content_type=file.content_type,
                                      headers=dict(file.headers)))
