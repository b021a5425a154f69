"""The desk around a send: schedule, test send to staff phones, results by topic, recipients."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from channel.models import OutboundMessage
from subscribers.delivery import publishing
from subscribers.delivery.results import results_by_topic
from subscribers.models import Delivery
from tests.factories import log_in_as, make_post, make_subscriber, make_template, make_topic
from tests.subscribers.desk.helpers import confirm
from topics.models import AuditEntry, Post

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/topics/post/"
STAFF_IN_WINDOW, STAFF_OUTSIDE = "393330000001", "393330000002"


def run_action(client, action: str, post: Post, **extra):
    return confirm(client, action, post, follow=True, **extra)


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)] or [
        str(m) for m in response.context["messages"]
    ]


# --- schedule -------------------------------------------------------------------------------


def test_a_pubblicatore_schedules_for_send_at_after_seeing_the_reach(client, post):
    log_in_as(client, "Pubblicatore")
    post.send_at = timezone.now() + timedelta(hours=3)
    post.save()
    page = client.get(f"{CHANGELIST}{post.pk}/confirm/schedule/").content.decode()
    assert "3 persone" in page or "3 people" in page
    post.refresh_from_db()
    assert post.status == Post.Status.DRAFT  # nothing before confirming
    run_action(client, "schedule", post)
    post.refresh_from_db()
    assert post.status == Post.Status.SCHEDULED
    assert AuditEntry.objects.filter(action="schedule", actor__username="pubblicatore").exists()
    assert not Delivery.objects.exists()


def test_scheduling_a_time_that_has_passed_is_refused_with_a_reason(client, post):
    log_in_as(client, "Pubblicatore")
    Post.objects.filter(pk=post.pk).update(send_at=timezone.now() - timedelta(minutes=1))
    response = run_action(client, "schedule", post)
    assert any("“Send now”" in m or "Invia ora" in m for m in texts(response))
    post.refresh_from_db()
    assert post.status == Post.Status.DRAFT


def test_unscheduling_brings_the_post_back_to_draft(client, post):
    log_in_as(client, "Pubblicatore")
    publishing.post_schedule(post=post, send_at=timezone.now() + timedelta(days=1))
    run_action(client, "unschedule", post)
    post.refresh_from_db()
    assert post.status == Post.Status.DRAFT
    assert AuditEntry.objects.filter(action="unschedule").exists()


def test_the_post_page_offers_the_actions_of_its_status_and_returns_there(client, post):
    log_in_as(client, "Pubblicatore")
    page = client.get(f"{CHANGELIST}{post.pk}/change/").content.decode()
    for action in ("send_test", "send_now", "schedule"):
        assert f'id="post-action-{action}"' in page
    assert 'id="post-action-resend_failed"' not in page
    here = f"{CHANGELIST}{post.pk}/change/"
    response = confirm(client, "send_now", post, next=here)
    assert response.status_code == 302 and response.url == here
    post.refresh_from_db()
    assert post.status == Post.Status.SENDING


def test_a_redattore_can_neither_schedule_nor_test_nor_send(client, post, settings):
    settings.BANDITORE_TEST_NUMBERS = [STAFF_OUTSIDE]
    log_in_as(client, "Redattore")
    post.send_at = timezone.now() + timedelta(hours=3)
    post.save()
    page = client.get(f"{CHANGELIST}{post.pk}/change/").content.decode()
    assert "post-action-" not in page
    for action in ("schedule", "send_test", "send_now"):
        assert client.get(f"{CHANGELIST}{post.pk}/confirm/{action}/").status_code == 403
        run_action(client, action, post)
    post.refresh_from_db()
    assert post.status == Post.Status.DRAFT
    assert not OutboundMessage.objects.exists()


def test_an_unknown_page_action_is_not_found(client, post):
    log_in_as(client, "Pubblicatore")
    assert client.get(f"{CHANGELIST}{post.pk}/confirm/delete_selected/").status_code == 404
    assert client.get(f"{CHANGELIST}999999/confirm/send_now/").status_code == 404


# --- test send ------------------------------------------------------------------------------


@pytest.fixture
def staff_phones(settings, fake_graph, redis_conn):
    settings.BANDITORE_TEST_NUMBERS = [STAFF_IN_WINDOW, STAFF_OUTSIDE]
    settings.WHATSAPP_MPS = 1000
    fake_graph.register_template("avviso_comune", "it", "utility", body_params=2)
    # One staff phone wrote to the council a minute ago: its window is open, at Meta too.
    make_subscriber(wa_id=STAFF_IN_WINDOW, last_inbound_at=timezone.now())
    fake_graph.mark_inbound(STAFF_IN_WINDOW)
    return fake_graph


def test_a_test_send_reaches_only_the_staff_phones(client, post, staff_phones):
    log_in_as(client, "Pubblicatore")
    confirmation = client.get(f"{CHANGELIST}{post.pk}/confirm/send_test/").content.decode()
    assert "+39 333 ••• ••01" in confirmation and STAFF_IN_WINDOW not in confirmation
    response = run_action(client, "send_test", post)
    sent = {(e["to"], e["payload"]["type"]) for e in staff_phones.outbox()}
    assert sent == {
        (STAFF_IN_WINDOW, "text"),
        (STAFF_IN_WINDOW, "template"),
        (STAFF_OUTSIDE, "template"),
    }
    assert not Delivery.objects.exists()
    post.refresh_from_db()
    assert post.status == Post.Status.DRAFT
    assert OutboundMessage.objects.filter(lane="test", status="sent").count() == 3
    messages = texts(response)
    assert len(messages) == 4  # two versions for each phone, the skipped one explained
    assert any("24" in m and "••02" in m for m in messages)
    entry = AuditEntry.objects.get(action="test_send")
    assert entry.actor.username == "pubblicatore" and len(entry.details["results"]) == 4


def test_a_test_send_explains_whatsapps_refusal(client, post, staff_phones):
    staff_phones.configure(unreachable=[STAFF_OUTSIDE])
    log_in_as(client, "Pubblicatore")
    messages = texts(run_action(client, "send_test", post))
    [refusal] = [m for m in messages if "••02" in m and "WhatsApp" in m and "24" not in m]
    assert "WhatsApp" in refusal


def test_without_test_numbers_the_editor_is_told_who_sets_them(client, post, settings):
    settings.BANDITORE_TEST_NUMBERS = []
    log_in_as(client, "Pubblicatore")
    messages = texts(run_action(client, "send_test", post))
    assert any("BANDITORE_TEST_NUMBERS" in m for m in messages)
    assert not OutboundMessage.objects.exists()


# --- after sending ----------------------------------------------------------------------------


def test_results_by_topic_count_each_topics_people_in_one_query(django_assert_num_queries):
    schools, roads = make_topic(), make_topic()
    only_schools = make_subscriber(topics=[schools])
    only_roads = make_subscriber(topics=[roads])
    both = make_subscriber(topics=[schools, roads])
    make_subscriber(topics=[make_topic()])  # not in the post's topics
    make_template()
    post = make_post(topics=[schools, roads])
    publishing.post_publish(post=post)
    status = {only_schools: "read", only_roads: "failed", both: "delivered"}
    for person, value in status.items():
        Delivery.objects.filter(post=post, subscriber=person).update(status=value)
    post = Post.objects.prefetch_related("topics").get(pk=post.pk)
    with django_assert_num_queries(1):
        results = {r.topic: r for r in results_by_topic(post)}
    assert (results[schools].recipients, results[schools].delivered) == (2, 2)
    assert (results[schools].read, results[schools].failed) == (1, 0)
    assert (results[roads].recipients, results[roads].delivered) == (2, 1)
    assert (results[roads].read, results[roads].failed) == (0, 1)


def sent_post(n: int = 3) -> Post:
    topic = make_topic()
    for _ in range(n):
        make_subscriber(topics=[topic])
    make_template()
    post = make_post(topics=[topic])
    publishing.post_publish(post=post)
    return post


def test_the_post_page_shows_results_by_topic_and_failures(client):
    post = sent_post()
    Delivery.objects.filter(post=post).update(status="failed", last_error_code=131026)
    log_in_as(client, "Pubblicatore")
    page = client.get(f"{CHANGELIST}{post.pk}/change/").content.decode()
    assert 'id="post-results"' in page and 'id="progress-failures"' in page
    assert f"/admin/topics/post/{post.pk}/recipients/" in page


def test_recipients_are_masked_filtered_and_paged(client, monkeypatch):
    monkeypatch.setattr("subscribers.desk.post_admin.RECIPIENTS_PER_PAGE", 2)
    post = sent_post(3)
    first = Delivery.objects.filter(post=post).order_by("id").first()
    Delivery.objects.filter(pk=first.pk).update(status="failed", last_error_code=131026)
    log_in_as(client, "Pubblicatore")
    url = f"{CHANGELIST}{post.pk}/recipients/"
    page = client.get(url).content.decode()
    assert page.count('class="recipient-number"') == 2
    assert "•••" in page and first.subscriber.wa_id not in page
    assert page.count('class="recipient-number"') == 2
    assert client.get(url, {"page": 2}).content.decode().count('class="recipient-number"') == 1
    failed = client.get(url, {"status": "failed"}).content.decode()
    assert failed.count('class="recipient-number"') == 1 and "WhatsApp" in failed
    assert client.get(url, {"status": "nonsense", "page": "x"}).status_code == 200


def test_full_numbers_only_with_the_permission(client):
    post = sent_post(1)
    person = Delivery.objects.get(post=post).subscriber
    log_in_as(client, "Pubblicatore", "view_full_number")
    page = client.get(f"{CHANGELIST}{post.pk}/recipients/").content.decode()
    assert f"+{person.wa_id}" in page


def test_a_redattore_does_not_see_recipients(client):
    post = sent_post(1)
    log_in_as(client, "Redattore")
    assert client.get(f"{CHANGELIST}{post.pk}/recipients/").status_code == 403


def test_resend_forgets_the_failed_messages_id_so_the_new_ones_statuses_apply():
    post = sent_post(2)
    gone, held = Delivery.objects.filter(post=post).order_by("id")
    Delivery.objects.filter(pk=gone.pk).update(
        status="failed", last_error_code=131026, wa_message_id="wamid.gone"
    )
    Delivery.objects.filter(pk=held.pk).update(
        status="failed", last_error_code=131049, wa_message_id="wamid.held"
    )
    Post.objects.filter(pk=post.pk).update(status=Post.Status.SENT)
    assert publishing.resend_failed(post=post) == 1
    gone.refresh_from_db()
    held.refresh_from_db()
    assert (gone.status, gone.wa_message_id) == ("failed", "wamid.gone")  # permanent: skipped
    assert (held.status, held.wa_message_id) == ("queued", None)


def test_a_scheduled_post_cannot_lose_its_time_by_editing(client, post):
    log_in_as(client, "Pubblicatore")
    publishing.post_schedule(post=post, send_at=timezone.now() + timedelta(days=1))
    data = {"title": post.title, "body": post.body, "topics": [t.pk for t in post.topics.all()]}
    response = client.post(f"{CHANGELIST}{post.pk}/change/", data)
    assert response.status_code == 200 and "send_at" in response.context["adminform"].form.errors
    post.refresh_from_db()
    assert post.status == Post.Status.SCHEDULED and post.send_at


def test_once_sending_starts_the_content_is_read_only(client, post):
    log_in_as(client, "Pubblicatore")
    publishing.post_publish(post=post)
    data = {"title": "Cambiato", "body": "Altro testo", "topics": []}
    client.post(f"{CHANGELIST}{post.pk}/change/", data)
    post.refresh_from_db()
    assert post.title == "Avviso" and post.topics.exists()
    page = client.get(f"{CHANGELIST}{post.pk}/change/").content.decode()
    assert 'name="body"' not in page and 'id="post-action-cancel_sending"' in page
