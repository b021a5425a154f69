"""A citizen's whole journey through the real webhook, the database and the fake Graph API."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from channel.models import InboundMessage, OutboundMessage
from channel.webhook.parsing import InboundMsg
from subscribers.conversation.handler import handle_inbound_message
from subscribers.conversation.machine import ACCEPT, ERASE_YES, REFUSE, ROW_DONE
from subscribers.models import ConsentEvent, Subscriber
from tests.channel.webhook.helpers import envelope, post_webhook, text_item, wamid
from topics.models import Topic

pytestmark = pytest.mark.django_db

PHONE = "393471234567"


@pytest.fixture
def say(client, fake_graph, redis_conn, django_capture_on_commit_callbacks):
    """Send one message as the citizen; returns the replies that reached "Meta"."""
    seen = {"n": 0}

    def send(item: dict) -> list[dict]:
        fake_graph.mark_inbound(PHONE)  # Meta's view of the 24-hour window
        body = json.dumps(envelope(messages=[item])).encode()
        with django_capture_on_commit_callbacks(execute=True):
            assert post_webhook(client, body).status_code == 200
        replies = fake_graph.outbox(to=PHONE)[seen["n"] :]
        seen["n"] += len(replies)
        return [r["payload"] for r in replies]

    return send


def tap(kind: str, reply_id: str) -> dict:
    key = "list_reply" if kind == "list" else "button_reply"
    return {
        "from": PHONE,
        "id": wamid(),
        "timestamp": "1760000000",
        "type": "interactive",
        "interactive": {"type": key, key: {"id": reply_id, "title": "x"}},
    }


def test_join_accept_three_topics_finish_and_leave(say):
    [welcome] = say(text_item(PHONE, "Iscrivimi"))
    assert welcome["interactive"]["type"] == "button"
    assert Subscriber.objects.get(wa_id=PHONE).status == "pending"
    accept = tap("button", ACCEPT)
    [topic_list] = say(accept)
    rows = topic_list["interactive"]["action"]["sections"][0]["rows"]
    slugs = [r["id"] for r in rows if r["id"].startswith("t:")][:3]
    for slug in slugs:
        [updated] = say(tap("list", slug))
        assert updated["interactive"]["type"] == "list"
    [confirmation] = say(tap("list", ROW_DONE))
    assert "CANCELLAMI" in confirmation["text"]["body"]
    subscriber = Subscriber.objects.get(wa_id=PHONE)
    assert subscriber.status == "active"
    assert {f"t:{s}" for s in subscriber.topics.values_list("slug", flat=True)} == set(slugs)
    consent = ConsentEvent.objects.get(subscriber=subscriber, kind="consent")
    assert consent.wa_message_id == accept["id"]  # the message that proves it
    assert consent.privacy_version

    [goodbye] = say(text_item(PHONE, "cancellami"))
    subscriber.refresh_from_db()
    assert subscriber.status == "left" and not subscriber.topics.exists()
    assert ConsentEvent.objects.filter(subscriber=subscriber, kind="leave").count() == 1
    assert "ISCRIVIMI" in goodbye["text"]["body"]


def test_declining_stores_nothing_but_the_refusal(say):
    say(text_item(PHONE, "iscrivimi"))
    say(tap("button", REFUSE))
    assert not Subscriber.objects.exists()
    assert list(ConsentEvent.objects.values_list("kind", "subscriber")) == [("refusal", None)]


def test_the_one_way_auto_reply_is_sent_at_most_once_a_day(say):
    assert len(say(text_item(PHONE, "A che ora apre l'anagrafe?"))) == 1
    assert say(text_item(PHONE, "Ciao?")) == []  # two bots can never loop


def test_erase_me_removes_the_number_and_choices_but_keeps_the_ledger(say):
    say(text_item(PHONE, "iscrivimi"))
    say(tap("button", ACCEPT))
    say(tap("list", "all"))
    [question] = say(text_item(PHONE, "cancella i miei dati"))
    assert Subscriber.objects.get().status == "active"  # only the confirmation tap erases
    [confirmation] = say(tap("button", ERASE_YES))
    assert confirmation["to"] == PHONE
    erased = Subscriber.objects.get()
    assert (erased.wa_id, erased.status) == (None, "erased")
    assert not erased.topics.exists()
    kinds = set(ConsentEvent.objects.values_list("kind", flat=True))
    assert {"join", "consent", "topic_added", "erasure"} <= kinds
    assert not InboundMessage.objects.filter(wa_id=PHONE).exists()


def test_my_data_lists_topics_and_language(say):
    say(text_item(PHONE, "subscribe"))
    say(tap("button", ACCEPT))
    say(tap("list", "all"))
    [listing] = say(text_item(PHONE, "my data"))
    assert "English" in listing["text"]["body"]
    first_topic = Topic.objects.filter(is_active=True).order_by("order", "id").first()
    assert first_topic.name_en in listing["text"]["body"]


# --- The messages of one reply (a hint, then the list) reach Meta in the order written ---


def _finish_with_nothing_chosen(fake_graph, django_capture_on_commit_callbacks) -> list[dict]:
    """Tap "Fatto" with no topic chosen (a hint, then the list again); the sends published at
    commit run last first, as two of the reply workers' threads may take them."""
    fake_graph.mark_inbound(PHONE)
    seen = len(fake_graph.outbox(to=PHONE))
    message = InboundMsg(
        wamid=wamid(), wa_id=PHONE, user_id="", kind="list_reply", timestamp=timezone.now(),
        reply_id=ROW_DONE,
    )  # fmt: skip
    with django_capture_on_commit_callbacks() as sends:
        outcome = handle_inbound_message(message=message)
    assert len(outcome.replies) == 2
    for send in reversed(sends):
        send()
    return [m["payload"] for m in fake_graph.outbox(to=PHONE)[seen:]]


def _joined(say) -> None:
    say(text_item(PHONE, "Iscrivimi"))
    say(tap("button", ACCEPT))


def test_a_hint_and_its_list_arrive_in_order(say, fake_graph, django_capture_on_commit_callbacks):
    _joined(say)
    hint, chooser = _finish_with_nothing_chosen(fake_graph, django_capture_on_commit_callbacks)
    assert hint["type"] == "text"
    assert chooser["interactive"]["type"] == "list"
    first, second = OutboundMessage.objects.order_by("-id")[:2][::-1]
    assert second.after_id == first.pk
    assert (first.status, second.status) == ("sent", "sent")


@pytest.mark.parametrize("fault", ["error_5xx_rate", "error_130429_rate"])
def test_the_list_waits_for_a_hint_that_is_tried_again(
    say,
    fake_graph,
    django_capture_on_commit_callbacks,
    fault,
):
    _joined(say)
    # Seeded so that the first send (the hint) meets the fault and the following ones do not.
    fake_graph.configure(seed=1, **{fault: 0.5})
    hint, chooser = _finish_with_nothing_chosen(fake_graph, django_capture_on_commit_callbacks)
    stats = fake_graph.stats()
    assert sum(stats["rejected"].values()) + sum(stats["faults"].values()) == 1
    assert hint["type"] == "text"
    assert chooser["interactive"]["type"] == "list"
