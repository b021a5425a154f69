"""Under a live stream the drain gathers: after a batch that was not full it waits before it
claims again, so the webhooks arriving meanwhile are processed together, in one transaction."""

from __future__ import annotations

import json
import threading

import pytest

from channel.graph.callbacks import delivery_reference
from channel.signals import statuses_received
from channel.webhook.drain import process_pending_inbound_events
from channel.webhook.wake_flag import WAKE_KEY
from subscribers.models import Delivery
from tests.channel.webhook.helpers import envelope, post_webhook, status_item
from tests.factories import make_delivery, make_post, make_subscriber, make_topic
from tests.markers import needs_postgresql
from topics.models import Post


def _sent(n: int) -> list[Delivery]:
    topic = make_topic()
    post = make_post(topics=[topic], status=Post.Status.SENDING)
    return [
        make_delivery(
            post=post,
            subscriber=make_subscriber(topics=[topic]),
            status="sent",
            wa_message_id=f"wamid.gather-{i}",
        )
        for i in range(n)
    ]


def _delivered(client, delivery: Delivery) -> None:
    reference = delivery_reference(delivery.pk)
    item = status_item(delivery.wa_message_id, "delivered", callback=reference)
    body = json.dumps(envelope(statuses=[item])).encode()
    assert post_webhook(client, body).status_code == 200


@pytest.mark.django_db(transaction=True)
@needs_postgresql
def test_webhooks_arriving_while_a_batch_is_processed_are_claimed_together(client, redis_conn):
    redis_conn.set(WAKE_KEY, 1)  # as set by the POST that woke this drain: the others archive
    first, *trickle = _sent(4)
    _delivered(client, first)
    batches: list[int] = []
    applied = threading.Event()

    def record(updates, **kwargs):
        batches.append(len(updates))
        applied.set()
        return []

    statuses_received.connect(record, dispatch_uid="test-gather")
    drain = threading.Thread(
        target=lambda: process_pending_inbound_events(batch=100, linger=0.0, gather=3.0)
    )
    try:
        drain.start()
        assert applied.wait(10)
        for delivery in trickle:  # a live stream: they arrive while the drain is at work
            _delivered(client, delivery)
        drain.join(15)
    finally:
        statuses_received.disconnect(dispatch_uid="test-gather")

    # The drain waited (3 s: ample on a busy machine) and took the three in one batch; claiming
    # again at once (gather=0, as before) took them as they came: [1, 2, 1], or [1] and a new
    # drain for the rest.
    assert batches == [1, 3]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}
