"""A status applies to the attempt it belongs to, never to a later one.

Meta repeats statuses, late and out of order. After a resend or a retry, the earlier attempt's
`sent`, `delivered` and `failed` keep coming, with our reference of that attempt and its wamid
(or the wamid alone): none of them may fail, settle or lose the new attempt.
"""

from __future__ import annotations

import pytest

from subscribers.delivery import publishing, sending
from subscribers.delivery.statuses import apply_statuses
from subscribers.models import Delivery
from tests.subscribers.delivery.helpers import (
    batch_in_flight,
    callbacks,
    delivery_of,
    fast_sending,
    reported,
    sending_post,
)
from topics.models import Post

pytestmark = pytest.mark.django_db

STATUSES = ("failed", "sent", "delivered", "failed", "sent")


@pytest.fixture(autouse=True)
def fast(settings, redis_conn):
    fast_sending(settings, batch=40)


def replay(sent: list[dict], *statuses: str) -> None:
    """Meta repeating these statuses of the messages in `sent`, one webhook per status and
    way of matching: our reference with the wamid, and the wamid alone."""
    for status in statuses:
        apply_statuses([reported(entry, status) for entry in sent])
        apply_statuses([reported(entry, status, with_reference=False) for entry in sent])


def rows(post: Post) -> dict[int, Delivery]:
    return {row.id: row for row in Delivery.objects.filter(post=post)}


def by_delivery(sent: list[dict]) -> dict[int, str]:
    """delivery id → the wamid Meta gave that delivery's message."""
    return {delivery_of(entry): entry["id"] for entry in sent}


def send_with_replays_in_flight(post: Post, old: list[dict]) -> None:
    """Send what is due while Meta repeats the old attempt's statuses: the rows are claimed
    and their requests in flight, nothing written back yet."""
    flight = batch_in_flight(post, 100)
    assert flight.batches[0].claimed
    replay(old, *STATUSES)
    flight.finish()


def test_a_resend_is_never_failed_lost_or_doubled_by_the_failed_attempts_statuses(
    fake_graph, template, settings
):
    settings.BANDITORE_MAX_ATTEMPTS = 1  # Meta's failure is final: the editor resends
    post = sending_post(30)
    assert sending.drain_post(post.pk) is None
    first = fake_graph.outbox()
    replay(first, "sent", "failed")
    assert {row.status for row in rows(post).values()} == {"failed"}
    post.refresh_from_db()
    assert post.status == Post.Status.SENT

    assert publishing.resend_failed(post=post) == 30
    replay(first, *STATUSES)  # while the rows wait in the queue
    assert {row.status for row in rows(post).values()} == {"queued"}
    send_with_replays_in_flight(post, first)
    replay(first, *STATUSES)  # after the new attempt went out

    second = by_delivery(fake_graph.outbox(since=30))
    assert len(second) == 30
    assert {(row.status, row.wa_message_id) for row in rows(post).values()} == {
        ("sent", second[row_id]) for row_id in rows(post)
    }
    # The new attempt's own statuses still find it; the old ones still change nothing.
    apply_statuses([reported(entry, "delivered") for entry in fake_graph.outbox(since=30)])
    replay(first, *STATUSES)
    assert {row.status for row in rows(post).values()} == {"delivered"}
    assert {row.last_error_code for row in rows(post).values()} == {None}

    # The next resend finds nobody to send to: each person got the post once per send.
    assert publishing.resend_failed(post=post) == 0
    sending.drain_post(post.pk)
    assert sorted(callbacks(fake_graph).values()) == [2] * 30


def test_a_retry_after_a_reported_failure_ignores_the_earlier_attempts_statuses(
    fake_graph, template
):
    """131000 reported by webhook queues a retry; that attempt's late `sent` must not pass the
    row for sent (nobody would retry it), nor its `failed` fail the retry."""
    post = sending_post(10)
    sending.drain_post(post.pk)
    first = fake_graph.outbox()
    replay(first, "failed")
    assert {row.status for row in rows(post).values()} == {"queued"}
    replay(first, "sent", "failed", "sent")
    assert {(row.status, row.attempts) for row in rows(post).values()} == {("queued", 1)}

    Delivery.objects.filter(post=post).update(next_attempt_at=None)  # the retry is due
    send_with_replays_in_flight(post, first)
    replay(first, *STATUSES)
    second = by_delivery(fake_graph.outbox(since=10))
    assert {(row.status, row.wa_message_id, row.attempts) for row in rows(post).values()} == {
        ("sent", second[row_id], 2) for row_id in rows(post)
    }
    assert {row.last_error_code for row in rows(post).values()} == {None}
    assert sorted(callbacks(fake_graph).values()) == [2] * 10


def test_a_late_delivered_of_the_attempt_before_a_retry_spares_the_retry(fake_graph, template):
    """The person got the message after all: the queued retry is not sent."""
    post = sending_post(3)
    sending.drain_post(post.pk)
    first = fake_graph.outbox()
    replay(first, "failed")
    replay(first, "delivered")
    assert {row.status for row in rows(post).values()} == {"delivered"}
    Delivery.objects.filter(post=post).update(next_attempt_at=None)
    sending.drain_post(post.pk)
    assert len(fake_graph.outbox()) == 3
