"""A small HTTP/1.1 transport for httpx with an O(1) connection pool.

httpx stays the client (``httpx.AsyncClient(transport=PooledTransport(...))``); this replaces
only httpcore underneath it. httpcore's pool does O(N²) work per request (every request and
every response close scans all connections), so one AsyncClient with the
~100-200 connections that 100 ms of API latency needs spends its CPU on bookkeeping
(``bench/http_clients.py`` measures it next to the alternatives).

Here an idle connection is a deque pop, a finished one a deque append. One request per
connection at a time (no pipelining); keep-alive; responses framed by Content-Length,
chunked transfer encoding, or the connection closing; TLS through ``ssl`` when the URL is
https. Errors are httpx's own exceptions, so callers can tell "never left" (ConnectError,
ConnectTimeout, PoolTimeout) from "may have arrived" (ReadTimeout, RemoteProtocolError).

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

import httpx

_MAX_HEAD = 64 * 1024


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses one response at a time as bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.idle_since = 0.0
        self.head_request = False  # a response to HEAD has no body, whatever it announces
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.length: int | None = None  # Content-Length, or None
        self.chunked = False
        self.until_close = False
        self.body = bytearray()
        self.chunk_left = -1  # -1: expecting a chunk-size line
        self.keep_alive = True
        self.head_done = False

    # --- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        try:
            if self._parse():
                response = (self.status, self.headers, bytes(self.body), self.keep_alive)
                self._reset()
                self.waiter.set_result(response)
        except httpx.RemoteProtocolError as exc:
            self.closed = True
            self.waiter.set_exception(exc)
            self.transport.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.head_done and self.until_close:  # body delimited by the close
            waiter.set_result((self.status, self.headers, bytes(self.body), False))
        else:
            waiter.set_exception(
                httpx.RemoteProtocolError("server disconnected without a complete response")
            )

    # --- parsing -----------------------------------------------------------------------------

    def _parse(self) -> bool:
        """Consume what is buffered; True once the whole response is in."""
        while not self.head_done:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEAD:
                    raise httpx.RemoteProtocolError("response head too large")
                return False
            head = bytes(self.buffer[:end]).split(b"\r\n")
            del self.buffer[: end + 4]
            self._parse_head(head)
        if self.chunked:
            return self._parse_chunks()
        if self.until_close:
            self.body += self.buffer
            self.buffer.clear()
            return False
        need = self.length - len(self.body)
        self.body += self.buffer[:need]
        del self.buffer[:need]
        return len(self.body) == self.length

    def _parse_head(self, head: list[bytes]) -> None:
        try:
            version, code = head[0].split(b" ", 2)[:2]
            self.status = int(code)
        except ValueError:
            raise httpx.RemoteProtocolError(f"bad status line {head[0][:80]!r}") from None
        if not version.startswith(b"HTTP/1."):
            raise httpx.RemoteProtocolError(f"bad status line {head[0][:80]!r}")
        if 100 <= self.status < 200:  # interim response (100 Continue): the real one follows
            return
        connection_close = version == b"HTTP/1.0"
        for line in head[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip()
            self.headers.append((name, value))
            if name == b"content-length":
                try:
                    self.length = int(value)
                except ValueError:
                    raise httpx.RemoteProtocolError("bad Content-Length") from None
            elif name == b"transfer-encoding":
                self.chunked = value.lower().endswith(b"chunked")
            elif name == b"connection":
                tokens = value.lower()
                connection_close = b"close" in tokens or (
                    connection_close and b"keep-alive" not in tokens
                )
        self.keep_alive = not connection_close
        self.head_done = True
        if self.status in (204, 304) or self.head_request:
            self.length = 0
        if not self.chunked and self.length is None:
            self.until_close, self.keep_alive = True, False

    def _parse_chunks(self) -> bool:
        while True:
            if self.chunk_left == -1:
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    return False
                size = bytes(self.buffer[:end]).split(b";", 1)[0].strip()
                del self.buffer[: end + 2]
                try:
                    self.chunk_left = int(size, 16)
                except ValueError:
                    raise httpx.RemoteProtocolError("bad chunk size") from None
                if self.chunk_left == 0:
                    self.chunk_left = -2  # trailers until an empty line
            if self.chunk_left == -2:
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    return False
                del self.buffer[: end + 2]
                if end == 0:
                    return True
                continue
            take = min(self.chunk_left, len(self.buffer))
            self.body += self.buffer[:take]
            del self.buffer[:take]
            self.chunk_left -= take
            if self.chunk_left:
                return False
            if len(self.buffer) < 2:
                self.chunk_left = 0
                return False
            del self.buffer[:2]  # CRLF after the chunk data
            self.chunk_left = -1

    # --- use ---------------------------------------------------------------------------------

    def stale(self) -> bool:
        """An idle connection with something to read has been closed by the server (or sent
        garbage): never reuse it for a POST, it would look "maybe sent"."""
        if self.closed or self.transport is None or self.transport.is_closing():
            return True
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock.fileno()], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable or self.buffer)

    def request(self, data: bytes, head_request: bool = False) -> asyncio.Future:
        self.head_request = head_request
        self.waiter = self.loop.create_future()
        self.transport.write(data)
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
        head = [b"CONNECT " + target + b" HTTP/1.1", b"Host: " + target]
        if parts.username:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            head.append(b"Proxy-Authorization: Basic " + base64.b64encode(credentials.encode()))
        try:
            # A 2xx to CONNECT has no body: read it like the answer to a HEAD.
            status, *_ = await protocol.request(b"\r\n".join(head) + b"\r\n\r\n", True)
            protocol.waiter = None
            if not 200 <= status < 300:
                raise httpx.ConnectError(f"proxy {parts.hostname} answered {status} to CONNECT")
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
        body = request.content  # httpx has already read it (json=/content=)
        head = [f"{request.method} {request.url.raw_path.decode('ascii')} HTTP/1.1".encode()]
        head += [name + b": " + value for name, value in request.headers.raw]
        raw = request.headers.raw
        framed = any(n.lower() in (b"content-length", b"transfer-encoding") for n, _ in raw)
        if not framed and (body or request.method in ("POST", "PUT", "PATCH")):
            head.append(b"Content-Length: " + str(len(body)).encode())
        waiter = connection.request(
            b"\r\n".join(head) + b"\r\n\r\n" + body, request.method == "HEAD"
        )
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
