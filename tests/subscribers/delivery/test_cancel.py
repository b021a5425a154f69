"""A cancel stops the senders between two requests, and leaves nothing of the post queued.

What reached "Meta" is read from the fake's outbox and counters; the tests wait on those counts,
never on the clock.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from subscribers.delivery import publishing, sending, sweeper
from subscribers.delivery.progress import post_counters
from subscribers.delivery.statuses import apply_statuses
from subscribers.models import Delivery
from tests.subscribers.delivery.helpers import (
    ONE_BATCH,
    batch_in_flight,
    callbacks,
    fast_sending,
    reported,
    sending_post,
)
from tests.subscribers.helpers import concurrently
from topics.models import Post


@pytest.fixture(autouse=True)
def fast(settings, redis_conn):
    fast_sending(settings, batch=20)


def accepted(fake_graph) -> int:
    return fake_graph.stats()["accepted"]


def wait_for_accepted(fake_graph, count: int) -> None:
    """Until "Meta" has accepted `count` messages: a moment in the middle of the send however
    fast or loaded the machine is."""
    deadline = time.monotonic() + 60
    while accepted(fake_graph) < count:
        assert time.monotonic() < deadline, "the send never got going"
        time.sleep(0.005)


def assert_nothing_left(post: Post, fake_graph, recipients: int) -> None:
    """Nothing queued or in flight; every row sent (once, as the fake saw) or cancelled."""
    counters = post_counters(post)
    assert counters["queued"] == counters["sending"] == 0
    assert counters["sent"] == accepted(fake_graph) == len(callbacks(fake_graph))
    assert set(callbacks(fake_graph).values()) <= {1}
    assert counters["sent"] + counters["cancelled"] == counters["reach"] == recipients


@pytest.mark.django_db(transaction=True)
def test_a_cancel_mid_send_stops_every_request_not_yet_handed_over(fake_graph, template, settings):
    """Two senders, two batches of 40 in flight each, 50 ms per request at "Meta": after the
    cancel only what was already handed over may still be accepted, at most one batch."""
    settings.WHATSAPP_MPS = 100  # bulk 90/s: a batch takes about half a second to hand over
    settings.BANDITORE_SEND_BATCH = 40
    fake_graph.configure(latency_ms=50, mps=100)  # "Meta" as fast as our limiter
    post = sending_post(200)
    with concurrently(lambda _: sending.drain_post(post.pk, budget_seconds=60), 2) as errors:
        wait_for_accepted(fake_graph, 10)
        publishing.post_cancel(post=post)
        at_cancel = accepted(fake_graph)
    assert errors == []
    assert accepted(fake_graph) - at_cancel <= settings.BANDITORE_SEND_BATCH
    assert_nothing_left(post, fake_graph, 200)
    post.refresh_from_db()
    assert post.status == Post.Status.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_rows_a_sender_holds_at_the_cancel_are_cancelled_not_sent(fake_graph, template, settings):
    """The batch is claimed and pacing (one request every 0.22 s) when the cancel comes: the
    next request is not handed over; the rest of the batch ends cancelled."""
    settings.WHATSAPP_MPS = 5  # bulk 4.5/s
    post = sending_post(20)
    flight = batch_in_flight(post, 20)
    wait_for_accepted(fake_graph, 2)
    publishing.post_cancel(post=post)
    at_cancel = accepted(fake_graph)
    flight.finish()
    # A request on its way as the cancel was committed may still land; the sender reads the
    # cancel within 20 ms, and the next slot is 0.22 s away.
    assert accepted(fake_graph) - at_cancel <= 1
    assert_nothing_left(post, fake_graph, 20)
    assert post_counters(post)["cancelled"] >= 16


@pytest.mark.django_db
def test_a_retry_the_cancel_overtook_is_cancelled_not_queued(fake_graph, template):
    """Meta answers 5xx to requests in flight when the post is cancelled: another try would be
    due, but the rows end cancelled."""
    post = sending_post(5)
    fake_graph.configure(error_5xx_rate=1.0)
    flight = batch_in_flight(post, 5)
    publishing.post_cancel(post=post)
    flight.finish()
    assert set(Delivery.objects.filter(post=post).values_list("status", flat=True)) == {"cancelled"}
    assert sending.drain_post(post.pk) is None


@pytest.mark.django_db
def test_a_failure_reported_after_the_cancel_cancels_the_retry(fake_graph, template, settings):
    """131000 by status webhook after the cancel: the row would be retried; it is cancelled."""
    settings.BANDITORE_SEND_BATCH = 3
    post = sending_post(6)
    sending.drain_post(post.pk, budget_seconds=ONE_BATCH)
    sent = fake_graph.outbox()
    assert len(sent) == 3
    publishing.post_cancel(post=post)
    apply_statuses([reported(entry, "failed") for entry in sent])
    counters = post_counters(post)
    assert counters["queued"] == 0
    assert counters["cancelled"] == 6


@pytest.mark.django_db
def test_the_sweeper_never_queues_a_cancelled_posts_rows_again(template, settings):
    """An unanswered request of a cancelled post is not retried after the settle time, and a
    row queued in the instant of the cancel is cancelled."""
    settings.BANDITORE_SETTLE_SECONDS = 600
    post = sending_post(3)
    publishing.post_cancel(post=post)
    unanswered, raced, _ = Delivery.objects.filter(post=post).order_by("id")
    long_ago = timezone.now() - timedelta(seconds=700)
    Delivery.objects.filter(pk=unanswered.pk).update(status="sending", sending_at=long_ago)
    Delivery.objects.filter(pk=raced.pk).update(status="queued")
    assert sweeper.sweep()["returned"] == 0
    assert set(Delivery.objects.filter(post=post).values_list("status", flat=True)) == {"cancelled"}
