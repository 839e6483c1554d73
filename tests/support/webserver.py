"""Real web servers on 127.0.0.1: an ASGI app on uvicorn in a thread, or a whole
``newsmon serve`` process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from starlette.types import ASGIApp

from support.smtp import free_port


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Serve ``app``; yields its base URL (``http://127.0.0.1:PORT``)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, ws="none", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def serve_process(config: Path, *argv: str, timeout: float = 20.0) -> Iterator[str]:
    """``newsmon serve --config CONFIG [ARGV]`` as its own process; yields its base URL
    once it answers."""
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "serve", "--config", str(config),
         "--port", str(port), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    ) as proc:
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if httpx.get(base + "/", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError("newsmon serve exited: "
                                       + (proc.stderr.read() if proc.stderr else ""))
                if time.monotonic() > deadline:
                    raise RuntimeError(f"newsmon serve did not answer at {base}")
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=10)
