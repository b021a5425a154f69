"""Feeds from the admin: a beat entry per feed, clear refusals, a button to poll now."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from subscribers.feeds.models import Feed
from tests.factories import make_topic
from tests.subscribers.feeds.helpers import fixture, make_feed
from topics.models import Post

pytestmark = pytest.mark.django_db


def add_feed(admin_client, **fields):
    topic = make_topic()
    data = {
        "name": "Notizie del Comune",
        "url": "https://www.comune.example.it/feed.xml",
        "kind": "news",
        "topics": [topic.pk],
        "mode": "draft",
        "poll_minutes": 10,
        "is_active": "on",
        "items-TOTAL_FORMS": 0,
        "items-INITIAL_FORMS": 0,
    }
    return admin_client.post(reverse("admin:feeds_feed_add"), data | fields)


def test_a_feed_added_in_the_admin_polls_on_its_own_beat_schedule(admin_client):
    response = add_feed(admin_client)
    assert response.status_code == 302
    feed = Feed.objects.get()
    task = PeriodicTask.objects.get(pk=feed.periodic_task_id)
    assert task.task == "banditore.feeds.poll_feed" and task.args == f"[{feed.pk}]"
    assert task.interval.every == 10 and task.interval.period == "minutes" and task.enabled
    # Made inactive: the schedule is off; deleted: the schedule goes too.
    data = {"is_active": "", "poll_minutes": 30}
    admin_client.post(reverse("admin:feeds_feed_change", args=[feed.pk]), _form(feed) | data)
    task.refresh_from_db()
    assert not task.enabled and task.interval.every == 30
    admin_client.post(reverse("admin:feeds_feed_delete", args=[feed.pk]), {"post": "yes"})
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()


def _form(feed: Feed) -> dict:
    return {
        "name": feed.name,
        "url": feed.url,
        "kind": feed.kind,
        "topics": [t.pk for t in feed.topics.all()],
        "mode": feed.mode,
        "poll_minutes": feed.poll_minutes,
        "is_active": "on" if feed.is_active else "",
        "items-TOTAL_FORMS": 0,
        "items-INITIAL_FORMS": 0,
    }


def test_an_alert_feed_without_the_councils_area_is_refused_with_the_reason(admin_client, settings):
    settings.BANDITORE_CAP_AREA_CODES, settings.BANDITORE_CAP_AREA_POLYGON = [], ""
    response = add_feed(admin_client, kind="cap")
    assert response.status_code == 200
    assert "BANDITORE_CAP_AREA_CODES" in response.content.decode()
    assert not Feed.objects.exists()


def test_poll_now_shows_what_came_in(admin_client, feed_server):
    feed = make_feed(feed_server.serve("/n.rss", fixture("comune-news.rss")))
    response = admin_client.post(
        reverse("admin:feeds_feed_changelist"),
        {"action": "poll_now", "_selected_action": [feed.pk]},
        follow=True,
    )
    assert "2 nuovi post" in response.content.decode()  # the council's language
    assert Post.objects.count() == 2
    page = admin_client.get(reverse("admin:feeds_feed_change", args=[feed.pk])).content.decode()
    assert "Raccolta differenziata" in page  # the items taken, each linked to its post


def test_bad_alert_settings_stop_the_start_up_checks(settings):
    settings.BANDITORE_CAP_AREA_POLYGON = "45.9,12.6 46.0"
    settings.BANDITORE_CAP_URGENT = "severity=Terrible"
    ids = {message.id for message in run_checks()}
    assert {"feeds.E001", "feeds.E002"} <= ids
