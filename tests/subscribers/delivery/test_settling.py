"""Writing outcomes back: only to the attempt they belong to, never a person's raw wamid after
their erasure, one rule for a failure whether the send's answer or a webhook reports it, and a
post finished only when nothing of it can be queued again behind its back.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections
from django.utils import timezone

from channel.erasure import erased_wamid
from channel.graph.account import is_paused
from channel.graph.callbacks import delivery_reference
from channel.graph.client import SendResult
from channel.graph.errors import Handling
from channel.webhook.parsing import MetaError, StatusUpdate
from subscribers.delivery import publishing, sending
from subscribers.delivery.settling import Outcome, finish_if_done, settle
from subscribers.delivery.statuses import apply_statuses
from subscribers.erasure import subscriber_erase
from subscribers.models import Delivery
from tests.factories import make_post, make_subscriber, make_topic
from tests.markers import needs_postgresql
from tests.subscribers.delivery.helpers import (
    approved_template,
    callbacks,
    fast_sending,
    published,
    sending_post,
)
from topics.models import Post


@pytest.fixture(autouse=True)
def fast(settings, redis_conn):
    fast_sending(settings, batch=10)


def failed_status(delivery: Delivery, code: int) -> StatusUpdate:
    """Meta's `failed` for the delivery's current attempt, after it accepted the send."""
    return StatusUpdate(
        wamid=delivery.wa_message_id,
        status="failed",
        timestamp=timezone.now(),
        biz_opaque_callback_data=delivery_reference(delivery.pk, delivery.attempt_seq),
        errors=(MetaError(code, "x"),),
    )


def claimed_again(post: Post):
    """The sweeper queued the post's rows again and another sender claimed them: a new attempt."""
    Delivery.objects.filter(post=post).update(status=Delivery.Status.QUEUED)
    return sending.claim_batch(post.pk, 10)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "result",
    [
        SendResult(error_code=131000, http_status=500, handling=Handling.TRANSIENT),
        SendResult(error_code=100, http_status=400, handling=Handling.INVALID),
        SendResult(error_code=None, error_text="read timeout", maybe_sent=True),
        SendResult(not_sent=True),
    ],
    ids=["retry", "failed", "maybe-sent", "not-sent"],
)
def test_a_stale_outcome_leaves_the_live_attempt_alone(result):
    """A batch carried over to a later sender answers for attempt 1 of a row that attempt 2
    now holds: neither queued again (it would be sent twice) nor failed nor annotated."""
    post = sending_post(1)
    [stale] = sending.claim_batch(post.pk, 10)
    [live] = claimed_again(post)
    assert live.seq == stale.seq + 1
    settle([Outcome(stale, result=result)])
    row = Delivery.objects.get(pk=live.id)
    assert (row.status, row.attempt_seq, row.attempts) == ("sending", live.seq, live.attempts)
    assert row.last_error_code is None and row.last_error_text == ""
    settle([Outcome(live, result=SendResult(wamid="wamid.live"))])
    row.refresh_from_db()
    assert (row.status, row.wa_message_id) == ("sent", "wamid.live")


@pytest.mark.django_db
def test_an_outcome_for_a_person_erased_in_flight_stores_only_the_redacted_wamid():
    """Meta's wamid encodes the phone number: erased while the send was in flight, the person's
    row gets the redacted form, as the erasure gave their other rows; others keep theirs."""
    post = sending_post(2)
    gone, kept = sending.claim_batch(post.pk, 10)
    subscriber_erase(Delivery.objects.get(pk=gone.id).subscriber)
    settle(
        [
            Outcome(gone, result=SendResult(wamid="wamid.HBgMMzkzMzMwMDAwMDAx")),
            Outcome(kept, result=SendResult(wamid="wamid.kept")),
        ]
    )
    rows = {row.pk: row for row in Delivery.objects.filter(post=post)}
    assert rows[gone.id].status == rows[kept.id].status == "sent"
    assert rows[gone.id].wa_message_id == erased_wamid("wamid.HBgMMzkzMzMwMDAwMDAx")
    assert rows[kept.id].wa_message_id == "wamid.kept"


@pytest.mark.django_db(transaction=True)
def test_131047_by_webhook_after_a_200_resends_as_a_template_at_no_attempt(fake_graph):
    """Free-form accepted, then Meta's webhook says the 24-hour window had closed: the row is
    sent again as the template at once, as when the send's answer says so, and the finished
    post is sending again until it is."""
    approved_template(fake_graph)
    topic = make_topic()
    person = make_subscriber(topics=[topic], last_inbound_at=timezone.now())
    fake_graph.mark_inbound(person.wa_id)
    post = make_post(topics=[topic])
    publishing.post_publish(post=post)  # the eager sender sends it as the commit ends
    delivery = Delivery.objects.get(post=post)
    assert (delivery.status, delivery.used_template, delivery.attempts) == ("sent", False, 1)
    post.refresh_from_db()
    assert post.status == Post.Status.SENT

    apply_statuses([failed_status(delivery, 131047)])  # wakes the (eager) senders on commit

    delivery.refresh_from_db()
    assert (delivery.status, delivery.used_template, delivery.attempts) == ("sent", True, 1)
    sent = fake_graph.outbox(to=person.wa_id)
    assert [entry["payload"]["type"] for entry in sent] == ["text", "template"]
    assert callbacks(fake_graph)[delivery.pk] == 2
    post.refresh_from_db()
    assert post.status == Post.Status.SENT


@pytest.mark.django_db(transaction=True)
def test_131048_by_webhook_pauses_sending_and_queues_the_row_at_no_attempt(fake_graph):
    """Spam-rate limit reported after a 200: every send pauses, and the row waits in the queue
    without losing an attempt, as when the send's answer says so."""
    approved_template(fake_graph)
    post = published(1)
    delivery = Delivery.objects.get(post=post)
    assert (delivery.status, delivery.attempts) == ("sent", 1)

    apply_statuses([failed_status(delivery, 131048)])

    assert is_paused()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error_code) == ("queued", 0, 131048)
    assert callbacks(fake_graph)[delivery.pk] == 1  # the woken sender found sending paused
    post.refresh_from_db()
    assert post.status == Post.Status.SENDING


def wait_for_lock_waiters(count: int) -> None:
    """Until `count` sessions of this database wait for a row lock."""
    deadline = time.monotonic() + 30
    with connections["default"].cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0] >= count:
                return
            assert time.monotonic() < deadline, "nobody waited for the lock"
            time.sleep(0.005)


@pytest.mark.django_db(transaction=True)
@needs_postgresql
def test_a_row_queued_again_while_the_post_finishes_is_not_stranded(fake_graph):
    """A webhook's 131000 queues a sent row again (after its retry delay) while the last
    sender finishes the post: either the post stays sending, or it is set sending again."""
    approved_template(fake_graph)
    post = published(1)
    delivery = Delivery.objects.get(post=post)
    Post.objects.filter(pk=post.pk).update(status=Post.Status.SENDING, finished_at=None)
    results: dict[str, object] = {}

    def run(name, work) -> None:
        try:
            results[name] = work()
        finally:
            connection.close()

    # Order the three: the webhook holds the post and waits for the row, which this test
    # holds; the sender then tries to finish the post; then the row is let go.
    holder = connections.create_connection("default")
    holder.set_autocommit(False)
    with holder.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {Delivery._meta.db_table} WHERE id = %s FOR UPDATE", [delivery.pk]
        )
    webhook = threading.Thread(
        target=run, args=("webhook", lambda: apply_statuses([failed_status(delivery, 131000)]))
    )
    webhook.start()
    wait_for_lock_waiters(1)
    finisher = threading.Thread(target=run, args=("finish", lambda: finish_if_done(post.pk)))
    finisher.start()
    wait_for_lock_waiters(2)
    holder.rollback()
    holder.close()
    webhook.join(30)
    finisher.join(30)

    assert results == {"webhook": 1, "finish": False}
    delivery.refresh_from_db()
    assert delivery.status == "queued"
    post.refresh_from_db()
    assert post.status == Post.Status.SENDING
