"""Meta's events read as Meta means them, through the real webhook, drain and fake Graph API:
a changed number moves the subscriber, non-conversational messages get no one-way reply, and
business-scoped user ids are accepted while malformed sender ids are reported, never stored.
https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples
"""

from __future__ import annotations

import json

import pytest

from channel.models import InboundEvent, InboundMessage, OutboundMessage
from subscribers.delivery import publishing, sending
from subscribers.models import ConsentEvent, Delivery, Subscriber
from tests.channel.webhook.helpers import envelope, post_webhook, text_item, wamid
from tests.factories import make_post, make_subscriber, make_topic
from tests.subscribers.delivery.helpers import approved_template, fast_sending

pytestmark = pytest.mark.django_db

OLD, NEW = "393471234567", "393479999999"


@pytest.fixture
def deliver(client, fake_graph, redis_conn, django_capture_on_commit_callbacks):
    """POST one webhook as Meta does and let the drain (and the replies) run."""

    def send(body: dict) -> InboundEvent:
        with django_capture_on_commit_callbacks(execute=True):
            assert post_webhook(client, json.dumps(body).encode()).status_code == 200
        return InboundEvent.objects.order_by("-id").first()

    return send


def changed_number(old: str, new: str, **system) -> dict:
    """Meta's `user_changed_number` notice: from the old number, no contacts."""
    body = envelope()
    body["entry"][0]["changes"][0]["value"]["messages"] = [
        {
            "from": old,
            "id": wamid(),
            "timestamp": "1763800000",
            "type": "system",
            "system": {
                "body": f"User A changed from {old} to {new}",
                "wa_id": new,
                "type": "user_changed_number",
            }
            | system,
        }
    ]
    return body


def test_a_changed_number_moves_the_subscriber_and_posts_go_to_the_new_one(
    deliver, fake_graph, settings
):
    fast_sending(settings, batch=10)
    approved_template(fake_graph)
    topic = make_topic()
    person = make_subscriber(wa_id=OLD, topics=[topic])
    event = deliver(changed_number(OLD, NEW))
    person.refresh_from_db()
    assert person.wa_id == NEW and person.status == Subscriber.Status.ACTIVE
    assert person.topics.get() == topic
    ledger = ConsentEvent.objects.get(subscriber=person, kind=ConsentEvent.Kind.NUMBER_CHANGED)
    assert ledger.wa_message_id
    assert event.problems == "" and not OutboundMessage.objects.exists()  # no reply
    post = make_post(topics=[topic])
    publishing.post_publish(post=post)
    sending.drain_post(post.pk)
    assert [m["to"] for m in fake_graph.outbox()] == [NEW]
    # Meta's retry of the same notice changes nothing.
    deliver(changed_number(OLD, NEW))
    assert ConsentEvent.objects.filter(kind=ConsentEvent.Kind.NUMBER_CHANGED).count() == 1


def test_a_changed_number_that_is_already_a_subscriber_leaves_one_row_per_number(
    deliver, fake_graph, settings
):
    fast_sending(settings, batch=10)
    approved_template(fake_graph)
    topic, other = make_topic(), make_topic()
    old = make_subscriber(wa_id=OLD, topics=[topic])
    new = make_subscriber(wa_id=NEW, topics=[other])
    event = deliver(changed_number(OLD, NEW))
    assert not event.problems.startswith("error")
    old.refresh_from_db()
    new.refresh_from_db()
    assert old.status == Subscriber.Status.LEFT and not old.topics.exists()
    assert (new.status, list(new.topics.all())) == (Subscriber.Status.ACTIVE, [other])
    assert Subscriber.objects.filter(wa_id=NEW).count() == 1
    assert ConsentEvent.objects.filter(subscriber=old, kind="number_changed").count() == 1
    post = make_post(topics=[topic, other])
    publishing.post_publish(post=post)
    sending.drain_post(post.pk)
    assert [m["to"] for m in fake_graph.outbox()] == [NEW]
    assert Delivery.objects.get(post=post).subscriber == new


def test_a_changed_number_also_takes_the_new_business_scoped_id(deliver):
    person = make_subscriber(wa_id=OLD, user_id="IT.1111")
    deliver(changed_number(OLD, NEW, user_id="IT.2222"))
    person.refresh_from_db()
    assert (person.wa_id, person.user_id) == (NEW, "IT.2222")


def test_a_changed_number_for_someone_unknown_or_malformed_changes_nothing(deliver):
    person = make_subscriber(wa_id=OLD)
    deliver(changed_number("393470000000", NEW))
    event = deliver(changed_number(OLD, "not-a-number"))
    person.refresh_from_db()
    assert person.wa_id == OLD
    assert "malformed new number" in event.problems
    assert not Subscriber.objects.filter(wa_id=NEW).exists()


def _item(kind: str, **fields) -> dict:
    return {"from": OLD, "id": wamid(), "timestamp": "1763800000", "type": kind} | fields


NOT_CONVERSATION = {
    "reaction": _item("reaction", reaction={"message_id": "wamid.X", "emoji": "👍"}),
    "edit": _item(
        "edit",
        edit={
            "original_message_id": "wamid.X",
            "message": {"type": "text", "text": {"body": "ciao, corretto"}},
        },
    ),
    "revoke": _item("revoke", revoke={"original_message_id": "wamid.X"}),
    "group": text_item(OLD, "ciao a tutti") | {"group_id": "120363000000000001"},
    "call_permission_reply": _item(
        "interactive",
        interactive={
            "type": "call_permission_reply",
            "call_permission_reply": {"response": "accept", "is_permanent": False},
        },
    ),
    "unsupported": _item("unsupported", errors=[{"code": 131051, "title": "Message type unknown"}]),
    "system": _item("system", system={"body": "…", "type": "customer_identity_changed"}),
}


@pytest.mark.parametrize("kind", sorted(NOT_CONVERSATION))
def test_no_one_way_reply_to_what_is_not_said_to_us(deliver, kind):
    make_subscriber(wa_id=OLD)
    deliver(envelope(messages=[NOT_CONVERSATION[kind]]))
    assert InboundMessage.objects.get().processed_at is not None
    assert not OutboundMessage.objects.exists()
    # The same person writing a question does get the one-way answer.
    deliver(envelope(messages=[text_item(OLD, "a che ora apre il comune?")]))
    assert OutboundMessage.objects.count() == 1


def test_a_group_message_never_joins_anyone_nor_opens_the_window(deliver):
    deliver(envelope(messages=[text_item(NEW, "Iscrivimi") | {"group_id": "1203630001"}]))
    assert not Subscriber.objects.exists() and not OutboundMessage.objects.exists()
    person = make_subscriber(wa_id=OLD)
    deliver(envelope(messages=[text_item(OLD, "ciao a tutti") | {"group_id": "1203630001"}]))
    person.refresh_from_db()
    assert person.last_inbound_at is None


def _bsuid_only(message: dict, user_id: str) -> dict:
    body = envelope()
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": "Ada"}, "user_id": user_id}]
    value["messages"] = [message]
    return body


def test_a_person_known_only_by_business_scoped_id_can_join(deliver, fake_graph):
    longest = "IT.ENT." + "a1" * 64  # the longest documented form: 135 characters
    fake_graph.mark_inbound(longest)  # Meta's view of the 24-hour window
    item = {"id": wamid(), "timestamp": "1763800000", "type": "text"}
    item |= {"text": {"body": "Iscrivimi"}, "from_user_id": longest}
    event = deliver(_bsuid_only(item, longest))
    assert event.problems == ""
    person = Subscriber.objects.get()
    assert (person.wa_id, person.user_id) == (None, longest)
    assert InboundMessage.objects.get().user_id == longest
    assert OutboundMessage.objects.get().to_user_id == longest
    [sent] = fake_graph.outbox()
    assert sent["payload"]["recipient"] == longest


@pytest.mark.parametrize(
    "user_id",
    ["IT." + "9" * 300, "13491208655302741918", "IT.12 34", "it.123", "IT.ENT."],
    ids=["over-long", "no-country", "space", "lower-case", "empty-tail"],
)
def test_a_malformed_business_scoped_id_is_a_problem_on_the_webhook(deliver, user_id):
    item = {"id": wamid(), "timestamp": "1763800000", "type": "text"}
    item |= {"text": {"body": "Iscrivimi"}, "from_user_id": user_id}
    event = deliver(_bsuid_only(item, user_id))
    assert "malformed sender user id" in event.problems
    assert not event.problems.startswith("error")
    assert not Subscriber.objects.exists() and not OutboundMessage.objects.exists()
    assert InboundMessage.objects.get().processed_at is not None


@pytest.mark.parametrize("number", ["3934712345678901234567", "39347abc", "0393471234567"])
def test_a_malformed_sender_number_is_a_problem_on_the_webhook(deliver, number):
    event = deliver(envelope(messages=[text_item(number, "Iscrivimi")]))
    assert "malformed sender number" in event.problems
    assert not event.problems.startswith("error")
    assert not Subscriber.objects.exists()


def test_a_valid_id_next_to_a_malformed_one_is_used(deliver):
    item = text_item("39347abc", "Iscrivimi") | {"from_user_id": "IT.777"}
    event = deliver(envelope(messages=[item]))
    assert "malformed sender number" in event.problems
    assert Subscriber.objects.get().user_id == "IT.777"
