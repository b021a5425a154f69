"""The editors' dashboard: who is subscribed, how that changes, and how posts did.

Every number is one set-based query (GROUP BY, COUNT … FILTER, a truncation to the week):
nothing loops over subscribers. Sources:

- subscribers per topic now: subscribers.delivery.audience.active_subscribers_per_topic, the
  count the topic admin and the API show too;
- trend: `TopicCount`, one row per topic per day written by a beat task (the ledger cannot
  rebuild per-topic history: see the model); the current week uses the live count;
- joins and leaves per week: the consent ledger. A join is a consent (chat) or an import that
  makes someone a subscriber who was not one; a leave is "cancellami" or an erasure of someone
  who was. Re-confirming, or erasing after having left, is not counted twice;
- posts: their delivery rows (GROUP BY post); leaves within 24 hours among the people a post
  was sent to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, TruncWeek
from django.utils import timezone

from subscribers.delivery.audience import active_subscribers_per_topic
from subscribers.delivery.results import outcome_counts
from subscribers.models import (
    CONSENT_STATE_KINDS,
    ConsentEvent,
    Delivery,
    Subscriber,
    TopicCount,
)
from topics.models import Post, Topic

WEEKS = 26
POSTS = 10
LEAVE_WINDOW = timedelta(hours=24)

IN = [ConsentEvent.Kind.CONSENT, ConsentEvent.Kind.IMPORT]
OUT = [ConsentEvent.Kind.LEAVE, ConsentEvent.Kind.ERASURE]


def week_start(moment: datetime | date) -> date:
    day = timezone.localtime(moment).date() if isinstance(moment, datetime) else moment
    return day - timedelta(days=day.weekday())


def weeks_until(now: datetime, count: int = WEEKS) -> list[date]:
    """Mondays of the last `count` weeks, the current one last."""
    this_week = week_start(now)
    return [this_week - timedelta(weeks=n) for n in range(count - 1, -1, -1)]


# --- Subscribers now and their daily counts ---------------------------------------------------


def active_total() -> int:
    return Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).count()


def take_snapshot(now: datetime | None = None) -> int:
    """Write today's counts (replacing earlier ones of the same day). Returns rows written."""
    now = now or timezone.now()
    day = timezone.localtime(now).date()
    rows = [
        TopicCount(day=day, topic_id=topic_id, subscribers=n, taken_at=now)
        for topic_id, n in active_subscribers_per_topic().items()
    ]
    rows.append(TopicCount(day=day, topic=None, subscribers=active_total(), taken_at=now))
    with transaction.atomic():
        TopicCount.objects.filter(day=day).delete()
        TopicCount.objects.bulk_create(rows)
    return len(rows)


def weekly_counts(weeks: list[date]) -> dict[int | None, list[int | None]]:
    """For each topic (None: everyone), the last daily count of each week; None where no count
    was taken that week."""
    index = {week: i for i, week in enumerate(weeks)}
    series: dict[int | None, list[int | None]] = {}
    rows = TopicCount.objects.filter(day__gte=weeks[0]).order_by("day")
    for day, topic_id, n in rows.values_list("day", "topic_id", "subscribers"):
        values = series.setdefault(topic_id, [None] * len(weeks))
        values[index[week_start(day)]] = n  # later days of the week overwrite earlier ones
    return series


def first_count_day() -> date | None:
    return TopicCount.objects.order_by("day").values_list("day", flat=True).first()


# --- Joins and leaves from the consent ledger ------------------------------------------------


def _state_changes():
    """Ledger events that can change whether someone is a subscriber, each with the kind of the
    same person's previous such event ('' if none)."""
    kinds = CONSENT_STATE_KINDS
    previous = (
        ConsentEvent.objects.filter(subscriber=OuterRef("subscriber"), kind__in=kinds)
        .filter(Q(at__lt=OuterRef("at")) | Q(at=OuterRef("at"), id__lt=OuterRef("id")))
        .order_by("-at", "-id")
        .values("kind")[:1]
    )
    return ConsentEvent.objects.filter(kind__in=kinds, subscriber__isnull=False).annotate(
        previous=Coalesce(Subquery(previous), Value(""))
    )


def joins():
    return _state_changes().filter(kind__in=IN).exclude(previous__in=IN)


def leaves():
    return _state_changes().filter(kind__in=OUT, previous__in=IN)


def joins_and_leaves_per_week(weeks: list[date]) -> list[tuple[date, int, int]]:
    start = timezone.make_aware(datetime.combine(weeks[0], datetime.min.time()))
    counts: dict[tuple[str, date], int] = {}
    for name, events in (("joins", joins()), ("leaves", leaves())):
        rows = (
            events.filter(at__gte=start)
            .annotate(week=TruncWeek("at"))
            .values_list("week")
            .annotate(n=Count("id"))
            .order_by()
        )
        for week, n in rows:
            counts[(name, week_start(week))] = n
    return [(w, counts.get(("joins", w), 0), counts.get(("leaves", w), 0)) for w in weeks]


# --- Posts -----------------------------------------------------------------------------------


@dataclass
class PostResult:
    post: Post
    reach: int
    delivered: int
    read: int
    failed: int
    leaves_24h: int
    window_complete: bool

    @property
    def delivered_rate(self) -> float | None:
        return self.delivered / self.reach if self.reach else None

    @property
    def read_rate(self) -> float | None:
        return self.read / self.reach if self.reach else None


def recent_posts(now: datetime | None = None, count: int = POSTS) -> list[PostResult]:
    now = now or timezone.now()
    posts = list(Post.objects.filter(published_at__isnull=False).order_by("-published_at")[:count])
    counters = {
        row["post_id"]: row
        for row in Delivery.objects.filter(post__in=posts)
        .values("post_id")
        .annotate(reach=Count("id"), **outcome_counts())
        .order_by()
    }
    results = []
    for post in posts:  # at most `count` posts, one small indexed query each
        row = counters.get(post.pk, {})
        sent_to = Delivery.objects.filter(post=post, subscriber=OuterRef("subscriber"))
        left = (
            leaves()
            .filter(at__gte=post.published_at, at__lt=post.published_at + LEAVE_WINDOW)
            .filter(Exists(sent_to))
            .count()
        )
        results.append(
            PostResult(
                post=post,
                reach=row.get("reach", 0),
                delivered=row.get("delivered", 0),
                read=row.get("read", 0),
                failed=row.get("failed", 0),
                leaves_24h=left,
                window_complete=post.published_at + LEAVE_WINDOW <= now,
            )
        )
    return results


# --- Everything the page shows ---------------------------------------------------------------


@dataclass
class TopicRow:
    topic: Topic
    now: int
    weekly: list[int | None]

    @property
    def four_weeks_ago(self) -> int | None:
        return self.weekly[-5] if len(self.weekly) >= 5 else None

    @property
    def change(self) -> int | None:
        return None if self.four_weeks_ago is None else self.now - self.four_weeks_ago


@dataclass
class Dashboard:
    weeks: list[date]
    active_now: int
    total_weekly: list[int | None]
    topics: list[TopicRow]
    joins_leaves: list[tuple[date, int, int]]
    posts: list[PostResult]
    counts_since: date | None


def dashboard(now: datetime | None = None, weeks: int = WEEKS) -> Dashboard:
    now = now or timezone.now()
    mondays = weeks_until(now, weeks)
    per_topic = active_subscribers_per_topic()
    weekly = weekly_counts(mondays)
    active_now = active_total()
    total = weekly.get(None, [None] * len(mondays))
    topics = []
    for topic in Topic.objects.all():
        n = per_topic.get(topic.pk, 0)
        if not topic.is_active and not n:
            continue
        values = weekly.get(topic.pk, [None] * len(mondays))
        # A day's counts omit topics nobody had: 0, not "unknown", when that day was counted.
        values = [
            0 if v is None and t is not None else v for v, t in zip(values, total, strict=True)
        ]
        topics.append(TopicRow(topic=topic, now=n, weekly=[*values[:-1], n]))
    return Dashboard(
        weeks=mondays,
        active_now=active_now,
        total_weekly=[*total[:-1], active_now],
        topics=topics,
        joins_leaves=joins_and_leaves_per_week(mondays),
        posts=recent_posts(now),
        counts_since=first_count_day(),
    )
