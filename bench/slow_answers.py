"""Chaos send benchmark: the rate a post goes out at when a share of Meta's answers never come.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/banditore REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/slow_answers.py [--mps 1000] [--timeouts 0.01] [--runs 3] \\
        [--recipients 20000] [--senders 2] [--latency-ms 100]

Runs alternately, in one run of the script, sends with no fault and sends where `--timeouts`
of the requests hang past the client's read timeout (BANDITORE_HTTP_TIMEOUT, 15 s by default;
the fake then drops them unaccepted), --runs times each, and prints min/median/max of the
rate the fake Graph API received requests at (first to last arrival) and its share of
WHATSAPP_MPS, with the load average. The senders are production's: drain_post with the
default time budget, the Redis limiter at --mps, BANDITORE_SEND_BATCH rows a batch. No status
webhooks: the send path only. Uses the database `<name>_bench` (bench/send.py's).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.send import (  # noqa: E402  (after the path is set)
    PYTHON,
    bench_env,
    counts,
    create_database,
    free_port,
    prepare_post,
    wait_for_port,
)


def sender_code(post_id: int) -> str:
    """A sender chain as Celery runs it: drain_post with the default budget, again at once."""
    return (
        "import time, django; django.setup()\n"
        "from subscribers.delivery.sending import drain_post\n"
        f"while (w := drain_post({post_id})) is not None:\n"
        "    time.sleep(min(w, 0.2))\n"
    )


def one_run(args, env: dict[str, str], timeouts: float) -> float:
    """Requests per second the fake received while `timeouts` of them hung."""
    post_id = prepare_post(env, args.recipients)
    fake_port = free_port()
    env = env | {"WHATSAPP_GRAPH_URL": f"http://127.0.0.1:{fake_port}"}
    procs = [
        subprocess.Popen(
            [PYTHON, "manage.py", "fakegraph", "--mps", "0", "--port", str(fake_port),
             "--no-window",
             "--latency-ms", str(args.latency_ms), "--webhook-url", ""],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    try:
        wait_for_port(fake_port)
        fake = f"http://127.0.0.1:{fake_port}/_fake"
        timeout = float(env.get("BANDITORE_HTTP_TIMEOUT", 15))
        httpx.post(
            f"{fake}/config",
            json={"timeout_rate": timeouts, "hang_seconds": timeout * 2,
                  "fault_after_accept_rate": 0.0, "seed": 1, "statuses": False},
        )  # fmt: skip
        procs += [
            subprocess.Popen([PYTHON, "-c", sender_code(post_id)], cwd=ROOT, env=env)
            for _ in range(args.senders)
        ]
        started = time.monotonic()
        while time.monotonic() - started < args.recipients / args.mps * 4 + timeout:
            time.sleep(0.5)
            if not counts(env).get("queued"):
                break
        stats = httpx.get(f"{fake}/stats").json()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    arrived = stats["accepted"] + sum(stats["faults"].values())
    window = stats["last_accept"] - stats["first_accept"]
    return arrived / window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--mps", type=int, default=1000, help="WHATSAPP_MPS")
    parser.add_argument("--timeouts", type=float, default=0.01, help="share of requests hanging")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--batch", type=int, default=100, help="BANDITORE_SEND_BATCH")
    args = parser.parse_args()
    env = bench_env(args)
    create_database(env)
    rates: dict[float, list[float]] = {0.0: [], args.timeouts: []}
    loads = []
    for _ in range(args.runs):
        for share in rates:  # alternately, so both sides see the same machine
            rates[share].append(one_run(args, env, share))
            loads.append(os.getloadavg()[0])
            print(f"  {share:.0%} hanging: {rates[share][-1]:.0f} req/s", flush=True)
    bulk = args.mps * (1 - float(os.environ.get("BANDITORE_REPLY_RESERVE", 0.1)))
    print(f"recipients {args.recipients}, WHATSAPP_MPS {args.mps} (bulk lane {bulk:.0f}/s), "
          f"senders {args.senders}, batch {args.batch}, latency {args.latency_ms} ms, "
          f"load average {min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    for share, values in rates.items():
        low, mid, high = min(values), statistics.median(values), max(values)
        print(f"  {share:>4.0%} of requests hang: req/s min/median/max {low:.0f}/{mid:.0f}/"
              f"{high:.0f} = {mid / args.mps:.0%} of WHATSAPP_MPS, "
              f"{mid / bulk:.0%} of the bulk lane")  # fmt: skip


if __name__ == "__main__":
    main()
