"""The weekly digest: what it saves in a month, and what building it costs (issue 15, §5).

    createdb -h 127.0.0.1 -U postgres banditore_digest_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/banditore_digest_bench \
        .venv/bin/python bench/digest.py [--runs 5] [--subscribers 100000]

The council: 100,000 active subscribers on 20 topics (1–4 random topics each), nobody inside
the 24-hour window (people rarely write to a news channel, so every message is a template),
12 posts a week on 1 or 2 random topics each (seeded), for a month of 4 weeks. Both ways go
through the product's own code, on the same posts:
- immediate: every topic immediate, each post fanned out at once (publishing.fan_out): the
  messages are its delivery rows;
- digest: every topic a digest topic and everyone on the council's default (weekly): each
  post's own fan-out queues nobody, and each Thursday digest.digest_publish gathers the week's
  posts and queues one digest per person with something new: the messages are its rows.
Cost: messages × the rate card's price of a marketing template to an Italian number (+39)
today, as the planner estimates it (subscribers.delivery.costs).

Then the build time, alternating in the same run (`--runs`, at least 3), commit included: the
digest's fan-out (digest.digest_fan_out: one INSERT … SELECT DISTINCT over the subscriptions ×
the week's gathered posts, with the checks an earlier delivery and expiry need, into the real
delivery table holding the month's earlier digests) vs a bare INSERT … SELECT DISTINCT of the
same rows into a lean table (primary key + UNIQUE(post, subscriber) only). Target: product ≤
1.3 × bare. Prints min/median/max of each, the load average before and after, and last the line
`messages: immediate N, digest M, saving X×; cost: immediate €A, digest €B`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("LOG_LEVEL", "ERROR")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from subscribers.delivery import digest  # noqa: E402
from subscribers.delivery.costs import rate_card  # noqa: E402
from subscribers.delivery.publishing import fan_out  # noqa: E402
from subscribers.delivery.signals import senders_needed  # noqa: E402
from subscribers.models import Delivery, Subscriber, Subscription  # noqa: E402
from topics.models import Post, Topic  # noqa: E402

PREFIX = "3971"  # bench subscribers' numbers: 3971xxxxxxx
LEAN = "bench_lean_digest"
WEEKS, POSTS_PER_WEEK = 4, 12
FIRST_THURSDAY = datetime(2026, 10, 1, 10, 0)  # a Thursday, 10:00 council time


def sql(statement: str, params: list | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])
        return cursor.rowcount


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def build(subscribers: int) -> list[int]:
    topics = [
        Topic.objects.get_or_create(
            slug=f"digest-bench-{n:02d}",
            defaults={"name_it": f"Tema {n}", "name_en": f"Topic {n}", "order": n},
        )[0].pk
        for n in range(1, 21)
    ]
    if Subscriber.objects.filter(wa_id__startswith=PREFIX).count() == subscribers:
        return topics
    print(f"building {subscribers:,} subscribers (once)…", flush=True)
    sub, subn = Subscriber._meta.db_table, Subscription._meta.db_table
    with transaction.atomic():
        sql(f"DELETE FROM {Delivery._meta.db_table}")
        sql(f"DELETE FROM {subn} WHERE topic_id = ANY(%s)", [topics])
        sql(f"DELETE FROM {sub} WHERE wa_id LIKE %s", [PREFIX + "%"])
        sql("SELECT setseed(0.15)")
        sql(
            f"""INSERT INTO {sub} (wa_id, language, status, marketing_opt_out, conversation_state,
                    conversation_context, created_at, consented_at)
                SELECT %s || lpad(g::text, 7, '0'), 'it', 'active', false, '', '{{}}',
                       now(), now()
                FROM generate_series(1, %s) g""",
            [PREFIX, subscribers],
        )
        sql(
            f"""INSERT INTO {subn} (subscriber_id, topic_id, created_at, source)
                SELECT s.id, t.id, now(), 'import'
                FROM {sub} s
                CROSS JOIN LATERAL (
                    SELECT id FROM {Topic._meta.db_table}
                    WHERE id = ANY(%s) AND s.id IS NOT NULL
                    ORDER BY random() LIMIT 1 + (s.id %% 4)
                ) t
                WHERE s.wa_id LIKE %s""",
            [topics, PREFIX + "%"],
        )
    sql(f"ANALYZE {sub}")
    sql(f"ANALYZE {subn}")
    return topics


def clean() -> None:
    with transaction.atomic():
        sql(f"DELETE FROM {Delivery._meta.db_table}")
        Post.objects.filter(kind=Post.Kind.POST, title__startswith="Bench ").update(digest=None)
        Post.objects.filter(title__startswith="Bench ", kind=Post.Kind.POST).delete()
        Post.objects.filter(kind=Post.Kind.DIGEST).delete()


def month_of_posts(topics: list[int]) -> list[list[Post]]:
    rng = random.Random(2026)
    weeks = []
    for week in range(WEEKS):
        posts = []
        for n in range(POSTS_PER_WEEK):
            post = Post.objects.create(
                title=f"Bench {week + 1}.{n + 1}", body="Una riga.\nIl resto.", status="sending"
            )
            post.topics.set(rng.sample(topics, rng.choice((1, 2))))
            posts.append(post)
        weeks.append(posts)
    return weeks


def thursday(week: int) -> datetime:
    return timezone.make_aware(FIRST_THURSDAY + timedelta(weeks=week))


def immediate_month(weeks: list[list[Post]], topics: list[int]) -> int:
    Topic.objects.filter(pk__in=topics).update(delivery=Topic.Delivery.IMMEDIATE)
    messages = sum(fan_out(post) for posts in weeks for post in posts)
    sql(f"TRUNCATE {Delivery._meta.db_table}")
    return messages


def digest_month(weeks: list[list[Post]], topics: list[int]) -> tuple[int, Post]:
    Topic.objects.filter(pk__in=topics).update(delivery=Topic.Delivery.DIGEST)
    messages, last = 0, None
    for week, posts in enumerate(weeks):
        for post in posts:
            post.refresh_from_db()
            assert digest.waits_for_digest(post)
            Post.objects.filter(pk=post.pk).update(waits_for_digest=True, status="sent")
            assert fan_out(post) == 0  # nobody at once: everyone waits for the digest
        result = digest.digest_publish(thursday(week))
        messages += result.recipients
        last = result.digest
    return messages, last


def lean_table() -> None:
    sql(f"DROP TABLE IF EXISTS {LEAN}")
    sql(
        f"""CREATE TABLE {LEAN} (
            id bigserial PRIMARY KEY, post_id bigint NOT NULL, subscriber_id bigint NOT NULL,
            status varchar(16) NOT NULL, used_template boolean NOT NULL,
            attempts smallint NOT NULL, last_error_text text NOT NULL,
            queued_at timestamptz NOT NULL, UNIQUE (post_id, subscriber_id))"""
    )


def bare_insert(made: Post, table: str = LEAN) -> int:
    gathered = list(Post.objects.filter(digest=made).values_list("id", flat=True))
    return sql(
        f"""INSERT INTO {table}
                (post_id, subscriber_id, status, used_template, attempts, last_error_text,
                 queued_at)
            SELECT DISTINCT %s, s.subscriber_id, 'queued', false, 0, '', now()
            FROM {Subscription._meta.db_table} s
            JOIN {Post.topics.through._meta.db_table} pt ON pt.topic_id = s.topic_id
            JOIN {Subscriber._meta.db_table} p ON p.id = s.subscriber_id
            WHERE pt.post_id = ANY(%s) AND p.status = 'active'
            ON CONFLICT (post_id, subscriber_id) DO NOTHING""",
        [made.pk, gathered],
    )


def timed(action) -> tuple[float, int]:
    sql("CHECKPOINT")
    started = time.perf_counter()
    with transaction.atomic():
        rows = action()
    return time.perf_counter() - started, rows


def spread(times: list[float]) -> str:
    return (
        f"min {min(times):.3f} s, median {statistics.median(times):.3f} s, max {max(times):.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--subscribers", type=int, default=100_000)
    args = parser.parse_args()
    if args.runs < 3:
        sys.exit("--runs: at least 3")
    if connection.vendor != "postgresql":
        sys.exit("run it on PostgreSQL: set DATABASE_URL")
    print(f"load average before: {load()}", flush=True)
    call_command("migrate", verbosity=0)
    # The bench only measures: no sender is woken, no budget refuses.
    senders_needed.disconnect(dispatch_uid="subscribers.wake_senders")
    settings.BANDITORE_MONTHLY_BUDGET_EUR = None
    settings.BANDITORE_DIGEST_DEFAULT = "weekly"
    topics = build(args.subscribers)
    clean()
    weeks = month_of_posts(topics)
    immediate = immediate_month(weeks, topics)
    digested, last = digest_month(weeks, topics)
    price = rate_card().price("marketing", "39", timezone.localdate()) or Decimal("0.0691")
    print(
        f"{args.subscribers:,} subscribers, 20 topics, {WEEKS} weeks × {POSTS_PER_WEEK} posts: "
        f"{immediate:,} messages at once, {digested:,} digests ({price} € a marketing template "
        "to +39)",
        flush=True,
    )

    # Build time: the last week's digest again, beside the bare statement, alternating.
    lean_table()
    product_times, bare_times, same_times = [], [], []
    now, table = thursday(WEEKS - 1), Delivery._meta.db_table
    for run in range(1, args.runs + 1):
        sql(f"DELETE FROM {table} WHERE post_id = %s", [last.pk])
        sql(f"TRUNCATE {LEAN}")
        bare_s, bare_rows = timed(lambda: bare_insert(last))
        product_s, product_rows = timed(lambda: digest.digest_fan_out(last, now))
        assert bare_rows == product_rows, (bare_rows, product_rows)
        # The same bare statement into the real delivery table: what its indexes and
        # triggers cost, apart from the statement.
        sql(f"DELETE FROM {table} WHERE post_id = %s", [last.pk])
        same_s, _rows = timed(lambda: bare_insert(last, table))
        bare_times.append(bare_s)
        product_times.append(product_s)
        same_times.append(same_s)
        print(
            f"run {run}: {product_rows:,} rows  digest fan-out {product_s:.3f} s  "
            f"bare {bare_s:.3f} s  ratio {product_s / bare_s:.2f}  "
            f"(bare into the delivery table {same_s:.3f} s)",
            flush=True,
        )
    ratios = [p / b for p, b in zip(product_times, bare_times, strict=True)]
    print(f"digest fan-out: {spread(product_times)}")
    print(f"bare INSERT … SELECT: {spread(bare_times)}")
    print(f"bare, into the delivery table: {spread(same_times)}")
    print(
        f"ratio: median of per-run {statistics.median(ratios):.2f}, of medians "
        f"{statistics.median(product_times) / statistics.median(bare_times):.2f} "
        "(target <= 1.30)"
    )
    sql(f"DROP TABLE {LEAN}")
    clean()
    print(f"load average after: {load()}")
    cost_now, cost_digest = (
        (price * immediate).quantize(Decimal("0.01")),
        (price * digested).quantize(Decimal("0.01")),
    )
    print(
        f"messages: immediate {immediate}, digest {digested}, saving {immediate / digested:.1f}×; "
        f"cost: immediate €{cost_now}, digest €{cost_digest}"
    )


if __name__ == "__main__":
    main()
