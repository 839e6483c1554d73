"""Real web servers on 127.0.0.1 (or ::1): an ASGI app on uvicorn in a thread, or a
whole ``newsmon serve`` process."""

from __future__ import annotations

import socket
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


def ipv6_loopback() -> bool:
    """Whether this machine can listen on ::1 (a container may have no IPv6)."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def _base(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextmanager
def serving(app: ASGIApp, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` on ``host``; yields its base URL (``http://127.0.0.1:PORT``,
    ``http://[::1]:PORT``)."""
    port = free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            access_log=False, ws="none", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on {host} port {port}")
        time.sleep(0.02)
    try:
        yield _base(host, port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def serve_process(config: Path, *argv: str, host: str = "127.0.0.1",
                  timeout: float = 20.0) -> Iterator[str]:
    """``newsmon serve --config CONFIG --host HOST [ARGV]`` as its own process; yields
    its base URL once it answers."""
    port = free_port(host)
    with subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "serve", "--config", str(config),
         "--host", host, "--port", str(port), *argv], stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    ) as proc:
        base = _base(host, port)
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
