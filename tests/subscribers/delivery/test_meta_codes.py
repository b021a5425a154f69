"""Meta's codes read as Meta means them, against the fake Graph API: 130472 fails one message
and keeps the person, an account-level error by status webhook pauses sending as the send's
answer does, and a code nobody knows fails without retries, shown to editors with Meta's words.
https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
"""

from __future__ import annotations

import json

import pytest
from django.utils import translation

from channel.graph.account import pause_state, resume_sending
from channel.models import OutboundMessage
from channel.webhook.drain import process_pending_inbound_events
from subscribers.delivery import publishing, sending
from subscribers.delivery.results import failures_by_error
from subscribers.models import Delivery, Subscriber
from tests.channel.webhook.helpers import envelope, post_webhook, status_item, wsgi_server
from tests.factories import make_post, make_subscriber, make_topic
from tests.subscribers.delivery.helpers import (
    approved_template,
    fast_sending,
    published,
    sending_post,
    wait_for_statuses,
    webhooks_to,
)


@pytest.fixture(autouse=True)
def fast(settings, redis_conn):
    fast_sending(settings, batch=10)


@pytest.mark.django_db
def test_130472_in_the_send_answer_fails_that_message_and_keeps_the_person(fake_graph):
    approved_template(fake_graph)
    post = published(2)
    held, other = Subscriber.objects.order_by("id")
    fake_graph.configure(error_for={held.wa_id: 130472})
    sending.drain_post(post.pk)
    row = Delivery.objects.get(subscriber=held)
    assert (row.status, row.last_error_code, row.attempts) == ("failed", 130472, 1)
    held.refresh_from_db()
    assert held.status == Subscriber.Status.ACTIVE  # still gets free-form and utility messages
    assert not held.marketing_opt_out
    assert Delivery.objects.get(subscriber=other).status == "sent"


@pytest.mark.django_db(transaction=True)
def test_130472_by_status_webhook_fails_that_message_and_keeps_the_person(fake_graph):
    approved_template(fake_graph)
    topic = make_topic()
    held = make_subscriber(topics=[topic])
    with wsgi_server() as server:
        webhooks_to(server, fake_graph, fail_after_send=[held.wa_id], fail_after_send_code=130472)
        post = make_post(topics=[topic])
        publishing.post_publish(post=post)
        wait_for_statuses(fake_graph)
    row = Delivery.objects.get(post=post)
    assert (row.status, row.last_error_code) == ("failed", 130472)
    held.refresh_from_db()
    assert held.status == Subscriber.Status.ACTIVE
    # The next post reaches them.
    fake_graph.configure(fail_after_send=[])
    second = make_post(topics=[topic])
    publishing.post_publish(post=second)
    assert Delivery.objects.get(post=second).status in ("sent", "delivered")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("code", [131048, 368, 131031])
def test_an_account_error_by_status_webhook_pauses_sending_as_the_send_answer_does(
    fake_graph, code
):
    """The same code in the send's answer and in a status webhook: the same pause, and the
    broadcast stops instead of going on for everyone else."""
    approved_template(fake_graph)
    post = sending_post(1)
    person = Subscriber.objects.get()
    fake_graph.configure(error_for={person.wa_id: code})
    sending.drain_post(post.pk)
    by_answer = pause_state()
    assert by_answer is not None and by_answer.error_code == code
    resume_sending()

    topic = make_topic()
    flagged = make_subscriber(topics=[topic])
    for _ in range(3):
        make_subscriber(topics=[topic])
    with wsgi_server() as server:
        webhooks_to(server, fake_graph, fail_after_send=[flagged.wa_id], fail_after_send_code=code)
        fake_graph.configure(error_for={})
        second = make_post(topics=[topic])
        publishing.post_publish(post=second)
        wait_for_statuses(fake_graph)
    by_webhook = pause_state()
    assert by_webhook is not None and by_webhook.error_code == code
    row = Delivery.objects.get(post=second, subscriber=flagged)
    assert (row.status, row.attempts) == ("queued", 0)  # waits for the resume, at no cost


@pytest.mark.django_db
def test_an_account_error_about_a_reply_or_an_unknown_message_pauses_sending_too(fake_graph):
    """Whichever message the status is about: ours to a post, a reply, or none we know."""
    failed = status_item("wamid.unknown", "failed", callback="svc:999999")
    failed["errors"] = [{"code": 131048, "title": "Spam rate limit hit"}]
    assert post_webhook(None, json.dumps(envelope(statuses=[failed])).encode()).status_code == 200
    process_pending_inbound_events()
    state = pause_state()
    assert state is not None and state.error_code == 131048
    assert "Spam rate limit hit" in state.reason


@pytest.mark.django_db
def test_a_system_level_account_error_in_a_webhook_pauses_sending(fake_graph):
    """`value.errors[]` (no statuses): Meta's errors webhook."""
    body = envelope()
    body["entry"][0]["changes"][0]["value"]["errors"] = [
        {"code": 131031, "title": "Account has been locked", "message": "Account locked"}
    ]
    assert post_webhook(None, json.dumps(body).encode()).status_code == 200
    process_pending_inbound_events()
    state = pause_state()
    assert state is not None and state.error_code == 131031


@pytest.mark.django_db
def test_a_transient_error_in_a_status_does_not_pause(fake_graph):
    failed = status_item("wamid.unknown", "failed")
    failed["errors"] = [{"code": 131000, "title": "Something went wrong"}]
    post_webhook(None, json.dumps(envelope(statuses=[failed])).encode())
    process_pending_inbound_events()
    assert pause_state() is None


@pytest.mark.django_db
def test_an_unknown_code_fails_at_once_and_editors_see_the_code_and_metas_title(
    fake_graph, settings
):
    settings.BANDITORE_MAX_ATTEMPTS = 5
    approved_template(fake_graph)
    post = published(1)
    person = Subscriber.objects.get()
    fake_graph.configure(error_for={person.wa_id: 139999})
    sending.drain_post(post.pk)
    row = Delivery.objects.get()
    assert (row.status, row.attempts, row.last_error_code) == ("failed", 1, 139999)
    assert pause_state() is None
    person.refresh_from_db()
    assert person.status == Subscriber.Status.ACTIVE
    assert len(fake_graph.stats()["rejected"]) == 1  # sent once, never retried
    with translation.override("en"):
        (failure,) = failures_by_error(post)
    assert failure["code"] == 139999
    assert "139999" in failure["why"] and "not retried" in failure["why"]
    assert "Refused as configured" in failure["why"]  # what Meta said about it


@pytest.mark.django_db
def test_an_unknown_code_fails_a_reply_at_once(fake_graph):
    from channel.graph import payloads
    from channel.service_messages import queue_reply, send_outbound_message

    fake_graph.mark_inbound("393331112222")
    fake_graph.configure(error_for={"393331112222": 139998})
    queue_reply(to_wa_id="393331112222", payload=payloads.text("393331112222", "Ciao"))
    reply = OutboundMessage.objects.get()
    send_outbound_message(outbound_id=reply.pk)
    reply.refresh_from_db()
    assert (reply.status, reply.attempts, reply.last_error_code) == ("failed", 1, 139998)


@pytest.mark.django_db
def test_an_account_error_by_status_webhook_puts_a_reply_back_in_the_queue(fake_graph):
    """As when the send's answer carries it: sending pauses and the reply waits, at no cost."""
    from channel.graph import payloads
    from channel.service_messages import queue_reply, send_outbound_message

    fake_graph.mark_inbound("393331112222")
    queue_reply(to_wa_id="393331112222", payload=payloads.text("393331112222", "Ciao"))
    reply = OutboundMessage.objects.get()
    assert send_outbound_message(outbound_id=reply.pk)[0] == "sent"
    reply.refresh_from_db()
    failed = status_item(reply.wa_message_id, "failed", callback=f"svc:{reply.pk}")
    failed["errors"] = [{"code": 131048, "title": "Spam rate limit hit"}]
    post_webhook(None, json.dumps(envelope(statuses=[failed])).encode())
    process_pending_inbound_events()
    reply.refresh_from_db()
    assert (reply.status, reply.attempts, reply.last_error_code) == ("queued", 0, 131048)
    assert send_outbound_message(outbound_id=reply.pk)[0] == "paused"
    resume_sending()
    assert send_outbound_message(outbound_id=reply.pk)[0] == "sent"
    assert len(fake_graph.outbox(to="393331112222")) == 2
