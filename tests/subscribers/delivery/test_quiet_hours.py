"""Quiet hours (BANDITORE_QUIET_HOURS) against the fake Graph API, with the time set through the
code's own clock (channel.clock.frozen): never by sleeping, never by patching datetime."""

from __future__ import annotations

import os
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured

from channel import clock
from deploy.env import env_quiet_hours
from subscribers.delivery import publishing, sending, sweeper
from subscribers.delivery.progress import estimated_finish
from subscribers.delivery.quiet import finish_after_quiet, quiet_until
from subscribers.delivery.results import progress_report
from subscribers.desk.plan import post_plan
from subscribers.models import Delivery
from tests.factories import make_post, make_subscriber, make_topic
from tests.subscribers.delivery.helpers import ONE_BATCH, callbacks, fast_sending, sending_post
from topics.models import Post

pytestmark = pytest.mark.django_db

ROME = ZoneInfo("Europe/Rome")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=ROME)


@pytest.fixture(autouse=True)
def quiet(settings, redis_conn):
    fast_sending(settings, batch=20)
    settings.BANDITORE_QUIET_HOURS = (time(21), time(8))


@pytest.mark.parametrize(
    "value", ["21-8", "25:00-08:00", "21:00", "21:00-08:00-09:00", "nine-eight", "21:00-21:00"]
)
def test_a_bad_value_stops_the_start_naming_the_variable(monkeypatch, value):
    monkeypatch.setitem(os.environ, "BANDITORE_QUIET_HOURS", value)
    with pytest.raises(ImproperlyConfigured, match="BANDITORE_QUIET_HOURS"):
        env_quiet_hours("BANDITORE_QUIET_HOURS")


def test_values_are_read_as_council_times(monkeypatch):
    monkeypatch.setitem(os.environ, "BANDITORE_QUIET_HOURS", " 21:30 - 07:45 ")
    assert env_quiet_hours("BANDITORE_QUIET_HOURS") == (time(21, 30), time(7, 45))
    monkeypatch.setitem(os.environ, "BANDITORE_QUIET_HOURS", "")
    assert env_quiet_hours("BANDITORE_QUIET_HOURS") is None


def test_quiet_hours_across_midnight_and_within_a_day(settings):
    assert quiet_until(at(1, 20, 59)) is None
    assert quiet_until(at(1, 21)) == at(2, 8)
    assert quiet_until(at(2, 3)) == at(2, 8)
    assert quiet_until(at(2, 8)) is None
    assert quiet_until(at(1, 23), urgent=True) is None
    settings.BANDITORE_QUIET_HOURS = (time(13), time(14))
    assert quiet_until(at(1, 13, 30)) == at(1, 14)
    assert quiet_until(at(1, 14, 30)) is None
    settings.BANDITORE_QUIET_HOURS = None
    assert quiet_until(at(1, 23)) is None


def test_the_finish_estimate_steps_over_quiet_hours():
    # 2 h of sending from 20:00: 1 h before 21:00, the other after 08:00.
    assert finish_after_quiet(at(1, 20), timedelta(hours=2)) == (at(2, 9), at(2, 8))
    assert finish_after_quiet(at(1, 19), timedelta(hours=1)) == (at(1, 20), None)
    # 30 h: 1 h on day 1, 13 h on day 2, 13 h on day 3, the last 3 h on day 4.
    assert finish_after_quiet(at(1, 20), timedelta(hours=30))[0] == at(4, 11)
    assert finish_after_quiet(at(1, 23), timedelta(hours=1), urgent=True) == (at(2, 0), None)


def test_sending_stops_at_the_start_and_resumes_where_it_left_off(fake_graph, template):
    post = sending_post(45)
    with clock.frozen(at(1, 20, 59)):
        sending.drain_post(post.pk, budget_seconds=ONE_BATCH)
    assert len(callbacks(fake_graph)) == 20
    with clock.frozen(at(1, 21)):
        come_back_in = sending.drain_post(post.pk)
        assert sweeper.sweep()["woken"] == 0  # nobody is woken to send in the night
    assert come_back_in == pytest.approx(11 * 3600)  # at 08:00
    assert len(callbacks(fake_graph)) == 20
    assert Delivery.objects.filter(post=post, status="queued").count() == 25
    with clock.frozen(at(2, 8)):
        assert sending.drain_post(post.pk) is None
    counts = callbacks(fake_graph)
    assert len(counts) == 45 and set(counts.values()) == {1}  # nothing lost, nothing twice
    post.refresh_from_db()
    assert post.status == Post.Status.SENT


def test_urgent_posts_ignore_quiet_hours(fake_graph, template):
    topic = make_topic()
    for _ in range(3):
        make_subscriber(topics=[topic])
    post = make_post(topics=[topic], is_urgent=True)
    with clock.frozen(at(1, 23)):
        publishing.post_publish(post=post)
        sending.drain_post(post.pk)
    assert len(callbacks(fake_graph)) == 3


def test_scheduled_posts_due_inside_quiet_hours_wait_for_their_end(fake_graph, template):
    topic = make_topic()
    make_subscriber(topics=[topic])
    waiting = make_post(topics=[topic], title="Normale")
    urgent = make_post(topics=[topic], title="Allerta", is_urgent=True)
    Post.objects.filter(pk__in=[waiting.pk, urgent.pk]).update(
        status=Post.Status.SCHEDULED, send_at=at(1, 22)
    )
    with clock.frozen(at(1, 22, 30)):
        assert publishing.publish_due_posts() == 1
    waiting.refresh_from_db()
    urgent.refresh_from_db()
    assert waiting.status == Post.Status.SCHEDULED
    assert urgent.status != Post.Status.SCHEDULED
    with clock.frozen(at(2, 8, 0)):
        assert publishing.publish_due_posts() == 1
    waiting.refresh_from_db()
    assert waiting.status != Post.Status.SCHEDULED


def test_the_progress_panel_and_the_plan_say_so(fake_graph, template, settings):
    settings.WHATSAPP_MPS = 1  # 40 messages at 0.9/s: about 44 s of sending
    topic = make_topic()
    for _ in range(40):
        make_subscriber(topics=[topic])
    post = make_post(topics=[topic])
    with clock.frozen(at(1, 20, 59) + timedelta(seconds=30)):
        plan = post_plan(post)
        # Staff screens are in Italian ("paused for quiet hours until 08:00").
        assert plan.quiet == "in pausa per le ore di silenzio fino alle 08:00"
        assert plan.finish > at(2, 8)
    Post.objects.filter(pk=post.pk).update(status=Post.Status.SENDING)
    publishing.fan_out(post)
    post.refresh_from_db()
    with clock.frozen(at(1, 22)):
        report = progress_report(post)
        assert report["quiet"] == "in pausa per le ore di silenzio fino alle 08:00"
        assert estimated_finish(post) > at(2, 8)
    with clock.frozen(at(1, 12)):
        assert progress_report(post)["quiet"] == ""
        assert post_plan(post).quiet == ""
        assert estimated_finish(post) < at(1, 12, 5)
