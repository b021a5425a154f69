"""The WhatsApp webhook: handshake, signature, archive, dedup, batching, and fuzzing.

The handshake and the signature over the raw body
(https://developers.facebook.com/docs/graph-api/webhooks/getting-started); Meta batches up to
1,000 updates per POST and retries for 7 days, hence dedup by wamid; the shapes
(https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components).
"""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from channel.models import InboundEvent, InboundMessage, OutboundMessage
from channel.webhook.drain import process_pending_inbound_events
from channel.webhook.signatures import sign
from tests.channel.webhook.helpers import envelope, post_webhook, status_item, text_item
from tests.factories import make_delivery, make_post, make_subscriber, make_topic

URL = "/whatsapp/webhook/"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _isolated(redis_conn, fake_graph):
    """A clean Redis (the processor's wake-up flag lives there), and replies that go to the
    fake Graph API, never to Meta."""


def process(callbacks_fixture, client, body: bytes, **kwargs):
    with callbacks_fixture(execute=True):
        return post_webhook(client, body, **kwargs)


def test_handshake_answers_the_challenge_as_plain_text(client):
    """200 with hub.challenge as the body when the verify token matches."""
    response = client.get(
        URL,
        {"hub.mode": "subscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "1158"},
    )
    assert response.status_code == 200
    assert response.content == b"1158"
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ],
)
def test_handshake_with_a_wrong_token_or_mode_is_refused(client, params):
    response = client.get(URL, params)
    assert response.status_code == 403
    assert b"1" not in response.content


def test_it_archives_a_correctly_signed_body(client):
    body = json.dumps(envelope(messages=[])).encode()
    response = post_webhook(client, body)
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert event.signature_valid
    assert event.body == body.decode()


def test_a_missing_signature_is_401_and_nothing_is_stored(client):
    body = json.dumps(envelope(messages=[text_item("393331111111", "Iscrivimi")])).encode()
    response = post_webhook(client, body, signature=None)
    assert response.status_code == 401
    assert not InboundEvent.objects.exists()


def test_a_wrong_signature_is_403_archived_for_audit_and_not_processed(
    client, django_capture_on_commit_callbacks
):
    body = json.dumps(envelope(messages=[text_item("393331111111", "Iscrivimi")])).encode()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_webhook(client, body, signature=sign(body, "not-the-app-secret"))
    assert response.status_code == 403
    assert callbacks == []
    event = InboundEvent.objects.get()
    assert not event.signature_valid
    assert not InboundMessage.objects.exists()


def test_a_signature_without_the_sha256_prefix_is_refused(client):
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    bare = sign(body, settings.WHATSAPP_APP_SECRET).removeprefix("sha256=")
    assert post_webhook(client, body, signature=bare).status_code == 403


def test_a_signature_with_non_ascii_characters_is_a_forgery_not_an_error(client):
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    odd = "sha256=" + "é" * 64  # hmac.compare_digest raises on non-ASCII text
    assert post_webhook(client, body, signature=odd).status_code == 403


def test_accented_text_is_verified_over_the_raw_bytes(client, django_capture_on_commit_callbacks):
    """Hash request.body as received, never re-serialised JSON."""
    text = "Perché la raccolta è così? Più informazioni sull'àrea pedonale ❤️"
    item = text_item("393331111112", text)
    raw = json.dumps(envelope(messages=[item]), ensure_ascii=False).encode()
    escaped = json.dumps(envelope(messages=[item]), ensure_ascii=True).encode()
    assert raw != escaped

    # A signature over the escaped form must not validate the raw UTF-8 body.
    wrong = post_webhook(client, raw, signature=sign(escaped, settings.WHATSAPP_APP_SECRET))
    assert wrong.status_code == 403

    response = process(django_capture_on_commit_callbacks, client, raw)
    assert response.status_code == 200
    event = InboundEvent.objects.get(signature_valid=True)
    assert text in event.body
    assert event.processed_at is not None
    assert InboundMessage.objects.filter(wamid=item["id"], wa_id="393331111112").exists()


def test_malformed_json_is_400(client):
    body = b'{"object": "whatsapp_business_account", "entry": [}'
    response = post_webhook(client, body)
    assert response.status_code == 400
    assert InboundEvent.objects.get().processed_at is not None  # archived, never processed


def test_other_methods_are_refused(client):
    assert client.put(URL, b"{}").status_code == 405


def test_an_unknown_shape_is_accepted_and_ignored(client, django_capture_on_commit_callbacks):
    body = json.dumps({"object": "page", "entry": [{"changes": [{"field": "feed"}]}]}).encode()
    response = process(django_capture_on_commit_callbacks, client, body)
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert event.processed_at is not None
    assert not event.problems.startswith("error:")
    assert not InboundMessage.objects.exists()


def test_a_duplicate_delivery_has_one_effect(client, django_capture_on_commit_callbacks):
    """Meta retries for up to 7 days; the wamid makes the retry harmless."""
    body = json.dumps(envelope(messages=[text_item("393331111113", "Iscrivimi")])).encode()
    process(django_capture_on_commit_callbacks, client, body)
    after_first = (InboundMessage.objects.count(), OutboundMessage.objects.count())
    process(django_capture_on_commit_callbacks, client, body)
    assert InboundEvent.objects.count() == 2  # both deliveries are archived…
    assert (InboundMessage.objects.count(), OutboundMessage.objects.count()) == after_first
    assert after_first[0] == 1  # …but the message exists once…
    assert after_first[1] >= 1  # …and was answered once


def test_running_the_processing_twice_has_one_effect(client, django_capture_on_commit_callbacks):
    body = json.dumps(envelope(messages=[text_item("393331111114", "ciao")])).encode()
    process(django_capture_on_commit_callbacks, client, body)
    event = InboundEvent.objects.get()
    InboundEvent.objects.filter(pk=event.pk).update(processed_at=None)  # as if redelivered
    before = OutboundMessage.objects.count()
    assert process_pending_inbound_events().processed == 1
    assert OutboundMessage.objects.count() == before
    assert InboundMessage.objects.count() == 1


def test_a_batched_post_processes_every_message_and_status(
    client, django_capture_on_commit_callbacks
):
    """Popular libraries read only entry[0].changes[0]; we walk all of them."""
    replies = [
        OutboundMessage.objects.create(to_wa_id="393331111120", payload={"type": "text"})
        for _ in range(3)
    ]
    post = make_post(topics=[make_topic()])
    delivery = make_delivery(
        post=post, subscriber=make_subscriber(), status="sent", wa_message_id="wamid.post1"
    )
    messages = [text_item(f"39333111113{n}", f"messaggio {n}") for n in range(4)]
    statuses = [
        status_item(f"wamid.reply{r.pk}", "delivered", callback=f"svc:{r.pk}") for r in replies
    ]
    last_statuses = [*statuses[1:], status_item("wamid.post1", "read")]
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            envelope(messages=messages[:2], statuses=statuses[:1])["entry"][0],
            {
                "id": "WABA2",
                "changes": [
                    envelope(messages=messages[2:3])["entry"][0]["changes"][0],
                    envelope(messages=messages[3:], statuses=last_statuses)["entry"][0]["changes"][
                        0
                    ],
                ],
            },
        ],
    }
    response = process(django_capture_on_commit_callbacks, client, json.dumps(body).encode())
    assert response.status_code == 200
    assert set(InboundMessage.objects.values_list("wamid", flat=True)) == {
        m["id"] for m in messages
    }
    for reply in replies:
        reply.refresh_from_db()
        assert reply.status == "delivered"
        assert reply.wa_message_id == f"wamid.reply{reply.pk}"
    delivery.refresh_from_db()
    assert delivery.status == "read"  # posts' statuses reach the delivery ledger
    assert not InboundEvent.objects.get().problems.startswith("error:")


# --- Fuzzing: never a 500, never a crashed worker ------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
KEYS = ["from", "id", "timestamp", "type", "text", "interactive", "status", "errors", "wa_id",
        "recipient_id", "biz_opaque_callback_data", "body", "list_reply", "button_reply",
        "nfm_reply", "response_json", "value", "user_id", "title", "code", "details"]  # fmt: skip
meta_objects = st.dictionaries(st.sampled_from(KEYS), json_values | st.text(), max_size=6)
meta_like = st.fixed_dictionaries(
    {
        "object": st.sampled_from(["whatsapp_business_account", "page", ""]),
        "entry": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.text(max_size=5),
                    "changes": st.lists(
                        st.fixed_dictionaries(
                            {
                                "field": st.sampled_from(["messages", "user_preferences", "x"]),
                                "value": st.dictionaries(
                                    st.sampled_from(
                                        [
                                            "messages",
                                            "statuses",
                                            "errors",
                                            "contacts",
                                            "user_preferences",
                                            "metadata",
                                        ]  # fmt: skip
                                    ),
                                    st.lists(meta_objects, max_size=3) | json_values,
                                    max_size=4,
                                ),
                            }
                        ),
                        max_size=2,
                    ),
                }
            )
            | json_values,
            max_size=2,
        ),
    }
)

FUZZ = hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _check_fuzz_response(client, callbacks_fixture, body: bytes) -> None:
    response = process(callbacks_fixture, client, body)
    assert response.status_code in (200, 400), response.status_code
    if response.status_code == 200:
        event = InboundEvent.objects.order_by("-id").first()
        assert event.processed_at is not None
        crashes = [line for line in event.problems.splitlines() if line.startswith("error:")]
        assert crashes == []


@FUZZ
@given(value=json_values | meta_like)
def test_random_json_never_gives_a_500_nor_a_crash(
    client, django_capture_on_commit_callbacks, fake_graph, value
):
    body = json.dumps(value).encode()
    _check_fuzz_response(client, django_capture_on_commit_callbacks, body)


@FUZZ
@given(body=st.binary(max_size=200))
def test_random_bytes_never_give_a_500(client, django_capture_on_commit_callbacks, body):
    _check_fuzz_response(client, django_capture_on_commit_callbacks, body)


def test_a_text_message_is_answered_through_the_fake(
    client, django_capture_on_commit_callbacks, fake_graph
):
    """End to end: signed webhook → processing → reply recorded in the fake's outbox."""
    number = "393331111199"
    fake_graph.mark_inbound(number)
    body = json.dumps(envelope(messages=[text_item(number, "Iscrivimi")])).encode()
    process(django_capture_on_commit_callbacks, client, body)
    deadline = time.monotonic() + 5
    while not fake_graph.outbox(to=number) and time.monotonic() < deadline:
        time.sleep(0.05)
    outbox = fake_graph.outbox(to=number)
    assert outbox, "no reply reached the fake Graph API"
    assert OutboundMessage.objects.filter(to_wa_id=number, status="sent").count() == len(outbox)
