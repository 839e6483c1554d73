"""The demo: serve ``seeds/`` from 127.0.0.1 and run one pass into a DuckDB file.

The seed site is served by a small threaded HTTP server. ``feed.xml`` holds
``{base}`` placeholders for its links, replaced by the server's own address
when served, and is sent with an ETag so a second pass gets 304 Not Modified.
The demo writes its config next to the database; a second run reads it back
and reuses the same port, so article URLs (and ids) stay the same and the
second pass finds nothing new.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import socket
import sys
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from pipeline.config import load_settings

DEMO_DIR = Path("newsmon-demo")
FEED_NAME = "feed.xml"


def default_seeds() -> Path:
    """``seeds/site`` of the source tree (editable install), else of the working dir."""
    beside_package = Path(__file__).resolve().parent.parent / "seeds" / "site"
    return beside_package if beside_package.is_dir() else Path("seeds") / "site"


class _Handler(SimpleHTTPRequestHandler):
    server_version = "newsmon-demo"

    def __init__(self, *args: Any, directory: str, base: str, **kwargs: Any) -> None:
        self._base = base
        super().__init__(*args, directory=directory, **kwargs)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.endswith(".xml"):
            self._serve_feed(path)
        else:
            super().do_GET()

    def _serve_feed(self, path: str) -> None:
        file = Path(self.translate_path(path))
        if not file.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        body = file.read_text(encoding="utf-8").replace("{base}", self._base).encode("utf-8")
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        # As the server will: a port left in TIME_WAIT by the last run is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(slots=True)
class SeedServer:
    """Serve a folder on 127.0.0.1 (``port=0``: any free port) in a thread."""

    directory: Path
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def feed_url(self) -> str:
        return f"{self.base}/{FEED_NAME}"

    def __enter__(self) -> SeedServer:
        directory = str(self.directory)

        def handler(*args: Any, **kwargs: Any) -> _Handler:
            return _Handler(*args, directory=directory, base=self.base, **kwargs)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def demo_config(port: int) -> dict[str, Any]:
    host = f"127.0.0.1:{port}"
    return {
        "database": "news.duckdb",
        "feeds": [{"url": f"http://{host}/{FEED_NAME}", "name": "Seed outlets (demo)"}],
        "alerts": [{
            "name": "syria-foreign-forces",
            "query": "topic:syria AND topic:foreign-forces",
            "to": ["analyst@example.org"],
        }],
        "fetch": {"allow_private": [host]},
        "process": {"workers": 1},
    }


def serve_hint(config: Path, program: str | None = None) -> str:
    """The closing lines of ``newsmon demo``: how to look at what it stored."""
    argv0 = Path(program if program is not None else sys.argv[0])
    # As it was run (.venv/bin/newsmon under make), unless that is the newsmon on
    # PATH; relative to here when it is below here.
    command = "newsmon"
    on_path = shutil.which("newsmon")
    if argv0.name == "newsmon" and argv0.parent != Path() and not (
            on_path and Path(on_path).resolve() == argv0.resolve()):
        relative = os.path.relpath(argv0.absolute())
        command = shlex.quote(argv0.as_posix() if relative.startswith("..") else relative)
    config_arg = shlex.quote(str(config))
    return (f"\nLook at it in the browser (stories, the five reports, feed health, alerts):\n"
            f"  {command} serve --config {config_arg}\n"
            f"  then open http://127.0.0.1:8000/\n"
            f"or in the terminal: {command} stories --config {config_arg}")


def prepare(directory: Path) -> tuple[Path, int]:
    """Write (or reuse) the demo's config; return its path and the port to serve on."""
    config = directory / "newsmon.yaml"
    port = 0
    if config.exists():
        allowed = load_settings(config).fetch.allow_private
        if allowed and ":" in str(allowed[0]):
            port = int(str(allowed[0]).rsplit(":", 1)[1])
            if port_is_free(port):
                return config, port
            print(f"port {port} of the last demo run is busy: serving on a new port, so the "
                  "seed URLs (and article ids) change this time", file=sys.stderr)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    directory.mkdir(parents=True, exist_ok=True)
    header = ("# Written by `newsmon demo`: the seed site served from 127.0.0.1.\n"
              "# Use it with: newsmon sql --config " + str(config) + " 'SELECT ...'\n")
    config.write_text(header + yaml.safe_dump(demo_config(port), sort_keys=False),
                      encoding="utf-8")
    return config, port
