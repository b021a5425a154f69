"""How far a post has got: counters by delivery status and when it should finish."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from channel.ratelimit import tier_limit
from subscribers.models import Delivery
from topics.models import Post

STATUSES = list(Delivery.Status.values)


def post_counters(post: Post) -> dict[str, int]:
    """One GROUP BY over the post's deliveries (index on post, status)."""
    counters = dict.fromkeys(STATUSES, 0)
    rows = Delivery.objects.filter(post=post).values_list("status").annotate(n=Count("id"))
    for status, count in rows.order_by():
        counters[status] = count
    counters["reach"] = sum(counters[s] for s in STATUSES)
    return counters


def bulk_rate() -> float:
    """Messages per second available to posts (replies keep their reserved share)."""
    reserve = float(getattr(settings, "WHATSAPP_REPLY_RESERVE", 0.1))
    return max(0.1, float(settings.WHATSAPP_MPS) * (1 - reserve))


def send_duration(*, total: int, needing_template: int) -> timedelta:
    """Time to send `total` messages at the configured rate, with the messaging-limit tier
    allowing `tier` new people outside the window per rolling 24 h (§4.1)."""
    seconds = total / bulk_rate()
    limit = tier_limit()
    if limit is not None and needing_template > limit:
        # Each further day admits another `limit` people; the last day needs only its share.
        full_days = (needing_template - 1) // limit
        seconds = max(seconds, full_days * 86400 + min(limit, needing_template) / bulk_rate())
    return timedelta(seconds=seconds)


def estimated_finish(post: Post, now: datetime | None = None) -> datetime | None:
    if post.status != Post.Status.SENDING:
        return None
    now = now or timezone.now()
    left = Delivery.objects.filter(
        post=post, status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING]
    ).count()
    duration = send_duration(total=left, needing_template=0)
    latest_retry = (
        Delivery.objects.filter(post=post, status=Delivery.Status.QUEUED, next_attempt_at__gt=now)
        .order_by("-next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    finish = now + duration
    return max(finish, latest_retry) if latest_retry else finish
