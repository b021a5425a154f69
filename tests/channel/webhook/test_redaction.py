"""Right to erasure in the channel's logs: by exact identity, at once and as webhooks arrive."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channel.erasure import (
    ERASURE_MEMORY_DAYS,
    REDACTED,
    forget_erasure,
    redact_body,
    redact_person,
    sweep_erasures,
)
from channel.models import ErasedIdentity, InboundEvent, InboundMessage, OutboundMessage
from channel.pseudonyms import identity_digest
from channel.webhook.drain import process_pending_inbound_events
from channel.webhook.wake_flag import WAKE_KEY
from tests.channel.webhook.helpers import envelope, post_webhook, status_item, text_item

pytestmark = pytest.mark.django_db

GONE, STAYS = "393336660001", "3933366600012"


def _post(client, body: dict) -> InboundEvent:
    assert post_webhook(client, json.dumps(body).encode()).status_code == 200
    return InboundEvent.objects.latest("id")


def _reply(to: str, **fields) -> OutboundMessage:
    payload = {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "Hi"}}
    return OutboundMessage.objects.create(to_wa_id=to, payload=payload, **fields)


def test_it_removes_the_person_from_every_log_and_leaves_a_longer_number_alone(
    client, redis_conn, fake_graph, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        gone = _post(client, envelope(messages=[text_item(GONE, "Abito in via Roma 1")]))
        stays = _post(client, envelope(messages=[text_item(STAYS, "Ciao")]))
    stays_body = InboundEvent.objects.get(pk=stays.pk).body
    sent, queued, other = _reply(GONE, status="sent"), _reply(GONE), _reply(STAYS, status="sent")

    assert redact_person(GONE) > 0

    body = json.loads(InboundEvent.objects.get(pk=gone.pk).body)
    value = body["entry"][0]["changes"][0]["value"]
    assert value["contacts"] == [{"wa_id": REDACTED}]  # the profile name is gone too
    [message] = value["messages"]
    assert message["from"] == REDACTED and "text" not in message  # their words are gone
    assert {"id", "timestamp", "type"} <= message.keys()
    assert InboundEvent.objects.get(pk=stays.pk).body == stays_body  # byte for byte
    assert list(InboundMessage.objects.values_list("wa_id", flat=True).order_by("id")) == [
        "",
        STAYS,
    ]
    sent.refresh_from_db()
    assert (sent.to_wa_id, sent.payload) == (
        REDACTED,
        {"messaging_product": "whatsapp", "to": REDACTED, "type": "text"},
    )
    queued.refresh_from_db()
    assert queued.to_wa_id == GONE  # still to be sent: it needs the number until then
    other.refresh_from_db()
    assert other.to_wa_id == STAYS and other.payload["to"] == STAYS
    # Remembered only as a keyed hash.
    [erased] = ErasedIdentity.objects.all()
    assert erased.digest == identity_digest(GONE) and GONE not in erased.digest


def test_bodies_are_redacted_by_parsed_field_not_by_substring():
    user_id = "IT.1234567890"
    body = envelope(
        messages=[text_item(GONE, "mine"), text_item(STAYS, f"a text quoting {GONE}")],
        statuses=[status_item("wamid.X", "read", recipient=GONE)],
    )
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["user_id"] = user_id
    before = json.loads(json.dumps(body))

    after = json.loads(redact_body(json.dumps(body), {GONE, user_id}))

    changed = after["entry"][0]["changes"][0]["value"]
    assert changed["contacts"][0] == {"wa_id": REDACTED, "user_id": REDACTED}
    assert changed["contacts"][1] == value["contacts"][1]
    assert changed["messages"][0]["from"] == REDACTED and "text" not in changed["messages"][0]
    assert changed["messages"][1] == value["messages"][1]  # someone else's words stay
    assert changed["statuses"][0]["recipient_id"] == REDACTED
    assert json.loads(json.dumps(body)) == before  # the input is not modified
    text = json.dumps(body)
    assert redact_body(text, {"39333666"}) is text  # nobody erased in it: same string
    # Not JSON (archived after a failed check): whole words only.
    assert redact_body(f"x {GONE} {STAYS}", {GONE}) == f"x {REDACTED} {STAYS}"


def test_a_message_without_sender_belongs_to_the_webhooks_only_contact():
    item = text_item(GONE, "no sender field")
    del item["from"]
    body = envelope(messages=[text_item(GONE, "x")])
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": "Ada"}, "user_id": "IT.99"}]
    value["messages"] = [item]

    after = json.loads(redact_body(json.dumps(body), {"IT.99"}))["entry"][0]["changes"][0]
    assert after["value"]["messages"][0]["from"] == REDACTED
    assert "Ada" not in json.dumps(after) and "no sender field" not in json.dumps(after)


def test_what_arrives_after_the_erasure_is_redacted_on_arrival(client, redis_conn):
    redis_conn.set(WAKE_KEY, 1)  # archive only: one drain below takes them all
    redact_person(GONE)
    erased_at = ErasedIdentity.objects.get().erased_at
    late = text_item(GONE, "sent before the erasure", at=int(erased_at.timestamp()) - 60)
    events = [
        _post(client, envelope(statuses=[status_item("wamid.A", "read", recipient=GONE)])),
        _post(client, envelope(messages=[late])),
        _post(client, envelope(statuses=[status_item("wamid.B", "read", recipient=STAYS)])),
    ]
    stays_body = events[2].body

    with CaptureQueriesContext(connection) as queries:
        assert process_pending_inbound_events().processed == 3

    lookups = [q for q in queries if ErasedIdentity._meta.db_table in q["sql"]]
    # For the batch: the remembered digests, then when the one found was erased (again after
    # dispatch only when a batch processes messages: this one's only message was dropped).
    assert len(lookups) == 2
    for event in events[:2]:
        event.refresh_from_db()
        assert GONE not in event.body and event.processed_at
    assert "sent before the erasure" not in events[1].body
    assert "sent before an erasure" in events[1].problems
    assert not InboundMessage.objects.exists()  # the late message is not processed at all
    assert InboundEvent.objects.get(pk=events[2].pk).body == stays_body


def test_a_statuses_batch_without_erased_people_looks_once_and_changes_nothing(client, redis_conn):
    redis_conn.set(WAKE_KEY, 1)
    redact_person("393330000009")
    event = _post(client, envelope(statuses=[status_item("wamid.C", "read", recipient=STAYS)]))
    with CaptureQueriesContext(connection) as queries:
        process_pending_inbound_events()
    assert len([q for q in queries if ErasedIdentity._meta.db_table in q["sql"]]) == 1
    assert InboundEvent.objects.get(pk=event.pk).body == event.body


def test_someone_who_joins_again_is_forgotten_as_erased():
    redact_person(GONE)
    forget_erasure(GONE)
    assert not ErasedIdentity.objects.exists()


def test_the_nightly_sweep_forgets_old_erasures_and_redacts_what_escaped():
    now = timezone.now()
    redact_person(GONE, asked_at=now - timedelta(days=1))
    redact_person("393330000008", asked_at=now - timedelta(days=ERASURE_MEMORY_DAYS + 1))
    escaped = _reply(GONE, status="delivered")  # e.g. settled while the erasure ran
    unsendable = _reply(GONE)
    OutboundMessage.objects.filter(pk=unsendable.pk).update(created_at=now - timedelta(hours=30))
    in_flight = _reply(GONE)

    assert sweep_erasures(now=now) == 2

    assert list(ErasedIdentity.objects.values_list("digest", flat=True)) == [identity_digest(GONE)]
    for outbound, kept in ((escaped, REDACTED), (unsendable, REDACTED), (in_flight, GONE)):
        outbound.refresh_from_db()
        assert outbound.to_wa_id == kept
