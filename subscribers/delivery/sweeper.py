"""The sweeper: Celery messages are only wake-ups, so a periodic pass puts right what a lost
message or a crashed sender left behind. Idempotent; the database says what is left to send.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from channel.graph.account import is_paused
from subscribers.delivery.sending import next_due_in, sender_alive
from subscribers.delivery.settling import expire_post, finish_if_done
from subscribers.delivery.signals import senders_needed
from subscribers.models import Delivery
from topics.models import Post


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Return stale in-flight rows to the queue, finish or expire posts, and wake the senders
    of every post with due work that no sender is working on."""
    now = now or timezone.now()
    settle_after = timedelta(seconds=settings.BANDITORE_SETTLE_SECONDS)
    returned = Delivery.objects.filter(
        status=Delivery.Status.SENDING, sending_at__lt=now - settle_after
    ).update(status=Delivery.Status.QUEUED, next_attempt_at=None)
    woken = finished = expired = 0
    for post in Post.objects.filter(status=Post.Status.SENDING):
        if post.is_expired(now):
            expire_post(post)
            expired += 1
        elif finish_if_done(post.pk):
            finished += 1
        elif next_due_in(post.pk) == 0.0 and not is_paused() and not sender_alive(post.pk):
            senders_needed.send(sender=Post, post_id=post.pk)
            woken += 1
    return {"returned": returned, "woken": woken, "finished": finished, "expired": expired}
