"""HTTPS_PROXY/HTTP_PROXY/NO_PROXY: sends to Meta go through a council's proxy as a CONNECT tunnel.

The proxy here is a real one on loopback (CONNECT, then bytes piped both ways), in front of
the fake Graph API and of a TLS server, so what is checked is what crosses the wire."""

from __future__ import annotations

import asyncio
import base64
import ssl
from urllib.parse import urlsplit

import httpx
import pytest

from channel.graph.client import GraphClient
from channel.graph.transport import PooledTransport
from tests.channel.graph.helpers import (
    LoopbackServer,
    ScriptedServer,
    localhost_certificate,
    ok,
    post_all,
)

PAYLOAD = {
    "messaging_product": "whatsapp",
    "to": "393330000001",
    "type": "text",
    "text": {"body": "ciao"},
}


class ConnectProxy(LoopbackServer):
    """Answers CONNECT host:port with 200 and pipes the bytes; anything else with 405. With
    `refuse`, every CONNECT gets 403 (a proxy whose rules forbid the destination)."""

    def __init__(self, *, refuse: bool = False) -> None:
        super().__init__()
        self.refuse = refuse
        self.requests: list[bytes] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader, writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
        if method != b"CONNECT" or self.refuse:
            status = b"405 Method Not Allowed" if method != b"CONNECT" else b"403 Forbidden"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        host, port = target.rsplit(b":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host.decode(), int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(source, sink) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


@pytest.fixture
def no_proxy_in_environment(monkeypatch):
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_a_send_to_the_graph_api_goes_through_the_proxy_of_the_environment(
    fake_graph, no_proxy_in_environment
):
    fake_graph.configure(enforce_window=False)
    with ConnectProxy() as proxy:
        no_proxy_in_environment.setenv("HTTP_PROXY", proxy.url)
        no_proxy_in_environment.setenv("HTTPS_PROXY", proxy.url)
        client = GraphClient()
        try:
            result = client.send(PAYLOAD)
        finally:
            client.close()
    assert result.ok, result
    assert [m["to"] for m in fake_graph.outbox()] == ["393330000001"]
    (connect,) = proxy.requests
    assert connect.startswith(b"CONNECT 127.0.0.1:%d HTTP/1.1" % urlsplit(fake_graph.url).port)
    # The token travels inside the tunnel, never in what the proxy reads.
    assert b"Authorization" not in connect


@pytest.fixture
def tls_server(tmp_path):
    """A server context for localhost and a client context that trusts it."""
    server, cert = localhost_certificate(tmp_path)
    return server, ssl.create_default_context(cafile=str(cert))


def test_tls_to_the_server_is_made_inside_the_tunnel(tls_server, no_proxy_in_environment):
    server_context, trusting = tls_server
    with ScriptedServer([ok(b'{"tls": 1}')], ssl_context=server_context) as server:
        with ConnectProxy() as proxy:
            no_proxy_in_environment.setenv("https_proxy", proxy.url)
            [answer] = post_all(server.url, 1, PooledTransport(ssl_context=trusting))
    assert answer.json() == {"tls": 1}
    assert proxy.requests[0].startswith(b"CONNECT localhost:%d HTTP/1.1" % server.port)
    assert server.requests[0].startswith(b"POST /v1/messages HTTP/1.1")


def test_no_proxy_hosts_are_reached_directly(no_proxy_in_environment):
    with ScriptedServer([ok()]) as server, ConnectProxy() as proxy:
        no_proxy_in_environment.setenv("HTTP_PROXY", proxy.url)
        no_proxy_in_environment.setenv("NO_PROXY", "example.org,localhost")
        [answer] = post_all(server.url, 1)
    assert answer.json() == {"ok": 1}
    assert proxy.requests == []


def test_a_refusing_proxy_is_a_connect_error_that_names_it(no_proxy_in_environment):
    with ScriptedServer([ok()]) as server, ConnectProxy(refuse=True) as proxy:
        user = f"http://banditore:s%40cret@127.0.0.1:{proxy.port}"
        no_proxy_in_environment.setenv("HTTP_PROXY", user)
        [error] = post_all(server.url, 1)
    # "Never left": a refused tunnel is a ConnectError, safe to retry.
    assert isinstance(error, httpx.ConnectError)
    assert "answered 403 to CONNECT" in str(error)
    assert (
        b"Proxy-Authorization: Basic " + base64.b64encode(b"banditore:s@cret")
        in (proxy.requests[0])
    )
    assert server.requests == []
