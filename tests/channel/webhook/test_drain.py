"""How archived webhooks get processed: one wake-up per burst, workers sharing a backlog, and
batches of many webhooks per transaction."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import OperationalError, connection

from channel.graph.callbacks import delivery_reference
from channel.models import InboundEvent, InboundMessage, OutboundMessage
from channel.signals import inbound_messages_received, statuses_received
from channel.webhook.drain import process_pending_inbound_events
from channel.webhook.wake_flag import WAKE_KEY
from subscribers.models import Delivery, Subscriber
from tests.channel.webhook.helpers import (
    envelope,
    held_by_another_session,
    post_webhook,
    status_item,
    text_item,
)
from tests.factories import make_delivery, make_post, make_subscriber, make_topic
from tests.markers import needs_postgresql
from topics.models import Post


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

    assert process_pending_inbound_events().processed == 3
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

    def other_worker() -> None:
        InboundEvent.objects.select_for_update().filter(pk=held.pk).get()

    with held_by_another_session(other_worker):
        assert process_pending_inbound_events(max_seconds=5).processed == 1
        other.refresh_from_db()
        held.refresh_from_db()
        assert other.processed_at is not None
        assert held.processed_at is None
    assert process_pending_inbound_events().processed == 1
    assert InboundMessage.objects.count() == 2


# --- Batches: many webhooks per transaction ------------------------------------------------
# Meta may send every status in a POST of its own (it does not guarantee batching):
# the processor claims many webhooks at once and applies their statuses together.


def _sent_deliveries(n: int) -> list[Delivery]:
    topic = make_topic()
    post = make_post(topics=[topic], status=Post.Status.SENDING)
    return [
        make_delivery(
            post=post,
            subscriber=make_subscriber(topics=[topic]),
            status="sent",
            wa_message_id=f"wamid.batch{n}-{i}",
        )
        for i in range(n)
    ]


def _one_status_webhook(client, delivery: Delivery, status: str, **fields) -> None:
    item = status_item(delivery.wa_message_id, status, callback=delivery_reference(delivery.pk))
    item.update(fields)
    body = json.dumps(envelope(statuses=[item])).encode()
    assert post_webhook(client, body).status_code == 200


@pytest.mark.django_db
def test_a_backlog_of_one_status_webhooks_is_applied_in_a_few_statements(
    client, redis_conn, django_assert_max_num_queries
):
    redis_conn.set(WAKE_KEY, 1)  # archive only
    deliveries = _sent_deliveries(30)
    for status in ("read", "delivered"):  # read first: Meta does not guarantee order
        for delivery in deliveries:
            _one_status_webhook(client, delivery, status)

    # Per batch: claim, apply (lock + one UPDATE), mark processed; not per webhook. (SQLite,
    # the one-command dev run, applies statuses one UPDATE each: low volume there.)
    per_status = 0 if connection.vendor == "postgresql" else 1
    with django_assert_max_num_queries(20 + 60 * per_status):
        assert process_pending_inbound_events(batch=100).processed == 60

    for delivery in deliveries:
        delivery.refresh_from_db()
        assert delivery.status == "read"
        assert delivery.delivered_at and delivery.read_at and delivery.sent_at
    events = InboundEvent.objects.all()
    assert events.count() == 60
    assert not events.filter(processed_at__isnull=True).exists()
    assert set(events.values_list("problems", flat=True)) == {""}


@pytest.mark.django_db
def test_statuses_stay_order_independent_within_and_across_batches(client, redis_conn):
    """Read without delivered is fine, a late delivered never downgrades read, a
    failed after delivered is recorded while the row stays delivered; duplicates are harmless."""
    redis_conn.set(WAKE_KEY, 1)
    read_first, failed_late = _sent_deliveries(2)
    for status in ("read", "delivered", "read", "sent"):
        _one_status_webhook(client, read_first, status)
    _one_status_webhook(client, failed_late, "delivered")
    assert process_pending_inbound_events(batch=3).processed == 5  # two batches

    _one_status_webhook(client, read_first, "delivered")  # very late, in a later batch
    error = {"code": 131026, "title": "Message undeliverable", "error_data": {"details": "x"}}
    _one_status_webhook(client, failed_late, "failed", errors=[error])
    assert process_pending_inbound_events().processed == 2

    read_first.refresh_from_db()
    failed_late.refresh_from_db()
    assert read_first.status == "read"
    assert failed_late.status == "delivered"
    assert failed_late.failed_at is not None
    assert failed_late.last_error_code == 131026


@pytest.mark.django_db
def test_a_drain_out_of_time_clears_the_flag_and_says_so(client, redis_conn):
    """Its task then wakes a fresh drain (`channel.tasks`), which needs the flag clear."""
    redis_conn.set(WAKE_KEY, 1)
    _one_status_webhook(client, _sent_deliveries(1)[0], "delivered")
    run = process_pending_inbound_events(max_seconds=0)
    assert (run.processed, run.out_of_time) == (0, True)
    assert not redis_conn.exists(WAKE_KEY)
    assert InboundEvent.objects.filter(processed_at__isnull=True).count() == 1
    assert not process_pending_inbound_events().out_of_time


class WorkerKilled(BaseException):
    """What a killed worker looks like from inside: nothing after it runs."""


@pytest.mark.django_db
def test_a_crash_mid_batch_rolls_the_whole_batch_back_and_the_next_drain_redoes_it(
    client, redis_conn, fake_graph
):
    redis_conn.set(WAKE_KEY, 1)
    deliveries = _sent_deliveries(3)
    for delivery in deliveries:
        _one_status_webhook(client, delivery, "delivered")
    post_webhook(client, _body("393335550020", "ciao"))  # a citizen's message in the batch

    def killed(**kwargs):
        raise WorkerKilled

    statuses_received.connect(killed, dispatch_uid="test-killed")
    try:
        with pytest.raises(WorkerKilled):
            process_pending_inbound_events()
    finally:
        statuses_received.disconnect(dispatch_uid="test-killed")
    assert InboundEvent.objects.filter(processed_at__isnull=True).count() == 4
    assert {d.status for d in Delivery.objects.filter(pk__in=[d.pk for d in deliveries])} == {
        "sent"
    }
    assert not InboundMessage.objects.exists()  # the message's handling was rolled back too

    assert process_pending_inbound_events().processed == 4
    assert {d.status for d in Delivery.objects.filter(pk__in=[d.pk for d in deliveries])} == {
        "delivered"
    }
    assert InboundMessage.objects.get().processed_at is not None


@pytest.mark.django_db
def test_a_failing_listener_is_reported_on_its_own_webhook_only(client, redis_conn):
    redis_conn.set(WAKE_KEY, 1)
    fine, poison, other = _sent_deliveries(3)
    for delivery in (fine, poison, other):
        _one_status_webhook(client, delivery, "delivered")

    def picky(updates, **kwargs):
        if any(u.wamid == poison.wa_message_id for u in updates):
            raise ValueError("cannot digest this one")
        return []

    statuses_received.connect(picky, dispatch_uid="test-picky")
    try:
        assert process_pending_inbound_events().processed == 3
    finally:
        statuses_received.disconnect(dispatch_uid="test-picky")
    problems = dict(InboundEvent.objects.values_list("id", "problems"))
    assert len(problems) == 3
    assert [p for p in problems.values() if p] == [
        "error: receiver picky failed: ValueError('cannot digest this one')"
    ]
    assert not InboundEvent.objects.filter(processed_at__isnull=True).exists()
    for delivery in (fine, poison, other):  # the ledger's own listener still applied them all
        delivery.refresh_from_db()
        assert delivery.status == "delivered"


@pytest.mark.django_db
def test_a_message_twice_in_one_batch_is_handled_once(client, redis_conn, fake_graph):
    """Meta retries; both copies may wait in the same batch. Dedup is by wamid."""
    redis_conn.set(WAKE_KEY, 1)
    body = _body("393335550030", "Iscrivimi")
    _sent = _sent_deliveries(1)[0]
    post_webhook(client, body)
    _one_status_webhook(client, _sent, "delivered")
    post_webhook(client, body)
    with_replies = OutboundMessage.objects.count
    assert process_pending_inbound_events().processed == 3
    assert InboundMessage.objects.count() == 1
    replies = with_replies()
    assert replies >= 1
    InboundEvent.objects.update(processed_at=None)  # as if all redelivered once more
    assert process_pending_inbound_events().processed == 3
    assert (InboundMessage.objects.count(), OutboundMessage.objects.count()) == (1, replies)


@pytest.mark.django_db
def test_the_flag_stays_set_while_a_drain_works_and_later_arrivals_are_drained_too(
    client, redis_conn
):
    """While the drain works, new webhooks find the flag set and wake no second drain; so the
    drain itself must take them before it clears the flag and returns."""
    redis_conn.set(WAKE_KEY, 1)
    first, late = _sent_deliveries(2)
    _one_status_webhook(client, first, "delivered")
    seen = []

    def arrives_meanwhile(updates, **kwargs):
        seen.append(bool(redis_conn.exists(WAKE_KEY)))
        if len(seen) == 1:  # as if Meta POSTed now: archived, nobody woken (flag set)
            _one_status_webhook(client, late, "delivered")
        return []

    statuses_received.connect(arrives_meanwhile, dispatch_uid="test-meanwhile")
    try:
        assert process_pending_inbound_events().processed == 2
    finally:
        statuses_received.disconnect(dispatch_uid="test-meanwhile")
    assert seen == [True, True]
    assert not redis_conn.exists(WAKE_KEY)  # cleared once nothing was left
    late.refresh_from_db()
    assert late.status == "delivered"


@pytest.mark.django_db(transaction=True)
@needs_postgresql
def test_a_drain_lingers_and_takes_a_trickle_without_new_wake_ups(client, redis_conn):
    """At a steady trickle a webhook arriving just after the archive emptied finds the flag
    still held (so its POST publishes nothing) and the same drain applies it."""
    redis_conn.set(WAKE_KEY, 1)  # as set by the POST that woke this drain
    first, late = _sent_deliveries(2)
    _one_status_webhook(client, first, "delivered")
    result = []
    applied = threading.Event()

    def first_applied(updates, **kwargs):
        applied.set()
        return []

    statuses_received.connect(first_applied, dispatch_uid="test-trickle")
    drain = threading.Thread(
        target=lambda: result.append(process_pending_inbound_events(linger=3.0).processed)
    )
    try:
        drain.start()
        # Once the first webhook is applied, the drain lingers (3 s: ample on a busy machine).
        assert applied.wait(10)
        assert redis_conn.exists(WAKE_KEY)
        _one_status_webhook(client, late, "delivered")  # eager Celery: a publish would drain
        drain.join(15)
    finally:
        statuses_received.disconnect(dispatch_uid="test-trickle")

    assert result == [2]  # the lingering drain took it: the POST woke no drain of its own
    assert Delivery.objects.get(pk=late.pk).status == "delivered"
    assert not redis_conn.exists(WAKE_KEY)  # idle for the whole linger: cleared


@pytest.mark.django_db
def test_a_transient_database_failure_redoes_the_batch_instead_of_dropping_the_message(
    client, redis_conn, fake_graph
):
    """A deadlock with a concurrent drain is nobody's fault: the batch rolls back whole and
    the next drain handles the citizen's message, rather than marking it done unanswered."""
    redis_conn.set(WAKE_KEY, 1)  # the POST only archives; the test drains
    message = text_item("393331112223", "Iscrivimi")
    assert (
        post_webhook(client, json.dumps(envelope(messages=[message])).encode()).status_code == 200
    )
    failures = []

    def deadlocks_once(messages, **kwargs):
        if not failures:
            failures.append(1)
            raise OperationalError("deadlock detected")
        return []

    inbound_messages_received.connect(deadlocks_once, dispatch_uid="test-deadlock")
    try:
        with pytest.raises(OperationalError):
            process_pending_inbound_events()
        assert InboundEvent.objects.filter(processed_at__isnull=True).count() == 1
        assert not InboundMessage.objects.exists()  # rolled back whole
        process_pending_inbound_events()
    finally:
        inbound_messages_received.disconnect(dispatch_uid="test-deadlock")
    assert InboundMessage.objects.get(wamid=message["id"]).processed_at is not None
    assert Subscriber.objects.filter(wa_id="393331112223").exists()  # the join went ahead


@pytest.mark.django_db
def test_the_drain_task_survives_a_transient_failure_and_frees_the_wake_up(client, redis_conn):
    """The task does not crash on a deadlock: it clears the wake-up flag, so the next webhook
    wakes a drain at once instead of waiting for the flag to expire."""
    from channel.tasks import process_pending_inbound_events_task

    redis_conn.set(WAKE_KEY, 1)
    message = text_item("393331112224", "Iscrivimi")
    assert (
        post_webhook(client, json.dumps(envelope(messages=[message])).encode()).status_code == 200
    )

    def deadlocks(messages, **kwargs):
        raise OperationalError("deadlock detected")

    inbound_messages_received.connect(deadlocks, dispatch_uid="test-deadlock-task")
    try:
        assert process_pending_inbound_events_task.apply().get() == 0
    finally:
        inbound_messages_received.disconnect(dispatch_uid="test-deadlock-task")
    assert not redis_conn.exists(WAKE_KEY)
    assert InboundEvent.objects.filter(processed_at__isnull=True).count() == 1  # kept for later
