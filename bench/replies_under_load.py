"""Replies under load: how long a citizen waits for the answer to "Iscrivimi" during a big send.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/banditore REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/replies_under_load.py [--runs 3] [--recipients 20000] \\
        [--citizens 50] [--latency-ms 100] [--layout pools|one-pool|both]

Uses bench/send.py's database `<name>_bench` (created and filled by this script too). Starts on
loopback: the fake Graph API (answers after --latency-ms, POSTs status webhooks in batches of
--status-batch), gunicorn serving the webhook, and Celery workers: `--layout pools` starts the
pools of `make run` (`WORKER_POOLS` in deploy/__main__.py), `--layout one-pool` one pool of 2
processes consuming every queue (what the single `default` queue was before the split),
`--layout both` runs all runs of one, then of the other, on the same web and fake.

Each run, side by side:
  idle: --citizens people write "Iscrivimi" (signed webhook POSTs --interval-ms apart), nothing
        else running;
  load: a post to --recipients subscribers starts (its sender tasks through Celery, as an
        editor's "Send now"; as fast as the machine allows unless --mps sets WHATSAPP_MPS),
        and once the first 200 messages reached the fake, --citizens other people write
        "Iscrivimi".
A citizen's time runs from just before the webhook POST to the welcome reaching the fake (the
fake stamps a message when it answers, after its simulated latency, which is subtracted).
Prints per run the median and p95 of both phases, the 1-minute load average before the run and
after its load phase, then min / median / max of each over the runs. Every phase is bounded by
--seconds; processes are stopped on exit.
"""

from __future__ import annotations

import argparse
import atexit
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from send import (  # noqa: E402  (bench/send.py: same database, same stack)
    PYTHON,
    bench_env,
    counts,
    create_database,
    free_port,
    prepare_post,
    wait_for_port,
)

from deploy.__main__ import WORKER_POOLS, worker_command  # noqa: E402

PHASES = ("idle", "load")


class Stack:
    """The fake, gunicorn and a set of Celery worker pools, all on 127.0.0.1."""

    def __init__(self, args, env: dict[str, str]) -> None:
        self.args, self.env = args, env
        self.fake_port, self.web_port = free_port(), free_port()
        env["WHATSAPP_GRAPH_URL"] = f"http://127.0.0.1:{self.fake_port}"
        self.web_procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        atexit.register(self.stop)

    def _start(self, cmd: list[str]) -> subprocess.Popen:
        return subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        webhook = f"http://127.0.0.1:{self.web_port}/whatsapp/webhook/"
        self.web_procs.append(self._start([
            PYTHON, "manage.py", "fakegraph", "--mps", "0", "--port", str(self.fake_port),
            "--no-window",
            "--latency-ms", str(self.args.latency_ms), "--webhook-url", webhook,
        ]))  # fmt: skip
        self.web_procs.append(self._start([
            PYTHON, "-m", "gunicorn", "deploy.wsgi", "--bind", f"127.0.0.1:{self.web_port}",
            "--workers", "2", "--threads", "4", "--log-level", "warning",
        ]))  # fmt: skip
        wait_for_port(self.fake_port)
        wait_for_port(self.web_port)
        self.fake("config", {"status_batch_size": self.args.status_batch, "delivered_rate": 1.0})

    def start_workers(self, layout: str) -> None:
        """`make run`'s pools, or (one-pool) a single pool of 2 processes for every queue."""
        from deploy.celery import app

        self.stop_workers()
        if layout == "pools":
            commands = {name: worker_command(name, hostname="bench") for name in WORKER_POOLS}
        else:
            queues = ",".join(pool.queue for pool in WORKER_POOLS.values())
            commands = {"all": [
                PYTHON, "-m", "celery", "-A", "deploy", "worker", "--queues", queues,
                "--pool", "prefork", "--concurrency", "2", "--hostname", "all@bench",
            ]}  # fmt: skip
        for name, command in commands.items():
            extra = ["--loglevel", "warning", "--purge", *self.log_options(name)]
            self.workers.append(self._start([*command, *extra]))
        expected = {f"{name}@bench" for name in commands}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answered = {name for reply in app.control.ping(timeout=1) for name in reply}
            if expected <= answered:
                return
        sys.exit(f"worker pools did not answer a ping: {sorted(expected - answered)}")

    def log_options(self, pool: str) -> list[str]:
        """With --worker-logs, every task's arrival and duration, pool by pool."""
        if not self.args.worker_logs:
            return []
        Path(self.args.worker_logs).mkdir(parents=True, exist_ok=True)
        logfile = Path(self.args.worker_logs) / f"{pool}.log"
        return ["--loglevel", "info", "--logfile", str(logfile)]

    def stop_workers(self) -> None:
        for proc in self.workers:
            proc.terminate()
        for proc in self.workers:
            proc.wait(30)
        self.workers = []

    def stop(self) -> None:
        self.stop_workers()
        for proc in self.web_procs:
            proc.terminate()
        for proc in self.web_procs:
            proc.wait(10)
        self.web_procs = []

    def fake(self, name: str, data: dict | None = None, **query) -> dict:
        import httpx

        url = f"http://127.0.0.1:{self.fake_port}/_fake/{name}"
        if data is None:
            return httpx.get(url, params=query, timeout=60).json()
        return httpx.post(url, json=data, timeout=60).json()

    def write(self, client, number: str) -> float:
        """One citizen's signed "Iscrivimi" webhook, as Meta would POST it; returns when."""
        from channel.webhook.envelope import webhook_body, webhook_envelope
        from channel.webhook.signatures import HEADER, sign

        at = time.time()
        message = {"from": number, "id": f"wamid.BENCH{number}{at:.6f}", "type": "text",
                   "timestamp": str(int(at)), "text": {"body": "Iscrivimi"}}  # fmt: skip
        value = {"contacts": [{"profile": {"name": "Bench"}, "wa_id": number}],
                 "messages": [message]}  # fmt: skip
        envelope = webhook_envelope(
            value,
            phone_number_id=self.env["WHATSAPP_PHONE_NUMBER_ID"],
            display_phone_number="390000000000",
        )
        raw = webhook_body(envelope)  # Meta's bytes, signed as sent
        signature = sign(raw, self.env["WHATSAPP_APP_SECRET"])
        response = client.post(
            f"http://127.0.0.1:{self.web_port}/whatsapp/webhook/",
            content=raw,
            headers={"Content-Type": "application/json", HEADER: signature},
        )
        response.raise_for_status()
        return at

    def join(self, numbers: list[str], since: int, deadline: float) -> list[float]:
        """The citizens write, --interval-ms apart; seconds until each reply reached the fake
        (math.inf for a reply still missing at the deadline)."""
        import httpx

        posted: dict[str, float] = {}
        with httpx.Client(timeout=30) as client:
            start = time.monotonic()
            for i, number in enumerate(numbers):
                time.sleep(max(0.0, start + i * self.args.interval_ms / 1000 - time.monotonic()))
                posted[number] = self.write(client, number)
        replied: dict[str, float] = {}
        while len(replied) < len(numbers) and time.monotonic() < deadline:
            time.sleep(0.25)
            for number in set(numbers) - set(replied):
                messages = self.fake("outbox", since=since, to=number)["messages"]
                if messages:
                    replied[number] = messages[0]["at"] - self.args.latency_ms / 1000
        return [replied.get(n, math.inf) - posted[n] for n in numbers]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def ms(value: float) -> str:
    return "missing" if math.isinf(value) else f"{1000 * value:.0f} ms"


def settle(env: dict[str, str], deadline: float) -> None:
    """Wait until the webhook drain has processed the archive and stopped lingering, so the
    next run's TRUNCATE takes its locks alone."""
    import psycopg

    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        query = (
            "SELECT count(*) FROM channel_inboundevent"
            " WHERE processed_at IS NULL AND signature_valid"
        )
        while conn.execute(query).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.25)
    time.sleep(1 + float(env.get("BANDITORE_WEBHOOK_DRAIN_LINGER_SECONDS", "0.5")))


def one_run(stack: Stack, run: int, tag: int) -> dict:
    from subscribers.tasks import wake_senders

    args, env = stack.args, stack.env
    stack.fake("flush", timeout=30)  # statuses of the previous run's send reach the webhook
    settle(env, time.monotonic() + args.seconds)
    post_id = prepare_post(env, args.recipients)
    load_before = os.getloadavg()[0]
    result = {"load average before": load_before}
    for phase_no, phase in enumerate(PHASES):
        numbers = [f"3934{tag}{run:01d}{phase_no}{i:05d}" for i in range(args.citizens)]
        since = stack.fake("outbox", since=10**9)["last_seq"]
        deadline = time.monotonic() + args.seconds
        if phase == "load":
            sent_at = time.monotonic()
            wake_senders(post_id=post_id)
            while stack.fake("outbox", since=10**9)["last_seq"] < since + 200:
                if time.monotonic() > deadline:
                    sys.exit("the send did not start")
                time.sleep(0.05)
            joined_after = time.monotonic() - sent_at
        waits = stack.join(numbers, since, deadline)
        if phase == "load":
            replied_after = time.monotonic() - sent_at
            result["load average after"] = os.getloadavg()[0]
            left = counts(env)
            result["sending when the replies were in"] = left.get("queued", 0) + left.get(
                "sending", 0
            )
            while (left.get("queued") or left.get("sending")) and time.monotonic() < deadline:
                time.sleep(0.5)
                left = counts(env)
            sent = sum(v for k, v in left.items() if k in ("sent", "delivered", "read"))
            result["send"] = (sent, time.monotonic() - sent_at, joined_after, replied_after)
        result[phase] = waits
    return result


def report(layout: str, runs: list[dict], args) -> None:
    print(
        f"\n{layout}: {args.recipients:,} recipients, fake latency {args.latency_ms:.0f} ms, "
        f"{args.citizens} citizens {args.interval_ms:.0f} ms apart, {len(runs)} runs"
    )
    for i, run in enumerate(runs, 1):
        sent, took, joined, replied = run["send"]
        print(f"  run {i}: idle median {ms(statistics.median(run['idle']))}, "
              f"p95 {ms(p95(run['idle']))} | under load median "
              f"{ms(statistics.median(run['load']))}, p95 {ms(p95(run['load']))} | "
              f"load average {run['load average before']:.2f} → "
              f"{run['load average after']:.2f}")  # fmt: skip
        print(f"         send: {sent:,} sent in {took:.1f} s; joins from +{joined:.1f} s, all "
              f"replied by +{replied:.1f} s with {run['sending when the replies were in']:,} "
              f"deliveries still to send")  # fmt: skip
    for phase in PHASES:
        for name, stat in (("median", statistics.median), ("p95", p95)):
            values = sorted(stat(run[phase]) for run in runs)
            print(f"  {phase:>4} {name:>6}: min {ms(values[0])}, median "
                  f"{ms(statistics.median(values))}, max {ms(values[-1])}")  # fmt: skip
    for name in ("load average before", "load average after"):
        values = sorted(run[name] for run in runs)
        print(f"  {name}: min {values[0]:.2f}, median {statistics.median(values):.2f}, "
              f"max {values[-1]:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--citizens", type=int, default=50)
    parser.add_argument("--interval-ms", type=float, default=100)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--status-batch", type=int, default=100)
    parser.add_argument("--mps", type=int, default=0, help="WHATSAPP_MPS; 0 = unlimited")
    parser.add_argument("--batch", type=int, default=100, help="BANDITORE_SEND_BATCH")
    parser.add_argument("--seconds", type=float, default=120, help="bound of each phase")
    parser.add_argument("--layout", choices=("pools", "one-pool", "both"), default="pools")
    parser.add_argument("--worker-logs", metavar="DIR", help="Celery workers log each task here")
    args = parser.parse_args()

    env = bench_env(args) | {"CELERY_TASK_ALWAYS_EAGER": "0"}
    create_database(env)
    stack = Stack(args, env)
    prepare_post(env, 0)  # sets Django up in this process, on the benchmark database
    if env.get("REDIS_URL"):  # a wake-up flag left by an earlier run would delay the first drain
        from channel.redis_client import redis_client
        from channel.webhook.wake_flag import WAKE_KEY

        redis_client().delete(WAKE_KEY)
    stack.start()
    chosen = ["pools", "one-pool"] if args.layout == "both" else [args.layout]
    results: dict[str, list[dict]] = {}
    for tag, layout in enumerate(chosen):
        stack.start_workers(layout)
        warm = [f"39349{tag}00{i:04d}" for i in range(6)]  # first tasks of fresh processes
        stack.join(warm, stack.fake("outbox", since=10**9)["last_seq"], time.monotonic() + 60)
        results[layout] = [one_run(stack, run, tag) for run in range(args.runs)]
    stack.stop()
    for layout, runs in results.items():
        report(layout, runs, args)


if __name__ == "__main__":
    main()
