"""Dashboard cost on 1,000,000 subscribers, and CSV import speed.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/banditore_bench \
        .venv/bin/python bench/dashboard.py [--runs 3] [--import-rows 100000] [--explain]

Builds (once) the data set of bench/plan.py — 1M subscribers, 95 % active, 1–4 of 20 topics —
plus a consent ledger (a consent for everyone over the last year, a leave for those who left,
one topic_added per subscription), 10 sent posts with 150,000 delivery rows each, and a year
of daily counts. Then times `subscribers.dashboard.queries.dashboard()` and each of its parts,
the page's data as it was read before beat's counts and the delivery counters (`before`,
kept here query for query) alternating with the page now, min / median / max, with the load
average before and after; and imports a generated CSV of --import-rows new numbers (rolled
back: a dry run writes the same rows and throws them away; --import-rows 0 skips it).
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
from harness import load_average, spread  # noqa: E402
from plan import PREFIX, build, scalar, sql  # noqa: E402  (sets up Django)

from subscribers.dashboard import queries as board  # noqa: E402
from subscribers.delivery.audience import active_subscribers_per_topic  # noqa: E402
from subscribers.delivery.results import outcome_counts  # noqa: E402
from subscribers.imports.loading import import_subscribers  # noqa: E402
from subscribers.models import ConsentEvent, Delivery, Subscriber, Subscription  # noqa: E402
from topics.models import Post  # noqa: E402

POSTS = 10
PER_POST = 150_000


def sent_to_many(post: Post) -> None:
    sql(
        f"""INSERT INTO {Delivery._meta.db_table} (post_id, subscriber_id, status,
                used_template, attempts, last_error_text, queued_at)
            SELECT %s, id, (ARRAY['sent','delivered','read','read','failed'])
                           [1 + floor(random() * 5)::int],
                   false, 1, '', now()
            FROM {Subscriber._meta.db_table} WHERE wa_id LIKE %s AND id %% %s = 0 LIMIT %s""",
        [post.pk, PREFIX + "%", 6, PER_POST],
    )


def build_history(topics: list[int]) -> None:
    ledger, sub = ConsentEvent._meta.db_table, Subscriber._meta.db_table
    if scalar(f"SELECT COUNT(*) FROM {ledger}") > 0:
        # bench/plan.py empties the delivery table: the posts get theirs again.
        for post in Post.objects.filter(title__startswith="Bench post "):
            if not Delivery.objects.filter(post=post).exists():
                sent_to_many(post)
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
            sent_to_many(post)
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


def before_dashboard(now, weeks) -> None:
    """What the page read before beat's counts and the delivery counters, query for query."""
    active_subscribers_per_topic()
    board.weekly_counts(weeks)
    board.active_total()
    start = board._midnight(weeks[0])
    for events in (board.joins(), board.leaves()):
        rows = events.filter(at__gte=start).annotate(week=TruncWeek("at")).values_list("week")
        list(rows.annotate(n=Count("id")).order_by())
    posts = board._recent()
    rows = Delivery.objects.filter(post__in=posts).values("post_id")
    list(rows.annotate(reach=Count("id"), **outcome_counts()).order_by())
    for post in posts:
        board._leaves_within_24h(post)
    board.first_count_day()


def side_by_side(now, weeks, runs: int) -> None:
    print(f"load average before: {load_average()}", flush=True)
    started = time.perf_counter()
    board.flows_snapshot(now, force=True)  # what beat's first count of the day does
    board.take_snapshot(now)
    counting = time.perf_counter() - started
    board.dashboard(now)  # keeps the finished posts' leaves within 24 hours, once
    before, after = [], []
    for _ in range(runs):
        for label, action in (("before", before_dashboard), ("after", board.dashboard)):
            started = time.perf_counter()
            action(now, weeks) if label == "before" else action(now)
            (before if label == "before" else after).append((time.perf_counter() - started) * 1000)
    print(f"load average after: {load_average()}")
    ratio = statistics.median(b / a for b, a in zip(before, after, strict=True))
    print(f"{'the page before (all live), ms':<38} {spread(before, 0)}  (min / median / max)")
    print(f"{'the page now, ms':<38} {spread(after, 0)}  (median of ratios {ratio:.0f}x)")
    print(f"{'beat: first count of the day, ms':<38} {counting * 1000:.0f}")
    started = time.perf_counter()
    board.flows_snapshot(now)
    board.take_snapshot(now)
    print(f"{'beat: every 5 minutes after, ms':<38} {(time.perf_counter() - started) * 1000:.0f}")


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
    side_by_side(now, weeks, args.runs)
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
