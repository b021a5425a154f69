"""What inbound webhooks do to subscribers: the 24-hour window clock and marketing preferences.

The 24-hour window restarts with every message from the person; `user_preferences` webhooks
stop / resume marketing messages.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from subscribers.models import ConsentEvent
from tests.channel.webhook.helpers import envelope, post_webhook, text_item
from tests.factories import make_subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _replies_go_to_the_fake(fake_graph, redis_conn):
    """Messages reach the conversation, whose replies must go to the fake, never to Meta."""


def deliver(client, callbacks, body: dict) -> None:
    with callbacks(execute=True):
        assert post_webhook(client, json.dumps(body).encode()).status_code == 200


def preferences(wa_id: str, value: str, *, at: int | None = None) -> dict:
    item = {
        "wa_id": wa_id,
        "detail": f"User requested to {value} marketing messages",
        "category": "marketing_messages",
        "value": value,
        "timestamp": at or int(time.time()),
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA1",
                "changes": [
                    {
                        "field": "user_preferences",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": "100000000000001"},
                            "contacts": [{"wa_id": wa_id, "profile": {"name": "Test"}}],
                            "user_preferences": [item],
                        },
                    }
                ],
            }
        ],
    }


def test_a_message_moves_the_window_clock_forward(client, django_capture_on_commit_callbacks):
    subscriber = make_subscriber(last_inbound_at=timezone.now() - timedelta(days=3))
    sent = int(time.time()) - 5
    body = envelope(messages=[text_item(subscriber.wa_id, "ciao", at=sent)])
    deliver(client, django_capture_on_commit_callbacks, body)
    subscriber.refresh_from_db()
    assert subscriber.last_inbound_at == datetime.fromtimestamp(sent, tz=UTC)


def test_a_late_retry_of_an_old_message_never_moves_it_back(
    client, django_capture_on_commit_callbacks
):
    """Meta may redeliver for 7 days, and order is not guaranteed."""
    recent = timezone.now().replace(microsecond=0)
    subscriber = make_subscriber(last_inbound_at=recent)
    old = int((recent - timedelta(hours=30)).timestamp())
    deliver(
        client,
        django_capture_on_commit_callbacks,
        envelope(messages=[text_item(subscriber.wa_id, "vecchio", at=old)]),
    )
    subscriber.refresh_from_db()
    assert subscriber.last_inbound_at == recent


def test_a_future_timestamp_is_capped_at_now(client, django_capture_on_commit_callbacks):
    subscriber = make_subscriber(last_inbound_at=None)
    future = int(time.time()) + 86_400 * 30
    deliver(
        client,
        django_capture_on_commit_callbacks,
        envelope(messages=[text_item(subscriber.wa_id, "dal futuro", at=future)]),
    )
    subscriber.refresh_from_db()
    assert subscriber.last_inbound_at <= timezone.now()


def test_marketing_stop_and_resume_reach_the_subscriber_and_the_ledger(
    client, django_capture_on_commit_callbacks
):
    subscriber = make_subscriber()
    deliver(client, django_capture_on_commit_callbacks, preferences(subscriber.wa_id, "stop"))
    subscriber.refresh_from_db()
    assert subscriber.marketing_opt_out
    deliver(client, django_capture_on_commit_callbacks, preferences(subscriber.wa_id, "stop"))
    assert subscriber.consent_events.filter(kind=ConsentEvent.Kind.MARKETING_STOP).count() == 1

    deliver(client, django_capture_on_commit_callbacks, preferences(subscriber.wa_id, "resume"))
    subscriber.refresh_from_db()
    assert not subscriber.marketing_opt_out
    assert subscriber.consent_events.filter(kind=ConsentEvent.Kind.MARKETING_RESUME).count() == 1


def test_preferences_of_unknown_people_are_ignored(client, django_capture_on_commit_callbacks):
    deliver(client, django_capture_on_commit_callbacks, preferences("393339999000", "stop"))
    assert not ConsentEvent.objects.exists()


def test_a_late_resume_never_undoes_a_newer_stop(client, django_capture_on_commit_callbacks):
    """Meta does not guarantee order: a resume sent before the stop may arrive after it."""
    subscriber = make_subscriber()
    stopped, resumed = int(time.time()) - 60, int(time.time()) - 3600
    deliver(
        client,
        django_capture_on_commit_callbacks,
        preferences(subscriber.wa_id, "stop", at=stopped),
    )
    deliver(
        client,
        django_capture_on_commit_callbacks,
        preferences(subscriber.wa_id, "resume", at=resumed),
    )
    subscriber.refresh_from_db()
    assert subscriber.marketing_opt_out
    assert subscriber.marketing_preference_at == datetime.fromtimestamp(stopped, tz=UTC)
    assert not subscriber.consent_events.filter(kind=ConsentEvent.Kind.MARKETING_RESUME).exists()


def test_a_replayed_preference_leaves_one_ledger_row(client, django_capture_on_commit_callbacks):
    subscriber = make_subscriber()
    at = int(time.time()) - 600
    stop, resume = (
        preferences(subscriber.wa_id, "stop", at=at),
        preferences(subscriber.wa_id, "resume", at=at + 60),
    )
    for body in (stop, resume, stop, resume, stop):  # retries, out of order
        deliver(client, django_capture_on_commit_callbacks, body)
    subscriber.refresh_from_db()
    assert not subscriber.marketing_opt_out
    kinds = list(subscriber.consent_events.values_list("kind", flat=True).order_by("id"))
    assert kinds == [ConsentEvent.Kind.MARKETING_STOP, ConsentEvent.Kind.MARKETING_RESUME]


def test_a_newer_repeat_of_the_same_choice_moves_the_clock(
    client, django_capture_on_commit_callbacks
):
    subscriber = make_subscriber()
    now = int(time.time())
    for value, at in (("stop", now - 600), ("stop", now - 60), ("resume", now - 300)):
        deliver(
            client, django_capture_on_commit_callbacks, preferences(subscriber.wa_id, value, at=at)
        )
    subscriber.refresh_from_db()
    assert subscriber.marketing_opt_out
    assert subscriber.consent_events.count() == 1
