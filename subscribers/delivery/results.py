"""What happened to a post after it went out: totals, results by topic, failures, recipients.

Every figure is an aggregate computed by the database over the post's delivery rows; the
recipient list is a queryset the admin pages through, so no screen ever holds the audience.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, F, Q, QuerySet

from channel.graph.account import pause_state
from channel.graph.errors import Handling, explain, handling_for
from subscribers.delivery.counters import failed_by_code, post_count_details, totals
from subscribers.delivery.progress import estimated_finish
from subscribers.delivery.quiet import quiet_note, quiet_until
from subscribers.models import Delivery
from topics.models import Post, Topic

DONE = ("sent", "delivered", "read", "failed", "cancelled")
# A read message was delivered first, even when Meta's "delivered" status never reached us.
DELIVERED = (Delivery.Status.DELIVERED, Delivery.Status.READ)


def outcome_counts() -> dict[str, Count]:
    """delivered (read included), read and failed: the same tallies on every results screen."""
    return {
        "delivered": Count("id", filter=Q(status__in=DELIVERED)),
        "read": Count("id", filter=Q(status=Delivery.Status.READ)),
        "failed": Count("id", filter=Q(status=Delivery.Status.FAILED)),
    }


def progress_report(post: Post) -> dict:
    """Counters, finish estimate, pause reason and failures grouped by Meta's error code: the
    post's counters are read once (subscribers.delivery.counters), none of its rows."""
    details = post_count_details([post.pk])[post.pk]
    counters = totals(details)
    done = sum(counters[s] for s in DONE)
    paused = pause_state()
    return {
        "status": post.status,
        "counters": counters,
        "percent": round(100 * done / counters["reach"]) if counters["reach"] else 100,
        "finish": estimated_finish(post, counters=counters),
        "paused": paused.reason if paused else "",
        "quiet": quiet_note(quiet_until(urgent=post.is_urgent))
        if post.status == Post.Status.SENDING
        else "",
        "failures": failures_by_error(post, details),
    }


def failures_by_error(post: Post, details: dict | None = None) -> list[dict]:
    """One line per error code, the most frequent first, from the post's counters
    (subscribers.delivery.counters); a code channel.graph.errors does not know shows what Meta
    said about it (one of its rows' texts: Meta's title and details, by delivery_failed_idx)."""
    rows = []
    by_code = failed_by_code(post.pk, details)
    for code, n in sorted(by_code.items(), key=lambda item: -item[1]):
        meta = ""
        if code is not None and handling_for(code) is Handling.UNKNOWN:
            texts = Delivery.objects.filter(
                post=post, status=Delivery.Status.FAILED, last_error_code=code
            ).values_list("last_error_text", flat=True)
            meta = next(iter(texts.order_by()[:1]), "")
        rows.append({"code": code, "count": n, "why": explain(code, meta)})
    return rows


@dataclass(frozen=True)
class TopicResult:
    topic: Topic
    recipients: int
    delivered: int
    read: int
    failed: int

    @property
    def read_rate(self) -> int:
        return round(100 * self.read / self.delivered) if self.delivered else 0


def results_by_topic(post: Post) -> list[TopicResult]:
    """For each of the post's topics: its recipients, delivered, read, failed.

    One GROUP BY over delivery ⋈ subscription (the topics' names come from the post's
    prefetched topics). A person who follows two of the post's topics
    received one message and is counted under both, so the rows may add up to more than the
    post's total. Topics are those the person follows now: someone who left a topic since is
    no longer counted under it (the post's totals still count them).
    """
    rows = (
        Delivery.objects.filter(
            post=post,
            subscriber__subscription__topic__in=post.topics.values("id"),
        )
        .values(topic_id=F("subscriber__subscription__topic_id"))
        .annotate(recipients=Count("id"), **outcome_counts())
        .order_by()
    )
    by_topic = {row.pop("topic_id"): row for row in rows}
    empty = {"recipients": 0, "delivered": 0, "read": 0, "failed": 0}
    topics = sorted(post.topics.all(), key=lambda topic: (topic.order, topic.pk))  # prefetched
    return [TopicResult(topic=topic, **by_topic.get(topic.pk, empty)) for topic in topics]


def post_recipients(post: Post, *, status: str = "") -> QuerySet[Delivery]:
    """The post's deliveries with their person, oldest first; page it, never list() it."""
    rows = Delivery.objects.filter(post=post).select_related("subscriber").order_by("id")
    return rows.filter(status=status) if status else rows
