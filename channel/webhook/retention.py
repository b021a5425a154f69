"""How long the webhook archive keeps personal data: nightly pruning (erasure on request is
channel.erasure)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from channel.models import InboundEvent


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
