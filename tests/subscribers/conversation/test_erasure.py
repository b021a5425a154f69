"""Erasure through the chat, end to end: nothing of the person is left anywhere afterwards, not
even what arrives later, and nobody else's data is touched.

Everything goes through the real webhook, the drain, the database, Redis and the fake Graph
API; the checks read every text and JSON column of every table and every Redis key.
"""

from __future__ import annotations

import hashlib
import json
import re
import time

import pytest
from django.apps import apps
from django.db import models
from django.db.models.functions import Cast

from channel.models import InboundEvent, InboundMessage, OutboundMessage
from subscribers.conversation.chooser import ROW_ALL, ROW_DONE
from subscribers.conversation.machine import ACCEPT, ERASE_YES
from subscribers.delivery import publishing, sending
from subscribers.models import ConsentEvent, Subscriber
from tests.channel.webhook.helpers import envelope, post_webhook, status_item, text_item, wamid
from tests.factories import make_post
from topics.models import Topic

pytestmark = pytest.mark.django_db

NAME, ADDRESS = "Mariella Finocchiaro", "Via dei Glicini 42"


@pytest.fixture(autouse=True)
def fast(settings, redis_conn):
    settings.WHATSAPP_MPS = 1000
    settings.WHATSAPP_MESSAGING_TIER = "1000"


@pytest.fixture
def chat(client, fake_graph, django_capture_on_commit_callbacks):
    """chat(phone, item, name=…): the person writes (a signed webhook, drained at once);
    returns the replies that reached "Meta" and the archived webhook's id."""

    def send(phone: str, item: dict, *, name: str = "Test", late: bool = False):
        send.sent_by.setdefault(phone, []).append(item["id"])
        if not late:
            fake_graph.mark_inbound(phone)  # Meta's view of the 24-hour window
        body = envelope(messages=[item])
        body["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] = name
        sent_before = len(fake_graph.outbox())
        event_id = webhook(body)
        replies = [e for e in fake_graph.outbox(to=phone) if e["seq"] > sent_before]
        return replies, event_id

    def webhook(body: dict) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            assert post_webhook(client, json.dumps(body).encode()).status_code == 200
        return InboundEvent.objects.latest("id").pk

    send.webhook = webhook
    send.sent_by = {}
    return send


def tap(phone: str, kind: str, reply_id: str) -> dict:
    key = "list_reply" if kind == "list" else "button_reply"
    return {
        "from": phone,
        "id": wamid(),
        "timestamp": str(int(time.time())),
        "type": "interactive",
        "interactive": {"type": key, key: {"id": reply_id, "title": "x"}},
    }


def join(chat, phone: str, name: str) -> None:
    chat(phone, text_item(phone, "Iscrivimi"), name=name)
    chat(phone, tap(phone, "button", ACCEPT), name=name)
    chat(phone, tap(phone, "list", ROW_ALL), name=name)
    chat(phone, tap(phone, "list", ROW_DONE), name=name)
    assert Subscriber.objects.get(wa_id=phone).status == "active"


def erase(chat, phone: str, name: str) -> list[dict]:
    """Ask, then tap the confirmation: only the tap erases. Returns the confirmation's replies."""
    [question], _ = chat(phone, text_item(phone, "cancella i miei dati"), name=name)
    assert question["payload"]["interactive"]["type"] == "button"
    assert Subscriber.objects.filter(wa_id=phone).exists()  # asking alone erases nothing
    replies, _ = chat(phone, tap(phone, "button", ERASE_YES), name=name)
    return replies


def statuses_of(chat, entries: list[dict], *, recipient: str) -> int:
    """Meta's sent/delivered/read for these outbox entries, in one signed webhook."""
    items = [
        status_item(e["id"], status, recipient=recipient, callback=e["callback"])
        for e in entries
        for status in ("sent", "delivered", "read")
    ]
    return chat.webhook(envelope(statuses=items))


def text_columns():
    """(model, field name) of every CharField, TextField and JSONField of every table."""
    for model in apps.get_models(include_auto_created=True):
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, models.CharField | models.TextField | models.JSONField):
                yield model, field.attname


def database_texts():
    """Every value of every text and JSON column (JSON cast to text by the database)."""
    for model, column in text_columns():
        values = model._base_manager.annotate(_text=Cast(column, models.TextField()))
        for value in values.values_list("_text", flat=True):
            if value:
                yield f"{model._meta.label}.{column}", value


def redis_texts(redis_conn):
    """Every key name and every value (strings, and the members of sets, hashes, lists)."""
    for key in redis_conn.scan_iter():
        yield "key", key.decode()
        kind = redis_conn.type(key).decode()
        if kind == "string":
            values = [redis_conn.get(key)]
        elif kind == "hash":
            values = [v for pair in redis_conn.hgetall(key).items() for v in pair]
        elif kind == "set":
            values = list(redis_conn.smembers(key))
        elif kind == "zset":
            values = redis_conn.zrange(key, 0, -1)
        elif kind == "list":
            values = redis_conn.lrange(key, 0, -1)
        else:
            values = []
        for value in values:
            yield key.decode(), value.decode(errors="replace")


def hits(texts, needles: list[str]) -> list[tuple[str, str]]:
    """Where any needle occurs as a whole word (so 39333123456 is not found in 393331234567)."""
    found = []
    for where, text in texts:
        for needle in needles:
            if re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", text, re.IGNORECASE):
                found.append((where, needle))
    return found


def test_after_erasure_nothing_of_the_person_is_anywhere_even_what_arrives_later(
    chat, fake_graph, redis_conn
):
    phone = "393471234567"
    join(chat, phone, NAME)
    question = f"Buongiorno, sono {NAME}, abito in {ADDRESS}: quando passa la raccolta?"
    [auto_reply], _ = chat(phone, text_item(phone, question), name=NAME)
    assert auto_reply["payload"]["type"] == "text"
    # A post reaches them, and Meta reports on it.
    post = make_post(topics=[Topic.objects.filter(is_active=True).first()])
    publishing.post_publish(post=post)
    sending.drain_post(post.pk)
    [post_entry] = [e for e in fake_graph.outbox(to=phone) if e["callback"].startswith("d:")]
    statuses_of(chat, [post_entry], recipient=phone)
    before = time.time()

    [confirmation] = erase(chat, phone, NAME)

    assert Subscriber.objects.get().status == "erased"
    # After the erasure: the confirmation's statuses, and a message the person wrote before
    # asking but that Meta delivers only now.
    statuses_of(chat, [confirmation], recipient=phone)
    late = text_item(phone, f"Dimenticavo: {ADDRESS}, citofono {NAME}", at=int(before) - 5)
    replies, late_event = chat(phone, late, name=NAME, late=True)
    assert replies == []  # nobody answers what was sent before the erasure
    assert InboundEvent.objects.get(pk=late_event).processed_at is not None

    plain_hash = hashlib.sha256(phone.encode()).hexdigest()
    needles = [phone, NAME, ADDRESS, "Glicini", "Finocchiaro", plain_hash, plain_hash[:32]]
    # Meta's message ids are derived from the number: theirs, and ours to them, must go too.
    needles += chat.sent_by[phone] + [e["id"] for e in fake_graph.outbox(to=phone)]
    assert hits(database_texts(), needles) == []
    assert hits(redis_texts(redis_conn), needles) == []
    # What is kept: the anonymous ledger, and that messages came (type and time only).
    kinds = set(ConsentEvent.objects.values_list("kind", flat=True))
    assert {"join", "consent", "topic_added", "erasure"} <= kinds
    assert InboundMessage.objects.filter(kind="text").count() == 3


def test_erasing_one_number_leaves_a_longer_number_that_contains_it_untouched(chat, fake_graph):
    gone, stays = "39333123456", "393331234567"
    join(chat, gone, "Anna Gone")
    join(chat, stays, "Bruno Stays")
    [to_gone], gone_event = chat(gone, text_item(gone, "Una domanda"), name="Anna Gone")
    [to_stays], stays_event = chat(stays, text_item(stays, "Una domanda"), name="Bruno Stays")
    # Meta batches: one webhook with statuses for both of them.
    mixed_items = [
        status_item(to_gone["id"], "read", recipient=gone, callback=to_gone["callback"]),
        status_item(to_stays["id"], "read", recipient=stays, callback=to_stays["callback"]),
    ]
    mixed = chat.webhook(envelope(statuses=mixed_items))
    stays_only = [stays_event, statuses_of(chat, [to_stays], recipient=stays)]
    bodies = dict(InboundEvent.objects.values_list("id", "body"))
    theirs = snapshot(stays)

    [confirmation] = erase(chat, gone, "Anna Gone")
    statuses_of(chat, [confirmation], recipient=gone)

    assert snapshot(stays) == theirs
    for event_id in stays_only:
        assert InboundEvent.objects.get(pk=event_id).body == bodies[event_id]  # byte for byte
    after = json.loads(InboundEvent.objects.get(pk=mixed).body)
    gone_status, stays_status = after["entry"][0]["changes"][0]["value"]["statuses"]
    assert stays_status == mixed_items[1]
    assert gone_status.pop("id").startswith("[erased]")  # Meta derives it from the number
    expected = {k: v for k, v in mixed_items[0].items() if k != "id"}
    assert gone_status == expected | {"recipient_id": "[erased]"}
    assert "Anna Gone" not in InboundEvent.objects.get(pk=gone_event).body
    assert hits(database_texts(), [gone, "Anna Gone"]) == []
    assert Subscriber.objects.get(wa_id=stays).status == "active"


def snapshot(phone: str) -> dict:
    """Every row about one person, as stored."""
    subscriber = Subscriber.objects.filter(wa_id=phone)
    return {
        "subscriber": list(subscriber.values()),
        "ledger": list(ConsentEvent.objects.filter(subscriber__in=subscriber).values()),
        "inbound": list(InboundMessage.objects.filter(wa_id=phone).order_by("id").values()),
        "outbound": list(OutboundMessage.objects.filter(to_wa_id=phone).order_by("id").values()),
    }


def test_someone_erased_who_writes_again_is_answered_and_stays_erased(chat, fake_graph):
    phone = "393471234500"
    join(chat, phone, NAME)
    erase(chat, phone, NAME)

    later = int(time.time()) + 1  # Meta's times are whole seconds: the same one counts as before
    [answer], event_id = chat(phone, text_item(phone, f"Grazie, {ADDRESS}", at=later), name=NAME)

    assert answer["payload"]["messaging_product"] == "whatsapp"  # answered: they did write
    message_ids = chat.sent_by[phone] + [e["id"] for e in fake_graph.outbox(to=phone)]
    assert hits(database_texts(), [phone, NAME, ADDRESS, *message_ids]) == []
    assert InboundMessage.objects.get(event_id=event_id).wa_id == ""


def test_someone_erased_who_joins_again_is_kept_from_then_on(chat, fake_graph):
    phone = "393471234501"
    join(chat, phone, NAME)
    erase(chat, phone, NAME)

    _, event_id = chat(phone, text_item(phone, "Iscrivimi", at=int(time.time()) + 1), name=NAME)

    assert Subscriber.objects.get(wa_id=phone).status == "pending"
    assert phone in InboundEvent.objects.get(pk=event_id).body
    assert InboundMessage.objects.get(event_id=event_id).wa_id == phone
