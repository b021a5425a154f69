"""What the chat says about people's data is true: declining keeps nothing, I MIEI DATI lists
everything, and staff can erase a person by number the way the chat does, audited.

Through the real webhook, drain, database, Redis and fake Graph API, like test_erasure.py.
"""

from __future__ import annotations

import io
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from channel.models import InboundMessage
from subscribers.conversation.machine import ACCEPT, ERASE_NO, REFUSE
from subscribers.conversation.my_data import MAX_CHARS, my_data_text
from subscribers.delivery import publishing, sending
from subscribers.models import ConsentEvent, Delivery, Subscriber
from tests.channel.webhook.helpers import text_item
from tests.factories import make_post, make_subscriber, make_topic
from tests.subscribers.conversation import test_erasure
from tests.subscribers.conversation.test_erasure import (
    ADDRESS,
    NAME,
    database_texts,
    hits,
    join,
    redis_texts,
    statuses_of,
    tap,
)
from topics.models import AuditEntry, Topic

pytestmark = pytest.mark.django_db
chat, fast = test_erasure.chat, test_erasure.fast  # the same conversation fixtures


def body_of(reply: dict) -> str:
    payload = reply["payload"]
    if payload["type"] == "text":
        return payload["text"]["body"]
    return payload["interactive"]["body"]["text"]


def test_declining_keeps_neither_the_number_nor_the_name_nor_the_words_anywhere(
    chat, fake_graph, redis_conn
):
    phone = "393471230001"
    chat(phone, text_item(phone, "Iscrivimi"), name=NAME)
    chat(phone, text_item(phone, f"Sono {NAME}, abito in {ADDRESS}"), name=NAME)

    [declined], _ = chat(phone, tap(phone, "button", REFUSE), name=NAME)
    statuses_of(chat, [declined], recipient=phone)  # Meta reports on the reply afterwards

    assert "cancellato il tuo numero" in body_of(declined)
    assert not Subscriber.objects.exists()
    message_ids = chat.sent_by[phone] + [e["id"] for e in fake_graph.outbox(to=phone)]
    needles = [phone, NAME, ADDRESS, "Glicini", *message_ids]
    assert hits(database_texts(), needles) == []
    assert hits(redis_texts(redis_conn), needles) == []
    # Only an anonymous refusal, and that three messages came.
    assert list(ConsentEvent.objects.values_list("kind", "subscriber")) == [("refusal", None)]
    assert InboundMessage.objects.count() == 3


def test_leaving_before_consenting_keeps_nothing_either(chat, fake_graph):
    phone = "393471230007"
    chat(phone, text_item(phone, "Iscrivimi"), name=NAME)

    [answer], _ = chat(phone, text_item(phone, "cancellami"), name=NAME)

    assert "cancellato il tuo numero" in body_of(answer)
    message_ids = chat.sent_by[phone] + [e["id"] for e in fake_graph.outbox(to=phone)]
    assert hits(database_texts(), [phone, NAME, *message_ids]) == []


def test_someone_who_declines_and_then_joins_is_kept_from_then_on(chat):
    phone = "393471230002"
    chat(phone, text_item(phone, "Iscrivimi"), name=NAME)
    chat(phone, tap(phone, "button", REFUSE), name=NAME)

    chat(phone, text_item(phone, "Iscrivimi", at=int(time.time()) + 1), name=NAME)
    chat(phone, tap(phone, "button", ACCEPT), name=NAME)

    assert Subscriber.objects.get(wa_id=phone).status == "active"


def test_asking_for_erasure_and_answering_no_erases_nothing(chat):
    phone = "393471230003"
    join(chat, phone, NAME)
    [question], _ = chat(phone, text_item(phone, "cancella i miei dati"), name=NAME)
    titles = [b["reply"]["title"] for b in question["payload"]["interactive"]["action"]["buttons"]]
    assert titles == ["Sì, cancella tutto", "No"]

    [answer], _ = chat(phone, tap(phone, "button", ERASE_NO), name=NAME)

    assert "non cancelliamo" in body_of(answer)
    assert Subscriber.objects.get(wa_id=phone).status == "active"


def test_my_data_lists_everything_stored(chat, fake_graph):
    phone = "393471230004"
    join(chat, phone, NAME)
    chat(phone, text_item(phone, "Una domanda"), name=NAME)
    post = make_post(title="Chiusura scuole", topics=[Topic.objects.filter(is_active=True)[0]])
    publishing.post_publish(post=post)
    sending.drain_post(post.pk)
    [sent] = [e for e in fake_graph.outbox(to=phone) if e["callback"].startswith("d:")]
    statuses_of(chat, [sent], recipient=phone)

    [reply], _ = chat(phone, text_item(phone, "i miei dati"), name=NAME)

    text = body_of(reply)
    subscriber = Subscriber.objects.get(wa_id=phone)
    for expected in [
        f"+{phone}",
        NAME,
        "italiano",
        *subscriber.topics.values_list("name_it", flat=True),
        "informativa accettata",
        "messaggi che hai scritto: 6",
        "Notizie inviate a te: 1 (consegnate 1, lette 1)",
        "Chiusura scuole: letto",
    ]:
        assert expected in text
    assert len(text) <= MAX_CHARS


def test_my_data_of_someone_who_left_says_when(chat):
    phone = "393471230005"
    join(chat, phone, NAME)
    [left], _ = chat(phone, text_item(phone, "cancellami"), name=NAME)
    assert "registro della tua scelta" in body_of(left)

    [reply], _ = chat(phone, text_item(phone, "i miei dati"), name=NAME)

    day = Subscriber.objects.get(wa_id=phone).left_at.strftime("%d/%m/%Y")
    assert f"uscita il {day}" in body_of(reply)


def test_a_long_history_is_summarised_within_metas_limit():
    topics = [make_topic(name_it=f"Argomento numero {i:02d} del quartiere") for i in range(30)]
    subscriber = make_subscriber(topics=topics)
    for _ in range(5):
        for topic in topics:
            ConsentEvent.objects.create(
                subscriber=subscriber, kind="topic_added", topic=topic, source="chat",
                at=subscriber.consented_at,
            )  # fmt: skip
    for i in range(60):
        post = make_post(title=f"Un avviso piuttosto lungo, il numero {i} di tanti " * 3)
        Delivery.objects.create(post=post, subscriber=subscriber, status="read")

    text = my_data_text(subscriber, identities=[subscriber.wa_id], profile_name=NAME)

    assert len(text) <= MAX_CHARS
    assert "e altre" in text
    assert "Notizie inviate a te: 60" in text


def test_staff_erase_a_person_by_number_with_the_command(chat, fake_graph, redis_conn):
    phone = "393471230006"
    join(chat, phone, NAME)
    chat(phone, text_item(phone, f"Abito in {ADDRESS}"), name=NAME)
    subscriber = Subscriber.objects.get(wa_id=phone)

    out = io.StringIO()
    call_command("erase_subscriber", "0039 347 123 0006", "--yes", stdout=out)  # as typed

    assert f"#{subscriber.pk}" in out.getvalue()
    subscriber.refresh_from_db()
    assert (subscriber.status, subscriber.wa_id) == ("erased", None)
    message_ids = chat.sent_by[phone] + [e["id"] for e in fake_graph.outbox(to=phone)]
    assert hits(database_texts(), [phone, NAME, ADDRESS, *message_ids]) == []
    assert hits(redis_texts(redis_conn), [phone, NAME, ADDRESS]) == []
    entry = AuditEntry.objects.get(action="subscriber_erased")
    assert (entry.object_repr, entry.details) == (
        f"subscriber #{subscriber.pk}",
        {"via": "command"},
    )
    assert ConsentEvent.objects.filter(
        subscriber=subscriber, kind="erasure", source="admin"
    ).exists()


def test_the_command_refuses_what_is_not_a_number():
    for typo in ("Mario", "347 12", "+39 347 1234567 8888"):
        with pytest.raises(CommandError, match="not a phone number"):
            call_command("erase_subscriber", typo, "--yes")


def test_staff_erase_from_the_admin_after_a_confirmation_page(admin_client, admin_user):
    keep = make_subscriber()
    gone = make_subscriber()
    form = {"action": "erase_selected", "_selected_action": [gone.pk]}
    url = "/admin/subscribers/subscriber/"

    page = admin_client.post(url, form)

    assert page.status_code == 200 and b'name="confirmed" value="yes"' in page.content
    gone.refresh_from_db()
    assert gone.status == "active"  # nothing happens before the confirmation

    with transaction.atomic():
        done = admin_client.post(url, form | {"confirmed": "yes"})

    assert done.status_code == 302
    gone.refresh_from_db()
    keep.refresh_from_db()
    assert (gone.status, gone.wa_id, keep.status) == ("erased", None, "active")
    entry = AuditEntry.objects.get(action="subscriber_erased")
    assert (entry.actor, entry.details) == (admin_user, {"via": "admin"})
