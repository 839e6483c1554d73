"""The exceptions :meth:`pipeline.http.Fetcher.get` raises.

Every failure is a :class:`FetchError`; no httpx, httpcore or socket exception
escapes ``get()``. The tree, with the default of ``transient`` (worth retrying
later with the same URL) in brackets::

    FetchError               url, reason, transient, retry_after, status
    ├── InvalidURL           not http(s), over-long, no host, unusable Location    [no]
    ├── AddressRefused       the address guard: private, loopback, link-local...    [no]
    ├── ConnectError         refused, unreachable, TLS handshake failed            [yes]
    │   └── DNSError         the name does not resolve                 [only EAI_AGAIN]
    ├── NetworkError         the connection broke or the server spoke nonsense     [yes]
    ├── FetchTimeout         connect, read (between bytes) or total time cap       [yes]
    ├── TooManyRedirects     more hops than max_redirects, or a loop               [no]
    ├── HTTPStatusError      4xx / 5xx, or a 3xx we cannot follow   [408, 425, 429, 5xx]
    ├── BodyTooLarge         decompressed body past the cap for its kind           [no]
    └── DecodingError        corrupt or unsupported Content-Encoding               [no]

``url`` is the URL being fetched when it failed (a redirect target if the
failure came after a redirect); ``reason`` is one human sentence, ready for a
log line or the feed's ``last_error`` column.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AddressRefused",
    "BodyTooLarge",
    "ConnectError",
    "DNSError",
    "DecodingError",
    "FetchError",
    "FetchTimeout",
    "HTTPStatusError",
    "InvalidURL",
    "NetworkError",
    "TooManyRedirects",
]


class FetchError(Exception):
    """A fetch failed; ``reason`` says why in one sentence."""

    default_transient: ClassVar[bool] = False

    def __init__(
        self,
        url: str,
        reason: str,
        *,
        transient: bool | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason
        self.transient = self.default_transient if transient is None else transient
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.reason} ({self.url})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only state would be lost by Exception's default pickling
        # (it replays self.args), and Airflow / multiprocessing pickle errors.
        return (type(self), (self.url, self.reason), dict(self.__dict__))


class InvalidURL(FetchError):
    pass


class AddressRefused(FetchError):
    """``allow``: the ``host:port`` entry (the host as the URL writes it) that
    would let the guard through, for the sentence that says what to do."""

    allow: str | None = None

    def advice(self, setting: str = "fetch.allow_private") -> str:
        """The reason and what to do about it, as `newsmon feeds add` says it."""
        if self.allow is None:
            return self.reason
        return f"{self.reason}; {private_advice(self.allow, setting)}"


def allow_entry(host: str, port: int | None, scheme: str) -> str:
    """The ``fetch.allow_private`` entry that lets ``host`` (as the URL writes
    it) through on ``port`` (the scheme's default when None)."""
    port = port or (443 if scheme == "https" else 80)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def private_advice(entry: str, setting: str = "fetch.allow_private") -> str:
    """What to do about a refused private address: list ``entry`` in ``setting``."""
    return (f"newsmon does not fetch private, loopback or link-local addresses unless"
            f" {setting} lists '{entry}'")


class ConnectError(FetchError):
    default_transient = True


class DNSError(ConnectError):
    # NXDOMAIN will not fix itself by the next poll; a resolver that is down
    # (EAI_AGAIN) will, so the fetcher passes transient=True for that case.
    default_transient = False


class NetworkError(FetchError):
    default_transient = True


class FetchTimeout(FetchError):
    default_transient = True


class TooManyRedirects(FetchError):
    pass


class HTTPStatusError(FetchError):
    pass


class BodyTooLarge(FetchError):
    pass


class DecodingError(FetchError):
    pass
