"""The progress panel and the plan of a post to ~1M people, before vs after the counters.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/banditore_bench REDIS_URL=redis://… \\
        .venv/bin/python bench/progress.py [--runs 5] [--subscribers 1100000]

Builds (once) the data set of bench/plan.py (`--subscribers`, 95 % active, 1–4 of 20 topics),
fans out a post on all 20 topics (≈ 1.05M deliveries at 1.1M subscribers, kept between runs)
and moves it part way with one set-based UPDATE, as a send would: 30 % delivered, 20 % read,
5 % sent, 1 % failed (three error codes), 1,000 retries waiting, the rest queued; 3 % of the
people wrote in the last 24 hours; the messaging tier is on (10,000). Then alternates, in the
same run, on the same rows:

- before: the panel as it was until the counters (kept here verbatim): a GROUP BY over the
  post's rows, the rows left, those left outside the window (a join with the subscribers),
  the latest retry, the failures by code;
- after: `subscribers.delivery.results.progress_report` (counters kept by the delivery
  table's triggers, subscribers.delivery.counters), and `post_counters` alone.

And the plan (`subscribers.desk.plan.post_plan`) of a draft on 3 topics (≈ 320k people) and on
all 20. Prints min / median / max of each and the load average before and after: only ratios
measured side by side mean much on a shared machine. The 1-minute load average says how shared.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count, Max, Q  # noqa: E402
from django.utils import timezone  # noqa: E402
from harness import load_average, spread  # noqa: E402
from plan import PREFIX, build, scalar, sql  # noqa: E402  (sets up Django)

from channel.graph.ratelimit import get_tier_window  # noqa: E402
from channel.graph.window import window_cutoff  # noqa: E402
from subscribers.delivery.progress import post_counters  # noqa: E402
from subscribers.delivery.publishing import fan_out  # noqa: E402
from subscribers.delivery.results import progress_report  # noqa: E402
from subscribers.desk.plan import post_plan  # noqa: E402
from subscribers.models import Delivery, Subscriber  # noqa: E402
from topics.models import Post  # noqa: E402

TITLE = "Bench progress"
QUEUED, SENDING = Delivery.Status.QUEUED, Delivery.Status.SENDING


def before_panel(post: Post) -> dict:
    """What progress_report read before the counters, query for query."""
    now = timezone.now()
    counters = dict(
        Delivery.objects.filter(post=post).values_list("status").annotate(n=Count("id")).order_by()
    )
    left = Delivery.objects.filter(post=post, status__in=[QUEUED, SENDING])
    outside = Q(subscriber__last_inbound_at__isnull=True) | Q(
        subscriber__last_inbound_at__lte=window_cutoff(now)
    )
    needing_template = left.filter(outside).count()
    used = get_tier_window().used()
    total = left.count()
    latest = (
        left.filter(status=QUEUED, next_attempt_at__gt=now)
        .order_by("-next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    failures = list(
        Delivery.objects.filter(post=post, status=Delivery.Status.FAILED)
        .values("last_error_code")
        .annotate(n=Count("id"), meta=Max("last_error_text"))
        .order_by("-n")
    )
    return {
        "counters": counters,
        "left": total,
        "template": needing_template,
        "used": used,
        "latest": latest,
        "failures": failures,
    }


def sending_post(topics: list[int]) -> Post:
    post = Post.objects.filter(title=TITLE).first()
    if post is not None and post_counters(post)["reach"]:
        return post
    post = post or Post.objects.create(title=TITLE, body="Bench", status=Post.Status.SENDING)
    post.topics.set(topics)
    print("fanning out to everyone (once)…", flush=True)
    started = time.perf_counter()
    rows = fan_out(post)
    table = Delivery._meta.db_table
    sql(
        f"""UPDATE {table} SET
              status = CASE WHEN id %% 100 < 30 THEN 'delivered' WHEN id %% 100 < 50 THEN 'read'
                            WHEN id %% 100 < 55 THEN 'sent' WHEN id %% 100 = 55 THEN 'failed'
                            ELSE status END,
              last_error_code = CASE WHEN id %% 100 = 55
                                     THEN (ARRAY[131026, 131049, 470])[1 + id %% 3] END,
              last_error_text = CASE WHEN id %% 100 = 55 THEN 'Meta: bench' ELSE '' END
            WHERE post_id = %s""",
        [post.pk],
    )
    sql(
        f"""UPDATE {table} SET next_attempt_at = now() + interval '1 hour'
            WHERE id IN (SELECT id FROM {table} WHERE post_id = %s AND status = 'queued'
                         ORDER BY id LIMIT 1000)""",
        [post.pk],
    )
    sql(f"ANALYZE {table}")
    print(f"{rows:,} deliveries in {time.perf_counter() - started:.0f} s", flush=True)
    return post


def timed(action, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--subscribers", type=int, default=1_100_000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL to a PostgreSQL database")
    settings.WHATSAPP_MESSAGING_TIER = "10000"
    topics = build(args.subscribers)
    sub = Subscriber._meta.db_table
    sql(  # only those rows: updating every person would leave the table to VACUUM
        f"UPDATE {sub} SET last_inbound_at = now() - interval '1 hour' "
        "WHERE id %% 33 = 0 AND wa_id LIKE %s",
        [PREFIX + "%"],
    )
    post = sending_post(topics)
    Post.objects.filter(pk=post.pk).update(status=Post.Status.SENDING)
    post.refresh_from_db()
    draft = Post.objects.create(title="Bench plan", body="Bench", status=Post.Status.DRAFT)
    print(
        f"{scalar(f'SELECT COUNT(*) FROM {sub}'):,} subscribers; post #{post.pk}: "
        f"{post_counters(post)}"
    )
    before, after = before_panel(post), progress_report(post)
    assert before["left"] == after["counters"]["queued"] + after["counters"]["sending"]
    assert before["counters"] == {
        k: v for k, v in after["counters"].items() if k != "reach" and v
    }, (before["counters"], after["counters"])
    print(f"load average before: {load_average()}", flush=True)
    panel_before, panel_after, counters_only = [], [], []
    for _ in range(args.runs):  # alternating, on the same rows
        panel_before += timed(lambda: before_panel(post), 1)
        panel_after += timed(lambda: progress_report(post), 1)
        counters_only += timed(lambda: post_counters(post), 1)
    plans: dict[str, list[float]] = {}
    for label, chosen in (("3 topics", [topics[2], topics[6], topics[10]]), ("20 topics", topics)):
        draft.topics.set(chosen)
        reach = post_plan(draft).reach
        plans[f"plan, {label} ({reach:,} people)"] = timed(lambda: post_plan(draft), args.runs)
    print(f"load average after: {load_average()}")
    print(f"\nms, min / median / max of {args.runs} runs")
    print(f"{'progress panel before (scans the post)':<44} {spread(panel_before, 1)}")
    print(f"{'progress panel now (counters)':<44} {spread(panel_after, 1)}")
    print(f"{'  of which post_counters':<44} {spread(counters_only, 1)}")
    ratio = statistics.median(b / a for b, a in zip(panel_before, panel_after, strict=True))
    print(f"{'  median of per-run ratios before/now':<44} {ratio:.0f}x")
    for label, values in plans.items():
        print(f"{label:<44} {spread(values, 1)}")
    draft.topics.clear()
    draft.delete()
    sql(
        f"UPDATE {sub} SET last_inbound_at = NULL WHERE last_inbound_at IS NOT NULL "
        "AND wa_id LIKE %s",
        [PREFIX + "%"],
    )
    sql(f"VACUUM ANALYZE {sub}")


if __name__ == "__main__":
    main()
