"""Limiter accuracy: 4 worker processes share the one Redis rate limiter; the fake Graph API
counts what arrives.

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/limiter.py [--messages 4000]

For each rate (80 and 1,000 msg/s) prints the highest count in any 1-second window at the fake
(target ≤ rate × 1.02) and the total time against messages / rate (target within 5 %).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("WHATSAPP_PHONE_NUMBER_ID", "100000000000001")
os.environ.setdefault("WHATSAPP_ACCESS_TOKEN", "bench-token")
os.environ.setdefault("LOG_LEVEL", "WARNING")

PROCESSES = 4


def worker(url: str, rate: float, count: int, offset: int) -> None:
    import django

    django.setup()
    from channel.graph import GraphClient
    from channel.ratelimit import Lane, SendRateLimiter

    limiter = SendRateLimiter(rate=rate, reserve=0.0, key=f"bench:limiter:{rate}")
    local = threading.local()

    def send(n: int) -> None:
        if not hasattr(local, "client"):
            local.client = GraphClient(base_url=url)
        client = local.client
        limiter.wait(Lane.REPLY, timeout=600)
        client.send(
            {
                "messaging_product": "whatsapp",
                "to": str(390000000000 + offset + n),
                "type": "text",
                "text": {"body": "limiter"},
            }
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(count)))


def measure(rate: float, messages: int) -> None:
    import httpx

    from channel.fakegraph import FakeConfig, FakeGraphServer

    server = FakeGraphServer(
        config=FakeConfig(access_token="bench-token", enforce_window=False, pair_burst=10**6)
    ).start()
    per = messages // PROCESSES
    context = multiprocessing.get_context("spawn")
    started = time.monotonic()
    procs = [
        context.Process(target=worker, args=(server.url, rate, per, i * per))
        for i in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    stats = httpx.get(f"{server.url}/_fake/stats").json()
    server.stop()
    sent = stats["accepted"]
    span = stats["last_accept"] - stats["first_accept"]
    ideal = (sent - rate * 0.02) / rate  # the first burst is free
    print(
        f"rate {rate:>6.0f}/s, {PROCESSES} processes, {sent} messages: "
        f"peak 1-s window {stats['max_per_second']} ({stats['max_per_second'] / rate:.3f}× the "
        f"rate), time {span:.2f} s vs ideal {ideal:.2f} s ({100 * (span / ideal - 1):+.1f} %), "
        f"wall incl. start-up {time.monotonic() - started:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=4000)
    args = parser.parse_args()
    import django

    django.setup()
    for rate in (80.0, 1000.0):
        measure(rate, min(args.messages, int(rate * 30)))


if __name__ == "__main__":
    main()
