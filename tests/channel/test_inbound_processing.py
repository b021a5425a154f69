"""How archived webhooks get processed: one wake-up per burst, and workers sharing a backlog."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection, transaction

from channel.models import InboundEvent, InboundMessage
from channel.services import WAKE_KEY, process_pending_inbound_events
from tests.channel.webhooks import envelope, post_webhook, text_item
from tests.markers import needs_postgresql


def _body(number: str, text: str) -> bytes:
    return json.dumps(envelope(messages=[text_item(number, text)])).encode()


@pytest.mark.django_db
def test_a_burst_of_webhooks_publishes_one_wake_up(
    client, redis_conn, fake_graph, django_capture_on_commit_callbacks
):
    """While a drain task is already on its way (flag set), POSTs only archive."""
    redis_conn.set(WAKE_KEY, 1)
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(3):
            assert post_webhook(client, _body(f"39333555000{n}", "ciao")).status_code == 200
    assert InboundEvent.objects.filter(processed_at__isnull=True).count() == 3

    assert process_pending_inbound_events() == 3
    assert not redis_conn.exists(WAKE_KEY)
    assert InboundMessage.objects.count() == 3
    assert not InboundEvent.objects.filter(processed_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
@needs_postgresql
def test_a_webhook_another_worker_holds_is_left_to_it(client, redis_conn, fake_graph):
    """SKIP LOCKED: a second worker moves on instead of waiting, and does not spin on it."""
    redis_conn.set(WAKE_KEY, 1)  # archive only: this test runs the drains itself
    post_webhook(client, _body("393335550010", "primo"))
    post_webhook(client, _body("393335550011", "secondo"))
    held, other = InboundEvent.objects.order_by("id")
    locked, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        with transaction.atomic():
            InboundEvent.objects.select_for_update().filter(pk=held.pk).get()
            locked.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert locked.wait(10)
        assert process_pending_inbound_events(max_seconds=5) == 1
        other.refresh_from_db()
        held.refresh_from_db()
        assert other.processed_at is not None
        assert held.processed_at is None
    finally:
        release.set()
        thread.join()
    assert process_pending_inbound_events() == 1
    assert InboundMessage.objects.count() == 2
