"""Conversation replies through the real GraphClient, limiter and the fake Graph API.

Free-form only inside the 24-hour window; Meta's errors 130429 (throughput), 190 (expired
token), 131026 (unreachable) and 131047 (window closed).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from channel.models import OutboundMessage, SendingState
from channel.service_messages import (
    SendOutcome,
    queue_replies,
    queue_reply,
    send_outbound_message,
)
from channel.tasks import send_outbound_message_task
from tests.channel.webhook.helpers import envelope, post_webhook, status_item

pytestmark = pytest.mark.django_db

NUMBER = "393334444001"


def text(to: str = NUMBER, body: str = "Ciao!") -> dict:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}}


@pytest.fixture
def window_open(fake_graph):
    fake_graph.mark_inbound(NUMBER)
    return fake_graph


@pytest.fixture
def limiter(redis_conn):
    from channel.graph.ratelimit import get_send_limiter

    return get_send_limiter()


def _empty_bucket(redis_conn, key: str) -> None:
    """Put a token bucket deep in debt, as if a burst had just used it up (Redis clock)."""
    seconds, micros = redis_conn.time()
    redis_conn.hset(key, mapping={"tokens": -1000, "ts": seconds * 1_000_000 + micros})


def test_a_queued_reply_is_sent_after_commit_in_the_reply_lane(
    window_open, django_capture_on_commit_callbacks, redis_conn
):
    with django_capture_on_commit_callbacks(execute=True):
        reply = queue_reply(to_wa_id=NUMBER, to_user_id="", payload=text())
    reply.refresh_from_db()
    assert reply.lane == OutboundMessage.Lane.REPLY
    assert reply.status == "sent"
    assert reply.attempts == 1
    [sent] = window_open.outbox(to=NUMBER)
    assert reply.wa_message_id == sent["id"]
    assert sent["payload"]["text"]["body"] == "Ciao!"
    # Meta echoes this in every status, which is how statuses find the reply.
    assert sent["payload"]["biz_opaque_callback_data"] == f"svc:{reply.pk}"


def test_sending_twice_sends_once(window_open, redis_conn):
    reply = OutboundMessage.objects.create(to_wa_id=NUMBER, payload=text())
    assert send_outbound_message(outbound_id=reply.pk)[0] == SendOutcome.SENT
    assert send_outbound_message(outbound_id=reply.pk)[0] == SendOutcome.SKIPPED
    send_outbound_message_task.delay(reply.pk)
    assert len(window_open.outbox(to=NUMBER)) == 1


def test_replies_use_their_own_lane_while_bulk_sending_is_out_of_tokens(
    window_open, limiter, redis_conn
):
    """Replies have priority: an exhausted bulk share does not hold them back."""
    from channel.graph.ratelimit import Lane

    _empty_bucket(redis_conn, limiter.bulk_key)
    assert limiter.acquire(Lane.BULK) > 0  # bulk sending really is blocked
    reply = OutboundMessage.objects.create(to_wa_id=NUMBER, payload=text())
    assert send_outbound_message(outbound_id=reply.pk)[0] == SendOutcome.SENT


def test_no_token_puts_the_reply_back_without_using_an_attempt(window_open, limiter, redis_conn):
    _empty_bucket(redis_conn, limiter.key)
    reply = OutboundMessage.objects.create(to_wa_id=NUMBER, payload=text())
    outcome, retry_in = send_outbound_message(outbound_id=reply.pk)
    assert outcome == SendOutcome.THROTTLED
    assert retry_in > 0
    reply.refresh_from_db()
    assert (reply.status, reply.attempts) == ("queued", 0)
    assert window_open.outbox(to=NUMBER) == []
    # Once the bucket refills, the task sends it.
    redis_conn.delete(limiter.key)
    send_outbound_message_task.delay(reply.pk)
    reply.refresh_from_db()
    assert reply.status == "sent"


def test_metas_throughput_error_requeues_without_using_an_attempt(window_open, redis_conn):
    """130429 means too fast for the number, not a failed message."""
    window_open.configure(error_130429_rate=1.0)
    reply = OutboundMessage.objects.create(to_wa_id=NUMBER, payload=text())
    outcome, retry_in = send_outbound_message(outbound_id=reply.pk)
    assert outcome == SendOutcome.THROTTLED
    reply.refresh_from_db()
    assert (reply.status, reply.attempts, reply.last_error_code) == ("queued", 0, 130429)
    window_open.configure(error_130429_rate=0.0)
    assert send_outbound_message(outbound_id=reply.pk)[0] == SendOutcome.SENT


def test_transient_errors_retry_then_fail(window_open, redis_conn, settings):
    settings.BANDITORE_REPLY_MAX_ATTEMPTS = 2
    window_open.configure(error_5xx_rate=1.0)
    reply = OutboundMessage.objects.create(to_wa_id=NUMBER, payload=text())
    assert send_outbound_message(outbound_id=reply.pk)[0] == SendOutcome.RETRY
    reply.refresh_from_db()
    assert (reply.status, reply.attempts) == ("queued", 1)
    assert send_outbound_message(outbound_id=reply.pk)[0] == SendOutcome.FAILED
    reply.refresh_from_db()
    assert (reply.status, reply.attempts) == ("failed", 2)


def test_an_expired_token_pauses_the_account_and_the_reply_waits(window_open, redis_conn):
    """190 is an account problem: stop everything, lose nothing."""
    window_open.configure(token_expired=True)
    reply = OutboundMessage.objects.create(to_wa_id=NUMBER, payload=text())
    assert send_outbound_message(outbound_id=reply.pk)[0] == SendOutcome.PAUSED
    state = SendingState.current()
    assert state.paused
    assert state.error_code == 190
    reply.refresh_from_db()
    assert (reply.status, reply.attempts) == ("queued", 0)

    calls_before = len(window_open.outbox())
    window_open.configure(token_expired=False)
    # Still paused: nothing is sent until someone resumes.
    assert send_outbound_message(outbound_id=reply.pk)[0] == SendOutcome.PAUSED
    assert len(window_open.outbox()) == calls_before
    SendingState.objects.filter(id=1).update(paused=False)
    assert send_outbound_message(outbound_id=reply.pk)[0] == SendOutcome.SENT


def test_an_unreachable_number_fails_the_reply_at_once(fake_graph, redis_conn):
    """131026: the number is not on WhatsApp or cannot receive."""
    fake_graph.mark_inbound(NUMBER)
    fake_graph.configure(unreachable=[NUMBER])
    reply = OutboundMessage.objects.create(to_wa_id=NUMBER, payload=text())
    assert send_outbound_message(outbound_id=reply.pk)[0] == SendOutcome.FAILED
    reply.refresh_from_db()
    assert (reply.status, reply.last_error_code) == ("failed", 131026)


def test_a_reply_outside_the_window_is_not_sent(fake_graph, redis_conn):
    """Free-form messages need the window opened by the person's last message."""
    reply = OutboundMessage.objects.create(to_wa_id=NUMBER, payload=text())
    OutboundMessage.objects.filter(pk=reply.pk).update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    assert send_outbound_message(outbound_id=reply.pk)[0] == SendOutcome.FAILED
    assert fake_graph.outbox(to=NUMBER) == []


def test_metas_window_error_fails_the_reply(fake_graph, redis_conn):
    """131047 when the window is closed at Meta's end; a reply is never a template."""
    reply = OutboundMessage.objects.create(to_wa_id="393334444999", payload=text("393334444999"))
    assert send_outbound_message(outbound_id=reply.pk)[0] == SendOutcome.FAILED
    reply.refresh_from_db()
    assert reply.last_error_code == 131047


def test_a_reply_without_an_answer_is_not_resent_and_its_status_settles_it(
    fake_graph, redis_conn, client, django_capture_on_commit_callbacks
):
    """A request that got no answer may still have reached Meta; a second copy would reach
    the citizen twice. Meta's status, echoing our callback data, tells us."""
    fake_graph.mark_inbound(NUMBER)
    fake_graph.configure(timeout_rate=1.0, hang_seconds=0.2, fault_after_accept_rate=1.0, seed=1)
    reply = OutboundMessage.objects.create(to_wa_id=NUMBER, payload=text())
    assert send_outbound_message(outbound_id=reply.pk)[0] == SendOutcome.UNCERTAIN
    assert send_outbound_message(outbound_id=reply.pk)[0] == SendOutcome.SKIPPED
    reply.refresh_from_db()
    assert reply.status == "sending"
    [accepted] = fake_graph.outbox(to=NUMBER)

    status = status_item(accepted["id"], "delivered", recipient=NUMBER, callback=f"svc:{reply.pk}")
    with django_capture_on_commit_callbacks(execute=True):
        body = json.dumps(envelope(statuses=[status])).encode()
        assert post_webhook(client, body).status_code == 200
    reply.refresh_from_db()
    assert (reply.status, reply.wa_message_id) == ("delivered", accepted["id"])


def test_statuses_never_trigger_a_reply(
    fake_graph, redis_conn, client, django_capture_on_commit_callbacks
):
    """Statuses go to the ledgers and never start a conversation."""
    statuses = [
        status_item("wamid.unknown1", "delivered", recipient=NUMBER),
        status_item("wamid.unknown2", "read", recipient=NUMBER, callback="svc:999999"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        body = json.dumps(envelope(statuses=statuses)).encode()
        assert post_webhook(client, body).status_code == 200
    assert not OutboundMessage.objects.exists()
    assert fake_graph.outbox() == []


def test_the_messages_of_one_reply_are_sent_by_one_run_in_order(
    window_open, django_capture_on_commit_callbacks, redis_conn
):
    with django_capture_on_commit_callbacks() as sends:
        queued = queue_replies(
            to_wa_id=NUMBER, payloads=[text(body="uno"), text(body="due"), text(body="tre")]
        )
    assert len(sends) == 1  # one run for the sequence: no worker can take a later part first
    assert [m.after_id for m in queued] == [None, queued[0].pk, queued[1].pk]
    # Nothing sends a later part on its own: it waits for the run that settles the one before.
    send_outbound_message_task.delay(queued[0].pk)
    bodies = [m["payload"]["text"]["body"] for m in window_open.outbox(to=NUMBER)]
    assert bodies == ["uno", "due", "tre"]
    sends[0]()  # the run published at commit finds nothing left to send
    assert len(window_open.outbox(to=NUMBER)) == 3


def test_a_failed_part_does_not_hold_back_the_rest_of_the_reply(
    window_open, django_capture_on_commit_callbacks, redis_conn
):
    unreachable = "393334444002"
    window_open.configure(unreachable=[unreachable])
    window_open.mark_inbound(unreachable)
    with django_capture_on_commit_callbacks(execute=True):
        first, second = queue_replies(
            to_wa_id=unreachable, payloads=[text(unreachable, "uno"), text(unreachable, "due")]
        )
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("failed", "failed")
    assert second.attempts == 1  # tried, in its turn, not forgotten
