"""End-to-end send benchmark: PostgreSQL, Redis, the fake Graph API, real webhooks.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/banditore REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/send.py [--recipients 20000] [--runs 3] [--latency-ms 100] \\
        [--read-share 1.0] [--outside-window 0.3] [--mps 1000] [--seconds 300]
    … bench/send.py --memory [--memory-audiences 10000 1000000]   # sender RSS by audience

Uses its own database `<name>_bench`. Three cases, run in turn --runs times (side by side, so
the machine's other work weighs on each alike), each printed as min / median / max:

1. realistic, the HEADLINE: Meta does not guarantee batching, so the fake posts ONE status per
   webhook POST, and sent, delivered and read for each message (read for --read-share of them,
   5 % of those without their delivered, as Meta may); --outside-window of the audience last
   wrote 2 days ago and gets the post as a template; the messaging-limit tier is checked
   (WHATSAPP_MESSAGING_TIER 100000).
2. batched: the same with 100 statuses per POST (what Meta does when it can).
3. bare: the pipeline of docs perf-limits §6 with as many processes (`bench/bare.py`: two
   senders with the product's HTTP client alone, a minimal Django webhook view under gunicorn
   storing to a Redis list, one processor applying statuses in one UPDATE per 500).

Product processes: the fake Graph API (answers after --latency-ms; stands in for Meta, its CPU
not counted), gunicorn serving the webhook (2 workers), one Celery worker draining webhooks, and
two sender processes. Counted: the CPU of our processes and of PostgreSQL's backends for this
database, per message sent; Redis (shared with other work here) is not counted on either side.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bare  # noqa: E402
from bench.harness import (  # noqa: E402
    GO_KEY,
    PYTHON,
    ROOT,
    WAIT_FOR_GO,
    WAKE_KEY,
    PostgresMeter,
    bench_env,
    cpu_seconds,
    create_database,
    delivery_counts,
    fill_audience,
    free_port,
    load_average,
    machine_ticks,
    spread,
    unprocessed_webhooks,
    wait_for_port,
    wait_until_idle,
)

TEMPLATE = {"name": "avviso_comune", "language": "it", "category": "utility", "body_params": 2}


def prepare_post(env: dict[str, str], recipients: int, outside_window: float = 0.0) -> int:
    """N active subscribers on one topic (set-based), one post fanned out, status sending."""
    os.environ.update(env)
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from channel.models import MessageTemplate
    from subscribers.delivery import publishing
    from topics.models import Post, Topic

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE subscribers_delivery, subscribers_subscription, subscribers_consentevent, "
            "subscribers_subscriber, channel_inboundmessage, channel_inboundevent, "
            "channel_outboundmessage RESTART IDENTITY CASCADE"
        )
        fill_audience(cursor, recipients, outside_window)
        topic = Topic.objects.order_by("id").first()
        cursor.execute(
            """INSERT INTO subscribers_subscription (subscriber_id, topic_id, created_at, source)
               SELECT id, %s, now(), 'import' FROM subscribers_subscriber""",
            [topic.id],
        )
    MessageTemplate.objects.update_or_create(
        name=TEMPLATE["name"],
        language="it",
        defaults={"category": "utility", "status": "approved", "body_text": "{{1}}: {{2}}",
                  "body_parameters": ["title", "body"], "is_default": True},
    )  # fmt: skip
    post = Post.objects.create(title="Bench", body="Benchmark message")
    post.topics.set([topic])
    Post.objects.filter(pk=post.pk).update(status="sending", published_at=timezone.now())
    publishing.fan_out(post)
    return post.pk


def counts(env: dict[str, str]) -> dict[str, int]:
    """Deliveries by status (bench/slow_answers.py and bench/replies_under_load.py use it)."""
    return delivery_counts(env["DATABASE_URL"])


def sender_code(post_id: int) -> str:
    return (
        "import time, django; django.setup()\n"
        "from subscribers.delivery.sending import drain_post\n"
        + WAIT_FOR_GO
        + f"while (w := drain_post({post_id}, budget_seconds=5)) is not None:\n"
        "    time.sleep(min(w, 0.2))\n"
    )


# The webhook processor is a real Celery worker, as in production (the web is not eager).
WORKER = ["-m", "celery", "-A", "deploy", "worker", "--pool", "solo", "--queues", "replies",
          "--without-gossip", "--without-mingle", "--without-heartbeat", "--purge",
          "--loglevel", "warning"]  # fmt: skip


class Run:
    """The processes of one run; all stopped at exit whatever happens."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env, self.procs = env, []
        atexit.register(self.stop)

    def start(self, cmd, env=None) -> subprocess.Popen:
        p = subprocess.Popen(cmd, cwd=ROOT, env=env or self.env, stdout=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(60)  # a loaded machine: gunicorn's workers take their time
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


def one_run(args, case: str) -> dict:
    """Send the post to --recipients people once; return what it cost."""
    import httpx
    import redis

    realistic = case != "bare"
    env = bench_env(args, tier="100000")
    create_database(env)
    post_id = prepare_post(env, args.recipients, args.outside_window)
    fake_port, web_port = free_port(), free_port()
    env["WHATSAPP_GRAPH_URL"] = f"http://127.0.0.1:{fake_port}"
    store = redis.Redis.from_url(env["REDIS_URL"])
    tier_key = f"banditore:tier:{env['WHATSAPP_PHONE_NUMBER_ID']}"
    store.delete(WAKE_KEY, GO_KEY, "bare:statuses", tier_key)
    run = Run(env)
    run.start([PYTHON, "manage.py", "fakegraph", "--port", str(fake_port), "--no-window",
               "--latency-ms", str(args.latency_ms), "--mps", "0",
               "--webhook-url", f"http://127.0.0.1:{web_port}/whatsapp/webhook/"])  # fmt: skip
    served = env | {"CELERY_TASK_ALWAYS_EAGER": "0"}
    if realistic:
        web = run.start([PYTHON, "-m", "gunicorn", "deploy.wsgi", "--bind",
                         f"127.0.0.1:{web_port}", "--workers", str(args.web_workers),
                         "--threads", "8", "--log-level", "warning"], env=served)  # fmt: skip
        processor = run.start([PYTHON, *WORKER], env=served)
    else:
        commands = bare.processes(PYTHON, web_port, args.web_workers)
        web, processor = run.start(commands["web"]), run.start(commands["processor"])
    wait_for_port(fake_port)
    wait_for_port(web_port)
    fake = f"http://127.0.0.1:{fake_port}/_fake"
    httpx.post(f"{fake}/templates", json=TEMPLATE)
    httpx.post(
        f"{fake}/config",
        json={"status_batch_size": 100 if case == "batched" else 1, "status_delay_ms": 50,
              "status_concurrency": 8, "delivered_rate": 1.0, "read_rate": args.read_share,
              "read_without_delivered_rate": 0.05},
    )  # fmt: skip
    code = sender_code(post_id) if realistic else bare.SENDER.replace("# go\n", WAIT_FOR_GO)
    sender_env = env | {"BARE_POST": str(post_id)}
    senders = {run.start([PYTHON, "-c", code], env=sender_env).pid for _ in range(2)}
    groups = {"web": {web.pid}, "processor": {processor.pid}, "senders": senders}
    for _ in range(20):  # each gunicorn worker loads the app on its first request
        httpx.get(f"http://127.0.0.1:{web_port}/whatsapp/webhook/", timeout=60)
    wait_until_idle(senders | {web.pid, processor.pid})  # start-up is not counted
    parts0 = {name: cpu_seconds(pids) for name, pids in groups.items()}
    pg = PostgresMeter(env["DATABASE_URL"])
    ticks0, t0 = machine_ticks(), time.monotonic()
    store.set(GO_KEY, 1)
    sent_at = None
    try:
        while time.monotonic() - t0 < args.seconds:
            time.sleep(1)
            pg.sample()
            c = delivery_counts(env["DATABASE_URL"])
            if sent_at is None and not c.get("queued") and not c.get("sending"):
                sent_at = time.monotonic()
            if sent_at is not None and _settled(fake, env, store, realistic):
                break
        elapsed = time.monotonic() - t0
        parts = {name: cpu_seconds(pids) - parts0[name] for name, pids in groups.items()}
        parts["PostgreSQL"] = pg.seconds()
        ticks1 = machine_ticks()
        stats = httpx.get(f"{fake}/stats").json()
    finally:
        run.stop()
    c = delivery_counts(env["DATABASE_URL"])
    sent = sum(v for k, v in c.items() if k in ("sent", "delivered", "read", "failed"))
    send_time = (sent_at or time.monotonic()) - t0
    total, idle = ticks1[0] - ticks0[0], ticks1[1] - ticks0[1]
    per = {name: 1000 * value / max(sent, 1) for name, value in parts.items()}
    return {
        "sent msg/s": sent / send_time,
        "end-to-end msg/s": sent / elapsed,
        "CPU ms/message, ours + PostgreSQL": sum(per.values()),
        **{f"  {name}": value for name, value in per.items()},
        "statuses per message": stats.get("statuses_sent", 0) / max(sent, 1),
        "webhook POSTs per message": stats.get("webhooks_sent", 0) / max(sent, 1),
        "webhooks per drain batch (median)": _median_batch(env) if realistic else 0.0,
        "templates %": 100 * _templates(env) / max(sent, 1) if realistic else 0.0,
        "machine busy %": 100 * (1 - idle / max(total, 1)),
        "read or delivered %": 100 * (c.get("read", 0) + c.get("delivered", 0)) / max(sent, 1),
    }


def _settled(fake: str, env, store, realistic: bool) -> bool:
    """Every status the fake had to post is posted, and stored ones are applied."""
    import httpx

    if httpx.get(f"{fake}/flush", params={"timeout": 0}).json().get("pending"):
        return False
    if realistic:
        return unprocessed_webhooks(env["DATABASE_URL"]) == 0
    return store.llen("bare:statuses") == 0


def _median_batch(env) -> float:
    """Webhooks per drain transaction: a batch marks its webhooks with one timestamp."""
    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as conn:
        sizes = [r[0] for r in conn.execute(
            "SELECT count(*) FROM channel_inboundevent WHERE processed_at IS NOT NULL "
            "GROUP BY processed_at")]  # fmt: skip
    return statistics.median(sizes) if sizes else 0.0


def _templates(env) -> int:
    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as conn:
        return conn.execute(
            "SELECT count(*) FROM subscribers_delivery WHERE used_template"
        ).fetchone()[0]


CASES = {
    "realistic": "HEADLINE — one status per webhook POST, sent+delivered+read, templates, tier",
    "batched": "batched — the same with 100 statuses per POST",
    "bare": "bare §6 pipeline, same processes (2 senders, web ×2, 1 processor)",
}


def run_send(args) -> None:
    print(f"recipients {args.recipients}, latency {args.latency_ms} ms, read share "
          f"{args.read_share}, outside the 24-hour window {args.outside_window:.0%}, "
          f"WHATSAPP_MPS {args.mps}, {args.runs} runs of each case, in turn")  # fmt: skip
    print(f"load average before: {load_average()}", flush=True)
    results: dict[str, list[dict]] = {case: [] for case in args.cases}
    for n in range(args.runs):
        for case in args.cases:
            figures = one_run(args, case)
            results[case].append(figures)
            print(f"  run {n + 1} {case}: " + json.dumps(
                {k.strip(): round(v, 3) for k, v in figures.items()}), flush=True)  # fmt: skip
    print(f"load average after: {load_average()}")
    for case, runs in results.items():
        print(f"\n{CASES[case]} (min / median / max of {len(runs)}):")
        for key in runs[0]:
            print(f"  {key}: {spread([r[key] for r in runs])}")
    if "realistic" in results and "bare" in results:
        cost = "CPU ms/message, ours + PostgreSQL"
        pairs = zip(results["realistic"], results["bare"], strict=True)
        ratios = [p[cost] / b[cost] for p, b in pairs]
        print(f"\nrealistic ÷ bare, CPU per message, run by run: {spread(ratios)}")


def run_memory(args) -> None:
    env = bench_env(args)
    create_database(env)
    fake_port = free_port()
    env["WHATSAPP_GRAPH_URL"] = f"http://127.0.0.1:{fake_port}"
    print(f"load average before: {load_average()}", flush=True)
    fake = subprocess.Popen(
        [PYTHON, "manage.py", "fakegraph", "--mps", "0", "--port", str(fake_port), "--no-window",
         "--webhook-url", ""], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(fake_port)
    try:
        for audience in args.memory_audiences:
            peaks = []
            for _ in range(args.runs):
                post_id = prepare_post(env, audience, args.outside_window)
                # The whole audience: each sender process stops when nothing is left.
                code = (
                    "import resource, time, django; django.setup()\n"
                    "from subscribers.delivery.sending import drain_post\n"
                    f"while (w := drain_post({post_id}, budget_seconds=60)) is not None:\n"
                    "    time.sleep(min(w, 0.2))\n"
                    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
                )
                t0 = time.monotonic()
                out = subprocess.run(
                    [PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
                )
                left = delivery_counts(env["DATABASE_URL"]).get("queued", 0)
                peaks.append(int(out.stdout.split()[-1]) / 1024)
                print(f"  audience {audience:,}: {audience - left:,} sent in "
                      f"{time.monotonic() - t0:.0f} s, peak RSS {peaks[-1]:.0f} MiB",
                      flush=True)  # fmt: skip
            print(f"audience {audience:>9,}: sender peak RSS MiB {spread(peaks, 0)}")
    finally:
        fake.terminate()
    print(f"load average after: {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--read-share", type=float, default=1.0)
    parser.add_argument("--outside-window", type=float, default=0.3)
    parser.add_argument("--mps", type=int, default=1000, help="WHATSAPP_MPS (Meta's cap: 1,000)")
    parser.add_argument("--batch", type=int, default=200, help="BANDITORE_SEND_BATCH")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--memory-audiences", type=int, nargs="+", default=[10_000, 1_000_000])
    args = parser.parse_args()
    run_memory(args) if args.memory else run_send(args)


if __name__ == "__main__":
    main()
