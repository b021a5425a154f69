"""End-to-end send benchmark: PostgreSQL, Redis, the fake Graph API, real webhooks.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/banditore REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/send.py [--recipients 100000] [--latency-ms 100] \\
        [--status-batch 100] [--mps 0] [--senders 2] [--seconds 120]
    … bench/send.py --memory          # sender RSS for audiences of 10k and 1M

Uses its own database `<name>_bench`. Runs: the fake Graph API (answers after --latency-ms,
POSTs `sent` and `delivered` statuses in batches of --status-batch to the webhook), gunicorn
serving the webhook, one webhook processor (what a Celery worker runs), and --senders sender
processes. Prints messages/s sent, statuses/s applied, CPU ms per message of our processes
(the fake stands in for Meta and is not counted) and how busy the whole machine was. A bare
baseline in the same run (httpx clients posting to the same fake: no database, limiter or
webhooks; and the product's client alone) gives the ratio. PostgreSQL's CPU (its backends for
this database) is counted; Redis (≤6 % of a core) is not.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    sys.exit(f"nothing listens on port {port}")


def bench_env(args) -> dict[str, str]:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL server (the benchmark creates <name>_bench)")
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "banditore"
    env = dict(os.environ)
    env |= {
        "DATABASE_URL": url.rsplit("/", 1)[0] + f"/{name}_bench",
        "DJANGO_SETTINGS_MODULE": "deploy.settings",
        "SECRET_KEY": "bench",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "WHATSAPP_ACCESS_TOKEN": "bench-token",
        "WHATSAPP_APP_SECRET": "bench-secret",
        "WHATSAPP_VERIFY_TOKEN": "bench-verify",
        "WHATSAPP_PHONE_NUMBER_ID": "100000000000001",
        "WHATSAPP_MPS": str(args.mps or 100000),
        "WHATSAPP_MESSAGING_TIER": "unlimited",
        "BANDITORE_SEND_BATCH": str(args.batch),
        "CELERY_TASK_ALWAYS_EAGER": "1",
    }
    # DEBUG off refuses the example council, DEBUG on keeps every query: a fictional council.
    fictional = ("COUNCIL_EMAIL", "COUNCIL_PEC", "COUNCIL_WEBSITE", "PRIVACY_DPO_EMAIL")
    env |= dict.fromkeys(fictional, "https://bench.invalid")
    return env | {"COUNCIL_NAME": "Prova", "COUNCIL_ADDRESS": "Via 1", "COUNCIL_PHONE": "+39 1"}


def create_database(env: dict[str, str]) -> None:
    import psycopg

    target = urlsplit(env["DATABASE_URL"])
    admin = env["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        name = target.path.lstrip("/")
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def prepare_post(env: dict[str, str], recipients: int) -> int:
    """N active subscribers on one topic (set-based), one post fanned out, status sending."""
    os.environ.update(env)
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from subscribers.delivery import publishing
    from topics.models import Post, Topic

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE subscribers_delivery, subscribers_subscription, subscribers_consentevent, "
            "subscribers_subscriber, channel_inboundmessage, channel_inboundevent, "
            "channel_outboundmessage RESTART IDENTITY CASCADE"
        )
        cursor.execute(
            """INSERT INTO subscribers_subscriber (wa_id, language, status, last_inbound_at,
                   marketing_opt_out, conversation_state, conversation_context, created_at)
               SELECT (390000000000 + g)::text, 'it', 'active', now(), false, '', '{}', now()
               FROM generate_series(1, %s) g""",
            [recipients],
        )
        topic = Topic.objects.order_by("id").first()
        cursor.execute(
            """INSERT INTO subscribers_subscription (subscriber_id, topic_id, created_at, source)
               SELECT id, %s, now(), 'import' FROM subscribers_subscriber""",
            [topic.id],
        )
    post = Post.objects.create(title="Bench", body="Benchmark message")
    post.topics.set([topic])
    Post.objects.filter(pk=post.pk).update(status="sending", published_at=timezone.now())
    publishing.fan_out(post)
    return post.pk


def cpu_seconds(pids: set[int]) -> float:
    """utime+stime of these processes and all their descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        stats[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, stack = 0.0, list(pids)
    while stack:
        pid = stack.pop()
        total += stats.get(pid, 0.0)
        stack.extend(children.get(pid, []))
    return total


def machine_busy() -> tuple[float, float]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields), idle


def backend_cpu(env) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving the benchmark database."""
    import psycopg

    name = urlsplit(env["DATABASE_URL"]).path.lstrip("/")
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        pids = [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )]  # fmt: skip
    return {pid: cpu_seconds({pid}) for pid in pids}


def counts(env) -> dict[str, int]:
    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as conn:
        rows = conn.execute("SELECT status, count(*) FROM subscribers_delivery GROUP BY 1")
        return dict(rows.fetchall())


def sender_code(post_id: int) -> str:
    return (
        "import time, django; django.setup()\n"
        "from subscribers.delivery.sending import drain_post\n"
        f"while (w := drain_post({post_id}, budget_seconds=5)) is not None:\n"
        "    time.sleep(min(w, 0.2))\n"
    )


# The webhook processor is a real Celery worker, as in production (the web is not eager).
WORKER = ["-m", "celery", "-A", "deploy", "worker", "--pool", "solo", "--queues", "replies",
          "--without-gossip", "--without-mingle", "--without-heartbeat", "--purge",
          "--loglevel", "warning"]  # fmt: skip


def run_send(args) -> None:
    env = bench_env(args)
    create_database(env)
    post_id = prepare_post(env, args.recipients)
    fake_port, web_port = free_port(), free_port()
    env["WHATSAPP_GRAPH_URL"] = f"http://127.0.0.1:{fake_port}"
    procs: list[subprocess.Popen] = []
    if env.get("REDIS_URL"):  # a wake-up flag left by an earlier run would delay the first drain
        import redis

        redis.Redis.from_url(env["REDIS_URL"]).delete("banditore:channel:inbound-wake")

    def stop_all() -> None:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)

    atexit.register(stop_all)

    def start(cmd, env=env, **kw):
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, **kw)
        procs.append(p)
        return p

    start([PYTHON, "manage.py", "fakegraph", "--port", str(fake_port), "--no-window",
           "--latency-ms", str(args.latency_ms),
           "--webhook-url", f"http://127.0.0.1:{web_port}/whatsapp/webhook/"])  # fmt: skip
    served = env | {"CELERY_TASK_ALWAYS_EAGER": "0"}
    web = start([PYTHON, "-m", "gunicorn", "deploy.wsgi", "--bind", f"127.0.0.1:{web_port}",
                 "--workers", str(args.web_workers), "--threads", "8",
                 "--log-level", "warning"], env=served)  # fmt: skip
    processor = start([PYTHON, *WORKER], env=served)
    wait_for_port(fake_port)
    wait_for_port(web_port)
    import httpx

    httpx.post(
        f"http://127.0.0.1:{fake_port}/_fake/config",
        json={"status_batch_size": args.status_batch, "status_delay_ms": 50,
              "status_concurrency": 8, "delivered_rate": 1.0},
    )  # fmt: skip
    ours = {web.pid, processor.pid}
    pg_last = dict(pg0 := backend_cpu(env))
    busy0, cpu0, t0 = machine_busy(), cpu_seconds(ours), time.monotonic()
    senders = [start([PYTHON, "-c", sender_code(post_id)]) for _ in range(args.senders)]
    ours |= {s.pid for s in senders}
    # Per part, so a slow statuses path is not blamed on the senders (or the reverse).
    groups = {"senders": {s.pid for s in senders}, "webhook": {web.pid},
              "processor": {processor.pid}}  # fmt: skip
    parts0 = {"senders": 0.0, "webhook": cpu_seconds({web.pid}),
              "processor": cpu_seconds({processor.pid})}  # fmt: skip
    sent_done_at = None
    try:
        while time.monotonic() - t0 < args.seconds:
            time.sleep(1)
            pg_last |= backend_cpu(env)
            c = counts(env)
            settled = c.get("delivered", 0) + c.get("read", 0)
            if sent_done_at is None and not c.get("queued") and not c.get("sending"):
                sent_done_at = time.monotonic()
            if settled >= args.recipients:
                break
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(ours) - cpu0
        parts = {name: cpu_seconds(pids) - parts0[name] for name, pids in groups.items()}
        pg_last |= backend_cpu(env)
        parts["PostgreSQL"] = sum(v - pg0.get(pid, 0.0) for pid, v in pg_last.items())
        busy1 = machine_busy()
    finally:
        stop_all()
    c = counts(env)
    settled = c.get("delivered", 0) + c.get("read", 0)
    sent_total = sum(v for k, v in c.items() if k in ("sent", "delivered", "read"))
    total_ticks, idle_ticks = busy1[0] - busy0[0], busy1[1] - busy0[1]
    send_time = (sent_done_at or time.monotonic()) - t0
    limit = args.mps or "none"
    print(f"recipients {args.recipients}, latency {args.latency_ms} ms, status batch "
          f"{args.status_batch}, senders {args.senders}, MPS limit {limit}")  # fmt: skip
    print(f"  sent: {sent_total} in {send_time:.1f} s = {sent_total / send_time:.0f} msg/s")
    print(f"  delivered statuses applied: {settled} in {elapsed:.1f} s "
          f"= {settled / elapsed:.0f} msg/s end to end")  # fmt: skip
    print(f"  our CPU: {cpu:.1f} s = {1000 * cpu / max(sent_total, 1):.2f} ms per message "
          f"({100 * cpu / elapsed / os.cpu_count():.0f} % of the machine; with PostgreSQL "
          f"{100 * (cpu + parts['PostgreSQL']) / elapsed / os.cpu_count():.0f} %)")  # fmt: skip
    print(
        "  of which "
        + ", ".join(
            f"{name} {1000 * value / max(sent_total, 1):.2f} ms" for name, value in parts.items()
        )
    )
    print(f"  machine busy (incl. PostgreSQL, Redis, fake): "
          f"{100 * (1 - idle_ticks / max(total_ticks, 1)):.0f} %")  # fmt: skip
    bare, ours_bare = bare_baseline(args, env["WHATSAPP_GRAPH_URL"], fake_port, env)
    print(f"  ratio to bare: {sent_total / send_time / bare:.2f} (httpx threads), "
          f"{sent_total / send_time / ours_bare:.2f} (our client)")  # fmt: skip


def bare_baseline(args, url: str, fake_port: int, env) -> float:
    """Threads of sync httpx clients posting to the fake: no database, limiter or webhooks."""
    proc = subprocess.Popen(
        [PYTHON, "manage.py", "fakegraph", "--port", str(fake_port), "--no-window",
         "--latency-ms", str(args.latency_ms), "--webhook-url", ""],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(fake_port)
    import httpx

    n = min(args.recipients, 20000)
    body = {"messaging_product": "whatsapp", "to": "390000000001", "type": "text",
            "text": {"body": "Benchmark message"}}  # fmt: skip
    local = __import__("threading").local()

    def one(_i):
        client = getattr(local, "c", None) or setattr(local, "c", httpx.Client()) or local.c
        client.post(f"{url}/v25.0/100000000000001/messages", json=body,
                    headers={"Authorization": "Bearer bench-token"})  # fmt: skip

    threads = args.threads * args.senders
    start = time.monotonic()
    cpu0 = time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    elapsed = time.monotonic() - start
    cpu = time.process_time() - cpu0
    rate = n / elapsed
    print(f"  bare (httpx, {threads} threads, no DB): {rate:.0f} msg/s, "
          f"{1000 * cpu / n:.2f} ms CPU per message")  # fmt: skip
    # The product's client alone, as many requests in flight as the senders keep.
    code = (
        "import json, os, sys, time, django; django.setup()\n"
        "from channel.graph.client import GraphClient\n"
        f"body, n, inflight = {body!r}, {n}, {args.batch * args.senders}\n"
        f"client = GraphClient(base_url={url!r})\n"
        # One person per message, as in a post (the fake enforces Meta's pair rate).
        "def to(i): return dict(body, to=str(380000000000 + i))\n"
        "client.send_paced([to(-1 - i) for i in range(inflight)])\n"  # opens the connections
        "t0, c0 = time.monotonic(), time.process_time()\n"
        "for i in range(0, n, inflight):\n"
        "    batch = [to(j) for j in range(i, min(n, i + inflight))]\n"
        "    assert all(r.ok for r in client.send_paced(batch))\n"
        "print(json.dumps([n / (time.monotonic() - t0), time.process_time() - c0]))\n"
    )
    try:
        out = subprocess.run(
            [PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
    except subprocess.CalledProcessError as error:
        sys.exit(f"bare baseline failed: {error.stderr[-2000:]}")
    finally:
        proc.terminate()
        proc.wait(10)
    ours_rate, ours_cpu = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  bare (channel.graph.client client, {args.batch * args.senders} in flight, no DB): "
          f"{ours_rate:.0f} msg/s, {1000 * ours_cpu / n:.2f} ms CPU per message")  # fmt: skip
    return rate, ours_rate


def run_memory(args) -> None:
    env = bench_env(args)
    create_database(env)
    fake_port = free_port()
    env["WHATSAPP_GRAPH_URL"] = f"http://127.0.0.1:{fake_port}"
    fake = subprocess.Popen(
        [PYTHON, "manage.py", "fakegraph", "--port", str(fake_port), "--no-window",
         "--webhook-url", ""], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(fake_port)
    try:
        for audience in (10_000, 1_000_000):
            post_id = prepare_post(env, audience)
            code = (
                "import resource, django; django.setup()\n"
                "from subscribers.delivery.sending import drain_post\n"
                f"drain_post({post_id}, budget_seconds=10)\n"
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
            )
            out = subprocess.run(
                [PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
            )
            print(f"audience {audience:>9,}: sender peak RSS after "
                  f"{audience - counts(env).get('queued', 0):,} sends "
                  f"{int(out.stdout.split()[-1]) / 1024:.0f} MiB")  # fmt: skip
    finally:
        fake.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--status-batch", type=int, default=100)
    parser.add_argument("--mps", type=int, default=0, help="WHATSAPP_MPS; 0 = unlimited")
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--threads", type=int, default=32, help="of the bare httpx baseline")
    parser.add_argument("--batch", type=int, default=200, help="BANDITORE_SEND_BATCH")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    run_memory(args) if args.memory else run_send(args)


if __name__ == "__main__":
    main()
