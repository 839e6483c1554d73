"""Delivery: SMTP (plain, STARTTLS, TLS) or ``.eml`` files in an outbox folder."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pipeline.config import Settings, SmtpConfig


class DeliveryError(Exception):
    """A message was not delivered; ``permanent`` when retrying cannot help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class EmlMailer:
    """No SMTP configured: each email becomes ``<outbox>/<message-id>.eml``.

    Written to a temporary name and renamed, and named by the stable
    Message-ID, so a re-send replaces the same file: one file per alert.
    """

    directory: Path

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").split("@")[0]
        tmp = self.directory / f".{name}.eml.tmp"
        tmp.write_bytes(message.as_bytes())
        tmp.replace(self.directory / f"{name}.eml")

    def close(self) -> None:
        return None


@dataclass(slots=True)
class SmtpMailer:
    """One SMTP session reused for a batch of messages."""

    host: str
    port: int
    mode: str  # smtp | smtps | smtp+starttls
    username: str | None
    password: str | None
    timeout: float
    ca_file: Path | None = None  # a private CA (or self-signed server certificate)
    _client: smtplib.SMTP | None = None

    @classmethod
    def from_config(cls, smtp: SmtpConfig) -> SmtpMailer:
        parts = urlsplit(smtp.url)
        default_port = {"smtps": 465, "smtp+starttls": 587}.get(parts.scheme, 25)
        return cls(host=parts.hostname or "localhost", port=parts.port or default_port,
                   mode=parts.scheme, username=smtp.username or parts.username,
                   password=smtp.password(), timeout=smtp.timeout, ca_file=smtp.ca_file)

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    def _connect(self) -> smtplib.SMTP:
        client: smtplib.SMTP | None = None
        try:
            if self.mode == "smtps":
                client = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=self._tls())
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.mode == "smtp+starttls":
                    client.starttls(context=self._tls())
            if self.username:
                client.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            _close_quietly(client)
            raise DeliveryError(
                f"SMTP login as {self.username!r} refused by {self.host}:{self.port}: "
                f"{exc.smtp_code} (check NEWSMON_SMTP_PASSWORD)"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            _close_quietly(client)
            raise DeliveryError(
                f"cannot reach SMTP server {self.host}:{self.port}: {exc}"
            ) from None
        return client

    def send(self, message: EmailMessage) -> None:
        if self._client is None:
            self._client = self._connect()
        try:
            refused = self._client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"recipient refused: {exc.recipients}", permanent=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            self._client = None
            raise DeliveryError(f"SMTP delivery failed: {exc}") from None
        if refused:
            raise DeliveryError(f"recipient refused: {refused}", permanent=True)

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._client.quit()
            self._client = None


def _close_quietly(client: smtplib.SMTP | None) -> None:
    if client is not None:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client.close()


def mailer_for(settings: Settings) -> Mailer:
    if settings.smtp is None:
        return EmlMailer(settings.outbox)
    return SmtpMailer.from_config(settings.smtp)
