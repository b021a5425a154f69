"""One inbound message through the conversation: load the person, step, apply, reply.

Runs inside the caller's transaction (subscribers.conversation.inbound), after the message was
claimed by its wamid, so Meta's retries and duplicate webhooks have one effect.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from channel.erasure import erased_wamid, forget_erasure
from channel.redis_client import redis_client
from channel.service_messages import queue_replies
from channel.webhook.parsing import InboundMsg
from subscribers.conversation.machine import (
    Effect,
    Event,
    Outcome,
    Person,
    Text,
    TopicChoice,
    render,
    step,
)
from subscribers.conversation.my_data import my_data_text
from subscribers.conversation.number_change import subscriber_change_number
from subscribers.conversation.texts import in_language
from subscribers.erasure import autoreply_key, person_forget, subscriber_erase
from subscribers.models import ConsentEvent, Subscriber, Subscription
from topics.models import Topic

AUTOREPLY_EVERY = 24 * 3600  # at most one "this channel is one-way" per person per day


def topic_choices() -> tuple[list[TopicChoice], dict[str, Topic]]:
    topics = list(Topic.objects.filter(is_active=True).order_by("order", "id"))
    choices = [
        TopicChoice(
            t.slug,
            t.name_it,
            t.name_en,
            t.description_it,
            t.description_en,
            t.emoji,
            digest=t.delivery == Topic.Delivery.DIGEST,
        )
        for t in topics
    ]
    return choices, {t.slug: t for t in topics}


def find_subscriber(message: InboundMsg) -> Subscriber | None:
    if not (message.wa_id or message.user_id):
        return None
    identity = Q()
    if message.wa_id:
        identity |= Q(wa_id=message.wa_id)
    if message.user_id:
        identity |= Q(user_id=message.user_id)
    return Subscriber.objects.select_for_update().filter(identity).first()


def sent_at_label(when) -> str:
    return when.strftime("%d/%m/%Y") if when else "—"


def person_of(subscriber: Subscriber | None, *, wa_id: str = "") -> Person:
    if subscriber is None:
        # Someone new from outside Italy (country code other than 39) is answered in English
        # until their words say otherwise.
        return Person(language="en" if wa_id and not wa_id.startswith("39") else "it")
    chosen = frozenset(subscriber.topics.values_list("slug", flat=True))
    return Person(
        status=subscriber.status,
        state=subscriber.conversation_state,
        language=subscriber.language,
        chosen=chosen,
        page=int(subscriber.conversation_context.get("page", 0) or 0),
        since=sent_at_label(subscriber.consented_at or subscriber.created_at),
        record=_has_ledger(subscriber),
        digest=subscriber.digest_preference,
    )


def handle_inbound_message(*, message: InboundMsg) -> Outcome:
    if message.kind == "system" and message.system_type == "user_changed_number":
        subscriber_change_number(
            old_wa_id=message.wa_id,
            old_user_id=message.user_id,
            new_wa_id=message.new_wa_id,
            new_user_id=message.new_user_id,
            wamid=message.wamid,
        )
    subscriber = find_subscriber(message)
    choices, by_slug = topic_choices()
    event = Event(
        # A message in a group chat is not one to us: never a conversation step or a reply.
        kind="group" if message.group_id else message.kind,
        text=message.text,
        reply_id=message.reply_id,
        flow_response=message.flow_response,
        wamid=message.wamid,
    )
    person = person_of(subscriber, wa_id=message.wa_id)
    outcome = step(person, event, choices, flow_id=settings.WHATSAPP_TOPICS_FLOW_ID)
    replies = list(outcome.replies)
    # The one-way answer and the how-to-join answer share one daily guard, so two bots can
    # never loop; someone who never wrote before always gets how to join.
    guarded = any(e.kind in ("autoreply", "howto") for e in outcome.effects)
    if guarded and not _may_autoreply(message):
        replies = []
    subscriber = _apply(subscriber, message, outcome, by_slug)
    if any(e.kind == "my_data" for e in outcome.effects):
        body = in_language(
            outcome.person.language,
            my_data_text,
            subscriber,
            identities=(message.wa_id, message.user_id),
            profile_name=message.profile_name,
        )
        replies.append(Text(body))
    to = message.wa_id or message.user_id
    # Queued after the effects, so an erasure's redaction of the logs (or a decliner's) spares
    # the one message that confirms it: it loses the number once sent (channel.erasure). One
    # sequence: the parts of a reply (a hint, then the list) arrive in the order written.
    queue_replies(
        to_wa_id=message.wa_id,
        to_user_id=message.user_id,
        payloads=[render(reply, to) for reply in replies],
    )
    if subscriber is not None and subscriber.status != Subscriber.Status.ERASED:
        subscriber.conversation_state = outcome.person.state
        subscriber.conversation_context = {"page": outcome.person.page} | {
            k: v for k, v in subscriber.conversation_context.items() if k == "join_wamid"
        }
        subscriber.save(update_fields=["conversation_state", "conversation_context"])
    return outcome


def _may_autoreply(message: InboundMsg) -> bool:
    key = autoreply_key(message.wa_id or message.user_id)
    return bool(redis_client().set(key, "1", nx=True, ex=AUTOREPLY_EVERY))


def _ledger(subscriber, kind, message: InboundMsg, *, topic=None, wamid=None) -> None:
    ConsentEvent.objects.create(
        subscriber=subscriber,
        kind=kind,
        topic=topic,
        wa_message_id=message.wamid if wamid is None else wamid,
        privacy_version=settings.PRIVACY_NOTICE_VERSION,
        source=Subscription.Source.CHAT,
        at=timezone.now(),
    )


def _apply(  # noqa: C901  (one branch per effect kind)
    subscriber: Subscriber | None, message: InboundMsg, outcome: Outcome, by_slug: dict
) -> Subscriber | None:
    now = timezone.now()
    for effect in outcome.effects:
        if effect.kind == "join":
            subscriber = _join(subscriber, message, effect, now)
        elif effect.kind == "erase":
            # Also for someone never subscribed: their messages are in the logs.
            subscriber_erase(
                subscriber,
                message.wa_id,
                message.user_id,
                asked_at=message.timestamp,
                wamid=message.wamid,
            )
        elif subscriber is None:
            continue
        elif effect.kind == "consent":
            _ledger(subscriber, ConsentEvent.Kind.JOIN, message,
                    wamid=subscriber.conversation_context.get("join_wamid", ""))  # fmt: skip
            _ledger(subscriber, ConsentEvent.Kind.CONSENT, message)
            subscriber.status = Subscriber.Status.ACTIVE
            subscriber.consented_at, subscriber.left_at = now, None
            subscriber.save(update_fields=["status", "consented_at", "left_at"])
        elif effect.kind == "refuse":
            subscriber = _refuse(subscriber, message)
        elif effect.kind == "set_topics":
            _set_topics(subscriber, message, effect.topics, by_slug)
        elif effect.kind == "leave":
            subscriber = _leave(subscriber, message, now)
        elif effect.kind == "language":
            subscriber.language = effect.language
            subscriber.save(update_fields=["language"])
        elif effect.kind == "digest":  # the weekly digest or everything at once
            subscriber.digest_preference = effect.choice
            subscriber.save(update_fields=["digest_preference"])
            kind = {"weekly": ConsentEvent.Kind.DIGEST_WEEKLY}.get(effect.choice)
            _ledger(subscriber, kind or ConsentEvent.Kind.DIGEST_IMMEDIATE, message)
        elif effect.kind == "autoreply":
            subscriber.last_autoreply_at = now
            subscriber.save(update_fields=["last_autoreply_at"])
    return subscriber


def _join(subscriber, message: InboundMsg, effect: Effect, now) -> Subscriber:
    if subscriber is None:
        # Someone who asked for erasure and comes back: from now on their messages are kept.
        forget_erasure(message.wa_id, message.user_id)
        subscriber = Subscriber.objects.create(
            wa_id=message.wa_id or None,
            user_id=message.user_id or None,
            status=Subscriber.Status.PENDING,
            language=effect.language or "it",
        )
    elif subscriber.status != Subscriber.Status.PENDING:
        subscriber.status = Subscriber.Status.PENDING
    subscriber.language = effect.language or subscriber.language
    subscriber.conversation_context = {"join_wamid": message.wamid}
    subscriber.save(update_fields=["status", "language", "conversation_context"])
    return subscriber


def _has_ledger(subscriber: Subscriber) -> bool:
    return ConsentEvent.objects.filter(subscriber=subscriber).exists()


def _refuse(subscriber: Subscriber, message: InboundMsg) -> Subscriber | None:
    if not _has_ledger(subscriber):
        # Declining keeps nothing but an anonymous refusal: not the number, not the profile
        # name, not the messages of this conversation, in any table or log.
        subscriber.delete()
        _ledger(None, ConsentEvent.Kind.REFUSAL, message, wamid=erased_wamid(message.wamid))
        person_forget(message.wa_id, message.user_id, asked_at=message.timestamp)
        return None
    _ledger(subscriber, ConsentEvent.Kind.REFUSAL, message)
    subscriber.status = Subscriber.Status.LEFT
    subscriber.save(update_fields=["status"])
    return subscriber


def _set_topics(subscriber: Subscriber, message: InboundMsg, wanted, by_slug: dict) -> None:
    current = set(subscriber.topics.values_list("slug", flat=True))
    for slug in sorted(set(wanted) - current):
        Subscription.objects.get_or_create(
            subscriber=subscriber, topic=by_slug[slug], defaults={"source": "chat"}
        )
        _ledger(subscriber, ConsentEvent.Kind.TOPIC_ADDED, message, topic=by_slug[slug])
    for slug in sorted(current - set(wanted)):
        Subscription.objects.filter(subscriber=subscriber, topic__slug=slug).delete()
        topic = by_slug.get(slug) or Topic.objects.get(slug=slug)
        _ledger(subscriber, ConsentEvent.Kind.TOPIC_REMOVED, message, topic=topic)


def _leave(subscriber: Subscriber, message: InboundMsg, now) -> Subscriber | None:
    if subscriber.status == Subscriber.Status.PENDING and not _has_ledger(subscriber):
        subscriber.delete()  # never consented: nothing to keep
        return None
    Subscription.objects.filter(subscriber=subscriber).delete()
    _ledger(subscriber, ConsentEvent.Kind.LEAVE, message)
    subscriber.status, subscriber.left_at = Subscriber.Status.LEFT, now
    subscriber.save(update_fields=["status", "left_at"])
    return subscriber
