"""Statuses applied to the delivery ledger per second, 100 per call (one webhook's worth).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/banditore_engine_bench \
        .venv/bin/python bench/statuses.py [N]

Needs the data set of bench/plan.py (run that first). Fans out a post on one topic (~100k rows),
marks them sent with a wamid, then applies N `delivered` statuses (default 30,000) for random
rows through ``subscribers.delivery.statuses.apply_statuses`` in calls of 100, as the webhook
processor does, and prints statuses/s (target ≥ 3,000: a big post's statuses must be applied
faster than they arrive). The post is removed at the end.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("LOG_LEVEL", "ERROR")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from channel.graph.callbacks import delivery_reference  # noqa: E402
from channel.webhook.parsing import StatusUpdate  # noqa: E402
from subscribers.delivery.publishing import fan_out  # noqa: E402
from subscribers.delivery.statuses import apply_statuses  # noqa: E402
from subscribers.models import Delivery  # noqa: E402
from topics.models import Post, Topic  # noqa: E402


def main(total: int) -> None:
    topic = Topic.objects.filter(slug="bench-03").first()
    if topic is None:
        sys.exit("run bench/plan.py first (it builds the subscribers)")
    post = Post.objects.create(title="Bench", body="Bench", status=Post.Status.SENDING)
    post.topics.set([topic])
    try:
        fan_out(post)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Delivery._meta.db_table} SET status = 'sent', "
                "wa_message_id = 'wamid.' || id WHERE post_id = %s",
                [post.pk],
            )
        ids = list(Delivery.objects.filter(post=post).values_list("id", flat=True))
        random.Random(1).shuffle(ids)
        ids = ids[:total]
        now = timezone.now()
        batches = [
            [
                StatusUpdate(
                    wamid=f"wamid.{pk}",
                    status="delivered",
                    timestamp=now,
                    biz_opaque_callback_data=delivery_reference(pk),
                )
                for pk in ids[start : start + 100]
            ]
            for start in range(0, len(ids), 100)
        ]
        started = time.perf_counter()
        applied = sum(apply_statuses(batch) for batch in batches)
        elapsed = time.perf_counter() - started
        print(f"{applied:,} statuses in {elapsed:.2f} s: {applied / elapsed:,.0f}/s (100 per call)")
    finally:
        Delivery.objects.filter(post=post).delete()
        post.topics.clear()
        post.delete()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30_000)
