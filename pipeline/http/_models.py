"""The fetcher's options and its result: plain frozen records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pipeline import __version__

__all__ = ["DEFAULT_USER_AGENT", "FetchLimits", "Response"]

DEFAULT_USER_AGENT = f"newsmon/{__version__} (+https://github.com/newsmon/newsmon)"


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchLimits:
    """Every limit the fetcher enforces, with production defaults."""

    max_feed_bytes: int = 5 * 2**20  # decompressed: a gzip bomb stops here
    max_page_bytes: int = 10 * 2**20
    connect_timeout: float = 10.0  # DNS lookup + TCP connect (+ TLS), per address
    read_timeout: float = 20.0  # between two reads
    # The whole request incl. redirects and body, not counting time queued
    # behind our own concurrency limits: stops a server trickling 1 byte/s.
    # 20 s as Miniflux: a news page that takes longer is late news anyway.
    total_timeout: float = 20.0
    max_redirects: int = 5
    max_url_length: int = 2048
    global_concurrency: int = 64
    per_host_concurrency: int = 2
    host_spacing: float = 0.0  # min seconds between request starts to one host
    # "host" or "host:port" (as written in the URL) exempt from the address guard.
    allow_private: frozenset[str] = frozenset()
    user_agent: str = DEFAULT_USER_AGENT

    def __post_init__(self) -> None:
        for name in ("max_feed_bytes", "max_page_bytes", "max_url_length",
                     "global_concurrency", "per_host_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"FetchLimits.{name} must be at least 1")
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"FetchLimits.{name} must be positive")
        if self.max_redirects < 0 or self.host_spacing < 0:
            raise ValueError("FetchLimits.max_redirects and host_spacing cannot be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """A successful fetch: 2xx with its body, or 304 Not Modified."""

    url: str  # final URL, after redirects
    status: int  # 200..299 or 304
    headers: Mapping[str, str]  # lower-case names, as received (Content-Encoding too)
    body: bytes  # decompressed; b"" for 304
    etag: str | None
    last_modified: str | None
    # The last URL reached through only 301/308 hops from the requested URL,
    # so the caller can update a feed's stored URL (RFC 9110 §15.4.2).
    permanent_redirect: str | None
