"""Choosing between everything at once and the weekly digest in the chat: asked at the end of
joining, changed later with a word, shown in I MIEI DATI and recorded in the ledger."""

from __future__ import annotations

import pytest

from subscribers.conversation import machine as c
from subscribers.conversation.intents import Intent, understand
from subscribers.conversation.machine import ACCEPT, ROW_DONE
from subscribers.models import ConsentEvent, Subscriber
from tests.channel.webhook.helpers import text_item
from tests.subscribers.conversation.test_handler import PHONE, say, tap  # noqa: F401
from topics.models import Topic

pytestmark = pytest.mark.django_db

TOPICS = [
    c.TopicChoice("scuola", "Scuola", "Schools", digest=True),
    c.TopicChoice("allerte", "Allerte", "Alerts"),
]


@pytest.mark.parametrize(
    ("said", "intent"),
    [
        ("RIEPILOGO", Intent.DIGEST_WEEKLY),
        ("un riepilogo a settimana", Intent.DIGEST_WEEKLY),
        ("Riepilogo settimanale, grazie", Intent.DIGEST_WEEKLY),
        ("digest", Intent.DIGEST_WEEKLY),
        ("once a week please", Intent.DIGEST_WEEKLY),
        ("Tutto subito", Intent.DIGEST_IMMEDIATE),
        ("tutto subito!", Intent.DIGEST_IMMEDIATE),
        ("everything now", Intent.DIGEST_IMMEDIATE),
        ("Everything at once", Intent.DIGEST_IMMEDIATE),
    ],
)
def test_the_words_for_each_choice(said, intent):
    assert understand(said).intent == intent


def test_the_end_of_joining_asks_only_when_a_chosen_topic_has_a_digest():
    person = c.Person(status="active", state=c.CHOOSING, chosen=frozenset({"scuola"}))
    done = c.step(person, c.Event("list_reply", reply_id=ROW_DONE), TOPICS)
    confirmation, question = done.replies
    assert isinstance(question, c.Buttons)
    assert [tap_id for tap_id, _title in question.buttons] == list(c.DIGEST_CHOICES)
    only_alerts = c.Person(status="active", state=c.CHOOSING, chosen=frozenset({"allerte"}))
    assert len(c.step(only_alerts, c.Event("list_reply", reply_id=ROW_DONE), TOPICS).replies) == 1
    chose = c.Person(
        status="active", state=c.CHOOSING, chosen=frozenset({"scuola"}), digest="weekly"
    )
    assert len(c.step(chose, c.Event("list_reply", reply_id=ROW_DONE), TOPICS).replies) == 1


def test_someone_not_subscribed_cannot_choose():
    out = c.step(c.Person(), c.Event("text", text="riepilogo"), TOPICS)
    assert out.effects == () and "ISCRIVIMI" in out.replies[0].body


def test_every_digest_reply_passes_the_fake_graph_validation():
    from channel.fakegraph.validation import validate_message

    count = 0
    for language in ("it", "en"):
        person = c.Person(status="active", state=c.CHOOSING, chosen=frozenset({"scuola"}),
                          language=language)  # fmt: skip
        done = c.step(person, c.Event("list_reply", reply_id=ROW_DONE), TOPICS)
        chosen = c.step(person, c.Event("text", text="tutto subito"), TOPICS)
        for reply in (*done.replies, *chosen.replies):
            assert validate_message(c.render(reply, "393331234567"), {}) is None
            count += 1
    assert count == 6


def test_join_then_choose_the_digest_then_everything_now(say):  # noqa: F811
    Topic.objects.filter(slug="scuola").update(delivery=Topic.Delivery.DIGEST)
    say(text_item(PHONE, "Iscrivimi"))
    say(tap("button", ACCEPT))
    say(tap("list", "t:scuola"))
    confirmation, question = say(tap("list", ROW_DONE))
    buttons = question["interactive"]["action"]["buttons"]
    assert [b["reply"]["title"] for b in buttons] == ["Tutto subito", "Ogni settimana"]
    [done] = say(tap("button", "digest:weekly"))
    assert "un messaggio a settimana" in done["text"]["body"]
    person = Subscriber.objects.get(wa_id=PHONE)
    assert person.digest_preference == "weekly"
    [later] = say(text_item(PHONE, "everything now"))
    person.refresh_from_db()
    assert person.digest_preference == "immediate"
    assert "ogni notizia appena esce" in later["text"]["body"]  # in the person's language
    kinds = list(
        ConsentEvent.objects.filter(subscriber=person, kind__startswith="digest")
        .order_by("at", "id")
        .values_list("kind", "wa_message_id")
    )
    assert [kind for kind, _wamid in kinds] == ["digest_weekly", "digest_immediate"]
    assert all(wamid for _kind, wamid in kinds)  # the message that proves each choice
    [data] = say(text_item(PHONE, "i miei dati"))
    body = data["text"]["body"]
    assert "• notizie: tutto subito" in body
    assert "scelto il riepilogo settimanale" in body and "scelto tutto subito" in body


def test_the_english_texts_are_translated():
    english = c.Person(status="active", language="en")
    [reply] = c.step(english, c.Event("text", text="riepilogo"), TOPICS).replies
    assert reply.body.startswith("Done! ✅ You will get one message a week")
