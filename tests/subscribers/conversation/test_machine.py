"""The conversation as a pure state machine (no database): keywords, consent, topic choice."""

from __future__ import annotations

import itertools

import pytest

from channel.fakegraph.validation import Template, validate_message
from subscribers.conversation import machine as c
from subscribers.conversation.chooser import TopicList
from subscribers.conversation.intents import Intent, understand

TOPICS = [
    c.TopicChoice("scuola", "Scuola", "Schools", "Avvisi dalle scuole", "School notices", "🏫"),
    c.TopicChoice("cantieri", "Cantieri e viabilità", "Roadworks and traffic", "Strade", "Roads"),
    c.TopicChoice("rifiuti", "Raccolta differenziata", "Recycling", "Calendario", "Calendar"),
    c.TopicChoice("eventi", "Eventi e cultura", "Events and culture"),
    c.TopicChoice("farmacie", "Farmacie di turno", "Pharmacies on duty"),
]
TWENTY = [c.TopicChoice(f"t{i}", f"Argomento {i}", f"Topic {i}") for i in range(20)]
# Long names, wide emoji: titles must still fit in 24 UTF-16 units, descriptions in 72.
LONG = [
    c.TopicChoice(f"l{i}", f"Servizi demografici, stato civile ed elettorale {i}",
                  f"Registry office, civil status and electoral services {i}",
                  "Certificati, carte d'identità, cambi di residenza e liste elettorali",
                  "Certificates, identity cards, change of address and electoral rolls", "👨‍👩‍👧")
    for i in range(12)
]  # fmt: skip


def text(body: str) -> c.Event:
    return c.Event(kind="text", text=body, wamid="wamid.x")


def tap(kind: str, reply_id: str) -> c.Event:
    return c.Event(kind=kind, reply_id=reply_id, wamid="wamid.x")


def rows(reply) -> list[tuple[str, str, str]]:
    assert isinstance(reply, TopicList)
    return list(reply.rows)


@pytest.mark.parametrize(
    ("said", "intent"),
    [
        ("Iscrivimi", Intent.JOIN),
        ("  ISCRIVIMI!! ", Intent.JOIN),
        ("/iscrivimi", Intent.JOIN),
        ("Cancellami.", Intent.LEAVE),
        ("cancèllami", Intent.LEAVE),
        ("STOP", Intent.LEAVE),
        ("i miei   dati", Intent.MY_DATA),
        ("Cancella i miei dati", Intent.ERASE),
        ("English", Intent.ENGLISH),
    ],
)
def test_commands_match_after_normalising(said, intent):
    assert understand(said).intent == intent


def test_join_consent_and_three_topics_take_five_taps_and_six_messages():
    person, messages, taps = c.Person(), 0, 0

    def go(event, is_tap):
        nonlocal person, messages, taps
        outcome = c.step(person, event, TOPICS)
        person = outcome.person
        messages += len(outcome.replies)
        taps += is_tap
        return outcome

    welcome = go(text("Iscrivimi"), False)
    assert isinstance(welcome.replies[0], c.Buttons)
    assert [e.kind for e in welcome.effects] == ["join"]
    assert [e.kind for e in go(tap("button_reply", c.ACCEPT), True).effects] == ["consent"]
    for slug in ("scuola", "rifiuti", "farmacie"):
        go(tap("list_reply", f"t:{slug}"), True)
    done = go(tap("list_reply", c.ROW_DONE), True)
    assert person.chosen == {"scuola", "rifiuti", "farmacie"}
    assert person.state == c.IDLE and "CANCELLAMI" in done.replies[0].body
    assert (taps, messages) == (5, 6)


def test_chosen_topics_are_ticked_a_double_tap_keeps_them_and_the_ticked_row_removes():
    person = c.Person(status="active", state=c.CHOOSING)
    outcome = c.step(person, tap("list_reply", "t:scuola"), TOPICS)
    [ticked] = [row for row in rows(outcome.replies[0]) if row[1] == "✅ Scuola"]
    outcome = c.step(outcome.person, tap("list_reply", "t:scuola"), TOPICS)  # double tap
    assert outcome.person.chosen == {"scuola"}
    outcome = c.step(outcome.person, tap("list_reply", ticked[0]), TOPICS)
    assert outcome.person.chosen == frozenset()
    assert outcome.effects[0] == c.Effect("set_topics", topics=frozenset())
    again = c.step(outcome.person, tap("list_reply", ticked[0]), TOPICS)  # double tap
    assert again.person.chosen == frozenset()


def test_the_list_has_all_and_done_rows_and_all_picks_everything():
    person = c.Person(status="active", state=c.CHOOSING)
    outcome = c.step(person, tap("list_reply", c.ROW_ALL), TOPICS)
    ids = [row_id for row_id, _t, _d in rows(outcome.replies[0])]
    assert ids[-2:] == [c.ROW_ALL, c.ROW_DONE]
    assert outcome.person.chosen == {t.slug for t in TOPICS}


def test_twenty_topics_page_within_ten_rows_and_every_topic_is_reachable():
    """Meta: at most 10 rows in total across sections."""
    person, seen = c.Person(status="active", state=c.CHOOSING), set()
    reply = c.step(person, text("argomenti"), TWENTY).replies[0]
    for _ in range(5):
        listed = rows(reply)
        assert len(listed) <= 10
        seen |= {row_id[2:] for row_id, _t, _d in listed if row_id.startswith(("t:", "x:"))}
        [more] = [row_id for row_id, _t, _d in listed if row_id.startswith(c.ROW_PAGE)]
        outcome = c.step(person, tap("list_reply", more), TWENTY)
        person, reply = outcome.person, outcome.replies[0]
    assert seen == {t.slug for t in TWENTY}


def test_cancellami_works_in_the_middle_of_choosing_topics():
    person = c.Person(status="active", state=c.CHOOSING, chosen=frozenset({"scuola"}))
    outcome = c.step(person, text("cancellami"), TOPICS)
    assert [e.kind for e in outcome.effects] == ["leave"]
    assert len(outcome.replies) == 1


def test_leave_one_topic_by_the_name_shown():
    person = c.Person(status="active", state=c.IDLE, chosen=frozenset({"scuola", "eventi"}))
    outcome = c.step(person, text("cancellami scuola"), TOPICS)
    assert outcome.person.chosen == {"eventi"}
    assert "Eventi e cultura" in outcome.replies[0].body


def test_refusing_stores_nothing_but_the_refusal():
    person = c.step(c.Person(), text("iscrivimi"), TOPICS).person
    outcome = c.step(person, tap("button_reply", c.REFUSE), TOPICS)
    assert [e.kind for e in outcome.effects] == ["refuse"]
    assert outcome.person == c.Person()


@pytest.mark.parametrize("kind", ["image", "location", "sticker", "audio"])
def test_anything_else_gets_the_one_way_auto_reply(kind):
    outcome = c.step(c.Person(status="active"), c.Event(kind=kind), TOPICS)
    assert [e.kind for e in outcome.effects] == ["autoreply"]


@pytest.mark.parametrize("kind", ["reaction", "unsupported", "system"])
def test_reactions_and_unsupported_messages_are_ignored(kind):
    assert c.step(c.Person(status="active"), c.Event(kind=kind), TOPICS).replies == ()


def test_english_keyword_answers_in_english():
    outcome = c.step(c.Person(), text("subscribe"), TOPICS)
    assert outcome.person.language == "en"
    assert "Welcome" in outcome.replies[0].body


def test_flow_reply_sets_the_topics_when_a_flow_is_configured():
    person = c.Person(status="active", state=c.CHOOSING)
    offered = c.step(person, text("argomenti"), TOPICS, flow_id="123")
    assert isinstance(offered.replies[0], c.TopicFlow)
    event = c.Event(kind="nfm_reply", flow_response={"topics": ["scuola", "nope", "eventi"]})
    outcome = c.step(person, event, TOPICS, flow_id="123")
    assert outcome.person.chosen == {"scuola", "eventi"}


# More topics than a Flow's CheckboxGroup lists (20), some with names longer than a Flow
# item's title (30).
FORTY_FIVE = [
    c.TopicChoice(f"f{i}", f"Servizi demografici, stato civile ed elettorale {i}"
                  if i % 3 == 0 else f"Argomento {i}", f"Topic {i}", "Descrizione", "About")
    for i in range(45)
]  # fmt: skip


def test_a_flow_offers_every_topic_with_its_whole_name(settings):
    settings.WHATSAPP_TOPICS_FLOW_ID = "123"
    person = c.Person(status="active", state=c.CHOOSING, chosen=frozenset({"f2", "f44"}))
    [flow] = c.step(person, text("argomenti"), FORTY_FIVE, flow_id="123").replies
    payload = c.render(flow, "393331234567")
    assert validate_message(payload, {}) is None, payload
    data = payload["interactive"]["action"]["parameters"]["flow_action_payload"]["data"]
    groups = [data["topics"], data["topics_2"], data["topics_3"]]
    assert [len(g) for g in groups] == [20, 20, 5]
    items = [item for group in groups for item in group]
    assert [item["id"] for item in items] == [t.slug for t in FORTY_FIVE]
    for item, topic in zip(items, FORTY_FIVE, strict=True):
        # A name too long for the title goes on in the description, never cut.
        shown = item["title"] + item.get("description", "")
        assert topic.name_it.replace(" ", "") in shown.replace("…", "").replace(" ", "")
    assert (data["chosen"], data["chosen_2"], data["chosen_3"]) == (["f2"], [], ["f44"])


def test_topics_ticked_in_any_checkbox_group_of_the_flow_are_chosen():
    person = c.Person(status="active", state=c.CHOOSING)
    response = {"topics": ["f1"], "topics_3": ["f44", "nope"], "flow_token": "topics"}
    event = c.Event(kind="nfm_reply", flow_response=response)
    outcome = c.step(person, event, FORTY_FIVE, flow_id="123")
    assert outcome.person.chosen == {"f1", "f44"}


def test_the_fake_refuses_a_flow_checkbox_list_over_metas_limits():
    def flow(items: list[dict]) -> dict:
        parameters = {"flow_id": "1", "flow_cta": "Scegli", "flow_action_payload": {
            "screen": "TOPICS", "data": {"topics": items}}}  # fmt: skip
        interactive = {"type": "flow", "body": {"text": "Argomenti"},
                       "action": {"name": "flow", "parameters": parameters}}  # fmt: skip
        return {"messaging_product": "whatsapp", "to": "393331234567", "type": "interactive",
                "interactive": interactive}  # fmt: skip

    assert validate_message(flow([{"id": f"t{i}", "title": "T"} for i in range(20)]), {}) is None
    assert validate_message(flow([{"id": f"t{i}", "title": "T"} for i in range(21)]), {})
    assert validate_message(flow([{"id": "t", "title": "x" * 31}]), {})
    assert validate_message(flow([{"id": "t", "title": "T", "description": "x" * 301}]), {})
    assert validate_message(flow([{"id": "t", "title": "T"}, {"id": "t", "title": "U"}]), {})


def _every_reply():
    """Every reply of every state × event, in both languages, for 5, 20 and 12 long topics."""
    states = [
        c.Person(),
        c.Person(status="pending", state=c.CONSENT),
        c.Person(status="active", state=c.CHOOSING, chosen=frozenset({"scuola"})),
        c.Person(status="active", state=c.IDLE, chosen=frozenset({"t3", "t15"}), page=2),
        c.Person(status="left"),
    ]
    events = [text(word) for word in ("iscrivimi", "cancellami", "argomenti", "aiuto",
                                      "english", "italiano", "i miei dati",
                                      "cancella i miei dati", "cancellami scuola",
                                      "cancellami boh", "ciao", "no", "stop eventi", "Accetto",
                                      "fatto", "scuola", "come faccio a cancellarmi?")]  # fmt: skip
    events += [tap("button_reply", b) for b in (c.ACCEPT, c.REFUSE, c.JOIN, c.LEAVE_YES)]
    events += [tap("button_reply", c.LEAVE_NO), c.Event(kind="request_welcome")]
    rows = ("t:scuola", "x:scuola", "t:t3", "t:l1", c.ROW_ALL, c.ROW_DONE, "page:1")
    events += [tap("list_reply", r) for r in rows]
    events += [c.Event(kind="image"), c.Event(kind="nfm_reply", flow_response={"topics": []})]
    for person, event, topics, lang, flow in itertools.product(
        states, events, (TOPICS, TWENTY, LONG, FORTY_FIVE), ("it", "en"), ("", "123")
    ):
        person = c.Person(**{**person.__dict__, "language": lang})
        yield from c.step(person, event, topics, flow_id=flow).replies


def test_every_outbound_payload_passes_the_fake_graph_validation(settings):
    """Each reply the conversation can produce obeys Meta's limits, checked by the
    fake Graph API's validator, not by the builders that made it."""
    settings.WHATSAPP_TOPICS_FLOW_ID = "123"
    count = 0
    for reply in _every_reply():
        payload = c.render(reply, "393331234567")
        assert validate_message(payload, dict[tuple[str, str], Template]()) is None, payload
        count += 1
    assert count > 500
