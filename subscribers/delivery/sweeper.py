"""The sweeper: Celery messages are only wake-ups, so a periodic pass puts right what a lost
message or a crashed sender left behind. Idempotent; the database says what is left to send.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from channel.graph.account import is_paused
from subscribers.delivery.quiet import quiet_until
from subscribers.delivery.sending import next_due_in, sender_alive
from subscribers.delivery.settling import expire_post, finish_if_done
from subscribers.delivery.signals import senders_needed
from subscribers.models import Delivery
from topics.models import Post

# How far back the sweeper looks for stopped posts with rows left in the queue.
STOPPED_LOOKBACK = timedelta(days=1)


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Return stale in-flight rows to the queue, finish or expire posts, and wake the senders
    of every post with due work that no sender is working on."""
    now = now or timezone.now()
    settle_after = timedelta(seconds=settings.BANDITORE_SETTLE_SECONDS)
    stale = Delivery.objects.filter(
        status=Delivery.Status.SENDING, sending_at__lt=now - settle_after
    )
    returned = stale.filter(post__status=Post.Status.SENDING).update(
        status=Delivery.Status.QUEUED, next_attempt_at=None
    )
    # A stopped post sends nothing again: its unanswered requests are not retried (a late
    # `delivered` still moves the row up). Senders and status webhooks lock the post before
    # they queue a row again; the return above does not, so a row it put back while the post
    # was being cancelled is cancelled here, in this pass or the next.
    stale.exclude(post__status=Post.Status.SENDING).update(status=Delivery.Status.CANCELLED)
    stopped = Post.objects.filter(
        status=Post.Status.CANCELLED, finished_at__gte=now - STOPPED_LOOKBACK
    ).values_list("pk", flat=True)
    Delivery.objects.filter(post_id__in=list(stopped), status=Delivery.Status.QUEUED).update(
        status=Delivery.Status.CANCELLED
    )
    woken = finished = expired = 0
    for post in Post.objects.filter(status=Post.Status.SENDING):
        if post.is_expired(now):
            expire_post(post)
            expired += 1
        elif finish_if_done(post.pk):
            finished += 1
        elif (
            next_due_in(post.pk) == 0.0
            and not is_paused()
            and quiet_until(urgent=post.is_urgent) is None  # they resume when quiet hours end
            and not sender_alive(post.pk)
        ):
            senders_needed.send(sender=Post, post_id=post.pk)
            woken += 1
    return {"returned": returned, "woken": woken, "finished": finished, "expired": expired}
