"""How long webhook archives keep personal data: nightly pruning, and erasure on request."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, Value
from django.db.models.functions import Replace
from django.utils import timezone

from channel.models import InboundEvent, InboundMessage, OutboundMessage

REDACTED = "[erased]"


def prune_inbound_events(*, now: datetime | None = None, chunk: int = 10_000) -> int:
    """Delete processed webhooks older than BANDITORE_WEBHOOK_ARCHIVE_DAYS; returns how many.

    Status webhooks are most of the archive (about three per message sent) and carry phone
    numbers: keeping them forever is neither needed nor fair. Webhooks that carried a citizen's
    message stay, since the message log points at them (and dedups Meta's retries by wamid).
    Unprocessed ones always stay. Deleted in chunks, so the table is never locked for long.
    """
    days = settings.BANDITORE_WEBHOOK_ARCHIVE_DAYS
    if not days:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = InboundEvent.objects.filter(
        processed_at__isnull=False, received_at__lt=cutoff, messages__isnull=True
    )
    deleted = 0
    while ids := list(old.values_list("id", flat=True)[:chunk]):
        deleted += InboundEvent.objects.filter(id__in=ids).delete()[0]
    return deleted


def redact_person(*, wa_id: str = "", user_id: str = "") -> int:
    """Remove a person's number / user id from the raw archives (right to erasure).

    The raw webhook bodies are kept for audit, so they would otherwise keep the number of a
    person who asked to be forgotten. Message texts stay, without the identity. Returns the
    rows changed. Erasure is rare, so the unindexed `contains` scan is acceptable.
    """
    changed = 0
    for identity in {wa_id, user_id} - {""}:
        changed += InboundEvent.objects.filter(body__contains=identity).update(
            body=Replace("body", Value(identity), Value(REDACTED))
        )
        changed += InboundMessage.objects.filter(wa_id=identity).update(wa_id="")
        changed += InboundMessage.objects.filter(user_id=identity).update(user_id="")
        rows = OutboundMessage.objects.filter(Q(to_wa_id=identity) | Q(to_user_id=identity))
        for outbound in rows.only("id", "payload", "to_wa_id", "to_user_id"):
            payload = json.loads(json.dumps(outbound.payload).replace(identity, REDACTED))
            OutboundMessage.objects.filter(pk=outbound.pk).update(
                payload=payload,
                # The row must keep some recipient (check constraint): the placeholder.
                to_wa_id=REDACTED if outbound.to_wa_id == identity else outbound.to_wa_id,
                to_user_id=REDACTED if outbound.to_user_id == identity else outbound.to_user_id,
            )
            changed += 1
    return changed
