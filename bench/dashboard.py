"""Dashboard cost on 1,000,000 subscribers, and CSV import speed.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/banditore_bench \
        .venv/bin/python bench/dashboard.py [--runs 3] [--import-rows 100000] [--explain]

Builds (once) the data set of bench/plan.py — 1M subscribers, 95 % active, 1–4 of 20 topics —
plus a consent ledger (a consent for everyone over the last year, a leave for those who left,
one topic_added per subscription), 10 sent posts with 150,000 delivery rows each, and a year
of daily counts. Then times `subscribers.dashboard.queries.dashboard()` and each of its parts, and
imports a generated CSV of --import-rows new numbers (rolled back: a dry run writes the same
rows and throws them away; --import-rows 0 skips it).
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from django.db import connection, transaction  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.db.models.functions import TruncWeek  # noqa: E402
from django.utils import timezone  # noqa: E402
from plan import PREFIX, build, scalar, sql  # noqa: E402  (sets up Django)

from subscribers.dashboard import queries as board  # noqa: E402
from subscribers.delivery.audience import active_subscribers_per_topic  # noqa: E402
from subscribers.imports.loading import import_subscribers  # noqa: E402
from subscribers.models import ConsentEvent, Delivery, Subscriber, Subscription  # noqa: E402
from topics.models import Post  # noqa: E402

POSTS = 10
PER_POST = 150_000


def build_history(topics: list[int]) -> None:
    ledger, sub = ConsentEvent._meta.db_table, Subscriber._meta.db_table
    if scalar(f"SELECT COUNT(*) FROM {ledger}") > 0:
        return
    print("building ledger, posts, deliveries, daily counts (once)…", flush=True)
    started = time.perf_counter()
    like = PREFIX + "%"
    with transaction.atomic():
        sql("SELECT setseed(0.17)")
        sql(
            f"""INSERT INTO {ledger} (subscriber_id, kind, topic_id, wa_message_id,
                    privacy_version, source, note, at)
                SELECT id, 'consent', NULL, '', '2026-01', 'chat', '',
                       now() - random() * interval '365 days'
                FROM {sub} WHERE wa_id LIKE %s""",
            [like],
        )
        sql(
            f"""INSERT INTO {ledger} (subscriber_id, kind, topic_id, wa_message_id,
                    privacy_version, source, note, at)
                SELECT subscriber_id, 'topic_added', topic_id, '', '', 'chat', '', now()
                       - random() * interval '365 days'
                FROM {Subscription._meta.db_table}""",
        )
        sql(
            f"""INSERT INTO {ledger} (subscriber_id, kind, topic_id, wa_message_id,
                    privacy_version, source, note, at)
                SELECT id, 'leave', NULL, '', '', 'chat', '',
                       now() - random() * interval '20 days'
                FROM {sub} WHERE wa_id LIKE %s AND status = 'left'""",
            [like],
        )
        now = timezone.now()
        for n in range(POSTS):
            post = Post.objects.create(
                title=f"Bench post {n}",
                body="bench",
                status="sent",
                published_at=now - timedelta(days=2 * n + 1),
            )
            sql(
                f"""INSERT INTO {Delivery._meta.db_table} (post_id, subscriber_id, status,
                        used_template, attempts, last_error_text, queued_at)
                    SELECT %s, id, (ARRAY['sent','delivered','read','read','failed'])
                                   [1 + floor(random() * 5)::int],
                           false, 1, '', now()
                    FROM {sub} WHERE wa_id LIKE %s AND id %% %s = 0 LIMIT %s""",
                [post.pk, like, 6, PER_POST],
            )
        for days in range(365):
            day = timezone.localdate() - timedelta(days=days)
            sql(
                """INSERT INTO subscribers_topiccount (day, topic_id, subscribers, taken_at)
                   SELECT %s, t, 40000 + %s * 10, now() FROM unnest(%s::bigint[]) t""",
                [day, 365 - days, topics],
            )
            sql(
                """INSERT INTO subscribers_topiccount (day, topic_id, subscribers, taken_at)
                   VALUES (%s, NULL, %s, now())""",
                [day, 900000 + (365 - days) * 100],
            )
    for table in (ledger, Delivery._meta.db_table, "subscribers_topiccount"):
        sql(f"ANALYZE {table}")
    print(f"built in {time.perf_counter() - started:.1f} s", flush=True)


def timed(label: str, action, runs: int) -> None:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    print(f"{label:<38} median {statistics.median(times) * 1000:8.0f} ms  (runs: {runs})")


def explain(label: str, queryset) -> None:
    print(f"\n--- EXPLAIN ANALYZE: {label}")
    print(queryset.explain(analyze=True))


def bench_import(rows: int) -> None:
    rng = random.Random(7)
    numbers = rng.sample(range(10_000_000, 99_999_999), rows)
    slugs = ["scuola", "cantieri-viabilita", "raccolta-differenziata", "eventi-cultura"]
    lines = ["numero,argomenti,data_consenso,fonte"]
    for n in numbers:
        topics = ";".join(rng.sample(slugs, rng.randint(1, 3)))
        lines.append(f"+39 34{n // 10_000_000} {n % 10_000_000:07d},{topics},15/03/2024,bench")
    data = ("\n".join(lines) + "\n").encode()
    started = time.perf_counter()
    report = import_subscribers(io.BytesIO(data), dry_run=True)
    took = time.perf_counter() - started
    print(
        f"import of {rows:,} lines ({len(data) / 1e6:.1f} MB), all written then rolled back: "
        f"{took:.1f} s ({rows / took:,.0f} lines/s); {report.created:,} new people, "
        f"{report.subscriptions_added:,} subscriptions"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL to a PostgreSQL database")
    topics = build(args.subscribers)
    build_history(topics)
    now = timezone.now()
    weeks = board.weeks_until(now)
    print(
        f"{Subscriber.objects.count():,} subscribers, "
        f"{Subscription.objects.count():,} subscriptions, "
        f"{ConsentEvent.objects.count():,} ledger rows, {Delivery.objects.count():,} deliveries"
    )
    timed("subscribers per topic now", active_subscribers_per_topic, args.runs)
    timed("active subscribers now", board.active_total, args.runs)
    timed("weekly counts (daily table)", lambda: board.weekly_counts(weeks), args.runs)
    per_week = board.joins_and_leaves_per_week
    timed("joins and leaves per week (ledger)", lambda: per_week(weeks), args.runs)
    timed("last 10 posts with rates and leaves", lambda: board.recent_posts(now), args.runs)
    timed("the whole dashboard", lambda: board.dashboard(now), args.runs)
    timed("taking the daily count", lambda: board.take_snapshot(now), 1)
    if args.explain:
        active = Subscription.objects.filter(subscriber__status="active")
        explain("subscribers per topic", active.values("topic_id").annotate(n=Count("id")))
        since = now - timedelta(weeks=len(weeks))
        weekly = board.joins().filter(at__gte=since).annotate(week=TruncWeek("at"))
        explain("joins per week", weekly.values("week").annotate(n=Count("id")).order_by())
    if args.import_rows:
        bench_import(args.import_rows)


if __name__ == "__main__":
    main()
