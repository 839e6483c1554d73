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
    """A message was not delivered, and why.

    ``permanent``: retrying cannot help, the row is marked ``failed`` (a 5xx
    reply to this message's MAIL FROM, RCPT TO or DATA: RFC 5321, 4.2.1).
    Otherwise the row stays ``pending`` and is retried after a backoff (a 4xx
    reply such as ``451 4.7.1 Greylisted``).

    ``server``: the server itself failed, not this message (no connection, no
    answer within the timeout, ``421`` closing the session, login refused):
    every later message of the round would wait for the same timeout or fail
    the same way, so the sender stops the round there. Never permanent.
    """

    def __init__(self, reason: str, *, permanent: bool = False, server: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent and not server
        self.server = server


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
        name = str(message["Message-ID"]).strip("<>").split("@")[0]
        tmp = self.directory / f".{name}.eml.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(message.as_bytes())
            tmp.replace(self.directory / f"{name}.eml")
        except OSError as exc:
            # A full or read-only outbox folder fails every later message too.
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise DeliveryError(f"cannot write {tmp.with_name(name + '.eml')}: "
                                f"{exc.strerror or exc}", server=True) from None

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
        mailer = cls(host=parts.hostname or "localhost", port=parts.port or default_port,
                     mode=parts.scheme, username=smtp.username or parts.username,
                     password=smtp.password(), timeout=smtp.timeout, ca_file=smtp.ca_file)
        if mailer.ca_file is not None and parts.scheme != "smtp":
            # Read once here: at each connection it was 'cannot reach SMTP server
            # ...: No such file or directory', a temporary failure retried for ever.
            from pipeline.config import ConfigError

            try:
                mailer._tls()
            except (OSError, ssl.SSLError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise ConfigError(f"smtp.ca_file {mailer.ca_file}: cannot use it: {reason}; "
                                  "point it at the PEM certificate of the server's CA") from None
        return mailer

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    @property
    def _where(self) -> str:
        return f"SMTP server {self.host}:{self.port}"

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
                f"{exc.smtp_code} (check NEWSMON_SMTP_PASSWORD)", server=True,
            ) from None
        except smtplib.SMTPResponseException as exc:
            # A 421 or 554 greeting, or a refused EHLO/HELO or STARTTLS: the
            # server turns the session away, whatever the message.
            _close_quietly(client)
            raise DeliveryError(
                f"{self._where} refused the session: {_reply(exc.smtp_code, exc.smtp_error)}",
                server=True,
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            _close_quietly(client)
            raise DeliveryError(
                f"cannot reach {self._where}: {self._why(exc)}", server=True
            ) from None
        return client

    def _why(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
            return f"no answer within {self.timeout:g} s (smtp.timeout)"
        return str(exc) or type(exc).__name__

    def send(self, message: EmailMessage) -> None:
        if self._client is None:
            self._client = self._connect()
        client = self._client
        try:
            refused = client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise self._refused(client, exc.recipients) from None
        except smtplib.SMTPSenderRefused as exc:
            raise self._refusal(client, f"MAIL FROM:<{exc.sender}>", exc.smtp_code,
                                exc.smtp_error) from None
        except smtplib.SMTPDataError as exc:
            raise self._refusal(client, "DATA", exc.smtp_code, exc.smtp_error) from None
        except (OSError, smtplib.SMTPException) as exc:
            # A timeout or a dropped connection mid-dialogue. After the end of
            # DATA the server may have taken the message anyway: the retry
            # carries the same Message-ID (see the README's guarantee).
            self._client = None
            _close_quietly(client)
            raise DeliveryError(
                f"{self._where} failed mid-dialogue: {self._why(exc)}", server=True
            ) from None
        if refused:
            raise self._refused(client, refused)

    def _refused(self, client: smtplib.SMTP,
                 recipients: dict[str, tuple[int, bytes]]) -> DeliveryError:
        # One recipient per message (one outbox row per recipient): the first
        # refusal is the message's.
        address, (code, text) = next(iter(recipients.items()))
        return self._refusal(client, f"RCPT TO:<{address}>", code, text)

    def _refusal(self, client: smtplib.SMTP, command: str, code: int,
                 text: bytes | str) -> DeliveryError:
        """RFC 5321, 4.2.1: 4xx is transient, 5xx permanent; 421 closes the session."""
        if client.sock is None:
            # smtplib closed the connection (a 421, or a failed RSET after the
            # refusal): the next message opens a new session.
            self._client = None
        reason = f"{self._where} answered {command} with {_reply(code, text)}"
        if code == 421:
            return DeliveryError(reason + " (closing the session)", server=True)
        return DeliveryError(reason, permanent=500 <= code < 600)

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._client.quit()
            self._client = None


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}".strip()


def _close_quietly(client: smtplib.SMTP | None) -> None:
    if client is not None:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client.close()


def mailer_for(settings: Settings) -> Mailer:
    if settings.smtp is None:
        return EmlMailer(settings.outbox)
    return SmtpMailer.from_config(settings.smtp)
