"""Which httpx set-up to send with: CPU per request and requests/s against a server that
answers after a simulated API latency, like Meta's (about 100 ms).

    .venv/bin/python bench/http_clients.py [--latency-ms 100] [--requests 6000] [--runs 2]

Runs each alternative in its own process against a server in another process (the server's
CPU is not counted): httpx.AsyncClient with one big pool (httpcore), sharded AsyncClients of
10 connections, sync httpx.Client in threads, HTTP/2 (one connection, prior knowledge; needs
the `h2` package, skipped without it), and httpx.AsyncClient over channel.graph.transport
(what Banditore uses). Prints the median of --runs with min–max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BODY = {
    "messaging_product": "whatsapp",
    "to": "390000000001",
    "type": "text",
    "text": {"body": "Benchmark message " + "x" * 200},
    "biz_opaque_callback_data": "d:123456",
}
HEADERS = {"Authorization": "Bearer " + "t" * 200}
ANSWER = json.dumps(
    {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "390000000001", "wa_id": "390000000001"}],
        "messages": [{"id": "wamid.HBgL" + "A" * 32, "message_status": "accepted"}],
    }
).encode()


# --- servers (own process) ------------------------------------------------------------------


def http1_server(port_queue, latency: float) -> None:
    """The project's fake Graph API, without statuses or the 24-hour window."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
    os.environ.setdefault("SECRET_KEY", "bench")
    from channel.fakegraph.server import FakeConfig, FakeGraphServer

    config = FakeConfig(
        access_token="t" * 200, enforce_window=False, pair_burst=10**9, latency_ms=latency
    )
    server = FakeGraphServer(config=config).start()
    port_queue.put(server.port)
    threading.Event().wait()


def http2_server(port_queue, latency: float) -> None:
    """A minimal HTTP/2 (h2c, prior knowledge) server answering like the fake."""
    import h2.config
    import h2.connection
    import h2.events

    async def serve(reader, writer):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())

        async def answer(stream_id):
            await asyncio.sleep(latency / 1000)
            conn.send_headers(
                stream_id,
                [
                    (":status", "200"),
                    ("content-type", "application/json"),
                    ("content-length", str(len(ANSWER))),
                ],
            )
            conn.send_data(stream_id, ANSWER, end_stream=True)
            writer.write(conn.data_to_send())

        while data := await reader.read(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    asyncio.ensure_future(answer(event.stream_id))
            writer.write(conn.data_to_send())

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port_queue.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


# --- clients (own process) ------------------------------------------------------------------


def _check(response) -> None:
    assert response.status_code == 200, response.text
    assert response.json()["messages"][0]["id"]


def run_async(url: str, n: int, concurrency: int, make_clients) -> None:
    async def main():
        clients = make_clients()
        queue = iter(range(n))

        async def worker(client):
            for _ in queue:
                _check(await client.post(url, json=BODY, headers=HEADERS))

        await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(concurrency)))
        for client in clients:
            await client.aclose()

    asyncio.run(main())


def client_process(kind: str, url: str, n: int, concurrency: int, out) -> None:
    import httpx

    if kind == "one AsyncClient (httpcore pool)":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        make = lambda: [httpx.AsyncClient(limits=limits)]  # noqa: E731
    elif kind == "sharded AsyncClients, 10 connections each":
        limits = httpx.Limits(max_connections=10, max_keepalive_connections=10)
        make = lambda: [httpx.AsyncClient(limits=limits) for _ in range(concurrency // 10)]  # noqa: E731
    elif kind == "HTTP/2, one AsyncClient":
        make = lambda: [httpx.AsyncClient(http1=False, http2=True)]  # noqa: E731
    elif kind == "AsyncClient + channel.graph.transport":
        from channel.graph.transport import PooledTransport

        make = lambda: [  # noqa: E731
            httpx.AsyncClient(transport=PooledTransport(max_connections=concurrency))
        ]
    elif kind == "sync Client in threads":
        local = threading.local()

        def one(_):
            if not hasattr(local, "client"):
                local.client = httpx.Client()
            _check(local.client.post(url, json=BODY, headers=HEADERS))

        cpu0, t0 = time.process_time(), time.monotonic()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(n)))
        out.put((n / (time.monotonic() - t0), 1000 * (time.process_time() - cpu0) / n))
        return
    else:
        raise ValueError(kind)
    # A short warm-up opens the connections; then the measured run.
    run_async(url, concurrency * 2, concurrency, make)
    cpu0, t0 = time.process_time(), time.monotonic()
    run_async(url, n, concurrency, make)
    out.put((n / (time.monotonic() - t0), 1000 * (time.process_time() - cpu0) / n))


def start_server(target, latency: float):
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    server = context.Process(target=target, args=(ports, latency), daemon=True)
    server.start()
    return server, ports.get(timeout=30)


def measure(kind: str, url: str, n: int, concurrency: int) -> tuple[float, float]:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    proc = context.Process(target=client_process, args=(kind, url, n, concurrency, out))
    proc.start()
    result = out.get(timeout=600)
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[100, 200])
    args = parser.parse_args()
    try:
        import h2  # noqa: F401

        have_h2 = True
    except ImportError:
        have_h2 = False
    server1, port1 = start_server(http1_server, args.latency_ms)
    server2, port2 = start_server(http2_server, args.latency_ms) if have_h2 else (None, None)
    path = "/v25.0/100000000000001/messages"
    kinds = [
        "one AsyncClient (httpcore pool)",
        "sharded AsyncClients, 10 connections each",
        "sync Client in threads",
        "HTTP/2, one AsyncClient",
        "AsyncClient + channel.graph.transport",
    ]
    print(f"{args.latency_ms:.0f} ms simulated latency, {args.requests} requests, "
          f"median of {args.runs} (min–max); CPU = client process, all threads")  # fmt: skip
    print(f"{'client':45} {'conc.':>5} {'req/s':>18} {'CPU ms/request':>20}")
    for kind in kinds:
        if kind.startswith("HTTP/2") and not have_h2:
            print(f"{kind:45} skipped: needs the h2 package (pip install h2)")
            continue
        port = port2 if kind.startswith("HTTP/2") else port1
        for concurrency in args.concurrency:
            # The slowest set-ups would take minutes at full size: fewer requests for them.
            n = args.requests
            if kind.startswith("one AsyncClient"):
                n = min(n, 1500)
            runs = [
                measure(kind, f"http://127.0.0.1:{port}{path}", n, concurrency)
                for _ in range(args.runs)
            ]
            rates, cpus = [r for r, _ in runs], [c for _, c in runs]
            print(
                f"{kind:45} {concurrency:>5} "
                f"{statistics.median(rates):>7.0f} ({min(rates):.0f}–{max(rates):.0f})"
                f"{statistics.median(cpus):>9.2f} ({min(cpus):.2f}–{max(cpus):.2f})",
                flush=True,
            )
    server1.kill()
    if server2 is not None:
        server2.kill()


if __name__ == "__main__":
    main()
