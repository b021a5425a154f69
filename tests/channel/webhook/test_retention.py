"""Processed status webhooks are deleted after BANDITORE_WEBHOOK_ARCHIVE_DAYS; nothing else is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from channel.models import InboundEvent, InboundMessage
from channel.webhook.retention import prune_inbound_events

pytestmark = pytest.mark.django_db


def archived(*, days_ago: int, processed: bool = True, with_message: bool = False) -> int:
    now = timezone.now()
    event = InboundEvent.objects.create(
        body="{}", signature_valid=True, processed_at=now if processed else None
    )
    InboundEvent.objects.filter(pk=event.pk).update(received_at=now - timedelta(days=days_ago))
    if with_message:
        InboundMessage.objects.create(
            wamid=f"wamid.kept{event.pk}", event=event, wa_id="393330000001", kind="text",
            sent_at=now,
        )  # fmt: skip
    return event.pk


def test_old_processed_status_webhooks_go_and_everything_else_stays(settings):
    settings.BANDITORE_WEBHOOK_ARCHIVE_DAYS = 90
    old = [archived(days_ago=120) for _ in range(3)]
    kept = {
        archived(days_ago=120, with_message=True),  # the message log points at it
        archived(days_ago=120, processed=False),  # not processed yet: never lost
        archived(days_ago=10),  # recent
    }

    assert prune_inbound_events(chunk=2) == len(old)  # several chunks
    assert set(InboundEvent.objects.values_list("id", flat=True)) == kept
    assert prune_inbound_events() == 0  # safe to run twice


def test_zero_days_keeps_the_archive_forever(settings):
    settings.BANDITORE_WEBHOOK_ARCHIVE_DAYS = 0
    archived(days_ago=3650)

    assert prune_inbound_events() == 0
    assert InboundEvent.objects.count() == 1


def test_the_nightly_task_is_scheduled(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "banditore.channel.prune_inbound_events" in tasks
