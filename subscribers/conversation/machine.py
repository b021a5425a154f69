"""The citizen conversation as a pure state machine: (state, event) → (state, replies, effects).

No database and no I/O here: `subscribers.conversation.handler` loads the person, calls
`step`, applies the effects and queues the replies. What a text means is decided by
`subscribers.conversation.intents`; leaving is honoured in every state, so CANCELLAMI always
works, even while choosing topics. Mid-conversation, what the person obviously means counts:
a typed yes/no answers the consent question, a typed topic name or "fatto" works as the tap,
anything else asks again (with the buttons, or the list). Someone not subscribed always learns
first how to join.

Taps to join with three topics: Accetto, topic, topic, topic, Fatto = 5 taps; service
messages: welcome, list, three updated lists, confirmation = 6.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from channel.graph import payloads
from subscribers.conversation import texts
from subscribers.conversation.chooser import (
    ROW_ALL,
    ROW_DONE,
    ROW_PAGE,
    ROW_TOPIC,
    ROW_UNTOPIC,
    TopicFlow,
    TopicList,
    topic_chooser,
)
from subscribers.conversation.intents import (
    Intent,
    Understood,
    consent_answer,
    is_done,
    named_topics,
    understand,
)

# Conversation states (Subscriber.conversation_state).
NEW = ""
CONSENT = "consent"
CHOOSING = "choosing"
IDLE = "idle"

ACCEPT, REFUSE = "consent:yes", "consent:no"
ERASE_YES, ERASE_NO = "erase:yes", "erase:no"
JOIN, LEAVE_YES, LEAVE_NO = "join", "leave:yes", "leave:no"
DIGEST_CHOICES = {"digest:immediate": "immediate", "digest:weekly": "weekly"}  # their taps
# Not something the person said to us, so never answered (not even "this channel is one-way"):
# reactions, edits and deletions of earlier messages, Meta's notices and errors, answers to a
# call-permission request, messages in group chats
# (https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components).
IGNORED_KINDS = {
    "reaction",
    "edit",
    "revoke",
    "unsupported",
    "system",
    "errors",
    "unknown",
    "order",
    "call_permission_reply",
    "group",
}
SUBSCRIBED = ("active", "pending")


@dataclass(frozen=True)
class TopicChoice:
    slug: str
    name_it: str
    name_en: str
    description_it: str = ""
    description_en: str = ""
    emoji: str = ""
    digest: bool = False  # its posts may wait for the weekly digest

    def name(self, language: str) -> str:
        return self.name_en if language == "en" else self.name_it

    def description(self, language: str) -> str:
        return self.description_en if language == "en" else self.description_it


@dataclass(frozen=True)
class Person:
    """What the conversation knows about whoever wrote."""

    status: str = ""  # "" = unknown to us, else Subscriber.Status
    state: str = NEW
    language: str = "it"
    chosen: frozenset[str] = frozenset()
    page: int = 0
    since: str = ""
    record: bool = False  # the consent ledger holds past choices of theirs
    digest: str = ""  # their choice: "immediate", "weekly", "" (not asked yet)


@dataclass(frozen=True)
class Event:
    kind: str  # inbound message kind
    text: str = ""
    reply_id: str = ""
    flow_response: dict = field(default_factory=dict)
    wamid: str = ""


# --- replies (abstract; rendered to payloads by `render`) ----------------------------------


@dataclass(frozen=True)
class Text:
    body: str


@dataclass(frozen=True)
class Buttons:
    body: str
    buttons: tuple[tuple[str, str], ...]


Reply = Text | Buttons | TopicList | TopicFlow


# --- effects (applied by subscribers.conversation.handler) ---------------------------------


@dataclass(frozen=True)
class Effect:
    # join, consent, refuse, set_topics, leave, erase, language, autoreply, my_data, howto, digest
    kind: str
    topics: frozenset[str] = frozenset()
    language: str = ""
    choice: str = ""  # digest: "immediate" or "weekly"


@dataclass(frozen=True)
class Outcome:
    person: Person
    replies: tuple[Reply, ...] = ()
    effects: tuple[Effect, ...] = ()


def step(person: Person, event: Event, topics: list[TopicChoice], *, flow_id: str = "") -> Outcome:
    if event.kind in IGNORED_KINDS:
        return Outcome(person)
    if event.kind == "text":
        said = understand(event.text, topics)
        language = said.language or person.language
        return texts.in_language(language, _text, person, event, said, topics, flow_id)
    return texts.in_language(person.language, _reply, person, event, topics, flow_id)


def _text(person: Person, event: Event, said: Understood, topics, flow_id) -> Outcome:
    if person.state == CONSENT and person.status == "pending":
        answer = consent_answer(event.text)
        if answer is not None:
            tapped = Event("button_reply", reply_id=ACCEPT if answer else REFUSE)
            return _reply(person, tapped, topics, flow_id)
        if said.intent == Intent.UNKNOWN:
            return Outcome(person, (_consent_question(texts.consent_reask()),))
    if person.state == CHOOSING and person.status == "active":
        if is_done(event.text) and not said.intent.startswith("digest"):  # "tutto subito"
            return _finish(person, topics, flow_id)
        named = named_topics(event.text, topics)
        if named:
            return _chosen(replace(person, chosen=person.chosen | set(named)), topics, flow_id)
        if said.intent == Intent.UNKNOWN:  # a question while choosing: the list again
            return Outcome(person, (_chooser(person, topics, flow_id),))
    return _command(person, said, topics, flow_id)


def _consent_question(body: str) -> Buttons:
    return Buttons(body, ((ACCEPT, texts.accept_button()), (REFUSE, texts.refuse_button())))


def _how_to_join(person: Person) -> Outcome:
    reply = Buttons(texts.how_to_join(), ((JOIN, texts.join_button()),))
    return Outcome(person, (reply,), (Effect("howto"),))


def _maybe_leave(person: Person) -> Outcome:
    buttons = ((LEAVE_YES, texts.leave_yes_button()), (LEAVE_NO, texts.leave_no_button()))
    return Outcome(person, (Buttons(texts.maybe_leave(), buttons),))


def _command(person, said: Understood, topics, flow_id) -> Outcome:  # noqa: C901
    subscribed = person.status == "active"
    command, language = said.intent, said.language
    lang = language or person.language
    if command == Intent.UNKNOWN:
        if person.status not in SUBSCRIBED:
            return _how_to_join(person)
        return Outcome(person, (Text(texts.one_way()),), (Effect("autoreply"),))
    if command == Intent.MAYBE_LEAVE:
        return _maybe_leave(person) if person.status in SUBSCRIBED else _how_to_join(person)
    if command == Intent.LEAVE_TOPIC:
        return _leave_one(person, said.topics, topics)
    if command == Intent.JOIN:
        if subscribed:
            person = replace(person, state=CHOOSING, page=0, language=lang)
            effects = (Effect("language", language=lang),) if lang != person.language else ()
            return Outcome(
                person,
                (Text(texts.already_subscribed()), _chooser(person, topics, flow_id)),
                effects,
            )
        person = replace(person, status="pending", state=CONSENT, language=lang)
        return Outcome(
            person, (_consent_question(texts.welcome()),), (Effect("join", language=lang),)
        )
    if command == Intent.LEAVE:
        if person.status not in SUBSCRIBED:
            return Outcome(person, (Text(texts.not_subscribed()),))
        if person.status == "pending" and not person.record:  # leaving before consenting
            gone = Person(language=person.language)
            return Outcome(gone, (Text(texts.refused()),), (Effect("refuse"),))
        return Outcome(
            replace(person, state=NEW, chosen=frozenset()),
            (Text(texts.left()),),
            (Effect("leave"),),
        )
    if command == Intent.TOPICS:
        if not subscribed:
            return Outcome(person, (Text(texts.not_subscribed()),))
        person = replace(person, state=CHOOSING, page=0)
        return Outcome(person, (_chooser(person, topics, flow_id),))
    if command == Intent.HELP:
        return Outcome(person, (Text(texts.help_text()),))
    if command in (Intent.ENGLISH, Intent.ITALIAN):
        person = replace(person, language=language)
        effects = (Effect("language", language=language),) if person.status else ()
        return Outcome(person, (Text(texts.language_set()),), effects)
    if command in (Intent.DIGEST_IMMEDIATE, Intent.DIGEST_WEEKLY):
        return _digest(person, command.value.removeprefix("digest_"))
    if command == Intent.MY_DATA:
        # What is stored is in the database: the handler writes the list.
        return Outcome(person, (), (Effect("my_data"),))
    # Intent.ERASE: irreversible, so one question with buttons first; only the tap erases.
    buttons = ((ERASE_YES, texts.erase_yes_button()), (ERASE_NO, texts.erase_no_button()))
    return Outcome(person, (Buttons(texts.erase_question(), buttons),))


def _reply(person: Person, event: Event, topics, flow_id) -> Outcome:  # noqa: C901
    if event.kind == "button_reply" and event.reply_id == ERASE_YES:
        gone = Person(language=person.language)
        return Outcome(gone, (Text(texts.erased()),), (Effect("erase"),))
    if event.kind == "button_reply" and event.reply_id == ERASE_NO:
        return Outcome(person, (Text(texts.erase_cancelled()),))
    tapped = event.reply_id if event.kind == "button_reply" else ""
    subscribed = person.status == "active"
    if tapped in (ACCEPT, REFUSE) and person.state == CONSENT and person.status == "pending":
        if event.reply_id == ACCEPT:
            person = replace(person, status="active", state=CHOOSING, page=0)
            return Outcome(person, (_chooser(person, topics, flow_id),), (Effect("consent"),))
        if event.reply_id == REFUSE:
            kept = replace(person, status="left", state=NEW, chosen=frozenset(), page=0)
            after = kept if person.record else Person(language=person.language)
            return Outcome(after, (Text(texts.refused(kept=person.record)),), (Effect("refuse"),))
    if tapped in DIGEST_CHOICES:
        return _digest(person, DIGEST_CHOICES[tapped])
    # Taps on older messages: what the person meant, given where they are now.
    if tapped in (ACCEPT, JOIN):
        return _command(person, Understood(Intent.JOIN), topics, flow_id)
    if tapped == REFUSE:  # an old "Non accetto" from someone subscribed: maybe they want out
        return (
            _maybe_leave(person) if subscribed else Outcome(person, (Text(texts.not_subscribed()),))
        )
    if tapped == LEAVE_YES:
        return _command(person, Understood(Intent.LEAVE), topics, flow_id)
    if tapped == LEAVE_NO:
        return Outcome(person, (Text(texts.stay() if subscribed else texts.not_subscribed()),))
    if event.kind in ("list_reply", "nfm_reply") and not subscribed:
        return Outcome(person, (Text(texts.not_subscribed()),))
    if event.kind == "list_reply":
        return _list_choice(person, event.reply_id, topics, flow_id)
    if event.kind == "nfm_reply":
        picked = _flow_topics(event.flow_response)
        known = {t.slug for t in topics}
        chosen = frozenset(s for s in picked if isinstance(s, str) and s in known)
        return _finish(replace(person, chosen=chosen), topics, flow_id)
    if person.status not in SUBSCRIBED:
        # A first contact (Meta's request_welcome), a photo, a stray tap: how to join, first.
        return _how_to_join(person)
    if event.kind == "request_welcome":
        return Outcome(person)
    # Questions, photos, voice, stickers, locations, stray taps: the channel is one-way.
    return Outcome(person, (Text(texts.one_way()),), (Effect("autoreply"),))


def _list_choice(person: Person, row: str, topics, flow_id) -> Outcome:
    if row == ROW_DONE:
        return _finish(person, topics, flow_id)
    if row == ROW_ALL:
        person = replace(person, chosen=frozenset(t.slug for t in topics), state=CHOOSING)
    elif row.startswith(ROW_PAGE):
        page = row[len(ROW_PAGE) :]
        person = replace(person, page=int(page) if page.isdigit() else 0, state=CHOOSING)
    elif row.startswith((ROW_TOPIC, ROW_UNTOPIC)):
        # Idempotent: "t:" chooses, "x:" (only on rows shown chosen) removes.
        slug = row[len(ROW_TOPIC) :]
        if slug not in {t.slug for t in topics}:
            return Outcome(replace(person, state=CHOOSING), (_chooser(person, topics, flow_id),))
        add = row.startswith(ROW_TOPIC)
        person = replace(person, chosen=person.chosen | {slug} if add else person.chosen - {slug})
    else:
        return Outcome(person)
    return _chosen(person, topics, flow_id)


def _chosen(person: Person, topics, flow_id) -> Outcome:
    person = replace(person, state=CHOOSING)
    return Outcome(
        person, (_chooser(person, topics, flow_id),), (Effect("set_topics", topics=person.chosen),)
    )


def _finish(person: Person, topics, flow_id) -> Outcome:
    if not person.chosen:
        person = replace(person, state=CHOOSING)
        return Outcome(
            person, (Text(texts.choose_at_least_one()), _chooser(person, topics, flow_id))
        )
    person = replace(person, state=IDLE)
    names = _names(person.chosen, topics, person.language)
    replies: tuple[Reply, ...] = (Text(texts.confirmed(names)),)
    if not person.digest and any(t.digest for t in topics if t.slug in person.chosen):
        replies += (Buttons(texts.digest_question(), texts.digest_buttons(DIGEST_CHOICES)),)
    return Outcome(person, replies, (Effect("set_topics", topics=person.chosen),))


def _digest(person: Person, choice: str) -> Outcome:
    if person.status != "active":
        return Outcome(person, (Text(texts.not_subscribed()),))
    reply = Text(texts.digest_set(choice))
    return Outcome(replace(person, digest=choice), (reply,), (Effect("digest", choice=choice),))


def _leave_one(person: Person, slugs: tuple[str, ...], topics) -> Outcome:
    if person.status != "active":
        return Outcome(person, (Text(texts.not_subscribed()),))
    if len(slugs) > 1:  # "stop eventi" with "Eventi e cultura" and "Eventi sportivi"
        return Outcome(person, (Text(texts.which_topic(_names(slugs, topics, person.language))),))
    [topic] = [t for t in topics if t.slug == slugs[0]]
    chosen = person.chosen - {topic.slug}
    person = replace(person, chosen=chosen)
    remaining = _names(chosen, topics, person.language)
    body = texts.topic_left(topic.name(person.language), remaining)
    return Outcome(person, (Text(body),), (Effect("set_topics", topics=chosen),))


def _flow_topics(response: dict) -> list:
    """The topics ticked in the Flow: its checkboxes come in groups ("topics", "topics_2"…,
    channel.graph.payloads.flow_checkbox_data), each answering under its own name."""
    picked = []
    for key, value in response.items():
        if re.fullmatch(r"topics(_\d+)?", key) and isinstance(value, list):
            picked += value
    return picked


def _names(chosen, topics, language: str) -> list[str]:
    return [t.name(language) for t in topics if t.slug in chosen]


def _chooser(person: Person, topics: list[TopicChoice], flow_id: str) -> Reply:
    return topic_chooser(person.chosen, person.page, person.language, topics, flow_id)


def render(reply: Reply, to: str) -> dict:
    """The one place abstract replies become Cloud API payloads."""
    if isinstance(reply, Text):
        return payloads.text(to, reply.body)
    if isinstance(reply, Buttons):
        return payloads.reply_buttons(to, body=reply.body, buttons=list(reply.buttons))
    if isinstance(reply, TopicList):
        return payloads.interactive_list(
            to,
            header=reply.header,
            body=reply.body,
            button=reply.button,
            sections=[(reply.section, list(reply.rows))],
        )
    from django.conf import settings

    return payloads.flow(
        to,
        body=reply.body,
        flow_id=settings.WHATSAPP_TOPICS_FLOW_ID,
        cta=reply.cta,
        token="topics",
        screen="TOPICS",
        data=payloads.flow_checkbox_data("topics", list(reply.options), list(reply.chosen)),
    )
