"""httpx's transport for the sender: h11 speaks HTTP/1.1, the pool and the tunnels are ours.

httpx stays the client (``httpx.AsyncClient(transport=PooledTransport(...))``); this replaces
httpcore underneath it. httpcore's pool does O(N²) work per request (every request and every
response close scans all connections), so one AsyncClient with the ~100-200 connections that
100 ms of API latency needs spends its CPU on bookkeeping. aiohttp's pool (under httpx through
`httpx-aiohttp`, or through an adapter of ours) costs more CPU per request than this transport,
past the 1.3× the project allows for a maintained one (README, "Choosing the HTTP client";
``bench/http_clients.py`` measures them all side by side), so the protocol is h11's (maintained,
httpcore's own parser: framing by Content-Length, chunked or the close, interim responses, HEAD,
size limits) and what is left here is the pool, TLS and the proxy tunnel.

Here an idle connection is a deque pop, a finished one a deque append. One request per
connection at a time (no pipelining); keep-alive when h11 says both sides may go on; TLS through
``ssl`` when the URL is https. Errors are httpx's own exceptions, so callers can tell "never
left" (ConnectError, ConnectTimeout, PoolTimeout: refused, DNS, TLS, a proxy refusing the
tunnel, no free connection) from "may have arrived" (ReadTimeout, RemoteProtocolError: the
request was written). An idle connection the server closed is never reused for a POST.

Proxies: httpx ignores HTTPS_PROXY/HTTP_PROXY/NO_PROXY when it is given a transport, so this one
reads them itself (``urllib.request.getproxies()``, the same rules as urllib and curl: lower or
upper case, NO_PROXY a comma-separated list of host suffixes, ``*`` for all). A request to a host
not in NO_PROXY goes through the proxy of its scheme as a tunnel: ``CONNECT host:port`` to the
proxy, then TLS to Meta inside it, so the proxy never sees the access token. Plain http targets
are tunnelled the same way (CONNECT, not absolute-form requests), so one code path serves both;
the proxy's URL is ``http://[user:password@]host:port`` (Basic Proxy-Authorization).
"""

from __future__ import annotations

import asyncio
import base64
import select
import ssl
import time
import urllib.request
from collections import deque
from urllib.parse import unquote, urlsplit

import h11
import httpx


class _Connection(asyncio.Protocol):
    """One keep-alive connection; h11 parses one response at a time as bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.h11 = h11.Connection(h11.CLIENT)
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.unexpected = False  # bytes from the server while no request was out
        self.idle_since = 0.0
        self.response: h11.Response | None = None
        self.body = bytearray()

    # --- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            self.unexpected = True
            return
        self.h11.receive_data(data)
        self._advance()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.h11.receive_data(b"")  # a body delimited by the close ends here
            self._advance()
            if not self.waiter.done():
                self.waiter.set_exception(
                    httpx.RemoteProtocolError("server disconnected without a complete response")
                )

    def _advance(self) -> None:
        """Take h11's events until the response is complete or more bytes are needed."""
        try:
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA:
                    return
                if isinstance(event, h11.Response):
                    self.response = event
                elif isinstance(event, h11.Data):
                    self.body += event.data
                elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                    # PAUSED: a 2xx to CONNECT, the tunnel is open.
                    self._done()
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    raise h11.RemoteProtocolError("server disconnected")
        except h11.RemoteProtocolError as exc:
            self.closed = True
            self.waiter.set_exception(httpx.RemoteProtocolError(str(exc)))
            if self.transport is not None:
                self.transport.close()

    def _done(self) -> None:
        response, body = self.response, bytes(self.body)
        self.response, self.body = None, bytearray()
        keep_alive = self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE
        if keep_alive:
            self.h11.start_next_cycle()
            # Bytes past the end of the answer would be read as the next request's answer.
            try:
                keep_alive = self.h11.next_event() is h11.NEED_DATA
            except h11.RemoteProtocolError:
                keep_alive = False
        self.waiter.set_result((response.status_code, response.headers, body, keep_alive))

    # --- use ---------------------------------------------------------------------------------

    def stale(self) -> bool:
        """An idle connection with something to read has been closed by the server (or sent
        garbage): never reuse it for a POST, it would look "maybe sent"."""
        if self.closed or self.unexpected or self.transport is None:
            return True
        if self.transport.is_closing():
            return True
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock.fileno()], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def request(self, request: h11.Request, body: bytes = b"") -> asyncio.Future:
        self.waiter = self.loop.create_future()
        data = self.h11.send(request)
        if body:
            data += self.h11.send(h11.Data(data=body))
        self.transport.write(data + self.h11.send(h11.EndOfMessage()))
        return self.waiter


class PooledTransport(httpx.AsyncBaseTransport):
    """httpx transport: per-origin deque of idle connections, at most `max_connections`."""

    def __init__(
        self,
        *,
        max_connections: int = 256,
        keepalive_expiry: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        proxies: dict[str, str] | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self.ssl_context = ssl_context
        # {"https": "http://proxy:3128", "no": "localhost,.comune.it"}; None: the environment's.
        self.proxies = urllib.request.getproxies() if proxies is None else proxies
        self._idle: dict[tuple[bytes, bytes, int], deque[_Connection]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _context(self) -> ssl.SSLContext:
        if self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
            try:
                import certifi  # httpx's own CA bundle, when it is installed

                self.ssl_context.load_verify_locations(certifi.where())
            except ImportError:  # pragma: no cover
                pass
        return self.ssl_context

    def proxy_for(self, origin) -> str | None:
        """The proxy URL to tunnel through to this origin, or None to connect directly."""
        scheme, host, port = origin
        proxy = self.proxies.get(scheme.decode())
        if not proxy or urllib.request.proxy_bypass_environment(host.decode(), self.proxies):
            return None
        return proxy

    async def _connect(self, origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        proxy = self.proxy_for(origin)
        try:
            async with asyncio.timeout(timeout):
                if proxy is not None:
                    return await self._tunnel(proxy, origin)
                kwargs = {}
                if scheme == b"https":
                    kwargs = {"ssl": self._context(), "server_hostname": host.decode()}
                _, protocol = await self._loop.create_connection(
                    lambda: _Connection(self._loop), host.decode(), port, **kwargs
                )
                return protocol
        except TimeoutError:
            raise httpx.ConnectTimeout("connect timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc

    async def _tunnel(self, proxy: str, origin) -> _Connection:
        """A connection through the proxy's CONNECT tunnel, TLS started inside it for https."""
        scheme, host, port = origin
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if parts.scheme != "http" or not parts.hostname:
            raise httpx.ConnectError(f"unsupported proxy {parts.scheme}://{parts.hostname}")
        loop = self._loop
        _, protocol = await loop.create_connection(
            lambda: _Connection(loop), parts.hostname, parts.port or 80
        )
        target = b"%s:%d" % (host, port)
        headers = [(b"Host", target)]
        if parts.username:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers.append(
                (b"Proxy-Authorization", b"Basic " + base64.b64encode(credentials.encode()))
            )
        try:
            connect = h11.Request(method=b"CONNECT", target=target, headers=headers)
            status, *_ = await protocol.request(connect)
            protocol.waiter = None
            if not 200 <= status < 300:
                raise httpx.ConnectError(f"proxy {parts.hostname} answered {status} to CONNECT")
            protocol.h11 = h11.Connection(h11.CLIENT)  # what follows is the tunnel's own HTTP
            if scheme == b"https":
                protocol.transport = await loop.start_tls(
                    protocol.transport, protocol, self._context(), server_hostname=host.decode()
                )
        except httpx.RemoteProtocolError as exc:
            self._discard(protocol)
            raise httpx.ConnectError(f"proxy {parts.hostname}: {exc}") from None
        except BaseException:
            self._discard(protocol)
            raise
        return protocol

    def _take_idle(self, origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        # The oldest sit at the left: close the expired ones, or after a busy spell they
        # would stay open (half-closed by the server) for as long as the process lives.
        while idle and now - idle[0].idle_since >= self.keepalive_expiry:
            self._discard(idle.popleft())
        while idle:
            connection = idle.pop()  # the most recently used: least likely to be stale
            if now - connection.idle_since < self.keepalive_expiry and not connection.stale():
                return connection
            self._discard(connection)
        return None

    def _discard(self, connection: _Connection) -> None:
        connection.closed = True
        if connection.transport is not None:
            connection.transport.close()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # connections belong to one loop: start afresh
            self._close_all()
            self._loop, self._slots = loop, asyncio.Semaphore(self.max_connections)
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        origin = (url.raw_scheme, url.raw_host, port)
        timeouts = request.extensions.get("timeout", {})
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection") from None
        try:
            return await self._exchange(request, origin, timeouts)
        finally:
            self._slots.release()

    async def _exchange(self, request: httpx.Request, origin, timeouts: dict) -> httpx.Response:
        connection = self._take_idle(origin) or await self._connect(origin, timeouts.get("connect"))
        body = await request.aread()  # already read for json=/content=; a multipart is read here
        headers = request.headers.raw
        if body and not any(n.lower() == b"content-length" for n, _ in headers):
            headers = [*headers, (b"Content-Length", str(len(body)).encode())]
        h11_request = h11.Request(
            method=request.method, target=request.url.raw_path, headers=headers
        )
        try:
            waiter = connection.request(h11_request, body)
        except h11.LocalProtocolError as exc:
            self._discard(connection)
            raise httpx.LocalProtocolError(str(exc), request=request) from None
        try:
            async with asyncio.timeout(timeouts.get("read")):
                status, headers, content, keep_alive = await waiter
        except TimeoutError:
            self._discard(connection)
            raise httpx.ReadTimeout("no answer in time", request=request) from None
        except BaseException:
            self._discard(connection)
            raise
        connection.waiter = None
        if keep_alive and not connection.closed:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(origin, deque()).append(connection)
        else:
            self._discard(connection)
        return httpx.Response(
            status, headers=headers, stream=httpx.ByteStream(content), request=request
        )

    def _close_all(self) -> None:
        for idle in self._idle.values():
            while idle:
                self._discard(idle.pop())
        self._idle.clear()

    async def aclose(self) -> None:
        self._close_all()
