"""How far a post has got: counters by delivery status and when it should finish."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache

from channel import clock
from channel.graph.phone import effective_mps
from channel.graph.ratelimit import get_tier_window, tier_limit
from channel.graph.window import window_cutoff
from subscribers.delivery.counters import post_counts
from subscribers.delivery.quiet import finish_after_quiet
from subscribers.models import Delivery, Subscriber
from topics.models import Post

STATUSES = list(Delivery.Status.values)
# The finish estimate's people inside the 24-hour window: looked up one by one up to this many,
# past it counted at most once per INSIDE_KEPT_SECONDS per post (see _left_inside_window).
INSIDE_PROBES = 200
INSIDE_KEPT_SECONDS = 60


def post_counters(post: Post) -> dict[str, int]:
    """By status, and `reach`: from the counters the delivery table's triggers keep
    (subscribers.delivery.counters), never a count of the post's rows."""
    return post_counts(post.pk)


def bulk_rate() -> float:
    """Messages per second available to posts (replies keep their reserved share)."""
    reserve = float(settings.BANDITORE_REPLY_RESERVE)
    return max(0.1, float(effective_mps()) * (1 - reserve))


def send_duration(*, total: int, needing_template: int, free_slots: int | None = None) -> timedelta:
    """Time to send `total` messages at the configured rate, with the messaging-limit tier
    (channel.graph.ratelimit.UniqueRecipientWindow) admitting `tier` new people outside the
    window per rolling 24 h; `free_slots` is what the tier still admits right now (default: a
    whole day's worth)."""
    rate = bulk_rate()  # each call reads the number's facts (channel.graph.phone)
    seconds = total / rate
    limit = tier_limit()
    if limit is not None:
        free = limit if free_slots is None else max(0, min(limit, free_slots))
        beyond = needing_template - free
        if beyond > 0:
            # Each further day admits another `limit` people; the last one needs its share only.
            days = -(-beyond // limit)
            last_share = beyond - (days - 1) * limit
            seconds = max(seconds, days * 86400 + last_share / rate)
    return timedelta(seconds=seconds)


def estimated_finish(
    post: Post, now: datetime | None = None, counters: dict[str, int] | None = None
) -> datetime | None:
    """When the post should be done: the send rate, the tier, scheduled retries and quiet
    hours (sending stops during them, subscribers.delivery.quiet)."""
    if post.status != Post.Status.SENDING:
        return None
    now = now or clock.now()
    counters = post_counts(post.pk) if counters is None else counters  # or the caller's
    left = counters[Delivery.Status.QUEUED] + counters[Delivery.Status.SENDING]
    needing_template = 0
    free_slots = None
    limit = tier_limit()
    if limit is not None:
        needing_template = max(0, left - _left_inside_window(post, now))
        free_slots = limit - get_tier_window().used()
    duration = send_duration(total=left, needing_template=needing_template, free_slots=free_slots)
    latest_retry = (  # delivery_retry_idx: the retries only, not the post's queue
        Delivery.objects.filter(post=post, status=Delivery.Status.QUEUED, next_attempt_at__gt=now)
        .order_by("-next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    finish, _resumes = finish_after_quiet(now, duration, urgent=post.is_urgent)
    return max(finish, latest_retry) if latest_retry else finish


def _left_inside_window(post: Post, now: datetime) -> int:
    """The post's rows still to send to people inside the 24-hour window: those who wrote in
    the last 24 hours (index on last_inbound_at), each looked up in the post's rows by
    UNIQUE(post, subscriber). Everyone else left needs the template: the whole audience is
    never read. Past INSIDE_PROBES such people (33,000 lookups took 1 s on 1M rows) the count
    is kept for INSIDE_KEPT_SECONDS, so a panel refreshed every 2 s pays it once a minute."""
    inside = Subscriber.objects.filter(last_inbound_at__gt=window_cutoff(now))
    rows = Delivery.objects.filter(
        post=post,
        status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING],
        subscriber_id__in=inside.values("pk"),
    )
    if inside.values("pk").order_by()[: INSIDE_PROBES + 1].count() <= INSIDE_PROBES:
        return rows.count()
    key = f"banditore:progress:inside-window:{post.pk}"
    return cache.get_or_set(key, rows.count, timeout=INSIDE_KEPT_SECONDS)
