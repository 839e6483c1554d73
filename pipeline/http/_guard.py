"""The address guard: no fetch may reach a private, loopback or link-local host.

Feed and article URLs come from outside (feeds we do not control, redirects
they send us to), so without a guard anyone who can publish a link can make
newsmon request ``http://169.254.169.254/`` (cloud metadata) or an intranet
admin page: server-side request forgery.

Checking the URL's host before the request is not enough: a name can resolve
to a public address at check time and to 127.0.0.1 a moment later, when the
connection is made (DNS rebinding). So the check lives in the network backend,
the one place that turns a host name into a socket: it resolves the name
itself, checks every address, and connects to one of the addresses it checked.
TLS still verifies against the host name, because httpcore passes the name to
``start_tls`` separately. Because it runs at connect time it covers every
redirect hop and every numeric spelling of an address (``2130706433``,
``0x7f.1``, ``127.1``): the resolver normalises them and the check sees the
result.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable

import anyio
import httpcore
import httpx

from ._pools import HostPools

__all__ = ["GuardedBackend", "GuardedTransport", "check_address", "check_written_host",
           "is_allowed"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Python 3.11's is_private / is_global miss this one: RFC 6598 shared address
# space, used by carrier-grade NAT and by some clouds for internal services.
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
# RFC 6052 NAT64 well-known prefix: the last 32 bits are an IPv4 address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class RefusedAddress(Exception):
    """Raised by the backend; the fetcher turns it into ``AddressRefused``."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(host, address, reason)
        self.host = host
        self.address = address
        self.reason = reason


class LookupFailed(Exception):
    """Raised by the backend; the fetcher turns it into ``DNSError``."""

    def __init__(self, host: str, detail: str, *, transient: bool) -> None:
        super().__init__(host, detail)
        self.host = host
        self.detail = detail
        self.transient = transient


def _category(addr: IPAddress) -> str | None:
    """What kind of non-public address ``addr`` is, or None if it is public."""
    # Most specific first, so the reason names the useful category
    # (127.0.0.1 is also "private" to Python, but "loopback" says more).
    if addr.is_unspecified:
        return "an unspecified address"
    if addr.is_loopback:
        return "a loopback address"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_multicast:
        return "a multicast address"
    if isinstance(addr, ipaddress.IPv4Address) and addr in _CGNAT:
        return "a carrier-grade NAT address"
    if addr.is_reserved:  # before is_private, which also covers 240.0.0.0/4
        return "a reserved address"
    if addr.is_private:
        return "a private address"
    if isinstance(addr, ipaddress.IPv6Address) and addr.is_site_local:
        return "a site-local address"
    if not addr.is_global:
        return "not a globally routable address"
    return None


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address tunnels to, for the forms that carry one."""
    if addr.ipv4_mapped is not None:
        return "IPv4-mapped", addr.ipv4_mapped
    if addr.sixtofour is not None:
        return "6to4", addr.sixtofour
    if addr.teredo is not None:
        return "Teredo", addr.teredo[1]
    if addr in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def check_address(ip: str | IPAddress) -> str | None:
    """Why the fetcher must not connect to ``ip``, or None when it may.

    >>> check_address("10.0.0.5")
    '10.0.0.5 is a private address'
    >>> check_address("93.184.215.14") is None
    True
    """
    try:
        # A scope id ("fe80::1%eth0") only says which interface; drop it.
        addr = ipaddress.ip_address(ip.split("%", 1)[0] if isinstance(ip, str) else ip)
    except ValueError:
        return f"{ip!r} is not an IP address"
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(addr)
        if embedded is not None:
            form, inner = embedded
            category = _category(inner)
            if category is not None:
                return f"{addr} is {category} ({form} {inner})"
            if form == "IPv4-mapped":
                # ::ffff:a.b.c.d *is* a.b.c.d; IPv6's view (::/8 reserved) is moot.
                return None
    category = _category(addr)
    return None if category is None else f"{addr} is {category}"


def is_allowed(host: str, port: int, allow: Iterable[str]) -> bool:
    """Whether ``host`` (as written in the URL) or ``host:port`` is allow-listed.

    The match is on the name as written, never on what it resolves to: allowing
    "127.0.0.1:8080" does not allow "localhost:8080" or "2130706433:8080".
    """
    host = host.lower()
    candidates = {host, f"{host}:{port}"}
    if ":" in host:  # IPv6 literal, written either bare or in brackets
        candidates |= {f"[{host}]", f"[{host}]:{port}"}
    return not candidates.isdisjoint(allow)


# A host name as an allow-list entry writes it: labels of letters, digits,
# '-' and '_' (intranet names have them), dots between, one at the end at most.
_HOST_NAME = re.compile(r"[\w-]+(?:\.[\w-]+)*\.?")
_ALLOW_EXAMPLES = "as intranet.example, 127.0.0.1:8080 or [::1]:8080"


def allow_entry_problem(entry: str) -> str | None:
    """Why ``entry`` cannot be an allow-list entry (``fetch.allow_private``,
    ``--allow-private``), or None: a host name or IP address, with a port
    (1-65535) or not, an IPv6 address bare or in brackets. :func:`is_allowed`
    matches the text as written, so an entry no URL can name (``::::``) would
    allow nothing, without a word."""
    text = entry.strip()
    bracketed = re.fullmatch(r"\[([^\]]*)\](?::([^:]*))?", text)
    if bracketed:
        host, port, ipv6 = bracketed.group(1), bracketed.group(2), True
    elif text.count(":") >= 2:
        host, port, ipv6 = text, None, True
    else:
        host, _, port = text.partition(":")
        port, ipv6 = (port if ":" in text else None), False
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return f"{entry!r} has no port 1-65535 after its colon ({_ALLOW_EXAMPLES})"
    if ipv6:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"{entry!r} is not an IPv6 address ({_ALLOW_EXAMPLES})"
        return None
    if not _HOST_NAME.fullmatch(host):
        return f"{entry!r} is not a host name or IP address ({_ALLOW_EXAMPLES})"
    return None


def check_written_host(host: str, port: int, allow: Iterable[str]) -> str | None:
    """Why a URL with this host would be refused, judged from the text alone, or None.

    For checks before any fetch (``newsmon feeds add``): the same rule as the
    backend, applied to what the host *says* without asking DNS: an address
    literal in any spelling the resolver accepts (``127.1``, ``2130706433``,
    ``[::1]``) and the names that are loopback by definition (``localhost``,
    ``*.localhost``, RFC 6761 §6.3). Other names pass here and meet the guard
    when they are fetched.
    """
    if is_allowed(host, port, {entry.lower() for entry in allow}):
        return None
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return f"{host} is a loopback name (RFC 6761)"
    try:
        address: IPAddress = ipaddress.ip_address(name.strip("[]").split("%", 1)[0])
    except ValueError:
        try:
            # inet_aton is the resolver's own reading of IPv4 text: "127.1", "0x7f.1".
            address = ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None  # a name: checked after resolution, at connect time
    return check_address(address)


async def resolve_tcp(host: str, port: int) -> list[str]:
    """The distinct addresses ``host`` resolves to, in the resolver's order."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's AnyIO backend, with every TCP connect passed through the guard."""

    def __init__(
        self,
        allow_private: frozenset[str],
        inner: httpcore.AsyncNetworkBackend | None = None,
        resolve: Resolver | None = None,
    ) -> None:
        self._allow = frozenset(entry.lower() for entry in allow_private)
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()
        # Injectable so a test can play a rebinding DNS server.
        self._resolve = resolve if resolve is not None else resolve_tcp

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if is_allowed(host, port, self._allow):
            return await self._inner.connect_tcp(
                host, port, timeout, local_address, socket_options
            )
        try:
            with anyio.fail_after(timeout):
                addresses = await self._resolve(host, port)
        except TimeoutError:
            # httpx maps this to ConnectTimeout, like a slow SYN.
            raise httpcore.ConnectTimeout(f"DNS lookup for {host} timed out") from None
        except socket.gaierror as exc:
            raise LookupFailed(
                host, exc.strerror or str(exc), transient=exc.errno == socket.EAI_AGAIN
            ) from exc
        except UnicodeError as exc:  # IDNA 2008 rejects the name
            raise LookupFailed(host, str(exc), transient=False) from exc
        # Every address must pass, not just the first: a name that resolves to
        # both a public and a private address is a rebinding setup (or a
        # misconfiguration), and which one we would get is up to chance.
        for address in addresses:
            reason = check_address(address)
            if reason is not None:
                raise RefusedAddress(host, address, reason)
        last: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        if last is not None:
            raise last
        raise LookupFailed(host, "no addresses", transient=False)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # The fetcher never sets uds=; refuse rather than bypass the guard.
        raise RefusedAddress(path, path, f"{path} is a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, with its connection pool running on GuardedBackend.

    httpx 0.28 does not accept a ``network_backend``, but everything else in
    AsyncHTTPTransport (request/response conversion, the httpcore -> httpx
    exception mapping) is what we want. So we let it build itself, then swap
    its pool for one configured the same way on our backend. ``_pool`` is the
    only attribute it reads; the tests would catch a rename in a new httpx.
    No proxy support on purpose: through a proxy the guard would only ever
    see the proxy's address.

    With ``per_host_connections``, the pool is one small pool per host (see
    ``_pools``): for a caller that already limits requests per host.
    """

    def __init__(
        self,
        *,
        allow_private: frozenset[str],
        limits: httpx.Limits,
        ssl_context: ssl.SSLContext | None = None,
        per_host_connections: int | None = None,
    ) -> None:
        super().__init__(limits=limits, trust_env=False)
        context = ssl_context if ssl_context is not None else httpx.create_ssl_context()
        backend = GuardedBackend(allow_private)
        pool: httpcore.AsyncConnectionPool | HostPools
        if per_host_connections is None:
            pool = httpcore.AsyncConnectionPool(
                ssl_context=context,
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=backend,
            )
        else:
            pool = HostPools(
                ssl_context=context, network_backend=backend, per_host=per_host_connections,
                keepalive_expiry=limits.keepalive_expiry or 5.0,
                idle_pools=limits.max_keepalive_connections or 32,
            )
        self._pool = pool  # type: ignore[assignment]  # same interface, not a subclass
