"""A real HTTP/1.1 server on 127.0.0.1 that misbehaves on demand.

The fetcher's behaviour depends on the wire (redirect hops, keep-alive,
chunked bodies, trickling, gzip), so its tests talk to a real socket rather
than a mock. Routes (query parameters in brackets):

    /ok                       200 "ok"
    /headers                  200, JSON of the request headers (lower-case names)
    /etag                     ETag "v1" + Last-Modified; 304 when either validator matches
    /status/N [retry_after]   status N, with Retry-After if given
    /redirect [to, code]      `code` (302) with Location: `to`, verbatim
    /redirect-chain/N [code]  N hops of `code` (301) then 200 "end"
    /redirect-loop            302 to itself
    /mixed                    301 -> 302 -> /ok
    /cookie-gate              302 to itself setting a cookie; 200 once it comes back
    /echo-cookie              200, body = the Cookie header
    /trickle [interval]       Content-Length 1000, then 1 byte every `interval` (0.5) s
    /sleep [s]                wait `s` seconds before the status line
    /slow [s]                 200 after `s` (0.3) seconds; counted for concurrency
    /gzip /deflate /deflate-raw /br   small encoded bodies ("hello encoded")
    /gzip-bomb                gzip of 100 MiB of zeros (~100 KB on the wire)
    /big [size]               Content-Length `size`, that many zeros
    /big-chunked [size]       `size` zeros, chunked, no Content-Length
    /wrong-type               200 image/png
    /empty                    200, empty body
    /reset                    closes the connection without a response

Every request is counted: ``max_active[path]`` (most concurrent requests
seen on that path; per path, because a /sleep from an earlier test may still
be running) and ``starts`` (path, time.monotonic()) let tests check the
politeness limits.
"""

from __future__ import annotations

import email.utils
import gzip
import json
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

ENCODED_TEXT = b"hello encoded"
BOMB_SIZE = 100 * 2**20
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


def gzip_bomb(size: int = BOMB_SIZE) -> bytes:
    """Gzip of ``size`` zero bytes, compressed a MiB at a time (never 100 MiB in memory)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(2**20)
    parts = [compressor.compress(block) for _ in range(size // len(block))]
    parts.append(compressor.flush())
    return b"".join(parts)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked, like real servers
    timeout = 5  # an idle keep-alive connection cannot hold shutdown forever
    server: _Server

    routes: ClassVar[dict[str, Callable[[_Handler, dict[str, str]], None]]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet tests

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        route = self.routes.get(parts.path)
        prefix, _, arg = parts.path.rpartition("/")
        if route is None and prefix in ("/status", "/redirect-chain"):
            query["n"] = arg
            route = self.routes[prefix]
        bad = self.server.bad
        bad.enter(parts.path)
        self._active_path: str | None = parts.path
        try:
            (route or _Handler.not_found)(self, query)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up: expected here
        finally:
            self._leave()

    def _leave(self) -> None:
        """Counted out once: by :meth:`send` before its body goes (a client
        that has read it may send its next request before this thread runs
        again, and the two would count as concurrent), else at the end."""
        if self._active_path is not None:
            self.server.bad.leave(self._active_path)
            self._active_path = None

    # helpers

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
             content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._leave()
        if status != 304:
            self.wfile.write(body)

    def not_found(self, q: dict[str, str]) -> None:
        self.send(404, b"no such route")

    # routes

    def ok(self, q: dict[str, str]) -> None:
        self.send(200, b"ok")

    def headers_echo(self, q: dict[str, str]) -> None:
        data = {k.lower(): v for k, v in self.headers.items()}
        self.send(200, json.dumps(data).encode(), content_type="application/json")

    def etag(self, q: dict[str, str]) -> None:
        validators = {"ETag": '"v1"', "Last-Modified": LAST_MODIFIED}
        if (self.headers.get("If-None-Match") == '"v1"'
                or self.headers.get("If-Modified-Since") == LAST_MODIFIED):
            self.send(304, headers=validators)
        else:
            self.send(200, b"fresh", headers=validators)

    def status(self, q: dict[str, str]) -> None:
        extra = {"Retry-After": q["retry_after"]} if "retry_after" in q else {}
        self.send(int(q["n"]), b"status body", headers=extra)

    def redirect(self, q: dict[str, str]) -> None:
        self.send(int(q.get("code", "302")), headers={"Location": q["to"]})

    def redirect_chain(self, q: dict[str, str]) -> None:
        n, code = int(q["n"]), q.get("code", "301")
        if n <= 0:
            self.send(200, b"end")
        else:
            self.send(int(code), headers={"Location": f"/redirect-chain/{n - 1}?code={code}"})

    def redirect_loop(self, q: dict[str, str]) -> None:
        self.send(302, headers={"Location": "/redirect-loop"})

    def mixed(self, q: dict[str, str]) -> None:
        self.send(301, headers={"Location": "/redirect?to=/ok&code=302"})

    def cookie_gate(self, q: dict[str, str]) -> None:
        if "gate=open" in (self.headers.get("Cookie") or ""):
            self.send(200, b"in")
        else:
            self.send(302, headers={"Location": "/cookie-gate",
                                    "Set-Cookie": "gate=open; Path=/"})

    def echo_cookie(self, q: dict[str, str]) -> None:
        self.send(200, (self.headers.get("Cookie") or "").encode())

    def trickle(self, q: dict[str, str]) -> None:
        interval = float(q.get("interval", "0.5"))
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        for _ in range(1000):
            self.wfile.write(b"x")
            self.wfile.flush()
            if self.server.bad.closing.wait(interval):
                break
        self.close_connection = True

    def sleep(self, q: dict[str, str]) -> None:
        self.server.bad.closing.wait(float(q.get("s", "2")))
        self.send(200, b"late")

    def slow(self, q: dict[str, str]) -> None:
        time.sleep(float(q.get("s", "0.3")))
        self.send(200, b"slow")

    def encoded(self, q: dict[str, str]) -> None:
        kind = urlsplit(self.path).path.lstrip("/")
        if kind == "gzip":
            body, coding = gzip.compress(ENCODED_TEXT), "gzip"
        elif kind == "deflate":
            body, coding = zlib.compress(ENCODED_TEXT), "deflate"
        elif kind == "deflate-raw":
            c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            body, coding = c.compress(ENCODED_TEXT) + c.flush(), "deflate"
        else:  # not real brotli: the client must refuse before decoding
            body, coding = b"\x0b\x02\x80hello\x03", "br"
        self.send(200, body, headers={"Content-Encoding": coding})

    def bomb(self, q: dict[str, str]) -> None:
        self.send(200, self.server.bad.bomb, headers={"Content-Encoding": "gzip"},
                  content_type="application/rss+xml")

    def big(self, q: dict[str, str]) -> None:
        size = int(q.get("size", str(2**20)))
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self._zeros(size, chunked=False)

    def big_chunked(self, q: dict[str, str]) -> None:
        size = int(q.get("size", str(2**20)))
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._zeros(size, chunked=True)
        self.wfile.write(b"0\r\n\r\n")

    def _zeros(self, size: int, *, chunked: bool) -> None:
        block = bytes(2**16)
        while size > 0:
            piece = block[:size]
            if chunked:
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            else:
                self.wfile.write(piece)
            size -= len(piece)

    def wrong_type(self, q: dict[str, str]) -> None:
        self.send(200, b"\x89PNG\r\n\x1a\n", content_type="image/png")

    def empty(self, q: dict[str, str]) -> None:
        self.send(200, b"")

    def reset(self, q: dict[str, str]) -> None:
        self.close_connection = True  # no status line at all


_Handler.routes = {
    "/ok": _Handler.ok,
    "/headers": _Handler.headers_echo,
    "/etag": _Handler.etag,
    "/status": _Handler.status,
    "/redirect": _Handler.redirect,
    "/redirect-chain": _Handler.redirect_chain,
    "/redirect-loop": _Handler.redirect_loop,
    "/mixed": _Handler.mixed,
    "/cookie-gate": _Handler.cookie_gate,
    "/echo-cookie": _Handler.echo_cookie,
    "/trickle": _Handler.trickle,
    "/sleep": _Handler.sleep,
    "/slow": _Handler.slow,
    "/gzip": _Handler.encoded,
    "/deflate": _Handler.encoded,
    "/deflate-raw": _Handler.encoded,
    "/br": _Handler.encoded,
    "/gzip-bomb": _Handler.bomb,
    "/big": _Handler.big,
    "/big-chunked": _Handler.big_chunked,
    "/wrong-type": _Handler.wrong_type,
    "/empty": _Handler.empty,
    "/reset": _Handler.reset,
}


class _Server(ThreadingHTTPServer):
    # Join handler threads on close, so no thread outlives the fixture
    # (trickle and sleep end early once `closing` is set).
    daemon_threads = False
    bad: BadServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-body is what these tests provoke; anything
        # else is a bug in this server and gets the usual traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class BadServer:
    """Start with ``with BadServer() as server:``; ``server.url("/ok")``."""

    def __init__(self) -> None:
        self.bomb = gzip_bomb()
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self.active: Counter[str] = Counter()
        self.max_active: Counter[str] = Counter()  # by path
        self.starts: list[tuple[str, float]] = []
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.bad = self
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{self.host_port}{path}"

    def reset_stats(self) -> None:
        with self._lock:
            self.max_active.clear()
            self.starts.clear()

    def enter(self, path: str) -> None:
        with self._lock:
            self.active[path] += 1
            self.max_active[path] = max(self.max_active[path], self.active[path])
            self.starts.append((path, time.monotonic()))

    def leave(self, path: str) -> None:
        with self._lock:
            self.active[path] -= 1

    def __enter__(self) -> BadServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)
