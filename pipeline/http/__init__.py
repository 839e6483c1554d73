"""The one HTTP client for feeds and pages (ARCHITECTURE: "One HTTP client").

    async with Fetcher(FetchLimits(allow_private=frozenset({"127.0.0.1:8080"}))) as f:
        response = await f.get(url, kind="feed", etag=old_etag)

What it guarantees, whatever the server does:

- an address guard after DNS resolution, on every hop (see ``_guard``);
- redirects followed by us, each hop checked and counted; a chain of only
  301/308 is reported in ``Response.permanent_redirect``;
- a cap on the *decompressed* body, enforced while inflating (see ``_decode``);
- a connect, a read and a total time cap (the last stops a 1-byte/s trickle);
- conditional GET (If-None-Match / If-Modified-Since -> 304);
- politeness: global and per-host concurrency, and spacing between starts;
- every failure a :class:`FetchError` with a one-sentence ``reason`` and a
  ``transient`` flag (the hierarchy is drawn in ``_errors``).
"""

from __future__ import annotations

from ._client import Fetcher
from ._errors import (
    AddressRefused,
    BodyTooLarge,
    ConnectError,
    DecodingError,
    DNSError,
    FetchError,
    FetchTimeout,
    HTTPStatusError,
    InvalidURL,
    NetworkError,
    TooManyRedirects,
    allow_entry,
    private_advice,
)
from ._guard import allow_entry_problem, check_address, check_written_host, is_allowed
from ._models import FetchLimits, Response

__all__ = [
    "AddressRefused",
    "BodyTooLarge",
    "ConnectError",
    "DNSError",
    "DecodingError",
    "FetchError",
    "FetchLimits",
    "FetchTimeout",
    "Fetcher",
    "HTTPStatusError",
    "InvalidURL",
    "NetworkError",
    "Response",
    "TooManyRedirects",
    "allow_entry",
    "allow_entry_problem",
    "check_address",
    "check_written_host",
    "is_allowed",
    "private_advice",
]
