"""Shared set-up for the Graph API client's tests."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Self

import httpx
import pytest

from channel.graph import client
from channel.graph.transport import PooledTransport


def close_clients() -> None:
    """Drop the process's client and its connections: the next send opens fresh ones, none
    left half-used by an earlier test."""
    with client._lock:
        stale = list(client._clients.values())
        client._clients.clear()
    for old in stale:
        old.close()


class LoopbackServer:
    """An asyncio server on a free loopback port, run on a thread of its own for the length of a
    `with` block; a subclass answers each connection in `_serve`."""

    ssl_context: ssl.SSLContext | None = None

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop)
        self._thread.join(5)

    async def _stop(self) -> None:
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        self.loop.stop()

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    async def _serve(self, reader, writer) -> None:
        raise NotImplementedError


class ScriptedServer(LoopbackServer):
    """Answers the n-th request with the n-th script entry: a list of byte pieces written
    with a short pause between them, then "close" to hang up, or "hang" to never answer."""

    def __init__(self, script: list, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self.script = list(script)
        self.ssl_context = ssl_context
        self.connections = 0
        self.requests: list[bytes] = []

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://localhost:{self.port}/v1/messages"

    async def _serve(self, reader, writer) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append(head + await reader.readexactly(length))
                for piece in self.script.pop(0):
                    if piece == "close":
                        writer.close()
                        return
                    if piece == "hang":
                        await asyncio.sleep(30)
                        return
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.01)  # arrives in separate reads
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


def ok(body: bytes = b'{"ok": 1}', extra: bytes = b"") -> list[bytes]:
    return [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body]


def post_all(url: str, n: int, transport: PooledTransport | None = None, **kw) -> list:
    async def main():
        async with httpx.AsyncClient(transport=transport or PooledTransport(), **kw) as client:
            results = []
            for _ in range(n):
                try:
                    results.append(await client.post(url, json={"n": 1}))
                except httpx.HTTPError as exc:
                    results.append(exc)
            return results

    return asyncio.run(main())


def localhost_certificate(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A self-signed certificate for localhost: the server context that presents it and the
    certificate file a client trusts it by. Skips the test where openssl is missing."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, cert
