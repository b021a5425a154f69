"""The editors' dashboard: who is subscribed, how that changes, and how posts did.

Every number is one set-based query (GROUP BY, COUNT … FILTER, a truncation to the week):
nothing loops over subscribers. Sources:

- subscribers per topic now: today's `TopicCount` rows when beat took them in the last
  FRESH_COUNT (it does every 5 minutes), otherwise counted live
  (subscribers.delivery.audience.active_subscribers_per_topic); the total now is always live;
- trend: `TopicCount`, one row per topic per day written by a beat task (the ledger cannot
  rebuild per-topic history: see the model); the current week uses the live count;
- joins and leaves per week: the consent ledger. A join is a consent (chat) or an import that
  makes someone a subscriber who was not one; a leave is "cancellami" or an erasure of someone
  who was. Re-confirming, or erasing after having left, is not counted twice. Days before
  today come from beat's last count (`flows_snapshot`, a DashboardFigure), today is live;
- posts: their delivery counters (subscribers.delivery.counters); leaves within 24 hours among
  the people a post was sent to, kept once the 24 hours are over (they cannot change).

What grows with the audience is counted by beat; what changes today is counted when the page
is opened (bench/dashboard.py measures both).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from subscribers.delivery.audience import active_subscribers_per_topic
from subscribers.delivery.counters import active_subscribers, post_count_details, totals
from subscribers.models import (
    CONSENT_STATE_KINDS,
    ConsentEvent,
    DashboardFigure,
    Delivery,
    TopicCount,
)
from topics.models import Post, Topic

WEEKS = 26
POSTS = 10
LEAVE_WINDOW = timedelta(hours=24)
# Today's per-topic counts by beat (every 5 minutes) stand for "now" while this fresh.
FRESH_COUNT = timedelta(minutes=15)
FLOWS_KEY = "flows"  # DashboardFigure: joins and leaves per day before today, by beat

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
    """Exact, from the count the subscriber table's triggers keep (a million rows counted
    took 0.05–0.4 s)."""
    return active_subscribers()


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


def _count_rows(since: date) -> list[tuple[date, int | None, int, datetime]]:
    rows = TopicCount.objects.filter(day__gte=since).order_by("day")
    return list(rows.values_list("day", "topic_id", "subscribers", "taken_at"))


def topic_counts_now(
    now: datetime, rows: list | None = None
) -> tuple[dict[int, int], datetime | None]:
    """{topic: active people} and when they were counted: today's beat count while fresh
    (None: counted live now, 0.6 s at 1.1M subscribers). `rows`: _count_rows from today or
    earlier."""
    today = timezone.localtime(now).date()
    rows = [row for row in (_count_rows(today) if rows is None else rows) if row[0] == today]
    taken = next((at for _day, topic, _n, at in rows if topic is None), None)
    if taken is None or not now - FRESH_COUNT <= taken <= now:
        return active_subscribers_per_topic(), None
    return {topic: n for _day, topic, n, _at in rows if topic is not None}, taken


def weekly_counts(
    weeks: list[date], rows: list | None = None
) -> dict[int | None, list[int | None]]:
    """For each topic (None: everyone), the last daily count of each week; None where no count
    was taken that week. `rows`: _count_rows from weeks[0]."""
    index = {week: i for i, week in enumerate(weeks)}
    series: dict[int | None, list[int | None]] = {}
    for day, topic_id, n, _taken in _count_rows(weeks[0]) if rows is None else rows:
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


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def _daily_flows(start: datetime, end: datetime | None = None) -> dict[date, list[int]]:
    """{local day: [joins, leaves]} for events from `start` (until `end`)."""
    events = _state_changes().filter(at__gte=start)
    if end is not None:
        events = events.filter(at__lt=end)
    rows = (
        events.annotate(day=TruncDate("at"))
        .values_list("day")
        .annotate(  # as joins() and leaves(), in one pass over the ledger
            joined=Count("id", filter=Q(kind__in=IN) & ~Q(previous__in=IN)),
            left=Count("id", filter=Q(kind__in=OUT, previous__in=IN)),
        )
        .order_by()
    )
    return {day: [joined, left] for day, joined, left in rows if joined or left}


def flows_snapshot(
    now: datetime | None = None, weeks: int = WEEKS, force: bool = False
) -> int | None:
    """Beat: joins and leaves per day of the dashboard's weeks, until today began, kept in the
    database for the page (the ledger query grows with the audience: 0.9 s at 1.1M people).
    Once a day: the ledger only grows at the present (imports included), so a day that is
    over keeps its figures. Returns the days with any, None when today's count exists."""
    now = now or timezone.now()
    today = timezone.localtime(now).date()
    since = weeks_until(now, weeks)[0]
    kept = _figures([FLOWS_KEY]).get(FLOWS_KEY)
    fresh = kept and kept["until"] == today.isoformat() and kept["since"] <= since.isoformat()
    if fresh and not force:
        return None
    days = _daily_flows(_midnight(since), _midnight(today))
    value = {
        "since": since.isoformat(),
        "until": today.isoformat(),
        "days": {day.isoformat(): counts for day, counts in days.items()},
    }
    DashboardFigure.objects.update_or_create(
        key=FLOWS_KEY, defaults={"value": value, "taken_at": now}
    )
    return len(days)


def _figures(keys: list[str]) -> dict:
    return dict(DashboardFigure.objects.filter(key__in=keys).values_list("key", "value"))


def joins_and_leaves_per_week(
    weeks: list[date], now: datetime | None = None, figures: dict | None = None
) -> list[tuple[date, int, int]]:
    """Days before today from beat's count when it covers them; today (or all, without a
    count) from the ledger now. `figures`: _figures() with FLOWS_KEY."""
    now = now or timezone.now()
    today = timezone.localtime(now).date()
    stored = (_figures([FLOWS_KEY]) if figures is None else figures).get(FLOWS_KEY)
    if stored and stored["until"] == today.isoformat() and stored["since"] <= weeks[0].isoformat():
        days = {date.fromisoformat(day): v for day, v in stored["days"].items()}
        days = {day: v for day, v in days.items() if day >= weeks[0]}
        days.update(_daily_flows(_midnight(today)))
    else:
        days = _daily_flows(_midnight(weeks[0]))
    counts: dict[date, list[int]] = {}
    for day, (joined, left) in days.items():
        week = counts.setdefault(week_start(day), [0, 0])
        week[0] += joined
        week[1] += left
    return [(w, *counts.get(w, [0, 0])) for w in weeks]


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


def _leaves_key(post: Post) -> str:
    return f"leaves24:{post.pk}:{post.published_at.timestamp():.0f}"


def _leaves_within_24h(post: Post) -> int:
    sent_to = Delivery.objects.filter(post=post, subscriber=OuterRef("subscriber"))
    return (
        leaves()
        .filter(at__gte=post.published_at, at__lt=post.published_at + LEAVE_WINDOW)
        .filter(Exists(sent_to))
        .count()
    )


def _recent(count: int = POSTS) -> list[Post]:
    return list(Post.objects.filter(published_at__isnull=False).order_by("-published_at")[:count])


def recent_posts(
    now: datetime | None = None,
    count: int = POSTS,
    posts: list[Post] | None = None,
    figures: dict | None = None,
) -> list[PostResult]:
    """Counts from the posts' delivery counters (one query); leaves within 24 hours counted
    while the 24 hours run, then kept (a DashboardFigure): they no longer change. `posts`:
    _recent(count); `figures`: _figures() with their keys."""
    now = now or timezone.now()
    posts = _recent(count) if posts is None else posts
    details = post_count_details(post.pk for post in posts)
    keys = [_leaves_key(post) for post in posts]
    kept = _figures(keys) if figures is None else figures
    final = []
    results = []
    for post in posts:  # at most `count` posts, one small indexed query each at most
        counted = totals(details[post.pk])
        complete = post.published_at + LEAVE_WINDOW <= now
        left = kept.get(_leaves_key(post)) if complete else None
        if left is None:
            left = _leaves_within_24h(post)
            if complete:
                final.append(DashboardFigure(key=_leaves_key(post), value=left, taken_at=now))
        results.append(
            PostResult(
                post=post,
                reach=counted["reach"],
                delivered=counted[Delivery.Status.DELIVERED] + counted[Delivery.Status.READ],
                read=counted[Delivery.Status.READ],
                failed=counted[Delivery.Status.FAILED],
                leaves_24h=left,
                window_complete=complete,
            )
        )
    if final:  # two pages at once write the same figure: the second is ignored
        DashboardFigure.objects.bulk_create(final, ignore_conflicts=True)
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
    # When the per-topic "now" was counted by beat; None: counted as the page opened.
    topics_counted_at: datetime | None = None


def dashboard(now: datetime | None = None, weeks: int = WEEKS) -> Dashboard:
    now = now or timezone.now()
    mondays = weeks_until(now, weeks)
    rows = _count_rows(mondays[0])
    per_topic, counted_at = topic_counts_now(now, rows)
    weekly = weekly_counts(mondays, rows)
    posts = _recent()
    figures = _figures([FLOWS_KEY, *(_leaves_key(post) for post in posts)])
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
        joins_leaves=joins_and_leaves_per_week(mondays, now, figures),
        posts=recent_posts(now, posts=posts, figures=figures),
        counts_since=first_count_day(),
        topics_counted_at=counted_at,
    )
