"""One inbound message through the conversation: load the person, step, apply, reply.

Runs inside the caller's transaction (subscribers.conversation.inbound), after the message was
claimed by its wamid, so Meta's retries and duplicate webhooks have one effect.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from channel.erasure import REDACTED, erased_wamid, forget_erasure, redact_person
from channel.pseudonyms import identity_digest
from channel.redis_client import redis_client
from channel.service_messages import queue_reply
from channel.webhook.parsing import InboundMsg
from subscribers.conversation.machine import (
    Effect,
    Event,
    Outcome,
    Person,
    TopicChoice,
    render,
    sent_at_label,
    step,
)
from subscribers.models import ConsentEvent, Delivery, Subscriber, Subscription
from topics.models import Topic

AUTOREPLY_EVERY = 24 * 3600  # at most one "this channel is one-way" per person per day


def topic_choices() -> tuple[list[TopicChoice], dict[str, Topic]]:
    topics = list(Topic.objects.filter(is_active=True).order_by("order", "id"))
    choices = [
        TopicChoice(t.slug, t.name_it, t.name_en, t.description_it, t.description_en, t.emoji)
        for t in topics
    ]
    return choices, {t.slug: t for t in topics}


def find_subscriber(message: InboundMsg) -> Subscriber | None:
    identity = Q()
    if message.wa_id:
        identity |= Q(wa_id=message.wa_id)
    if message.user_id:
        identity |= Q(user_id=message.user_id)
    return Subscriber.objects.select_for_update().filter(identity).first()


def person_of(subscriber: Subscriber | None) -> Person:
    if subscriber is None:
        return Person()
    chosen = frozenset(subscriber.topics.values_list("slug", flat=True))
    return Person(
        status=subscriber.status,
        state=subscriber.conversation_state,
        language=subscriber.language,
        chosen=chosen,
        page=int(subscriber.conversation_context.get("page", 0) or 0),
        since=sent_at_label(subscriber.consented_at or subscriber.created_at),
    )


def handle_inbound_message(*, message: InboundMsg) -> Outcome:
    subscriber = find_subscriber(message)
    choices, by_slug = topic_choices()
    event = Event(
        kind=message.kind,
        text=message.text,
        reply_id=message.reply_id,
        flow_response=message.flow_response,
        wamid=message.wamid,
    )
    outcome = step(person_of(subscriber), event, choices, flow_id=settings.WHATSAPP_TOPICS_FLOW_ID)
    replies = list(outcome.replies)
    if any(e.kind == "autoreply" for e in outcome.effects) and not _may_autoreply(message):
        replies = []
    subscriber = _apply(subscriber, message, outcome, by_slug)
    to = message.wa_id or message.user_id
    # Queued after the effects, so an erasure's redaction of the logs spares the one message
    # that confirms it.
    for reply in replies:
        queue_reply(to_wa_id=message.wa_id, to_user_id=message.user_id, payload=render(reply, to))
    if subscriber is not None and subscriber.status != Subscriber.Status.ERASED:
        subscriber.conversation_state = outcome.person.state
        subscriber.conversation_context = {"page": outcome.person.page} | {
            k: v for k, v in subscriber.conversation_context.items() if k == "join_wamid"
        }
        subscriber.save(update_fields=["conversation_state", "conversation_context"])
    return outcome


def _autoreply_key(identity: str) -> str:
    # Keyed: a plain hash of a phone number is reversed by trying every number.
    return f"banditore:autoreply:{identity_digest(identity)}"


def _may_autoreply(message: InboundMsg) -> bool:
    key = _autoreply_key(message.wa_id or message.user_id)
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
        elif effect.kind == "erase":
            _erase(subscriber, message)
        elif effect.kind == "language":
            subscriber.language = effect.language
            subscriber.save(update_fields=["language"])
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
        # Declining stores nothing but the refusal itself.
        subscriber.delete()
        _ledger(None, ConsentEvent.Kind.REFUSAL, message)
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


def _erase(subscriber: Subscriber, message: InboundMsg) -> None:
    """Delete the number and choices; keep anonymous counts and the ledger without a number.

    The channel's logs lose the person's number, name and words, now and as later webhooks
    arrive (channel.erasure); the auto-reply guard forgets them too.
    """
    known = (subscriber.wa_id, subscriber.user_id, message.wa_id, message.user_id)
    identities = {identity for identity in known if identity}
    Subscription.objects.filter(subscriber=subscriber).delete()
    _ledger(subscriber, ConsentEvent.Kind.ERASURE, message)
    # An import's note may name the person (where the list says they consented).
    ConsentEvent.objects.filter(subscriber=subscriber).exclude(note="").update(note=REDACTED)
    for model in (ConsentEvent, Delivery):  # Meta's message ids are derived from the number
        ids = model.objects.filter(subscriber=subscriber).exclude(wa_message_id__isnull=True)
        rows = ids.exclude(wa_message_id="").exclude(wa_message_id__startswith=REDACTED)
        hidden = [
            model(pk=pk, wa_message_id=erased_wamid(wamid))
            for pk, wamid in rows.values_list("pk", "wa_message_id")
        ]
        model.objects.bulk_update(hidden, ["wa_message_id"], batch_size=500)
    redact_person(*identities, asked_at=message.timestamp)
    redis_client().delete(*(_autoreply_key(identity) for identity in identities))
    Subscriber.objects.filter(pk=subscriber.pk).update(
        wa_id=None,
        user_id=None,
        status=Subscriber.Status.ERASED,
        conversation_state="",
        conversation_context={},
        last_inbound_at=None,
    )
    # The caller saves the conversation state of anyone not erased: this one is.
    subscriber.status = Subscriber.Status.ERASED
