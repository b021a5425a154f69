"""What a failed send means for the sender: "never sent" (nothing was written: refused, unknown
host, TLS, a proxy refusing the tunnel) is retried at once; "maybe sent" (the request was
written, then a timeout, a reset or a cut-short answer) waits for Meta's status webhook.

GraphClient against real servers on loopback; nothing is patched."""

from __future__ import annotations

import pytest

from channel.graph.client import GraphClient
from channel.graph.errors import Handling
from tests.channel.graph.helpers import ScriptedServer, localhost_certificate
from tests.channel.graph.test_proxy import ConnectProxy
from tests.channel.graph.test_transport import socket_that_refuses

PAYLOAD = {"messaging_product": "whatsapp", "to": "393330000001", "type": "text",
           "text": {"body": "ciao"}}  # fmt: skip


def send_once(base_url: str, timeout: float = 2.0):
    client = GraphClient(
        base_url=base_url, version="v1", phone_number_id="1", token="t", timeout=timeout
    )
    try:
        return client.send(PAYLOAD)
    finally:
        client.close()


def assert_never_sent(result) -> None:
    assert not result.ok and not result.maybe_sent, result
    assert result.handling is Handling.TRANSIENT and result.error_text.startswith(
        "connection failed"
    )


def assert_maybe_sent(result) -> None:
    assert not result.ok and result.maybe_sent, result
    assert result.handling is Handling.TRANSIENT and result.error_text.startswith("no answer")


@pytest.fixture
def no_proxy(monkeypatch):
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_a_refused_connection_is_never_sent(no_proxy):
    with socket_that_refuses() as port:
        assert_never_sent(send_once(f"http://127.0.0.1:{port}"))


def test_an_unknown_host_is_never_sent(no_proxy):
    assert_never_sent(send_once("http://graph.banditore-test.invalid"))


def test_a_server_certificate_we_do_not_trust_is_never_sent(no_proxy, tmp_path):
    server_context, _ = localhost_certificate(tmp_path)
    with ScriptedServer([], ssl_context=server_context) as server:
        assert_never_sent(send_once(f"https://localhost:{server.port}"))
    assert server.requests == []


def test_a_proxy_that_refuses_the_tunnel_is_never_sent(no_proxy):
    with ConnectProxy(refuse=True) as proxy:
        no_proxy.setenv("HTTPS_PROXY", proxy.url)
        assert_never_sent(send_once("https://graph.banditore-test.invalid"))
    assert proxy.requests[0].startswith(b"CONNECT graph.banditore-test.invalid:443 ")


@pytest.mark.parametrize(
    "answer",
    [
        ["close"],  # read the request, then hung up
        [b'HTTP/1.1 200 OK\r\nContent-Length: 80\r\n\r\n{"messages"', "close"],  # cut short
        ["hang"],  # no answer within the read timeout
        [b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}"],  # not HTTP as h11 knows it
        [b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * 70_000 + b"\r\n\r\n"],  # a head past the limit
    ],
    ids=["dropped", "cut-short", "timeout", "garbled", "huge-head"],
)
def test_a_request_that_was_written_is_maybe_sent(no_proxy, answer):
    with ScriptedServer([answer]) as server:
        result = send_once(f"http://127.0.0.1:{server.port}", timeout=0.5)
    assert_maybe_sent(result)
    assert len(server.requests) == 1 and server.requests[0].endswith(b'"ciao"}}')
