"""httpx over aiohttp's connection pool with the error mapping the sender needs: the maintained
option measured in bench/http_clients.py next to channel.graph.transport (not used by Banditore:
it costs more CPU per request than the 1.3x of the hand-written transport the project allows;
README, "Choosing the HTTP client").

Not `httpx-aiohttp`'s own transport (measured too): it maps aiohttp's ServerDisconnectedError and
ClientOSError (the connection dropped or reset after the request was written) to httpx's
ConnectTimeout, "never sent", so the sender would resend a message Meta may have accepted; and it
honours HTTPS_PROXY only through aiohttp's ``trust_env``, which reads the environment and
~/.netrc on every request (~0.3 ms measured). Here: ConnectError/ConnectTimeout only when nothing
was written (refused, DNS, TLS, a proxy refusing the tunnel, no free connection in time),
ReadTimeout/RemoteProtocolError once it was; proxies read once, decided once per URL.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request

import aiohttp
import httpx
from yarl import URL

# The request was never written: aiohttp could not connect (refused, DNS, TLS, proxy), or no
# connection came free within the pool/connect timeout.
_NEVER_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


class PooledTransport(httpx.AsyncBaseTransport):
    """httpx transport over one aiohttp ClientSession per event loop, at most
    `max_connections` connections, idle ones closed after `keepalive_expiry` seconds."""

    def __init__(
        self,
        *,
        max_connections: int = 256,
        keepalive_expiry: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self.ssl_context = ssl_context
        # Read once: per request, aiohttp's own environment look-up costs more than the request.
        self.proxies = urllib.request.getproxies()
        self._session: aiohttp.ClientSession | None = None
        # Built once per URL and per set of timeouts (a sender posts to one URL, one timeout).
        self._targets: dict[str, tuple[URL, URL | None, dict | None]] = {}
        self._timeouts: dict[tuple, aiohttp.ClientTimeout] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def _context(self) -> ssl.SSLContext:
        if self.ssl_context is None:
            self.ssl_context = httpx.create_ssl_context()  # certifi's CAs, as httpx's own
        return self.ssl_context

    def _session_for(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        if self._loop is not loop:  # a session belongs to one loop: start afresh
            self._loop = loop
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                keepalive_timeout=self.keepalive_expiry,
                ssl=self._context(),
            )
            # No cookies, decompression or redirects here: httpx does all three, as over httpcore.
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
            )
        return self._session

    def route(self, url: str) -> tuple[URL, URL | None, dict | None]:
        """The URL for aiohttp, and the proxy to reach it through with the headers for the
        proxy (its credentials), or None, None."""
        route = self._targets.get(url)
        if route is None:
            target = URL(url, encoded=True)
            proxy = self.proxies.get(target.scheme)
            if not proxy or urllib.request.proxy_bypass_environment(target.host, self.proxies):
                route = (target, None, None)
            else:
                parts = URL(proxy if "://" in proxy else f"http://{proxy}")
                auth = None
                if parts.user:
                    credentials = aiohttp.encode_basic_auth(parts.user, parts.password or "")
                    auth = {"Proxy-Authorization": credentials}
                route = (target, parts.with_user(None), auth)
            if len(self._targets) > 1000:
                self._targets.clear()
            self._targets[url] = route
        return route

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session_for(asyncio.get_running_loop())
        target, proxy, proxy_headers = self.route(str(request.url))
        timeouts = request.extensions.get("timeout", {})
        key = (timeouts.get("pool"), timeouts.get("connect"), timeouts.get("read"))
        if (timeout := self._timeouts.get(key)) is None:
            # connect: a free connection, connected; sock_read: the longest wait between reads.
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                connect=key[0], sock_connect=key[1], sock_read=key[2]
            )
        body = await request.aread()  # already read for json=/content=; a multipart is read here
        try:
            async with session.request(
                request.method,
                target,
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                proxy=proxy,
                proxy_headers=proxy_headers,
                timeout=timeout,
            ) as response:
                content = await response.read()
        except aiohttp.ClientHttpProxyError as exc:  # the proxy refused the CONNECT tunnel
            raise httpx.ConnectError(
                f"proxy {proxy.host} answered {exc.status} to CONNECT", request=request
            ) from exc
        except _NEVER_SENT as exc:
            kind = httpx.ConnectTimeout if isinstance(exc, TimeoutError) else httpx.ConnectError
            raise kind(str(exc) or type(exc).__name__, request=request) from exc
        except aiohttp.SocketTimeoutError as exc:
            raise httpx.ReadTimeout("no answer in time", request=request) from exc
        except (aiohttp.ClientError, OSError) as exc:  # written, then dropped, reset or garbled
            raise httpx.RemoteProtocolError(
                str(exc) or type(exc).__name__, request=request
            ) from exc
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=httpx.ByteStream(content),
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = self._loop = None
