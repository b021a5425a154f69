"""channel.graph.transport against a scripted HTTP/1.1 server on loopback: framing (Content-Length,
chunked, close-delimited), keep-alive reuse, stale connections, errors, TLS."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest

from channel.graph.transport import PooledTransport
from tests.channel.graph.helpers import ScriptedServer, localhost_certificate, ok, post_all


def test_content_length_responses_reuse_one_connection():
    with ScriptedServer([ok(b'{"a": 1}'), ok(b'{"b": 2}'), ok(b'{"c": 3}')]) as server:
        answers = post_all(server.url, 3)
    assert [a.json() for a in answers] == [{"a": 1}, {"b": 2}, {"c": 3}]
    assert server.connections == 1
    # What went out is a well-formed POST with its body and length.
    first = server.requests[0]
    assert first.startswith(b"POST /v1/messages HTTP/1.1\r\n")
    assert b"\r\ncontent-length: 7\r\n" in first.lower() and first.endswith(b'{"n":1}')


def test_chunked_response_split_across_reads_with_extensions_and_trailers():
    chunked = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8;ext=1\r\n",
        b'{"wa',
        b'mid"\r\n',
        b'B\r\n: "w.1xyz"}\r\n0\r\n',
        b"X-Trailer: 1\r\n\r\n",
    ]
    with ScriptedServer([chunked, ok()]) as server:
        answers = post_all(server.url, 2)
    assert answers[0].json() == {"wamid": "w.1xyz"}
    assert answers[1].json() == {"ok": 1}
    assert server.connections == 1  # a complete chunked body leaves the connection usable


def test_close_delimited_body_and_connection_close_open_a_new_connection():
    close_delimited = [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n", b"{}", "close"]
    with ScriptedServer([close_delimited, ok(extra=b"Connection: close\r\n"), ok()]) as server:
        answers = post_all(server.url, 3)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json() == {}
    assert server.connections == 3


def test_interim_100_continue_and_no_content():
    interim = [b"HTTP/1.1 100 Continue\r\n\r\n", ok(b'{"x": 1}')[0]]
    no_content = [b"HTTP/1.1 204 No Content\r\n\r\n"]
    with ScriptedServer([interim, no_content, ok()]) as server:
        answers = post_all(server.url, 3)
    assert answers[0].json() == {"x": 1}
    assert (answers[1].status_code, answers[1].content) == (204, b"")
    assert answers[2].status_code == 200 and server.connections == 1


def test_a_connection_the_server_closed_while_idle_is_not_reused():
    """Reusing it would make the POST look "maybe sent" to the caller."""
    with ScriptedServer([ok() + ["close"], ok()]) as server:

        async def main():
            async with httpx.AsyncClient(transport=PooledTransport()) as client:
                first = await client.post(server.url, json={})
                await asyncio.sleep(0.2)  # the server hangs up meanwhile
                return first, await client.post(server.url, json={})

        first, second = asyncio.run(main())
    assert (first.status_code, second.status_code) == (200, 200)
    assert server.connections == 2


def test_bytes_past_the_end_of_an_answer_are_never_read_as_the_next_answer():
    extra = ok(b'{"ok": 1}')[0] + ok(b'{"stray": 1}')[0]
    with ScriptedServer([[extra], ok(b'{"second": 1}')]) as server:
        answers = post_all(server.url, 2)
    assert [a.json() for a in answers] == [{"ok": 1}, {"second": 1}]
    assert server.connections == 2


def test_errors_are_httpx_errors_that_tell_never_sent_from_maybe_sent():
    cut_short = [b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{", "close"]
    with ScriptedServer([["hang"], cut_short]) as server:
        timeout, dropped = post_all(server.url, 2, timeout=httpx.Timeout(0.3))
    assert isinstance(timeout, httpx.ReadTimeout)
    assert isinstance(dropped, httpx.RemoteProtocolError)
    with socket_that_refuses() as port:
        [refused] = post_all(f"http://127.0.0.1:{port}/", 1)
    assert isinstance(refused, httpx.ConnectError)


class socket_that_refuses:
    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()


def test_many_concurrent_requests_share_the_pool_within_its_limit():
    with ScriptedServer([ok() for _ in range(60)]) as server:

        async def main():
            transport = PooledTransport(max_connections=10)
            async with httpx.AsyncClient(transport=transport) as client:
                answers = await asyncio.gather(
                    *(client.post(server.url, json={}) for _ in range(60))
                )
            return answers

        answers = asyncio.run(main())
    assert [a.status_code for a in answers] == [200] * 60
    assert server.connections <= 10


@pytest.fixture
def certificate(tmp_path):
    return localhost_certificate(tmp_path)


def test_tls_verifies_the_server_certificate(certificate):
    server_context, cert = certificate
    with ScriptedServer([ok(b'{"tls": 1}'), ok()], ssl_context=server_context) as server:
        trusting = ssl.create_default_context(cafile=str(cert))
        [answer] = post_all(server.url, 1, PooledTransport(ssl_context=trusting))
        [untrusted] = post_all(server.url, 1)  # the default CAs do not know our certificate
    assert answer.json() == {"tls": 1}
    assert isinstance(untrusted, httpx.ConnectError)


def test_a_head_response_has_no_body_whatever_it_announces():
    with ScriptedServer([[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"], ok()]) as server:

        async def main():
            async with httpx.AsyncClient(transport=PooledTransport()) as client:
                head = await client.head(server.url, timeout=2)
                return head, await client.post(server.url, json={}, timeout=2)

        head, after = asyncio.run(main())
    assert (head.status_code, head.content) == (200, b"")
    assert after.json() == {"ok": 1} and server.connections == 1
