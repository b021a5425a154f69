"""Statuses/s applied by the webhook processor alone, one status per webhook POST.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/banditore_engine_bench \\
        .venv/bin/python bench/webhook_drain.py [--messages 10000] [--batch 200] \\
        [--statuses-per-post 1]
    … bench/webhook_drain.py --trickle [--trickle-rate 600] [--messages 6000] [--runs 3]

Meta may send every status in a POST of its own (it does not guarantee batching). This fans
out a post to --messages subscribers of a topic of its own, marks the deliveries sent,
archives one signed-and-verified webhook per status as the intake does (`sent` then
`delivered` for each message, the shape the fake Graph API sends, with
`biz_opaque_callback_data`), and times `process_pending_inbound_events` draining them in one
process. Twice, on separate messages: with batches of one webhook per transaction (what
the processor did before) and with --batch webhooks per transaction.

Prints webhooks/s and statuses/s applied, wall time, and CPU ms per status of this process
and of its PostgreSQL backend (read from /proc). --statuses-per-post 100 measures batched
webhooks instead (the target: ≥ 3,000 statuses/s). --trickle measures a live stream instead of
a ready-made backlog: one-status webhooks (sent, delivered, read) arrive at --trickle-rate a
second, each committed alone as the intake does, while the drain takes them; claiming again at
once (as before) and gathering for BANDITORE_WEBHOOK_DRAIN_GATHER_SECONDS take turns, --runs
times each. Then checks the ledger: every delivery
delivered, every webhook processed without problems. Everything it creates is deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("LOG_LEVEL", "ERROR")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count, Max, Min  # noqa: E402

from bench.harness import load_average, spread  # noqa: E402
from channel.graph.callbacks import delivery_reference  # noqa: E402
from channel.models import InboundEvent  # noqa: E402
from channel.webhook.drain import process_pending_inbound_events  # noqa: E402
from channel.webhook.envelope import webhook_envelope  # noqa: E402
from subscribers.delivery.publishing import fan_out  # noqa: E402
from subscribers.models import Delivery, Subscriber  # noqa: E402
from topics.models import Post, Topic  # noqa: E402

FIRST_NUMBER = 391_900_000_000  # a range of wa_ids of its own, deleted at the end


def status_item(delivery_id: int, status: str, at: int) -> dict:
    item = {
        "id": f"wamid.drain.{delivery_id}",
        "status": status,
        "timestamp": str(at),
        "recipient_id": str(FIRST_NUMBER + delivery_id),
        "biz_opaque_callback_data": delivery_reference(delivery_id),
    }
    if status == "sent":
        item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "utility"}
    return item


def webhook_body(items: list[dict]) -> str:
    envelope = webhook_envelope(
        {"statuses": items},
        phone_number_id="100000000000001",
        display_phone_number="390434000000",
    )
    return json.dumps(envelope, ensure_ascii=False)


def prepare(messages: int) -> tuple[Topic, Post]:
    topic, _ = Topic.objects.get_or_create(
        slug="bench-drain", defaults={"name_it": "Bench drain", "name_en": "Bench drain"}
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO subscribers_subscriber (wa_id, language, status, last_inbound_at,
                   marketing_opt_out, conversation_state, conversation_context, created_at)
               SELECT (%s + g)::text, 'it', 'active', now(), false, '', '{}', now()
               FROM generate_series(1, %s) g""",
            [FIRST_NUMBER, messages],
        )
        cursor.execute(
            """INSERT INTO subscribers_subscription (subscriber_id, topic_id, created_at, source)
               SELECT id, %s, now(), 'import' FROM subscribers_subscriber
               WHERE wa_id >= %s AND wa_id <= %s""",
            [topic.id, str(FIRST_NUMBER + 1), str(FIRST_NUMBER + messages)],
        )
    post = Post.objects.create(title="Bench drain", body="Bench drain", status="sending")
    post.topics.set([topic])
    fan_out(post)
    with connection.cursor() as cursor:
        # As after the senders' write-back: sent, wamid known.
        cursor.execute(
            "UPDATE subscribers_delivery SET status = 'sent', sent_at = now(), "
            "wa_message_id = 'wamid.drain.' || id WHERE post_id = %s",
            [post.pk],
        )
    return topic, post


def archive(delivery_ids: list[int], per_post: int) -> int:
    """`sent` then `delivered` for each message, `per_post` statuses per webhook POST, stored
    as the intake stores them (signature verified)."""
    at = int(time.time())
    items = [status_item(i, "sent", at) for i in delivery_ids]
    items += [status_item(i, "delivered", at + 1) for i in delivery_ids]
    bodies = [webhook_body(items[i : i + per_post]) for i in range(0, len(items), per_post)]
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO channel_inboundevent (received_at, body, signature_valid, problems) "
            "VALUES (now(), %s, true, '')",
            [[body] for body in bodies],
        )
        cursor.execute("ANALYZE channel_inboundevent")  # as autovacuum would after a bulk load
    return len(bodies)


def backend_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain(label: str, delivery_ids: list[int], batch: int, per_post: int) -> None:
    webhooks = archive(delivery_ids, per_post)
    statuses = 2 * len(delivery_ids)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    pg0, cpu0, t0 = backend_cpu(pid), time.process_time(), time.perf_counter()
    done = 0
    while processed := process_pending_inbound_events(batch=batch, max_seconds=600).processed:
        done += processed
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    pg1 = backend_cpu(pid)
    pg = f"{1000 * (pg1 - pg0) / statuses:.3f}" if None not in (pg0, pg1) else "n/a"
    print(
        f"{label:<30} {done:>6} webhooks, {statuses:>6} statuses in {elapsed:6.2f} s: "
        f"{done / elapsed:7,.0f} webhooks/s, {statuses / elapsed:7,.0f} statuses/s; "
        f"CPU per status {1000 * cpu / statuses:.3f} ms here + {pg} ms PostgreSQL"
    )
    assert done == webhooks, (done, webhooks)


def trickle(label: str, delivery_ids: list[int], rate: float, gather: float) -> dict:
    """Webhooks arriving live, one status each (sent, delivered, read per message), at `rate`
    a second from another connection, each committed alone as the intake commits it, while
    one drain (as the Celery task runs it) takes them. CPU of the drain's thread and of its
    PostgreSQL backend, per webhook; webhooks per drain transaction."""
    import psycopg

    at = int(time.time())
    bodies = [
        webhook_body([status_item(i, status, at + k)])
        for i in delivery_ids
        for k, status in enumerate(("sent", "delivered", "read"))
    ]
    first = InboundEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    url = os.environ["DATABASE_URL"]

    def feed() -> None:
        with psycopg.connect(url, autocommit=True) as feeder:
            start = time.perf_counter()
            for n, body in enumerate(bodies):
                pause = start + n / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                feeder.execute(
                    "INSERT INTO channel_inboundevent (received_at, body, signature_valid, "
                    "problems) VALUES (clock_timestamp(), %s, true, '')",
                    [body],
                )

    feeder = threading.Thread(target=feed)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    pg0, cpu0 = backend_cpu(pid), time.thread_time()
    feeder.start()
    done = 0
    while feeder.is_alive() or done < len(bodies):
        run = process_pending_inbound_events(batch=200, linger=0.5, gather=gather)
        done += run.processed
        if not run.processed:
            time.sleep(0.05)
    cpu, pg = time.thread_time() - cpu0, backend_cpu(pid) - pg0
    events = InboundEvent.objects.filter(id__gt=first)
    sizes = list(events.values("processed_at").annotate(n=Count("id")).values_list("n", flat=True))
    span = events.aggregate(first=Min("received_at"), last=Max("received_at"))
    arrived = (span["last"] - span["first"]).total_seconds()
    figures = {
        "arrived webhooks/s": done / max(arrived, 0.001),
        "drain CPU ms per webhook": 1000 * cpu / done,
        "PostgreSQL ms per webhook": 1000 * pg / done,
        "together ms per webhook": 1000 * (cpu + pg) / done,
        "webhooks per transaction (median)": statistics.median(sizes),
    }
    print(f"  {label}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()), flush=True)
    return figures


def live(args, ids: list[int]) -> None:
    """--trickle: `gather` 0 (claim again at once, as before) vs the setting, in turn."""
    from django.conf import settings

    sides = {"claim at once (gather 0)": 0.0}
    sides[f"gather {settings.BANDITORE_WEBHOOK_DRAIN_GATHER_SECONDS} s (the setting)"] = (
        settings.BANDITORE_WEBHOOK_DRAIN_GATHER_SECONDS
    )
    per_run = len(ids) // (args.runs * len(sides))
    print(f"live trickle: {args.trickle_rate:.0f} webhooks/s, one status each, "
          f"{per_run * 3} webhooks a run; load average {load_average()}")  # fmt: skip
    results: dict[str, list[dict]] = {side: [] for side in sides}
    chunks = iter(ids[i : i + per_run] for i in range(0, len(ids), per_run))
    for _ in range(args.runs):
        for side, gather in sides.items():
            results[side].append(trickle(side, next(chunks), args.trickle_rate, gather))
    print(f"load average after: {load_average()}")
    for side, runs in results.items():
        print(f"{side} (min / median / max of {len(runs)}):")
        for key in runs[0]:
            print(f"  {key}: {spread([r[key] for r in runs], 3)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--old-messages", type=int, default=1_000, help="for batch=1")
    parser.add_argument("--statuses-per-post", type=int, default=1)
    parser.add_argument("--trickle", action="store_true", help="webhooks arriving live")
    parser.add_argument("--trickle-rate", type=float, default=600, help="webhooks/s")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL to a PostgreSQL database (a bench database of its own)")
    call_command("migrate", verbosity=0)
    first_event = InboundEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    if InboundEvent.objects.filter(processed_at__isnull=True, signature_valid=True).exists():
        sys.exit("this database has unprocessed webhooks: use a bench database of its own")
    topic, post = prepare(args.messages if args.trickle else args.old_messages + args.messages)
    try:
        ids = list(Delivery.objects.filter(post=post).order_by("id").values_list("id", flat=True))
        if args.trickle:
            return live(args, ids)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        per_post = args.statuses_per_post
        print(f"{len(ids)} messages, 2 statuses each, {per_post} per webhook POST; load {load}")
        drain("1 webhook per transaction", ids[: args.old_messages], 1, per_post)
        drain(
            f"{args.batch} webhooks per transaction", ids[args.old_messages :], args.batch, per_post
        )
        statuses = dict(
            Delivery.objects.filter(post=post).values_list("status").annotate(n=Count("id"))
        )
        events = InboundEvent.objects.filter(id__gt=first_event)
        unprocessed = events.filter(processed_at__isnull=True).count()
        with_problems = events.exclude(problems="").count()
        print(f"ledger {statuses}; webhooks unprocessed {unprocessed}, with problems", end=" ")
        print(with_problems)
        assert statuses == {"delivered": len(ids)}, statuses
        assert unprocessed == with_problems == 0
    finally:
        InboundEvent.objects.filter(id__gt=first_event).delete()
        Delivery.objects.filter(post=post).delete()
        post.topics.clear()
        post.delete()
        Subscriber.objects.filter(
            wa_id__gte=str(FIRST_NUMBER + 1), wa_id__lte=str(FIRST_NUMBER + 10_000_000)
        ).delete()
        topic.delete()


if __name__ == "__main__":
    main()
