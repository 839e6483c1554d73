"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, ClassVar, TypeVar

from aiosmtpd.controller import Controller


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` (an IPv4 or IPv6 address)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Inbox:
    """What a real SMTP server (aiosmtpd) on 127.0.0.1 received."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    arrived: list[datetime] = field(default_factory=list)  # when each message came (UTC)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.arrived.append(datetime.now(UTC))
        self.messages.append(msg)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


@dataclass
class ScriptedInbox(Inbox):
    """An Inbox whose server answers MAIL, RCPT or DATA with scripted replies
    first (``{"RCPT": ["451 4.7.1 Greylisted"]}``), then as a healthy server.

    ``calls`` counts each command the server was asked, scripted or not.
    """

    # A scripted reply that is no reply: the server stalls (the controller's
    # stop() cancels the wait).
    STALL: ClassVar[str] = "stall"

    replies: dict[str, list[str]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def _scripted(self, command: str) -> str | None:
        self.calls[command] = self.calls.get(command, 0) + 1
        queue = self.replies.get(command)
        return queue.pop(0) if queue else None

    async def _answer(self, reply: str) -> str:
        if reply == self.STALL:
            await asyncio.sleep(3600)
        return reply

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if (reply := self._scripted("MAIL")) is not None:
            return await self._answer(reply)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if (reply := self._scripted("RCPT")) is not None:
            return await self._answer(reply)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if (reply := self._scripted("DATA")) is not None:
            return await self._answer(reply)
        return await super().handle_DATA(server, session, envelope)


class RawServer:
    """A TCP server on 127.0.0.1 that is not a working SMTP server: it accepts
    connections, writes ``greeting`` (if any), then either hangs up
    (``hang_up``) or holds the connection without ever answering again.

    ``connections`` counts the connections accepted.
    """

    def __init__(self, *, greeting: bytes | None = None, hang_up: bool = False,
                 port: int | None = None) -> None:
        self.greeting = greeting
        self.hang_up = hang_up
        self.connections = 0
        self._open: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", port or 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed by stop()
                return
            self.connections += 1
            if self.greeting is not None:
                conn.sendall(self.greeting)
            if self.hang_up:
                conn.close()
            else:
                self._open.append(conn)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone may not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)
        for conn in self._open:
            conn.close()


Handler = TypeVar("Handler", bound="Inbox")


@contextlib.contextmanager
def serving(inbox: Handler) -> Iterator[Handler]:
    """A real aiosmtpd server for ``inbox`` on its host and port, for the block."""
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
