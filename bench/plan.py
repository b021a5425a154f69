"""Fan-out cost: delivery rows for one post on 3 of 20 topics, 1,000,000 subscribers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/banditore_bench \
        .venv/bin/python bench/plan.py [--runs 5] [--subscribers 1000000]

Builds the data set once (1–4 random topics each, 95 % active; kept between runs, ~1 min), then
alternates, in the same run and on the same rows:
- product: ``subscribers.delivery.publishing.fan_out(post)`` into the real ``subscribers_delivery``
  table, inside a transaction, commit included;
- bare: the same ``INSERT … SELECT DISTINCT`` into a lean table (primary key and
  UNIQUE(post_id, subscriber_id), no foreign keys), same columns, commit included.
Prints each run, the medians and the ratio (target ≤ 1.3: the product's constraints and
indexes may cost at most 30 % over the bare statement), plus what reading the
post's counters and claiming one batch cost on the fanned-out post.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("LOG_LEVEL", "ERROR")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from subscribers.delivery.progress import post_counters  # noqa: E402
from subscribers.delivery.publishing import fan_out  # noqa: E402
from subscribers.delivery.sending import claim_batch  # noqa: E402
from subscribers.models import Delivery, Subscriber, Subscription  # noqa: E402
from topics.models import Post, Topic  # noqa: E402

PREFIX = "3970"  # bench subscribers' numbers: 3970xxxxxxx
LEAN = "bench_lean_delivery"


def sql(statement: str, params: list | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])
        return cursor.rowcount


def scalar(statement: str, params: list | None = None):
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])
        return cursor.fetchone()[0]


def build(subscribers: int) -> list[int]:
    topics = [
        Topic.objects.get_or_create(
            slug=f"bench-{n:02d}", defaults={"name_it": f"Bench {n}", "name_en": f"Bench {n}"}
        )[0].pk
        for n in range(1, 21)
    ]
    have = Subscriber.objects.filter(wa_id__startswith=PREFIX).count()
    if have == subscribers:
        return topics
    print(f"building {subscribers:,} subscribers (once)…", flush=True)
    started = time.perf_counter()
    sub, subn = Subscriber._meta.db_table, Subscription._meta.db_table
    with transaction.atomic():
        sql(f"DELETE FROM {Delivery._meta.db_table}")
        sql(f"DELETE FROM {subn} WHERE topic_id = ANY(%s)", [topics])
        sql(f"DELETE FROM {sub} WHERE wa_id LIKE %s", [PREFIX + "%"])
        sql("SELECT setseed(0.42)")
        sql(
            f"""INSERT INTO {sub} (wa_id, language, status, marketing_opt_out, conversation_state,
                    conversation_context, created_at, consented_at, left_at)
                SELECT %s || lpad(g::text, 7, '0'), 'it',
                       CASE WHEN random() < 0.95 THEN 'active' ELSE 'left' END,
                       false, '', '{{}}', now(), now(), NULL
                FROM generate_series(1, %s) g""",
            [PREFIX, subscribers],
        )
        sql(
            f"UPDATE {sub} SET left_at = now() WHERE status = 'left' AND wa_id LIKE %s",
            [PREFIX + "%"],
        )
        # 1–4 distinct random topics each (the LATERAL re-runs per subscriber).
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
    print(f"built in {time.perf_counter() - started:.1f} s", flush=True)
    return topics


def lean_table() -> None:
    sql(f"DROP TABLE IF EXISTS {LEAN}")
    sql(
        f"""CREATE TABLE {LEAN} (
            id bigserial PRIMARY KEY, post_id bigint NOT NULL, subscriber_id bigint NOT NULL,
            status varchar(16) NOT NULL, used_template boolean NOT NULL,
            attempts smallint NOT NULL, last_error_text text NOT NULL,
            queued_at timestamptz NOT NULL, UNIQUE (post_id, subscriber_id))"""
    )


def bare_insert(post: Post, topic_ids: list[int]) -> int:
    return sql(
        f"""INSERT INTO {LEAN}
                (post_id, subscriber_id, status, used_template, attempts, last_error_text,
                 queued_at)
            SELECT DISTINCT %s, s.subscriber_id, 'queued', false, 0, '', now()
            FROM {Subscription._meta.db_table} s
            JOIN {Subscriber._meta.db_table} p ON p.id = s.subscriber_id
            WHERE s.topic_id = ANY(%s) AND p.status = 'active'
            ON CONFLICT (post_id, subscriber_id) DO NOTHING""",
        [post.pk, topic_ids],
    )


def timed(action) -> tuple[float, int]:
    sql("CHECKPOINT")
    started = time.perf_counter()
    with transaction.atomic():  # deferred constraint checks run at commit: include them
        rows = action()
    return time.perf_counter() - started, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("run it on PostgreSQL: set DATABASE_URL")
    call_command("migrate", verbosity=0)
    topics = build(args.subscribers)
    chosen = [topics[2], topics[6], topics[10]]
    post = Post.objects.create(title="Bench", body="Bench", status=Post.Status.SENDING)
    post.topics.set(chosen)
    lean_table()
    product_times, bare_times = [], []
    for run in range(1, args.runs + 1):
        sql(f"TRUNCATE {LEAN}")
        sql(f"TRUNCATE {Delivery._meta.db_table}")
        bare_s, bare_rows = timed(lambda: bare_insert(post, chosen))
        product_s, product_rows = timed(lambda: fan_out(post))
        assert bare_rows == product_rows, (bare_rows, product_rows)
        bare_times.append(bare_s)
        product_times.append(product_s)
        print(
            f"run {run}: {product_rows:,} rows  product {product_s:.2f} s "
            f"({product_rows / product_s:,.0f} rows/s)  bare {bare_s:.2f} s "
            f"({bare_rows / bare_s:,.0f} rows/s)  ratio {product_s / bare_s:.2f}",
            flush=True,
        )
    sql(f"ANALYZE {Delivery._meta.db_table}")
    started = time.perf_counter()
    counters = post_counters(post)
    counters_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    claimed = claim_batch(post.pk, 100)
    claim_ms = (time.perf_counter() - started) * 1000
    product, bare = statistics.median(product_times), statistics.median(bare_times)
    ratios = statistics.median(p / b for p, b in zip(product_times, bare_times, strict=True))
    print(
        f"median: product {product:.2f} s, bare {bare:.2f} s, ratio of medians "
        f"{product / bare:.2f}, median of per-run ratios {ratios:.2f} (target <= 1.30)\n"
        f"post_counters: {counters_ms:.0f} ms (reach {counters['reach']:,}); "
        f"claim_batch(100): {claim_ms:.0f} ms ({len(claimed)} rows)"
    )
    sql(f"TRUNCATE {Delivery._meta.db_table}")
    sql(f"DROP TABLE {LEAN}")
    post.topics.clear()
    post.delete()


if __name__ == "__main__":
    main()
