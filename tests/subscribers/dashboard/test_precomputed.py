"""What the dashboard keeps counted (by beat, or once final) gives the same page as counting
everything live, and what changes today is still counted live."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from subscribers.dashboard import queries
from subscribers.dashboard.queries import dashboard, flows_snapshot, take_snapshot
from subscribers.models import ConsentEvent, DashboardFigure, Subscriber, TopicCount
from tests.factories import make_delivery, make_post, make_subscriber, make_topic

pytestmark = pytest.mark.django_db


def ledger(subscriber, kind, when) -> None:
    ConsentEvent.objects.create(subscriber=subscriber, kind=kind, at=when, source="chat")


@pytest.fixture
def town():
    """People who joined and left over the last weeks, and a post sent three days ago."""
    now = timezone.now()
    a, b = make_topic(slug="scuole"), make_topic(slug="rifiuti")
    people = [make_subscriber(topics=[a] if n % 2 else [a, b]) for n in range(8)]
    for n, person in enumerate(people):
        ledger(person, "consent", now - timedelta(days=3 * n + 5))
    gone = people[:3]
    for n, person in enumerate(gone):
        ledger(person, "leave", now - timedelta(days=3) + timedelta(hours=n + 1))
        Subscriber.objects.filter(pk=person.pk).update(status=Subscriber.Status.LEFT)
    post = make_post(topics=[a], status="sent", published_at=now - timedelta(days=3))
    for person in people:
        make_delivery(post=post, subscriber=person, status="read")
    return {"a": a, "b": b, "people": people, "post": post}


def page(now):
    data = dashboard(now)
    return {
        "active": data.active_now,
        "topics": {row.topic.slug: row.now for row in data.topics},
        "weekly": data.joins_leaves,
        "posts": [(r.post.pk, r.reach, r.delivered, r.read, r.leaves_24h) for r in data.posts],
    }


def test_the_page_from_beats_counts_equals_the_page_counted_live(town):
    now = timezone.now()
    live = page(now)
    assert not DashboardFigure.objects.filter(key=queries.FLOWS_KEY).exists()
    flows_snapshot(now)
    take_snapshot(now)
    assert page(now) == live
    assert dashboard(now).topics_counted_at == now
    assert sum(leaves for _w, _j, leaves in live["weekly"]) == 3
    assert live["posts"][0][1:] == (8, 8, 8, 3)  # the three left within 24 hours of it


def test_todays_joins_and_leaves_are_counted_when_the_page_opens(town):
    now = timezone.now()
    flows_snapshot(now)
    before = {week: (j, lv) for week, j, lv in dashboard(now).joins_leaves}
    newcomer = make_subscriber(topics=[town["a"]])
    ledger(newcomer, "consent", now + timedelta(seconds=1))
    ledger(town["people"][5], "leave", now + timedelta(seconds=2))
    later = now + timedelta(seconds=3)
    after = {week: (j, lv) for week, j, lv in dashboard(later).joins_leaves}
    this_week = queries.week_start(later)
    assert after[this_week] == (before[this_week][0] + 1, before[this_week][1] + 1)


def test_a_count_from_an_earlier_day_or_an_old_count_is_not_used(town):
    now = timezone.now()
    flows_snapshot(now - timedelta(days=1))  # yesterday's: does not cover yesterday
    ledger(town["people"][6], "leave", now - timedelta(hours=23, minutes=59))
    take_snapshot(now - queries.FRESH_COUNT - timedelta(minutes=1))
    make_subscriber(topics=[town["b"]])
    data = dashboard(now)
    assert data.topics_counted_at is None
    now_by_topic = {row.topic.slug: row.now for row in data.topics}
    assert (now_by_topic["scuole"], now_by_topic["rifiuti"]) == (5, 3)  # the newcomer too
    assert sum(lv for _w, _j, lv in data.joins_leaves) == 4


def test_a_posts_leaves_are_kept_once_its_24_hours_are_over(town):
    now = timezone.now()
    assert dashboard(now).posts[0].leaves_24h == 3
    kept = DashboardFigure.objects.get(key__startswith=f"leaves24:{town['post'].pk}:")
    assert kept.value == 3
    DashboardFigure.objects.filter(pk=kept.pk).update(value=5)  # read from there from now on
    assert dashboard(now).posts[0].leaves_24h == 5


def test_a_post_within_its_24_hours_is_counted_live(town):
    now = timezone.now()
    post = make_post(topics=[town["a"]], status="sending", published_at=now - timedelta(hours=1))
    person = town["people"][7]
    make_delivery(post=post, subscriber=person, status="delivered")
    ledger(person, "leave", now - timedelta(minutes=5))
    row = next(r for r in dashboard(now).posts if r.post == post)
    assert (row.leaves_24h, row.window_complete) == (1, False)
    assert not DashboardFigure.objects.filter(key__startswith=f"leaves24:{post.pk}:").exists()


def test_beat_takes_the_counts_every_five_minutes(settings, town):
    from subscribers.tasks import count_subscribers

    entry = settings.CELERY_BEAT_SCHEDULE["subscribers-count-subscribers"]
    assert entry["schedule"].minute == set(range(0, 60, 5))
    count_subscribers.delay()
    assert DashboardFigure.objects.filter(key=queries.FLOWS_KEY).exists()
    assert TopicCount.objects.filter(day=timezone.localdate(), topic=None).get().subscribers == 5


def test_the_days_before_today_are_counted_once_a_day(town):
    now = timezone.now()
    assert flows_snapshot(now) > 0
    ledger(town["people"][4], "leave", now - timedelta(days=1))  # as if written yesterday
    assert flows_snapshot(now + timedelta(minutes=5)) is None  # today's count stands
    kept = DashboardFigure.objects.get(key=queries.FLOWS_KEY)
    assert kept.taken_at == now
    assert flows_snapshot(now, force=True) > 0
