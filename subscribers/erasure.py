"""Erasing a person, the one service behind the chat's CANCELLA I MIEI DATI, the admin's action
and `manage.py erase_subscriber`; and forgetting someone who declined the privacy notice.

What goes: the number, the user id, the profile name, the words they wrote (channel.erasure
redacts every log by exact identity, now and as later webhooks arrive), their topics and their
conversation. What stays: the consent ledger without a number (anonymous counts), and that
messages came (type and time).
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from channel.erasure import REDACTED, erased_wamid, redact_person
from channel.pseudonyms import identity_digest
from channel.redis_client import redis_client
from subscribers.models import ConsentEvent, Delivery, Subscriber, Subscription
from subscribers.numbers import normalise_number
from topics.audit import record_audit


def autoreply_key(identity: str) -> str:
    # Keyed: a plain hash of a phone number is reversed by trying every number.
    return f"banditore:autoreply:{identity_digest(identity)}"


def find_person(*identities: str | None) -> Subscriber | None:
    """The subscriber holding any of these numbers or user ids (locked for the transaction)."""
    wanted = [identity for identity in identities if identity]
    if not wanted:
        return None
    match = Q(wa_id__in=wanted) | Q(user_id__in=wanted)
    return Subscriber.objects.select_for_update().filter(match).first()


def person_forget(*identities: str | None, asked_at: datetime | None = None) -> int:
    """Nothing of these identities in any log or Redis key, now or as webhooks arrive later."""
    known = {identity for identity in identities if identity}
    if not known:
        return 0
    changed = redact_person(*known, asked_at=asked_at)
    redis_client().delete(*(autoreply_key(identity) for identity in known))
    return changed


def subscriber_erase(
    subscriber: Subscriber | None,
    *identities: str | None,
    asked_at: datetime | None = None,
    wamid: str = "",
    source: str = Subscription.Source.CHAT,
) -> None:
    """Erase a person: `subscriber` (None for someone only in the logs) and any other numbers
    or user ids they wrote from. The ledger records the erasure without a number."""
    known = set(identities)
    if subscriber is not None:
        known |= {subscriber.wa_id, subscriber.user_id}
        _erase_subscriber(subscriber, wamid=wamid, source=source)
    person_forget(*known, asked_at=asked_at)


def _erase_subscriber(subscriber: Subscriber, *, wamid: str, source: str) -> None:
    Subscription.objects.filter(subscriber=subscriber).delete()
    ConsentEvent.objects.create(
        subscriber=subscriber,
        kind=ConsentEvent.Kind.ERASURE,
        wa_message_id=wamid,
        privacy_version=settings.PRIVACY_NOTICE_VERSION,
        source=source,
        at=timezone.now(),
    )
    # An import's note may name the person (where the list says they consented).
    ConsentEvent.objects.filter(subscriber=subscriber).exclude(note="").update(note=REDACTED)
    for model in (ConsentEvent, Delivery):  # Meta's message ids are derived from the number
        ids = model.objects.filter(subscriber=subscriber).exclude(wa_message_id__isnull=True)
        rows = ids.exclude(wa_message_id="").exclude(wa_message_id__startswith=REDACTED)
        hidden = [
            model(pk=pk, wa_message_id=erased_wamid(message_id))
            for pk, message_id in rows.values_list("pk", "wa_message_id")
        ]
        model.objects.bulk_update(hidden, ["wa_message_id"], batch_size=500)
    Subscriber.objects.filter(pk=subscriber.pk).update(
        wa_id=None,
        user_id=None,
        status=Subscriber.Status.ERASED,
        conversation_state="",
        conversation_context={},
        last_inbound_at=None,
    )
    subscriber.wa_id = subscriber.user_id = None
    subscriber.status = Subscriber.Status.ERASED


def staff_erase(*, number: str = "", subscriber: Subscriber | None = None, user=None, via: str):
    """Staff erase a person, by number or by their row: the chat's erasure, audited.
    Returns the subscriber erased (None when the number was only in the logs). A number is read
    as people type it ('+39 347…', '0039 347…', '347…'); one that is not a valid phone number
    raises ValueError, so a typo never erases nobody while saying it erased someone."""
    digits = normalise_number(number) if number else ""
    if subscriber is None:
        subscriber = find_person(digits)
    record = f"subscriber #{subscriber.pk}" if subscriber is not None else "a number in the logs"
    subscriber_erase(subscriber, digits, source=Subscription.Source.ADMIN)
    # The audit log names the row, never the number: that is what was erased.
    record_audit(action="subscriber_erased", obj=record, user=user, details={"via": via})
    return subscriber
