"""Which HTTP client to send with: CPU per request at 100 and 200 requests in flight against the
fake Graph API answering after a simulated API latency, like Meta's (about 100 ms).

    .venv/bin/python bench/http_clients.py [--latency-ms 100] [--requests 6000] [--runs 3]

Each client runs in its own process against the fake in another process (the fake's CPU is not
counted); CPU per request = the client process's CPU time (all threads) / requests, after a
warm-up that opens the connections. Runs are interleaved (run 1 of every client, then run 2…)
so that a change in the machine's load hits every client alike, and each client's CPU is also
printed as a ratio to the hand-written transport's in the same round: on a shared machine the
ratios are what to compare, not the absolute figures. Prints min/median/max of --runs and the
load average before and after.

Clients: the hand-written HTTP/1.1 transport Banditore used until its parser moved to h11 (read
from git at --hand-written, skipped where git or that commit is missing); httpx over
`channel.graph.transport` (what Banditore uses: h11 under our pool); httpx over
`httpx-aiohttp`'s stock transport; httpx over aiohttp with the sender's error mapping
(bench/aiohttp_transport.py); aiohttp alone, without httpx; httpx over httpcore with one pool of
N connections and with pools of 10 connections each (httpcore's pool scans every connection per
request). aiohttp and httpx-aiohttp come with the dev extras (pip install -e '.[dev]').
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

# The last commit with the hand-written parser (the transport was parser, chunking, TLS, pool,
# CONNECT; the parser and chunking are h11's since).
HAND_WRITTEN = "d9b99b9"

BODY = {
    "messaging_product": "whatsapp",
    "to": "390000000001",
    "type": "text",
    "text": {"body": "Benchmark message " + "x" * 200},
    "biz_opaque_callback_data": "d:123456",
}
TOKEN = "t" * 200
HEADERS = {"Authorization": "Bearer " + TOKEN}

BASELINE = "httpx + hand-written transport (before)"
NOW = "httpx + channel.graph.transport (h11, now)"
KINDS = [
    BASELINE,
    NOW,
    "httpx + httpx-aiohttp (stock)",
    "httpx + aiohttp, errors mapped",
    "aiohttp alone (no httpx)",
    "httpx + httpcore, sharded pools of 10",
    "httpx + httpcore, one pool",
]


def fake_server(port_queue, latency: float) -> None:
    """The project's fake Graph API, without statuses, the 24-hour window or a rate limit."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
    os.environ.setdefault("SECRET_KEY", "bench")
    from channel.fakegraph.server import FakeConfig, FakeGraphServer

    config = FakeConfig(
        access_token=TOKEN,
        enforce_window=False,
        pair_burst=10**9,
        latency_ms=latency,
        mps=0,
        statuses=False,
    )
    server = FakeGraphServer(config=config).start()
    port_queue.put(server.port)
    threading.Event().wait()


def hand_written_module(rev: str):
    """channel/graph/transport.py as it was at `rev`, imported from a temporary file."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:channel/graph/transport.py"],
        capture_output=True,
        check=True,
    ).stdout
    path = Path(tempfile.gettempdir()) / f"banditore_transport_{rev}.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location(f"transport_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check(status: int, body: bytes) -> None:
    assert status == 200, body
    assert json.loads(body)["messages"][0]["id"]


def _httpx_factory(kind: str, concurrency: int, rev: str):
    import httpx

    if kind == BASELINE:
        transport = hand_written_module(rev).PooledTransport
        return lambda: [httpx.AsyncClient(transport=transport(max_connections=concurrency))]
    if kind == "httpx + httpx-aiohttp (stock)":
        from httpx_aiohttp import AiohttpTransport

        limits = httpx.Limits(max_connections=concurrency)
        return lambda: [httpx.AsyncClient(transport=AiohttpTransport(limits=limits))]
    if kind in (NOW, "httpx + aiohttp, errors mapped"):
        if kind == NOW:
            from channel.graph.transport import PooledTransport
        else:
            from aiohttp_transport import PooledTransport  # bench/aiohttp_transport.py

        return lambda: [httpx.AsyncClient(transport=PooledTransport(max_connections=concurrency))]
    if kind == "httpx + httpcore, one pool":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        return lambda: [httpx.AsyncClient(limits=limits)]
    if kind == "httpx + httpcore, sharded pools of 10":
        limits = httpx.Limits(max_connections=10, max_keepalive_connections=10)
        return lambda: [httpx.AsyncClient(limits=limits) for _ in range(concurrency // 10)]
    raise ValueError(kind)


async def _run_httpx(make, url: str, n: int, concurrency: int) -> None:
    clients = make()
    queue = iter(range(n))

    async def worker(client):
        for _ in queue:
            response = await client.post(url, json=BODY, headers=HEADERS)
            _check(response.status_code, response.content)

    await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(concurrency)))
    for client in clients:
        await client.aclose()


async def _run_aiohttp(url: str, n: int, concurrency: int) -> None:
    import aiohttp

    queue = iter(range(n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker():
            for _ in queue:
                async with session.post(url, json=BODY, headers=HEADERS) as response:
                    _check(response.status, await response.read())

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def client_process(kind: str, url: str, n: int, concurrency: int, rev: str, out) -> None:
    try:
        if kind == "aiohttp alone (no httpx)":
            run = lambda count: _run_aiohttp(url, count, concurrency)  # noqa: E731
        else:
            make = _httpx_factory(kind, concurrency, rev)
            run = lambda count: _run_httpx(make, url, count, concurrency)  # noqa: E731
        asyncio.run(run(concurrency * 2))  # warm-up: opens the connections
        cpu0, t0 = time.process_time(), time.monotonic()
        asyncio.run(run(n))
        out.put((n / (time.monotonic() - t0), 1000 * (time.process_time() - cpu0) / n))
    except Exception as exc:  # reported, not hidden: the row says why
        out.put(f"{type(exc).__name__}: {exc}"[:120])


def start_server(latency: float):
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    server = context.Process(target=fake_server, args=(ports, latency), daemon=True)
    server.start()
    return server, ports.get(timeout=60)


def measure(kind: str, url: str, n: int, concurrency: int, rev: str):
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    proc = context.Process(target=client_process, args=(kind, url, n, concurrency, rev, out))
    proc.start()
    result = out.get(timeout=900)
    proc.join()
    return result


def _spread(values: list[float], fmt: str) -> str:
    if not values:
        return "–"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{low:{fmt}}/{mid:{fmt}}/{high:{fmt}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--hand-written", default=HAND_WRITTEN, help="git commit to read it from")
    parser.add_argument("--skip", nargs="*", default=[], help="leave out clients containing this")
    args = parser.parse_args()
    kinds = [k for k in KINDS if not any(s in k for s in args.skip)]
    try:
        hand_written_module(args.hand_written)
    except (OSError, subprocess.CalledProcessError):
        print(f"skipped: {BASELINE}: no git or no commit {args.hand_written}")
        kinds.remove(BASELINE)
    server, port = start_server(args.latency_ms)
    url = f"http://127.0.0.1:{port}/v25.0/100000000000001/messages"
    load_before = os.getloadavg()
    print(f"{os.cpu_count()} cores; {args.latency_ms:.0f} ms simulated latency; {args.requests} "
          f"requests per run (1,500 for httpcore's one pool); {args.runs} interleaved runs; "
          f"CPU = client process, all threads")  # fmt: skip
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*load_before), flush=True)
    results: dict[tuple[str, int], list] = {(k, c): [] for k in kinds for c in args.concurrency}
    for run in range(args.runs):
        for concurrency in args.concurrency:
            for kind in kinds:
                # httpcore's one pool would take minutes at full size: fewer requests for it.
                n = min(args.requests, 1500) if kind.endswith("one pool") else args.requests
                result = measure(kind, url, n, concurrency, args.hand_written)
                results[kind, concurrency].append(result)
                print(f"  run {run + 1}, {concurrency} in flight, {kind}: {result}", flush=True)
    load_after = os.getloadavg()
    print()
    print(f"{'client':42} {'in flight':>9} {'req/s min/med/max':>20} "
          f"{'CPU ms/request min/med/max':>28} {'× before (same round)':>22}")  # fmt: skip
    for kind in kinds:
        for concurrency in args.concurrency:
            runs = results[kind, concurrency]
            good = [r for r in runs if isinstance(r, tuple)]
            if not good:
                print(f"{kind:42} {concurrency:>9} failed: {runs[0]}")
                continue
            base = results.get((BASELINE, concurrency), [])
            ratios = [
                mine[1] / theirs[1]
                for mine, theirs in zip(runs, base, strict=False)
                if isinstance(mine, tuple) and isinstance(theirs, tuple)
            ]
            print(
                f"{kind:42} {concurrency:>9} {_spread([r for r, _ in good], '.0f'):>20} "
                f"{_spread([c for _, c in good], '.3f'):>28} {_spread(ratios, '.2f'):>22}",
                flush=True,
            )
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*load_after))
    server.kill()


if __name__ == "__main__":
    main()
