"""A real HTTP/1.1 server on 127.0.0.1 serving feeds and pages that tests script.

Each test sets the replies it needs, path by path::

    server.route("/feed.xml", Reply(body=rss(items), etag='"v1"'))
    server.route("/moved", Reply(status=301, headers={"Location": "/feed.xml"}))

A :class:`Reply` can answer conditional GETs (304 on a matching validator),
gzip its body, trickle it out a byte at a time, or be any status with any
headers. ``hits[path]`` counts requests and ``requests`` keeps each one's
headers (lower-case names), so tests can check what the poller sent.

Builders for the bodies: :func:`rss` (RSS 2.0 with optional channel extras
such as ``<ttl>``) and :func:`article` (an HTML page with enough prose for
the extractor and the cleaner to keep it).
"""

from __future__ import annotations

import gzip
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None  # sent; a matching If-None-Match gets 304
    last_modified: str | None = None  # sent; a matching If-Modified-Since gets 304
    validators_on_304: bool = True  # False: a 304 without ETag / Last-Modified
    gzip: bool = False  # Content-Encoding: gzip (body is compressed here unless raw)
    raw: bool = False  # body already encoded: send it as it is
    trickle: float = 0.0  # seconds between body bytes


Route = Reply | Callable[[dict[str, str]], Reply]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5
    # The headers and the body go out in two writes: with Nagle's algorithm the
    # body waits for the client's delayed ACK, 40 ms a response on Linux.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        headers = {k.lower(): v for k, v in self.headers.items()}
        owner = self.server.owner
        route = owner.record(path, headers)
        if route is None:
            reply = Reply(status=404, body=b"no such route", content_type="text/plain")
        else:
            reply = route(headers) if callable(route) else route
        try:
            self._send(reply, headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, reply: Reply, request: dict[str, str]) -> None:
        not_modified = (
            (reply.etag is not None and request.get("if-none-match") == reply.etag)
            or (reply.last_modified is not None
                and request.get("if-modified-since") == reply.last_modified)
        )
        status = 304 if not_modified and reply.status == 200 else reply.status
        body = b"" if status == 304 else reply.body
        if reply.gzip and not reply.raw:
            body = gzip.compress(body)
        self.send_response(status)
        self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        validators = status != 304 or reply.validators_on_304
        if reply.etag and validators:
            self.send_header("ETag", reply.etag)
        if reply.last_modified and validators:
            self.send_header("Last-Modified", reply.last_modified)
        if reply.gzip:
            self.send_header("Content-Encoding", "gzip")
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status == 304:
            return
        if not reply.trickle:
            self.wfile.write(body)
            return
        for i in range(len(body)):
            self.wfile.write(body[i:i + 1])
            self.wfile.flush()
            if self.server.owner.closing.wait(reply.trickle):
                break
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # joined on close: no thread outlives the fixture
    owner: FeedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-body is what the hostile tests provoke


class FeedServer:
    """``with FeedServer() as server:``; ``server.url("/feed.xml")``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        # Another loopback address (127.0.0.2) is another host to the fetcher:
        # its per-host limits and deadlines apply apart.
        self.host = host
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._httpd = _Server((host, 0), _Handler)
        self._httpd.owner = self
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def host_port(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, path: str, *, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def route(self, path: str, reply: Route) -> None:
        with self._lock:
            self._routes[path] = reply

    def record(self, path: str, headers: dict[str, str]) -> Route | None:
        with self._lock:
            self.hits[path] += 1
            self.requests.append((path, headers))
            return self._routes.get(path)

    def __enter__(self) -> FeedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def rss(items: Sequence[dict[str, str]], *, title: str = "Test Wire", channel: str = "",
        encoding: str | None = "utf-8", namespaces: str = "") -> str:
    """An RSS 2.0 document; each item's keys become its elements (escaped)."""
    declaration = f'<?xml version="1.0" encoding="{encoding}"?>' if encoding else ""
    body = "".join(
        "<item>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in item.items()) + "</item>\n"
        for item in items
    )
    return (f'{declaration}\n<rss version="2.0"{namespaces}><channel>\n'
            f"<title>{escape(title)}</title><link>http://example.org/</link>\n"
            f"<description>test</description>{channel}\n{body}</channel></rss>\n")


_PROSE = (
    "Negotiators from both governments met on {day} to discuss the withdrawal of foreign "
    "forces, officials said after the talks ended late in the evening.",
    "The delegations agreed to form a working group that will report to the ministers "
    "within a month, according to a statement released by the foreign ministry.",
    "Diplomats cautioned that many questions remain open, including the timetable and "
    "the monitoring arrangements that both sides would have to accept first.",
    "Observers in the region welcomed the step but warned that earlier agreements of "
    "this kind had collapsed within weeks of being announced to the public.",
)


def article(title: str, *, day: str = "Monday", extra: str = "", head: str = "") -> str:
    """An article page: a title and four paragraphs of prose (about 100 words)."""
    paragraphs = "".join(f"<p>{p.format(day=day)}</p>\n" for p in _PROSE)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head>{head}<title>{escape(title)}</title>"
            f"</head>\n<body><article><h1>{escape(title)}</h1>\n{extra}{paragraphs}"
            "</article></body></html>\n")
