"""Meta's `user_changed_number` notice: the person now uses another number.

A `system` message from the old number (`from`) names the new one (`system.wa_id`, and from
2026 possibly a new business-scoped id, `system.user_id`)
(https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples).
The old number may soon belong to someone else, so posts must never go to it again.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from subscribers.models import ConsentEvent, Subscriber, Subscription

MOVED = "moved"  # the subscriber now has the new number
ALREADY_THERE = "already_there"  # the new number was a subscriber already: the old row left
NOTHING = "nothing"  # no subscriber at the old number, or nothing usable in the notice


def _identity(wa_id: str, user_id: str) -> Q | None:
    found = Q()
    if wa_id:
        found |= Q(wa_id=wa_id)
    if user_id:
        found |= Q(user_id=user_id)
    return found if (wa_id or user_id) else None


def subscriber_change_number(
    *, old_wa_id: str, old_user_id: str, new_wa_id: str, new_user_id: str, wamid: str
) -> str:
    """Move the subscriber at the old number to the new one, with a ledger row. When the new
    number is a subscriber already (they joined again from it), that one stays as it is (its
    consent and topics are its own) and the old row leaves, so nobody is counted or sent to
    twice and no unique number is duplicated. Safe to run twice."""
    old_identity = _identity(old_wa_id, old_user_id)
    if old_identity is None or not (new_wa_id or new_user_id):
        return NOTHING
    with transaction.atomic():
        old = (
            Subscriber.objects.select_for_update()
            .filter(old_identity)
            .exclude(status=Subscriber.Status.ERASED)
            .first()
        )
        if old is None or ((new_wa_id or old.wa_id) == old.wa_id and not new_user_id):
            return NOTHING
        taken = (
            Subscriber.objects.select_for_update()
            .filter(_identity(new_wa_id, new_user_id))
            .exclude(pk=old.pk)
            .exists()
        )
        if not taken:
            try:
                with transaction.atomic():  # a concurrent join from the new number wins
                    Subscriber.objects.filter(pk=old.pk).update(
                        wa_id=new_wa_id or old.wa_id, user_id=new_user_id or old.user_id
                    )
                    _ledger(old, wamid, "moved to the new number")
                return MOVED
            except IntegrityError:
                pass
        _ledger(old, wamid, "the new number was already a subscriber: this one left")
        if old.status != Subscriber.Status.LEFT:
            Subscription.objects.filter(subscriber=old).delete()
            Subscriber.objects.filter(pk=old.pk).update(
                status=Subscriber.Status.LEFT, left_at=timezone.now()
            )
        return ALREADY_THERE


def _ledger(subscriber: Subscriber, wamid: str, note: str) -> None:
    ConsentEvent.objects.create(
        subscriber=subscriber,
        kind=ConsentEvent.Kind.NUMBER_CHANGED,
        wa_message_id=wamid[:255],
        source=Subscription.Source.CHAT,
        note=note,
        at=timezone.now(),
    )
