"""One small connection pool per host, instead of one pool for all of them.

httpcore's ``AsyncConnectionPool`` re-examines every connection it holds for
every queued request each time a request starts or ends (``is_idle`` and an
``is_readable`` system call per connection, and a count of idle connections
taken once per idle connection): quadratic in the pool's size. With 32
connections to 32 hosts that was 1.8 ms of CPU per request, more than half of
the poll stage's time on 10,000 unchanged feeds (benchmarks/polling.py).

The fetcher already limits requests in flight, globally and per host, so a
pool per host needs only ``per_host`` connections, and its bookkeeping is
O(1). Pools of hosts not used lately are closed, so a pass over feeds on
10,000 hosts keeps at most ``idle_pools`` pools of idle connections open.
"""

from __future__ import annotations

import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator
from types import TracebackType

import httpcore
from httpcore._async.interfaces import AsyncRequestInterface  # not re-exported

__all__ = ["HostPools"]

_Key = tuple[bytes, bytes, int]


class _Held:
    """A pool and the number of its responses not yet closed."""

    __slots__ = ("active", "pool")

    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:
        self.pool = pool
        self.active = 0


class _Stream:
    """A response body that tells the pools when it is closed."""

    def __init__(self, inner: AsyncIterator[bytes], pools: HostPools, key: _Key) -> None:
        self._inner, self._pools, self._key = inner, pools, key
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            aclose = getattr(self._inner, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            await self._pools._release(self._key)


class HostPools(AsyncRequestInterface):
    """Dispatches each request to the pool of its origin (scheme, host, port)."""

    def __init__(
        self, *, ssl_context: ssl.SSLContext, network_backend: httpcore.AsyncNetworkBackend,
        per_host: int, keepalive_expiry: float, idle_pools: int,
    ) -> None:
        self._ssl_context = ssl_context
        self._backend = network_backend
        self._per_host = per_host
        self._expiry = keepalive_expiry
        self._idle_pools = idle_pools
        # Least recently used first: the ones to close when there are too many.
        self._pools: OrderedDict[_Key, _Held] = OrderedDict()

    @property
    def pool_count(self) -> int:
        return len(self._pools)

    def _take(self, key: _Key) -> _Held:
        held = self._pools.get(key)
        if held is None:
            held = self._pools[key] = _Held(httpcore.AsyncConnectionPool(
                ssl_context=self._ssl_context, max_connections=self._per_host,
                max_keepalive_connections=self._per_host, keepalive_expiry=self._expiry,
                network_backend=self._backend,
            ))
        else:
            self._pools.move_to_end(key)
        held.active += 1
        return held

    async def _release(self, key: _Key) -> None:
        held = self._pools.get(key)
        if held is None:
            return
        held.active -= 1
        await self._trim()

    async def _trim(self) -> None:
        idle = [k for k, h in self._pools.items() if h.active == 0]
        for key in idle[: max(0, len(idle) - self._idle_pools)]:
            held = self._pools.pop(key)
            await held.pool.aclose()

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        url = request.url
        key: _Key = (url.scheme, url.host, url.port or (443 if url.scheme == b"https" else 80))
        held = self._take(key)
        try:
            response = await held.pool.handle_async_request(request)
        except BaseException:
            held.active -= 1
            raise
        stream = response.stream
        if not hasattr(stream, "__aiter__"):
            raise TypeError("an async pool returned a synchronous stream")
        return httpcore.Response(
            status=response.status, headers=response.headers,
            content=_Stream(stream, self, key),  # type: ignore[arg-type]
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for held in pools:
            await held.pool.aclose()

    async def __aenter__(self) -> HostPools:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None = None, exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.aclose()
