"""The citizen conversation as a pure state machine: (state, event) → (state, replies, effects).

No database and no I/O here: `subscribers.conversation.handler` loads the person, calls
`step`, applies the effects and queues the replies. Keywords are honoured before any state,
so CANCELLAMI always works, even while choosing topics.

Taps to join with three topics: Accetto, topic, topic, topic, Fatto = 5 taps; service
messages: welcome, list, three updated lists, confirmation = 6.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from channel.graph import payloads
from subscribers.conversation import texts
from subscribers.conversation.keywords import Command, match, normalise

# Conversation states (Subscriber.conversation_state).
NEW = ""
CONSENT = "consent"
CHOOSING = "choosing"
IDLE = "idle"

ACCEPT, REFUSE = "consent:yes", "consent:no"
ROW_TOPIC, ROW_ALL, ROW_DONE, ROW_PAGE = "t:", "all", "done", "page:"
LIST_ROWS = 10  # Meta: at most 10 rows in a list, across sections
# (https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/interactive-list-messages)
IGNORED_KINDS = {"reaction", "unsupported", "system", "unknown", "request_welcome", "order"}


@dataclass(frozen=True)
class TopicChoice:
    slug: str
    name_it: str
    name_en: str
    description_it: str = ""
    description_en: str = ""
    emoji: str = ""

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


@dataclass(frozen=True)
class TopicList:
    header: str
    body: str
    button: str
    rows: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class TopicFlow:
    body: str
    cta: str
    options: tuple[tuple[str, str], ...]
    chosen: tuple[str, ...]


Reply = Text | Buttons | TopicList | TopicFlow


# --- effects (applied by subscribers.conversation.handler) ---------------------------------


@dataclass(frozen=True)
class Effect:
    kind: str  # join, consent, refuse, set_topics, leave, erase, language, autoreply
    topics: frozenset[str] = frozenset()
    language: str = ""


@dataclass(frozen=True)
class Outcome:
    person: Person
    replies: tuple[Reply, ...] = ()
    effects: tuple[Effect, ...] = ()


def step(person: Person, event: Event, topics: list[TopicChoice], *, flow_id: str = "") -> Outcome:
    if event.kind in IGNORED_KINDS:
        return Outcome(person)
    if event.kind == "text":
        found = match(event.text)
        if found is not None:
            return texts.in_language(
                found.language or person.language,
                _command,
                person,
                found.command,
                found.language,
                found.argument,
                topics,
                flow_id,
            )
    return texts.in_language(person.language, _reply, person, event, topics, flow_id)


def _command(person, command, language, argument, topics, flow_id) -> Outcome:  # noqa: C901
    subscribed = person.status == "active"
    lang = language or person.language
    if command == Command.JOIN:
        if subscribed:
            person = replace(person, state=CHOOSING, page=0, language=lang)
            effects = (Effect("language", language=lang),) if lang != person.language else ()
            return Outcome(
                person,
                (Text(texts.already_subscribed()), _chooser(person, topics, flow_id)),
                effects,
            )
        person = replace(person, state=CONSENT, language=lang)
        buttons = ((ACCEPT, texts.accept_button()), (REFUSE, texts.refuse_button()))
        return Outcome(
            person, (Buttons(texts.welcome(), buttons),), (Effect("join", language=lang),)
        )
    if command == Command.LEAVE:
        if argument:
            return _leave_one(person, argument, topics)
        if person.status not in ("active", "pending"):
            return Outcome(person, (Text(texts.not_subscribed()),))
        return Outcome(
            replace(person, state=NEW, chosen=frozenset()),
            (Text(texts.left()),),
            (Effect("leave"),),
        )
    if command == Command.TOPICS:
        if not subscribed:
            return Outcome(person, (Text(texts.not_subscribed()),))
        person = replace(person, state=CHOOSING, page=0)
        return Outcome(person, (_chooser(person, topics, flow_id),))
    if command == Command.HELP:
        return Outcome(person, (Text(texts.help_text()),))
    if command in (Command.ENGLISH, Command.ITALIAN):
        person = replace(person, language=language)
        effects = (Effect("language", language=language),) if person.status else ()
        return Outcome(person, (Text(texts.language_set()),), effects)
    if command == Command.MY_DATA:
        if not person.status:
            return Outcome(person, (Text(texts.no_data()),))
        names = _names(person.chosen, topics, person.language)
        body = texts.my_data(
            status=texts.status_name(person.status),
            since=person.since,
            language="English" if person.language == "en" else "italiano",
            topic_names=names,
        )
        return Outcome(person, (Text(body),))
    # Command.ERASE
    if not person.status:
        return Outcome(person, (Text(texts.no_data()),))
    return Outcome(Person(language=person.language), (Text(texts.erased()),), (Effect("erase"),))


def _reply(person: Person, event: Event, topics, flow_id) -> Outcome:
    if event.kind == "button_reply" and person.state == CONSENT:
        if event.reply_id == ACCEPT:
            person = replace(person, status="active", state=CHOOSING, page=0)
            return Outcome(person, (_chooser(person, topics, flow_id),), (Effect("consent"),))
        if event.reply_id == REFUSE:
            return Outcome(
                Person(language=person.language), (Text(texts.refused()),), (Effect("refuse"),)
            )
    if event.kind == "list_reply" and person.status == "active":
        return _list_choice(person, event.reply_id, topics, flow_id)
    if event.kind == "nfm_reply" and person.status == "active":
        picked = event.flow_response.get("topics") or []
        known = {t.slug for t in topics}
        chosen = frozenset(s for s in picked if isinstance(s, str) and s in known)
        return _finish(replace(person, chosen=chosen), topics, flow_id)
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
    elif row.startswith(ROW_TOPIC):
        slug = row[len(ROW_TOPIC) :]
        if slug not in {t.slug for t in topics}:
            return Outcome(person, (_chooser(person, topics, flow_id),))
        chosen = person.chosen ^ {slug}
        person = replace(person, chosen=frozenset(chosen), state=CHOOSING)
    else:
        return Outcome(person)
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
    return Outcome(
        person, (Text(texts.confirmed(names)),), (Effect("set_topics", topics=person.chosen),)
    )


def _leave_one(person: Person, argument: str, topics) -> Outcome:
    if person.status != "active":
        return Outcome(person, (Text(texts.not_subscribed()),))
    wanted = normalise(argument)
    for topic in topics:
        names = {normalise(topic.name_it), normalise(topic.name_en), normalise(topic.slug)}
        if wanted in names:
            chosen = person.chosen - {topic.slug}
            person = replace(person, chosen=chosen)
            remaining = _names(chosen, topics, person.language)
            body = texts.topic_left(topic.name(person.language), remaining)
            return Outcome(person, (Text(body),), (Effect("set_topics", topics=chosen),))
    all_names = [t.name(person.language) for t in topics]
    return Outcome(person, (Text(texts.unknown_topic(argument, all_names)),))


def _names(chosen, topics, language: str) -> list[str]:
    return [t.name(language) for t in topics if t.slug in chosen]


def _row_title(prefix: str, name: str) -> str:
    title = f"{prefix}{name}"
    return title if len(title) <= 24 else title[:23] + "…"


def _chooser(person: Person, topics: list[TopicChoice], flow_id: str) -> Reply:
    lang = person.language
    if flow_id:
        options = tuple((t.slug, t.name(lang)[:30]) for t in topics[:20])
        return TopicFlow(
            texts.flow_body(), texts.topics_button(), options, tuple(sorted(person.chosen))
        )
    fixed = 2  # "Tutti gli argomenti" and "Fatto"
    if len(topics) + fixed <= LIST_ROWS:
        page_size, pages = len(topics), 1
    else:
        page_size = LIST_ROWS - fixed - 1  # one row for "Altri argomenti…"
        pages = -(-len(topics) // page_size)
    page = person.page % pages if pages else 0
    shown = topics[page * page_size : (page + 1) * page_size]
    rows = [
        (
            f"{ROW_TOPIC}{t.slug}",
            _row_title(
                "✅ " if t.slug in person.chosen else (f"{t.emoji} " if t.emoji else ""),
                t.name(lang),
            ),
            t.description(lang)[:72],
        )
        for t in shown
    ]
    rows.append((ROW_ALL, texts.row_all(), texts.row_all_description()))
    if pages > 1:
        rows.append((f"{ROW_PAGE}{(page + 1) % pages}", texts.row_more(), f"{page + 1}/{pages}"))
    rows.append((ROW_DONE, texts.row_done(), texts.row_done_description()))
    body = texts.topics_body(_names(person.chosen, topics, lang))
    return TopicList(texts.topics_header(), body, texts.topics_button(), tuple(rows))


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
            sections=[("", list(reply.rows))],
        )
    from django.conf import settings

    return payloads.flow(
        to,
        body=reply.body,
        flow_id=settings.WHATSAPP_TOPICS_FLOW_ID,
        cta=reply.cta,
        token="topics",
        screen="TOPICS",
        data={
            "topics": [{"id": slug, "title": title} for slug, title in reply.options],
            "chosen": list(reply.chosen),
        },
    )


def sent_at_label(when: datetime | None) -> str:
    return when.strftime("%d/%m/%Y") if when else "—"
