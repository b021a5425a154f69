"""Publishing and fan-out: only subscribers of the post's topics, each person at most once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone, translation

from channel.graph.account import pause_sending, resume_sending
from channel.graph.ratelimit import get_tier_window
from subscribers.delivery import publishing
from subscribers.delivery.progress import estimated_finish, post_counters, send_duration
from subscribers.models import Delivery, Subscriber
from tests.factories import make_post, make_subscriber, make_template, make_topic
from tests.markers import needs_postgresql
from tests.subscribers.helpers import run_concurrently
from topics.models import AuditEntry, Post

pytestmark = pytest.mark.django_db


@pytest.fixture
def template():
    return make_template()


def test_overlapping_topics_reach_each_person_once(template):
    school, roads, events = make_topic(), make_topic(), make_topic()
    both = make_subscriber(topics=[school, roads])
    only_school = make_subscriber(topics=[school])
    make_subscriber(topics=[events])  # not a topic of the post
    make_subscriber(topics=[school], status=Subscriber.Status.LEFT)  # left: never reached
    post = make_post(topics=[school, roads])

    result = publishing.post_publish(post=post)

    assert result.recipients == 2
    reached = set(Delivery.objects.filter(post=post).values_list("subscriber_id", flat=True))
    assert reached == {both.id, only_school.id}
    assert post_counters(post)["queued"] == 2
    assert AuditEntry.objects.filter(action="publish").count() == 1


def test_publishing_twice_fans_out_once(template):
    topic = make_topic()
    make_subscriber(topics=[topic])
    post = make_post(topics=[topic])
    first = publishing.post_publish(post=post)
    second = publishing.post_publish(post=post)
    assert (first.recipients, first.already_published) == (1, False)
    assert second.already_published
    assert Delivery.objects.filter(post=post).count() == 1


@pytest.mark.django_db(transaction=True)
@needs_postgresql
def test_concurrent_publishing_fans_out_once(template):
    topic = make_topic()
    for _ in range(30):
        make_subscriber(topics=[topic])
    post = make_post(topics=[topic])
    results = []

    def publish(_: int) -> None:
        results.append(publishing.post_publish(post=Post.objects.get(pk=post.pk)))

    run_concurrently(publish, 2)
    assert sorted(r.already_published for r in results) == [False, True]
    assert Delivery.objects.filter(post=post).count() == 30


def test_a_post_needing_a_template_without_one_refuses_to_start():
    """Outside the 24-hour window only a template may be sent."""
    topic = make_topic()
    make_subscriber(topics=[topic], last_inbound_at=None)
    post = make_post(topics=[topic])
    with pytest.raises(publishing.PublishError, match="template"):
        publishing.post_publish(post=post)
    post.refresh_from_db()
    assert post.status == Post.Status.DRAFT
    assert not Delivery.objects.filter(post=post).exists()


def test_people_inside_the_window_need_no_template():
    topic = make_topic()
    make_subscriber(topics=[topic], last_inbound_at=timezone.now() - timedelta(hours=1))
    post = make_post(topics=[topic])
    assert publishing.post_publish(post=post).recipients == 1


def test_an_expired_post_is_not_sent_and_says_why(template):
    topic = make_topic()
    make_subscriber(topics=[topic])
    post = make_post(
        topics=[topic],
        status=Post.Status.SCHEDULED,
        send_at=timezone.now() - timedelta(hours=2),
        expires_at=timezone.now() - timedelta(hours=1),
    )
    with translation.override("en"):  # the refusal is stored in the language active then
        assert publishing.publish_due_posts() == 0
    post.refresh_from_db()
    assert post.status == Post.Status.CANCELLED
    assert "expired" in post.status_note
    assert not Delivery.objects.filter(post=post).exists()


def test_due_scheduled_posts_are_published_and_future_ones_wait(template):
    topic = make_topic()
    make_subscriber(topics=[topic])
    due = make_post(topics=[topic])
    later = make_post(topics=[topic])
    publishing.post_schedule(post=due, send_at=timezone.now() + timedelta(seconds=30))
    publishing.post_schedule(post=later, send_at=timezone.now() + timedelta(hours=1))
    Post.objects.filter(pk=due.pk).update(
        send_at=timezone.now() - timedelta(seconds=1)
    )  # time passes
    assert publishing.publish_due_posts() == 1
    due.refresh_from_db()
    later.refresh_from_db()
    assert (due.status, later.status) == (Post.Status.SENDING, Post.Status.SCHEDULED)


def test_a_scheduled_post_is_published_in_the_name_of_whoever_scheduled_it(
    template, django_user_model
):
    topic = make_topic()
    make_subscriber(topics=[topic])
    post = make_post(topics=[topic])
    publisher = django_user_model.objects.create_user("pubblicatore", is_staff=True)
    publishing.post_schedule(
        post=post, send_at=timezone.now() + timedelta(seconds=30), user=publisher
    )
    Post.objects.filter(pk=post.pk).update(send_at=timezone.now() - timedelta(seconds=1))
    assert publishing.publish_due_posts() == 1
    schedule = AuditEntry.objects.get(action="schedule")
    publish = AuditEntry.objects.get(action="publish")
    assert publish.actor == publisher
    assert publish.details["trigger"] == "schedule"
    assert publish.details["schedule_entry"] == schedule.pk


def test_a_paused_account_refuses_to_publish(template):
    topic = make_topic()
    make_subscriber(topics=[topic])
    pause_sending(code=190, reason="token expired")
    with translation.override("en"), pytest.raises(publishing.PublishError, match="paused"):
        publishing.post_publish(post=make_post(topics=[topic]))


def test_cancel_stops_queued_deliveries(template):
    topic = make_topic()
    for _ in range(3):
        make_subscriber(topics=[topic])
    post = make_post(topics=[topic])
    publishing.post_publish(post=post)
    assert publishing.post_cancel(post=post) == 3
    assert post_counters(post)["cancelled"] == 3
    assert post.status == Post.Status.CANCELLED


def test_nobody_subscribed_finishes_at_once(template):
    post = make_post(topics=[make_topic()])
    publishing.post_publish(post=post)
    assert post.status == Post.Status.SENT


def test_send_duration_respects_the_messaging_tier(settings):
    """The tier limits unique people outside the window per rolling 24 h."""
    settings.WHATSAPP_MPS = 80
    settings.WHATSAPP_MESSAGING_TIER = "2000"
    assert send_duration(total=720, needing_template=0) == timedelta(seconds=10)
    # 9,000 people at 2,000/day: four full days wait, the fifth sends the rest.
    assert send_duration(total=9000, needing_template=9000).days == 4


def test_estimated_finish_waits_for_the_tier_when_it_is_used_up(template, settings, redis_conn):
    """People outside the window beyond today's tier wait for the rolling 24 h."""
    settings.WHATSAPP_MPS = 80
    settings.WHATSAPP_MESSAGING_TIER = "250"
    topic = make_topic()
    for _ in range(3):
        make_subscriber(topics=[topic])  # never wrote: template, counts towards the tier
    post = make_post(topics=[topic])
    publishing.post_publish(post=post)
    post.refresh_from_db()
    soon = estimated_finish(post)
    assert soon - timezone.now() < timedelta(minutes=1)
    window = get_tier_window()
    for n in range(249):  # today's tier is nearly used up by other posts
        assert window.admit(f"someone-{n}") == 0
    later = estimated_finish(post)
    assert later - timezone.now() > timedelta(hours=23)


def test_a_paused_account_keeps_scheduled_posts_waiting(template):
    topic = make_topic()
    make_subscriber(topics=[topic])
    post = make_post(topics=[topic])
    publishing.post_schedule(post=post, send_at=timezone.now() + timedelta(minutes=1))
    Post.objects.filter(pk=post.pk).update(send_at=timezone.now() - timedelta(seconds=1))
    pause_sending(code=190, reason="token expired")
    assert publishing.publish_due_posts() == 0
    post.refresh_from_db()
    assert post.status == Post.Status.SCHEDULED  # not demoted, not lost
    resume_sending()
    assert publishing.publish_due_posts() == 1
    post.refresh_from_db()
    assert post.status == Post.Status.SENDING


def test_resend_failed_requeues_only_what_another_try_can_fix(template):
    """131026 (not on WhatsApp) and payload errors are not retried; 131000 is."""
    topic = make_topic()
    people = [make_subscriber(topics=[topic]) for _ in range(4)]
    post = make_post(topics=[topic])
    publishing.post_publish(post=post)
    codes = {people[0].id: 131000, people[1].id: 131026, people[2].id: 132018, people[3].id: None}
    for delivery in Delivery.objects.filter(post=post):
        delivery.status, delivery.attempts = "failed", 5
        delivery.last_error_code = codes[delivery.subscriber_id]
        delivery.save()
    Post.objects.filter(pk=post.pk).update(status=Post.Status.SENT)
    assert publishing.resend_failed(post=post) == 2
    queued = Delivery.objects.filter(post=post, status="queued")
    assert set(queued.values_list("subscriber_id", flat=True)) == {people[0].id, people[3].id}
    assert set(queued.values_list("attempts", flat=True)) == {0}
    post.refresh_from_db()
    assert post.status == Post.Status.SENDING
    assert AuditEntry.objects.filter(action="resend_failed").count() == 1


def test_withdrawing_only_a_draft_refuses_a_post_scheduled_meanwhile(template):
    topic = make_topic()
    make_subscriber(topics=[topic])
    post = make_post(topics=[topic])
    stale = Post.objects.get(pk=post.pk)  # read while still a draft
    publishing.post_schedule(post=post, send_at=timezone.now() + timedelta(hours=1))
    with pytest.raises(publishing.PublishError):
        publishing.post_cancel(post=stale, only_drafts=True)
    assert Post.objects.get(pk=post.pk).status == Post.Status.SCHEDULED
