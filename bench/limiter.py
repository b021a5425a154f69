"""Limiter accuracy: 4 worker processes share the one Redis rate limiter; the fake Graph API
counts what arrives.

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/limiter.py [--seconds 30] \\
        [--runs 3] [--batch 100] [--latency-ms 100] [--rates 80 1000]

Each process sends like a sender does (channel.graph.client.GraphClient.send_paced: batches in
flight at once, each message at the slot the Redis limiter reserved for it), to the fake answering
after --latency-ms, for --seconds at each rate (80 and 1,000 msg/s: 2,400 and 30,000
messages), the rates taking turns --runs times. Prints the highest count in any 1-second
window at the fake (target ≤ rate × 1.02) and the total time against messages / rate (target
within 5 %), each as min / median / max, with the load average before and after.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("WHATSAPP_PHONE_NUMBER_ID", "100000000000001")
os.environ.setdefault("WHATSAPP_ACCESS_TOKEN", "bench-token")
os.environ.setdefault("LOG_LEVEL", "WARNING")

PROCESSES = 4


def worker(url: str, rate: float, count: int, offset: int, batch: int, ready, given_up) -> None:
    """What a sender process does: batches sent concurrently, each message at its slot."""
    import django

    django.setup()
    from channel.graph.client import GraphClient
    from channel.graph.ratelimit import Lane, SendRateLimiter

    limiter = SendRateLimiter(rate=rate, reserve=0.0, key=f"bench:limiter:{rate}")
    client = GraphClient(base_url=url)
    payloads = [
        {
            "messaging_product": "whatsapp",
            "to": str(390000000000 + offset + n),
            "type": "text",
            "text": {"body": "limiter"},
        }
        for n in range(count)
    ]
    # Start together: the first process must not send while the others still load Django
    # (that start-up storm is not what a running sender sees).
    ready.wait()
    for start in range(0, count, batch):
        results = client.send_paced(
            payloads[start : start + batch],
            lambda n: limiter.reserve(Lane.BULK, n, max_ahead=limiter.MAX_AHEAD),
            chunk=limiter.chunk(Lane.BULK),
        )
        assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
    given_up.put(client.slots_given_up)


def measure(rate: float, messages: int, batch: int, latency_ms: float) -> dict[str, float]:
    import httpx

    from channel.fakegraph.server import FakeConfig, FakeGraphServer

    server = FakeGraphServer(
        config=FakeConfig(
            access_token="bench-token",
            enforce_window=False,
            pair_burst=10**6,
            latency_ms=latency_ms,
            mps=0,  # no throughput limit at "Meta": the bench measures our limiter
        )
    ).start()
    per = messages // PROCESSES
    context = multiprocessing.get_context("spawn")
    ready, given_up = context.Barrier(PROCESSES), context.Queue()
    started = time.monotonic()
    procs = [
        context.Process(
            target=worker, args=(server.url, rate, per, i * per, batch, ready, given_up)
        )
        for i in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    unused = sum(given_up.get(timeout=600) for _ in procs)
    for proc in procs:
        proc.join()
    stats = httpx.get(f"{server.url}/_fake/stats").json()
    server.stop()
    sent = stats["accepted"]
    span = stats["last_accept"] - stats["first_accept"]
    ideal = (sent - 1) / rate  # N sends spaced 1/rate apart span (N - 1) / rate
    figures = {
        "peak 1-s window ÷ rate": stats["max_per_second"] / rate,
        "time vs ideal %": 100 * (span / ideal - 1),
        "slots left unused": float(unused),
    }
    print(
        f"  rate {rate:>6.0f}/s, {PROCESSES} processes, {sent} messages in {span:.1f} s: "
        f"peak 1-s window {stats['max_per_second']} ({figures['peak 1-s window ÷ rate']:.3f}×), "
        f"time vs ideal {ideal:.2f} s {figures['time vs ideal %']:+.1f} %, "
        f"wall incl. start-up {time.monotonic() - started:.1f} s, {unused} slots unused",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="of sending, per rate")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100, help="BANDITORE_SEND_BATCH")
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--rates", type=float, nargs="+", default=[80.0, 1000.0])
    args = parser.parse_args()
    import django

    django.setup()
    # The fake runs in this process and is the instrument: a collection (Django's heap, or
    # its own growing outbox, tens of ms) would hold its clock, and the arrivals it records
    # next would bunch up. Meta's clock does not pause for our garbage.
    gc.freeze()
    gc.disable()
    from bench.harness import load_average, spread

    print(f"load average before: {load_average()}", flush=True)
    results: dict[float, list[dict]] = {rate: [] for rate in args.rates}
    for _ in range(args.runs):
        for rate in args.rates:  # in turn, so the machine's other work weighs on each alike
            messages = int(rate * args.seconds) // PROCESSES * PROCESSES
            results[rate].append(measure(rate, messages, args.batch, args.latency_ms))
    print(f"load average after: {load_average()}")
    for rate, runs in results.items():
        print(f"rate {rate:.0f}/s, {args.seconds:.0f} s each (min / median / max of {len(runs)}):")
        for key in runs[0]:
            print(f"  {key}: {spread([r[key] for r in runs], 3)}")


if __name__ == "__main__":
    main()
