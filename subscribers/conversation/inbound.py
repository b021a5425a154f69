"""What a citizen's inbound WhatsApp traffic does to the subscriber side.

Called from `subscribers.receivers` with the already-deduplicated results of one webhook;
channel hands them up through `channel.signals` because it may not import this app.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from django.db import OperationalError, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from channel.webhook.drain import claim_inbound_message
from subscribers.conversation.handler import handle_inbound_message
from subscribers.models import ConsentEvent, Subscriber, Subscription

logger = logging.getLogger(__name__)

# Meta's own notices (e.g. "user changed number") are not the person writing to us.
NOT_FROM_THE_PERSON = {"system"}


def _sent_at(message, now: datetime) -> datetime:
    at = getattr(message, "timestamp", None)
    # A clock in the future would hold the 24-hour window open longer than Meta does.
    return min(at, now) if isinstance(at, datetime) else now


def touch_last_inbound(*, messages: Sequence) -> int:
    """Move each sender's last_inbound_at forward (never back), one UPDATE per identity kind."""
    now = timezone.now()
    latest: dict[tuple[str, str], datetime] = {}
    for message in messages:
        if getattr(message, "kind", "") in NOT_FROM_THE_PERSON:
            continue
        if getattr(message, "group_id", ""):  # written to a group, not to us: no window
            continue
        at = _sent_at(message, now)
        for field in ("wa_id", "user_id"):
            value = getattr(message, field, "") or ""
            if value:
                key = (field, value)
                latest[key] = max(at, latest.get(key, at))
    changed = 0
    for field in ("wa_id", "user_id"):
        times = {value: at for (f, value), at in latest.items() if f == field}
        if not times:
            continue
        newest = Case(*(When(**{field: v}, then=Value(at)) for v, at in times.items()))
        changed += Subscriber.objects.filter(**{f"{field}__in": list(times)}).update(
            last_inbound_at=Greatest(Coalesce(F("last_inbound_at"), newest), newest)
        )
    return changed


def handle_messages(*, messages: Sequence) -> list[str]:
    """Run the conversation for each new message, each in its own transaction (a savepoint
    when called inside the webhook's transaction).

    The claim and the conversation's writes commit together: a crash un-claims the message so
    the next run handles it, while a concurrent duplicate waits on the row lock and then finds
    it claimed. One bad message is rolled back alone, reported, and not retried. A transient
    database failure (a deadlock with a concurrent drain, a lost connection) is not the
    message's fault: it is raised, so the whole batch rolls back and is drained again.
    """
    problems: list[str] = []
    now = timezone.now()
    for message in sorted(messages, key=lambda m: _sent_at(m, now)):
        try:
            with transaction.atomic():
                if not claim_inbound_message(wamid=message.wamid):
                    continue
                # A sender id the parser found malformed was dropped (and reported there):
                # nobody to answer or to record.
                if message.wa_id or message.user_id:
                    handle_inbound_message(message=message)
        except OperationalError:
            raise
        except Exception as exc:
            logger.exception("inbound message %s could not be handled", message.wamid)
            problems.append(f"error: message {message.wamid}: {exc!r}")
            claim_inbound_message(wamid=message.wamid)  # don't retry a poison message forever
    return problems


def _subscriber_for(update) -> Subscriber | None:
    wa_id = getattr(update, "wa_id", "") or ""
    user_id = getattr(update, "user_id", "") or ""
    if not wa_id and not user_id:
        return None
    identity = Q()
    if wa_id:
        identity |= Q(wa_id=wa_id)
    if user_id:
        identity |= Q(user_id=user_id)
    return Subscriber.objects.filter(identity).first()


def apply_preferences(*, preferences: Sequence) -> list[str]:
    """Marketing stop/resume from the `user_preferences` webhook onto the subscriber.

    Only a choice at least as recent as the one recorded applies: Meta may deliver a stop and a
    resume out of order, or deliver one again for up to 7 days
    (https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/create-webhook-endpoint),
    and a late "resume" must never undo a newer "stop". The comparison is in the UPDATE itself,
    so two deliveries racing each other cannot both win. Recorded in the consent ledger only
    when it changes something, so retries and duplicate deliveries leave one ledger row.
    """
    problems: list[str] = []
    for update in preferences:
        value = str(getattr(update, "value", "")).lower()
        if value not in ("stop", "resume"):
            problems.append(f"unknown preference value {value[:20]!r}")
            continue
        subscriber = _subscriber_for(update)
        if subscriber is None:
            continue
        stop = value == "stop"
        at = _sent_at(update, timezone.now())
        not_older = Subscriber.objects.filter(
            Q(marketing_preference_at__isnull=True) | Q(marketing_preference_at__lte=at),
            pk=subscriber.pk,
        )
        with transaction.atomic():
            changed = not_older.filter(marketing_opt_out=not stop).update(
                marketing_opt_out=stop, marketing_preference_at=at
            )
            if changed:
                ConsentEvent.objects.create(
                    subscriber=subscriber,
                    kind=ConsentEvent.Kind.MARKETING_STOP
                    if stop
                    else ConsentEvent.Kind.MARKETING_RESUME,
                    source=Subscription.Source.CHAT,
                    at=at,
                )
            else:  # the same choice again, newer: older ones must now compare against it
                not_older.update(marketing_preference_at=at)
    return problems
