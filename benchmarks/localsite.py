"""A fast local news site for the benchmarks: thousands of feeds and their pages.

    with LocalSite(feeds=1000, entries=20) as site:
        site.feed_url(0)        # http://127.0.0.1:PORT/feeds/0.xml
        site.set_generation(2)  # every feed gets new entries
        site.stats()            # requests served and the server's CPU seconds

One server process (``python -m benchmarks.localsite``: it shares nothing
with the benchmark) runs a plain asyncio HTTP/1.1 server on raw sockets: keep-alive,
GET only, ETag and If-None-Match. It must not be what the benchmark measures,
so it does little per request (no framework, no logging) and reports its own
CPU time: :meth:`stats` gives the share of the wall time it was busy.

**Hosts.** newsmon sends at most ``fetch.per_host_concurrency`` (2) requests
at a time to one host, as it should to a real site. Real feeds live on many
hosts, so the site listens on ``hosts`` loopback addresses (127.0.0.1,
127.0.0.2, ...: all of 127.0.0.0/8 is loopback on Linux) on one port, and
feed ``n`` and its pages are spread over them. :attr:`allow_private` lists
them for ``fetch.allow_private``.

**Feeds.** Feed ``n`` at generation ``g`` lists ``entries`` items, the newest
first: items ``g * new_per_generation`` to ``g * new_per_generation +
entries - 1``, so each generation brings ``new_per_generation`` new items and
keeps the rest. Its ETag names the generation: a poll with the current ETag
gets ``304 Not Modified``.

**Latency.** :meth:`set_latency` delays every reply, as a network's round
trip would: on loopback a sequential client waits for nothing, so only CPU
time separates it from a concurrent one.

**Pages.** Item ``k`` of feed ``n`` is article number ``k * feeds + n`` of a
:class:`benchmarks.synthetic.Newsroom` (so consecutive articles, often
reports of one event, come from different feeds), in a news page template.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from email.utils import format_datetime
from pathlib import Path
from types import TracebackType
from xml.sax.saxutils import escape

from benchmarks.synthetic import Newsroom, page_html

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteConfig:
    feeds: int
    entries: int = 20
    new_per_generation: int = 5
    hosts: int = 32
    related: int = 15


def _address(n: int) -> str:
    return f"127.0.0.{1 + n}"


class _Content:
    """What the server serves; built in the server process."""

    def __init__(self, config: SiteConfig, port: int) -> None:
        self.config = config
        self.port = port
        self.generation = 1
        self.newsroom = Newsroom()
        self._feeds: dict[int, bytes] = {}  # this generation's feed bodies

    def set_generation(self, generation: int) -> None:
        """Also writes every feed body of the generation: the benchmark sets it
        before its clock starts, so the pass measures serving, not writing."""
        self.generation = generation
        self._feeds = {}
        for feed in range(self.config.feeds):
            self._feeds[feed] = self._feed(feed)

    def host(self, n: int) -> str:
        return f"{_address(n % self.config.hosts)}:{self.port}"

    def article_url(self, feed: int, item: int) -> str:
        return f"http://{self.host(feed * 7 + item)}/articles/{feed}/{item}.html"

    def etag(self, feed: int) -> str:
        return f'"f{feed}-g{self.generation}"'

    def feed(self, feed: int) -> bytes:
        body = self._feeds.get(feed)
        if body is None:
            body = self._feeds[feed] = self._feed(feed)
        return body

    def _feed(self, feed: int) -> bytes:
        c = self.config
        first = self.generation * c.new_per_generation
        items = []
        for item in range(first + c.entries - 1, first - 1, -1):
            article = self.newsroom.article(item * c.feeds + feed, lead_only=True)
            summary = escape(article.paragraphs[0][:300])
            items.append(
                f"<item><title>{escape(article.title)}</title>"
                f"<link>{self.article_url(feed, item)}</link>"
                f'<guid isPermaLink="false">feed-{feed}-item-{item}</guid>'
                f"<pubDate>{format_datetime(article.published_at, usegmt=True)}</pubDate>"
                f"<description>{summary}</description></item>"
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
            f"<title>Feed {feed}</title><link>http://{self.host(feed)}/</link>"
            f"<description>Synthetic feed {feed}</description>" + "".join(items)
            + "</channel></rss>"
        ).encode()

    def page(self, feed: int, item: int) -> bytes:
        c = self.config
        article = self.newsroom.article(item * c.feeds + feed)
        related = []
        for r in range(1, c.related + 1):
            other = (feed + r) % c.feeds
            related.append((self.article_url(other, item),
                            f"{article.title.split()[0]} related story {other}"))
        return page_html(article, url=self.article_url(feed, item), related=related)


_REASONS = {200: b"OK", 304: b"Not Modified", 404: b"Not Found", 400: b"Bad Request"}


def _response(status: int, body: bytes, headers: list[tuple[str, str]]) -> bytes:
    head = [b"HTTP/1.1 %d %s" % (status, _REASONS[status])]
    head += [f"{k}: {v}".encode("latin-1") for k, v in headers]
    if status != 304:
        head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + (b"" if status == 304 else body)


class _Server:
    def __init__(self, content: _Content) -> None:
        self.content = content
        self.requests = 0
        self.latency = 0.0  # seconds before each reply: a network's round trip

    def handle(self, target: str, headers: dict[str, str]) -> bytes:
        self.requests += 1
        content = self.content
        path = target.split("?", 1)[0]
        parts = path.strip("/").split("/")
        try:
            if parts[0] == "feeds" and len(parts) == 2 and parts[1].endswith(".xml"):
                feed = int(parts[1][:-4])
                if not 0 <= feed < content.config.feeds:
                    raise ValueError(feed)
                etag = content.etag(feed)
                if headers.get("if-none-match") == etag:
                    return _response(304, b"", [("ETag", etag)])
                return _response(200, content.feed(feed), [
                    ("Content-Type", "application/rss+xml; charset=utf-8"), ("ETag", etag)])
            if parts[0] == "articles" and len(parts) == 3:
                body = content.page(int(parts[1]), int(parts[2].removesuffix(".html")))
                return _response(200, body, [("Content-Type", "text/html; charset=utf-8")])
            if parts[0] == "_stats":
                stats = {"requests": self.requests, "cpu_seconds": time.process_time(),
                         "generation": content.generation}
                return _response(200, json.dumps(stats).encode(),
                                 [("Content-Type", "application/json")])
            if parts[0] == "_generation" and len(parts) == 2:
                content.set_generation(int(parts[1]))
                return _response(200, b"ok", [("Content-Type", "text/plain")])
            if parts[0] == "_latency" and len(parts) == 2:
                self.latency = int(parts[1]) / 1000
                return _response(200, b"ok", [("Content-Type", "text/plain")])
        except ValueError:
            pass
        return _response(404, b"not found", [("Content-Type", "text/plain")])


class _Protocol(asyncio.Protocol):
    def __init__(self, server: _Server) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = [*lines[0].split(" "), "", ""][:3]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            assert self.transport is not None
            if method != "GET":
                self.transport.write(_response(400, b"GET only", []))
                self.transport.close()
                return
            reply = self.server.handle(target, headers)
            close = headers.get("connection", "").lower() == "close"
            if self.server.latency and not target.startswith("/_"):
                # One request at a time per connection (no pipelining), so
                # replies cannot overtake each other.
                asyncio.get_running_loop().call_later(
                    self.server.latency, self._reply, reply, close)
            else:
                self._reply(reply, close)
            if close:
                return

    def _reply(self, reply: bytes, close: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(reply)
        if close:
            self.transport.close()


def _bind(port: int, hosts: int) -> tuple[int, list[socket.socket]]:
    sockets = []
    for n in range(hosts):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((_address(n), port))
        s.listen(1024)
        s.setblocking(False)
        port = s.getsockname()[1]
        sockets.append(s)
    return port, sockets


def _serve(config: SiteConfig) -> None:
    for _ in range(20):  # port 0 on 127.0.0.1 may be taken on another address
        try:
            port, sockets = _bind(0, config.hosts)
            break
        except OSError:
            continue
    else:
        raise OSError("no port free on all the loopback addresses")
    content = _Content(config, port)
    server = _Server(content)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = [await loop.create_server(lambda: _Protocol(server), sock=s, backlog=1024)
                   for s in sockets]
        print(port, flush=True)
        stop = asyncio.Event()
        # The parent closes our stdin when it is done (or dies): time to go.
        loop.add_reader(sys.stdin.fileno(), stop.set)
        await stop.wait()
        for s in servers:
            s.close()

    asyncio.run(main())


class LocalSite:
    """The server process; a context manager."""

    def __init__(self, feeds: int, *, entries: int = 20, hosts: int = 32,
                 new_per_generation: int = 5) -> None:
        self.config = SiteConfig(feeds=feeds, entries=entries, hosts=hosts,
                                 new_per_generation=new_per_generation)
        # A process of its own (not a fork of the benchmark: nothing shared),
        # started as a module so it works from pytest and from `-m benchmarks`.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.localsite", json.dumps(asdict(self.config))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError("the benchmark site did not start")
        self.port = int(line)
        self._content = _Content(self.config, self.port)

    @property
    def hosts(self) -> list[str]:
        return [f"{_address(n)}:{self.port}" for n in range(self.config.hosts)]

    @property
    def allow_private(self) -> list[str]:
        return self.hosts

    def feed_url(self, n: int) -> str:
        return f"http://{self._content.host(n)}/feeds/{n}.xml"

    def feed_urls(self) -> list[str]:
        return [self.feed_url(n) for n in range(self.config.feeds)]

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as r:
            body: bytes = r.read()
            return body

    def set_generation(self, generation: int) -> None:
        self._get(f"/_generation/{generation}")

    def set_latency(self, seconds: float) -> None:
        """Delay every reply (not the control paths) by ``seconds``."""
        self._get(f"/_latency/{round(seconds * 1000)}")

    def stats(self) -> dict[str, float]:
        data: dict[str, float] = json.loads(self._get("/_stats"))
        return data

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> LocalSite:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class CpuMeter:
    """The server's share of the wall time between ``start()`` and ``stop()``."""

    def __init__(self, site: LocalSite, clock: Callable[[], float] = time.perf_counter) -> None:
        self.site, self.clock = site, clock
        self.cpu = self.wall = 0.0
        self.requests = 0

    def start(self) -> None:
        s = self.site.stats()
        self._cpu, self._requests, self._wall = s["cpu_seconds"], s["requests"], self.clock()

    def stop(self) -> None:
        s = self.site.stats()
        self.cpu = s["cpu_seconds"] - self._cpu
        self.requests = int(s["requests"] - self._requests) - 1  # not the stats call itself
        self.wall = self.clock() - self._wall

    @property
    def busy(self) -> float:
        return self.cpu / self.wall if self.wall else 0.0



if __name__ == "__main__":
    _serve(SiteConfig(**json.loads(sys.argv[1])))
