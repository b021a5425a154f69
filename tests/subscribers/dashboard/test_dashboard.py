"""The dashboard's numbers from a known data set, its daily counts, its page and its charts."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from django.conf import settings
from django.utils import timezone, translation

from subscribers.dashboard import charts
from subscribers.dashboard.queries import dashboard, take_snapshot, week_start, weeks_until
from subscribers.models import ConsentEvent, Delivery, Subscriber, TopicCount
from tests.factories import log_in_as, make_delivery, make_post, make_subscriber, make_topic

pytestmark = pytest.mark.django_db

URL = "/admin/subscribers/subscriber/dashboard/"
# A Wednesday; its week starts on Monday 23 November 2026.
NOW = timezone.make_aware(datetime(2026, 11, 25, 12, 0))
W0, W1, W2 = date(2026, 11, 23), date(2026, 11, 16), date(2026, 11, 9)


def at(week: date, days: int = 0, hour: int = 10) -> datetime:
    day = week + timedelta(days=days)
    return timezone.make_aware(datetime(day.year, day.month, day.day, hour))


def ledger(subscriber, kind, when, **extra) -> None:
    ConsentEvent.objects.create(subscriber=subscriber, kind=kind, at=when, source="chat", **extra)


@pytest.fixture
def world():
    """Three active people, others who must not count, their ledger, two posts."""
    a = make_topic(slug="scuole")
    b = make_topic(slug="rifiuti")
    s1 = make_subscriber(topics=[a, b])
    s2 = make_subscriber(topics=[a])
    s3 = make_subscriber(topics=[b])
    s4 = make_subscriber(status=Subscriber.Status.LEFT)
    make_subscriber(status=Subscriber.Status.PENDING, topics=[a])
    make_subscriber(status=Subscriber.Status.UNREACHABLE, topics=[b])
    s7 = make_subscriber(wa_id=None, status=Subscriber.Status.ERASED)
    s8 = make_subscriber(status=Subscriber.Status.LEFT)

    ledger(s1, "consent", at(W2, 1))
    ledger(s2, "consent", at(W1, 0))
    ledger(s2, "consent", at(W1, 2))  # wrote ISCRIVIMI again: not a second join
    ledger(s3, "import", at(W1, 3))
    ledger(s4, "consent", at(W2, 2))
    ledger(s4, "leave", at(W1, 4, hour=15))
    ledger(s4, "erasure", at(W0, 0))  # erased after leaving: not a second leave
    ledger(s7, "consent", at(W2, 3))
    ledger(s7, "erasure", at(W0, 1))  # erased while subscribed: a leave
    ledger(s8, "consent", at(W2 - timedelta(weeks=30)))  # before the window
    ledger(s8, "leave", at(W1, 4, hour=16))
    ledger(s8, "leave", at(W0, 1))  # already gone
    ledger(s1, "topic_added", at(W2, 1), topic=a)  # not a join

    post = make_post(topics=[a, b], status="sent", published_at=at(W1, 4, hour=9))
    for person, status in ((s1, "read"), (s2, "delivered"), (s3, "failed"), (s4, "sent")):
        make_delivery(post=post, subscriber=person, status=status)
    recent = make_post(topics=[a], status="sending", published_at=NOW - timedelta(hours=2))
    make_post(topics=[a])  # a draft: not listed
    return {"a": a, "b": b, "post": post, "recent": recent}


def test_weeks_start_on_monday_in_local_time():
    assert week_start(NOW) == W0
    assert weeks_until(NOW, 3) == [W2, W1, W0]


def test_subscribers_per_topic_count_only_active_people(world):
    data = dashboard(NOW)

    assert data.active_now == 3
    now = {row.topic.slug: row.now for row in data.topics}
    assert now["scuole"] == 2 and now["rifiuti"] == 2


def test_joins_and_leaves_per_week_follow_the_ledger(world):
    weekly = {week: (joins, leaves) for week, joins, leaves in dashboard(NOW).joins_leaves}

    assert weekly[W2] == (3, 0)  # s1, s4, s7 consented
    assert weekly[W1] == (2, 2)  # s2 (once), s3 imported; s4 and s8 left
    assert weekly[W0] == (0, 1)  # s7 erased while subscribed
    assert sum(j for j, _ in weekly.values()) == 5


def test_posts_show_reach_delivery_read_and_leaves_within_24_hours(world):
    rows = {row.post.pk: row for row in dashboard(NOW).posts}

    assert list(rows) == [world["recent"].pk, world["post"].pk]  # newest first, no draft
    sent = rows[world["post"].pk]
    assert (sent.reach, sent.delivered, sent.read, sent.failed) == (4, 2, 1, 1)
    assert sent.delivered_rate == 0.5 and sent.read_rate == 0.25
    # s4 got the post and left 6 hours later; s8 left too, but had not been sent it.
    assert sent.leaves_24h == 1 and sent.window_complete
    recent = rows[world["recent"].pk]
    assert recent.reach == 0 and recent.delivered_rate is None
    assert not recent.window_complete


def test_a_leave_more_than_24_hours_after_a_post_is_not_counted(world):
    person = make_subscriber()
    ledger(person, "consent", at(W2))
    make_delivery(post=world["post"], subscriber=person, status=Delivery.Status.READ)
    ledger(person, "leave", world["post"].published_at + timedelta(hours=25))

    sent = next(row for row in dashboard(NOW).posts if row.post == world["post"])

    assert sent.leaves_24h == 1


def test_the_trend_takes_each_weeks_last_count_and_ends_with_now(world):
    a, b = world["a"], world["b"]
    for day, topic, n in [
        (W2 + timedelta(days=2), a, 1),
        (W2 + timedelta(days=2), None, 2),
        (W2 + timedelta(days=5), a, 2),  # later in the same week: wins
        (W2 + timedelta(days=5), None, 3),
        (W1 + timedelta(days=6), a, 3),
        (W1 + timedelta(days=6), b, 1),
        (W1 + timedelta(days=6), None, 4),
    ]:
        TopicCount.objects.create(day=day, topic=topic, subscribers=n, taken_at=NOW)

    data = dashboard(NOW)

    assert data.total_weekly[-3:] == [3, 4, 3]  # the last point is the live count
    assert data.total_weekly[0] is None  # before counting started
    rows = {row.topic.slug: row for row in data.topics}
    assert rows["scuole"].weekly[-3:] == [2, 3, 2]
    assert rows["rifiuti"].weekly[-3:] == [0, 1, 2]  # counted that day, nobody had it: 0
    assert data.counts_since == W2 + timedelta(days=2)


def test_taking_the_daily_count_twice_keeps_one_row_per_topic(world):
    take_snapshot(NOW)
    make_subscriber(topics=[world["a"]])
    take_snapshot(NOW + timedelta(hours=1))

    today = TopicCount.objects.filter(day=NOW.date())
    assert today.get(topic=None).subscribers == 4
    assert today.get(topic=world["a"]).subscribers == 3
    assert today.get(topic=world["b"]).subscribers == 2
    assert today.count() == 3


def test_the_number_of_queries_does_not_grow_with_subscribers(world, django_assert_max_num_queries):
    for _ in range(30):
        make_subscriber(topics=[world["a"], world["b"]])

    with django_assert_max_num_queries(12):
        dashboard(NOW)


def test_the_page_renders_numbers_and_svg_charts_for_staff(client, world):
    log_in_as(client, "Redattore")

    page = client.get(URL)

    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("<svg") >= 2  # the trend and the weekly joins and leaves
    assert 'data-testid="active-now">3<' in html
    assert "Iscrizioni e cancellazioni per settimana" in html
    assert world["post"].title in html
    assert "393" not in html  # aggregate numbers only: no phone number on the page


def test_the_admin_home_links_to_the_dashboard(client, world):
    log_in_as(client, "Redattore")

    assert URL in client.get("/admin/").content.decode()


def test_people_who_are_not_staff_are_refused(client, world):
    assert client.get(URL).status_code == 302  # to the login page
    log_in_as(client, None, staff=False)
    page = client.get(URL)
    assert page.status_code == 302 and "/admin/login/" in page["Location"]


def test_charts_escape_their_text_and_round_the_axis():
    svg = charts.line_chart(["<b>"], [charts.Series("a&b", [5])], title="<script>")

    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "a&amp;b" in svg
    assert [charts.nice_ceiling(v) for v in (0, 3, 7, 10, 11, 180, 5001)] == [
        1, 5, 10, 10, 20, 200, 10000
    ]  # fmt: skip


def test_a_line_with_missing_weeks_is_drawn_in_pieces():
    svg = charts.line_chart(list("abcde"), [charts.Series("x", [1, 2, None, 3, 4])], title="t")

    assert svg.count("<polyline") == 2
    assert svg.count("<circle") == 4


def test_the_page_speaks_english_to_an_english_browser(client, world):
    log_in_as(client, "Redattore")

    try:
        page = client.get(URL, HTTP_ACCEPT_LANGUAGE="en")
    finally:
        translation.activate(settings.LANGUAGE_CODE)  # the request left English active

    assert "Subscribers per topic" in page.content.decode()


def test_beat_counts_subscribers_every_hour(world):
    from subscribers.tasks import count_subscribers

    entry = settings.CELERY_BEAT_SCHEDULE["subscribers-count-subscribers"]
    assert entry["task"] == count_subscribers.name

    count_subscribers.delay()

    assert TopicCount.objects.get(day=timezone.localdate(), topic=None).subscribers == 3
