"""What the API does once a request is valid: create posts for a token, describe them."""

from __future__ import annotations

from typing import Any

from django.db import models, transaction
from django.db.models import QuerySet, Value
from django.utils import timezone

from subscribers.delivery import progress, publishing
from subscribers.delivery.audience import reach_count, with_active_subscribers
from subscribers.delivery.budget import post_cost_report
from topics.audit import record_audit
from topics.models import ApiToken, Post, Topic

ZERO_COUNTERS = {
    "queued": 0,
    "sending": 0,
    "sent": 0,
    "delivered": 0,
    "read": 0,
    "failed": 0,
    "cancelled": 0,
}


@transaction.atomic
def post_create_for_token(
    *, token: ApiToken, topics: list[Topic], publish: bool, fields: dict[str, Any]
) -> Post:
    """Create the post as the token; publish it now or at send_at when asked.

    Raises PublishError (the whole creation rolls back) when publishing is refused.
    """
    post = Post.objects.create(status=Post.Status.DRAFT, created_by_token=token, **fields)
    post.topics.set(topics)
    record_audit(
        action="post_created_api",
        obj=post.title,
        token=token,
        details={"post_id": post.pk, "topics": [t.slug for t in topics], "publish": publish},
    )
    if publish:
        if post.send_at and post.send_at > timezone.now():
            publishing.post_schedule(post=post, send_at=post.send_at, token=token)
        else:
            publishing.post_publish(post=post, token=token)
        post.refresh_from_db()
    return post


def post_cancel_for_token(*, token: ApiToken, post: Post) -> Post:
    publishing.post_cancel(post=post, token=token, only_drafts=not token.can_publish)
    post.refresh_from_db()
    return post


def topics_for_api(*, with_counts: bool) -> QuerySet[Topic]:
    """Active topics, each with `active_subscribers` (None without counts)."""
    topics = Topic.objects.filter(is_active=True).order_by("order", "id")
    if with_counts:
        return with_active_subscribers(topics)
    return topics.annotate(active_subscribers=Value(None, output_field=models.IntegerField()))


def posts_for_token(
    *, token: ApiToken, status: str | None = None, topic: str | None = None, since=None
) -> QuerySet[Post]:
    posts = Post.objects.filter(created_by_token=token)
    if status:
        posts = posts.filter(status=status)
    if topic:
        posts = posts.filter(topics__slug=topic).distinct()
    if since is not None:
        posts = posts.filter(created_at__gte=since)
    return posts.prefetch_related("topics").order_by("-created_at", "-id")


def post_with_progress(post: Post, *, with_stats: bool) -> Post:
    """The post with `counters` and `estimated_finish` set, as PostOutput renders them; both
    None without statistics."""
    post.counters = post_counters_for_api(post) if with_stats else None
    post.estimated_finish = post_estimated_finish(post) if with_stats else None
    post.cost = post_cost_report(post) if with_stats else None
    return post


def post_counters_for_api(post: Post) -> dict[str, int]:
    """Planned reach before fan-out; the engine's counters once deliveries exist."""
    if post.status in publishing.PUBLISHABLE:
        return {"reach": reach_count(t.pk for t in post.topics.all()), **ZERO_COUNTERS}
    counters = progress.post_counters(post)
    return {key: int(counters.get(key) or 0) for key in ("reach", *ZERO_COUNTERS)}


def post_estimated_finish(post: Post):
    if post.status != Post.Status.SENDING:
        return None
    return progress.estimated_finish(post)
