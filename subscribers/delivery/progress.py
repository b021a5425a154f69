"""How far a post has got: counters by delivery status and when it should finish."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q

from channel import clock
from channel.graph.ratelimit import get_tier_window, tier_limit
from channel.graph.window import window_cutoff
from subscribers.delivery.quiet import finish_after_quiet
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
    reserve = float(settings.BANDITORE_REPLY_RESERVE)
    return max(0.1, float(settings.WHATSAPP_MPS) * (1 - reserve))


def send_duration(*, total: int, needing_template: int, free_slots: int | None = None) -> timedelta:
    """Time to send `total` messages at the configured rate, with the messaging-limit tier
    (channel.graph.ratelimit.UniqueRecipientWindow) admitting `tier` new people outside the
    window per rolling 24 h; `free_slots` is what the tier still admits right now (default: a
    whole day's worth)."""
    seconds = total / bulk_rate()
    limit = tier_limit()
    if limit is not None:
        free = limit if free_slots is None else max(0, min(limit, free_slots))
        beyond = needing_template - free
        if beyond > 0:
            # Each further day admits another `limit` people; the last one needs its share only.
            days = -(-beyond // limit)
            last_share = beyond - (days - 1) * limit
            seconds = max(seconds, days * 86400 + last_share / bulk_rate())
    return timedelta(seconds=seconds)


def estimated_finish(post: Post, now: datetime | None = None) -> datetime | None:
    """When the post should be done: the send rate, the tier, scheduled retries and quiet
    hours (sending stops during them, subscribers.delivery.quiet)."""
    if post.status != Post.Status.SENDING:
        return None
    now = now or clock.now()
    left = Delivery.objects.filter(
        post=post, status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING]
    )
    needing_template = 0
    free_slots = None
    if tier_limit() is not None:
        outside = Q(subscriber__last_inbound_at__isnull=True) | Q(
            subscriber__last_inbound_at__lte=window_cutoff(now)
        )
        needing_template = left.filter(outside).count()
        free_slots = tier_limit() - get_tier_window().used()
    duration = send_duration(
        total=left.count(), needing_template=needing_template, free_slots=free_slots
    )
    latest_retry = (
        left.filter(status=Delivery.Status.QUEUED, next_attempt_at__gt=now)
        .order_by("-next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    finish, _resumes = finish_after_quiet(now, duration, urgent=post.is_urgent)
    return max(finish, latest_retry) if latest_retry else finish
