"""Mid-conversation, the conversation does what the person obviously means: typed answers
count as taps, old taps get a sensible answer, nobody unknown meets silence."""

from __future__ import annotations

import json

import pytest

from subscribers.conversation import machine as c
from subscribers.conversation.chooser import TITLE, TopicList, row_text, units
from tests.channel.webhook.helpers import envelope, post_webhook, text_item, wamid
from tests.subscribers.conversation.test_machine import TOPICS, TWENTY, tap, text

PENDING = c.Person(status="pending", state=c.CONSENT)
CHOOSING = c.Person(status="active", state=c.CHOOSING)
DONE = c.Person(status="active", state=c.IDLE, chosen=frozenset({"scuola"}))


def kinds(outcome) -> list[str]:
    return [e.kind for e in outcome.effects]


@pytest.mark.parametrize("said", ["Accetto", "sì", "Si grazie", "ok", "OK 👍", "yes", "va bene"])
def test_a_typed_yes_is_the_accept_tap(said):
    outcome = c.step(PENDING, text(said), TOPICS)
    assert kinds(outcome) == ["consent"]
    assert isinstance(outcome.replies[0], TopicList)


@pytest.mark.parametrize("said", ["no", "No grazie", "non accetto", "no thanks"])
def test_a_typed_no_is_the_refuse_tap(said):
    assert kinds(c.step(PENDING, text(said), TOPICS)) == ["refuse"]


@pytest.mark.parametrize("said", ["che dati tenete?", "ciao", "boh", "📷"])
def test_anything_else_during_consent_asks_again_with_the_buttons(said):
    outcome = c.step(PENDING, text(said), TOPICS)
    [question] = outcome.replies
    assert [b for b, _t in question.buttons] == [c.ACCEPT, c.REFUSE]
    assert outcome.effects == () and outcome.person == PENDING


def test_stop_during_consent_still_leaves():
    # Before consenting, leaving is declining: nothing is kept either way.
    assert kinds(c.step(PENDING, text("basta"), TOPICS)) in (["leave"], ["refuse"])


def test_typing_topic_names_and_done_while_choosing():
    outcome = c.step(CHOOSING, text("Scuola"), TOPICS)
    assert outcome.person.chosen == {"scuola"}
    outcome = c.step(outcome.person, text("raccolta differenziata e farmacie"), TOPICS)
    assert outcome.person.chosen == {"scuola", "rifiuti", "farmacie"}
    outcome = c.step(outcome.person, text("Fatto!"), TOPICS)
    assert outcome.person.state == c.IDLE and "Farmacie di turno" in outcome.replies[0].body


def test_a_question_while_choosing_shows_the_list_again():
    outcome = c.step(CHOOSING, text("come funziona?"), TOPICS)
    assert isinstance(outcome.replies[0], TopicList) and outcome.effects == ()


def test_old_accept_after_finishing_shows_the_topics():
    outcome = c.step(DONE, tap("button_reply", c.ACCEPT), TOPICS)
    first, listing = outcome.replies
    assert "già" in first.body and isinstance(listing, TopicList)
    assert "autoreply" not in kinds(outcome)


def test_old_refuse_after_finishing_asks_whether_to_leave():
    outcome = c.step(DONE, tap("button_reply", c.REFUSE), TOPICS)
    [question] = outcome.replies
    assert [b for b, _t in question.buttons] == [c.LEAVE_YES, c.LEAVE_NO]
    assert outcome.effects == ()


def test_old_list_tap_after_leaving_says_how_to_join():
    outcome = c.step(c.Person(status="left"), tap("list_reply", "t:scuola"), TOPICS)
    assert "ISCRIVIMI" in outcome.replies[0].body and outcome.effects == ()


def test_old_done_tap_confirms_again():
    outcome = c.step(DONE, tap("list_reply", c.ROW_DONE), TOPICS)
    assert "Scuola" in outcome.replies[0].body and outcome.person.state == c.IDLE


def test_maybe_leave_asks_once_and_the_buttons_do_what_they_say():
    outcome = c.step(DONE, text("come faccio a cancellarmi?"), TOPICS)
    [question] = outcome.replies
    assert question.buttons[0] == (c.LEAVE_YES, "Sì, cancellami")
    assert kinds(c.step(DONE, tap("button_reply", c.LEAVE_YES), TOPICS)) == ["leave"]
    stay = c.step(DONE, tap("button_reply", c.LEAVE_NO), TOPICS)
    assert stay.effects == () and stay.person == DONE


def test_two_topics_matching_ask_which():
    topics = [*TOPICS, c.TopicChoice("sport", "Eventi sportivi", "Sport events")]
    person = c.Person(status="active", state=c.IDLE, chosen=frozenset({"eventi", "sport"}))
    outcome = c.step(person, text("stop eventi"), topics)
    assert outcome.effects == ()
    assert "Eventi e cultura" in outcome.replies[0].body
    assert "Eventi sportivi" in outcome.replies[0].body


@pytest.mark.parametrize("said", ["Buongiorno", "A che ora apre l'anagrafe?", "ciao", "no"])
def test_someone_unknown_learns_first_how_to_join(said):
    outcome = c.step(c.Person(), text(said), TOPICS)
    [reply] = outcome.replies
    assert reply.body.startswith("Ciao! Per ricevere") and "ISCRIVIMI" in reply.body
    assert reply.buttons == ((c.JOIN, "Iscrivimi"),)
    assert kinds(outcome) == ["howto"]
    joined = c.step(c.Person(), tap("button_reply", c.JOIN), TOPICS)
    assert kinds(joined) == ["join"]


def test_request_welcome_gets_the_welcome_only_when_unknown():
    event = c.Event(kind="request_welcome")
    assert kinds(c.step(c.Person(language="en"), event, TOPICS)) == ["howto"]
    assert c.step(DONE, event, TOPICS).replies == ()


def test_paging_rows_say_where_they_go_and_the_last_returns_to_the_first():
    outcome, described = c.step(CHOOSING, text("argomenti"), TWENTY), []
    for _ in range(3):
        [row] = [r for r in outcome.replies[0].rows if r[0].startswith(c.ROW_PAGE)]
        described.append((row[1], row[2]))
        outcome = c.step(outcome.person, tap("list_reply", row[0]), TWENTY)
    assert described == [
        ("Altri argomenti ▸", "pagina 2 di 3"),
        ("Altri argomenti ▸", "pagina 3 di 3"),
        ("Torna all'inizio ▸", "pagina 1 di 3"),
    ]


@pytest.mark.parametrize(
    ("prefix", "name"),
    [("🏛️ ", "Servizi demografici e stato civile"), ("✅ ", "Manutenzione del verde pubblico"),
     ("", "Sostegno(pedagogico)straordinariolungo"), ("👨‍👩‍👧 ", "Famiglie")],
)  # fmt: skip
def test_row_titles_fit_in_utf16_units_and_the_name_continues_in_the_description(prefix, name):
    title, description = row_text(prefix, name, "Descrizione dell'argomento")
    assert units(title) <= TITLE and units(description) <= 72
    if title.endswith("…"):
        head, rest = title[len(prefix) : -1], description[1:].split(" · ")[0]
        assert " ".join(p for p in (head.strip(), rest) if p).replace(" ", "") == name.replace(
            " ", ""
        )
    else:
        assert title == prefix + name


@pytest.mark.django_db
def test_a_number_outside_italy_is_answered_in_english_and_request_welcome_too(
    client, fake_graph, redis_conn, django_capture_on_commit_callbacks
):
    def say(phone, item):
        fake_graph.mark_inbound(phone)
        with django_capture_on_commit_callbacks(execute=True):
            assert (
                post_webhook(client, json.dumps(envelope(messages=[item])).encode()).status_code
                == 200
            )
        return [r["payload"] for r in fake_graph.outbox(to=phone)]

    [reply] = say("447700900123", text_item("447700900123", "Hello"))
    assert reply["interactive"]["body"]["text"].startswith("Hello! To get news")
    welcome = {"from": "393331112222", "id": wamid(), "timestamp": "1760000000",
               "type": "request_welcome"}  # fmt: skip
    [reply] = say("393331112222", welcome)
    assert reply["interactive"]["body"]["text"].startswith("Ciao! Per ricevere")
