"""Meta's status webhooks → the delivery ledger: idempotent and order-independent.

Meta's statuses come batched, out of order and sometimes twice; `read` may
arrive without `delivered`; a late `delivered` never downgrades `read`.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from channel.graph.callbacks import delivery_reference
from channel.graph.client import SendResult
from channel.webhook.parsing import MetaError, StatusUpdate
from subscribers.delivery import publishing, settling
from subscribers.delivery.progress import post_counters
from subscribers.delivery.statuses import apply_statuses
from subscribers.models import Delivery, Subscriber
from tests.channel.webhook.helpers import wsgi_server
from tests.factories import make_delivery, make_post, make_subscriber, make_topic
from tests.markers import needs_postgresql
from tests.subscribers.delivery.helpers import (
    approved_template,
    callbacks,
    fast_sending,
    published,
    wait_for_statuses,
    webhooks_to,
)
from topics.models import Post


@pytest.fixture(autouse=True)
def fast(settings, redis_conn):
    fast_sending(settings, batch=10)


def in_flight(**fields) -> Delivery:
    """A delivery claimed by a sender that has not written the send result back yet."""
    topic = make_topic()
    post = make_post(topics=[topic], status=Post.Status.SENDING)
    person = make_subscriber(topics=[topic])
    values = {"status": "sending", "sending_at": timezone.now(), "attempts": 1}
    return make_delivery(post=post, subscriber=person, **(values | fields))


def status(wamid: str, value: str, **fields) -> StatusUpdate:
    return StatusUpdate(wamid=wamid, status=value, timestamp=timezone.now(), **fields)


@pytest.mark.django_db(transaction=True)
@needs_postgresql
@pytest.mark.parametrize("per_post", [7, 1])
def test_shuffled_and_duplicated_status_webhooks_end_in_the_right_state(fake_graph, per_post):
    """Real signed webhooks from the fake, through the production WSGI entry point (the lean
    intake), shuffled within each POST, several POSTs in flight at once (so across POSTs too),
    a third of them sent twice; batched 7 per POST, or one per POST as Meta may."""
    approved_template(fake_graph)
    with wsgi_server() as server:
        webhooks_to(
            server,
            fake_graph,
            read_rate=1.0,
            status_shuffle=True,
            status_duplicate_rate=0.3,
            status_batch_size=per_post,
            status_concurrency=4,
            seed=3,
        )
        post = published(30)  # the eager sender sends it while publishing
        wait_for_statuses(fake_graph)
    assert len(callbacks(fake_graph)) == 30
    assert fake_graph.stats()["statuses_sent"] > 90  # 3 per message plus duplicates
    rows = Delivery.objects.filter(post=post)
    assert {row.status for row in rows} == {"read"}
    assert all(row.sent_at and row.delivered_at and row.read_at for row in rows)
    assert post_counters(post)["read"] == 30
    post.refresh_from_db()
    assert post.status == Post.Status.SENT


@pytest.mark.django_db(transaction=True)
def test_a_failed_status_by_webhook_marks_the_row_and_the_person(fake_graph):
    """Meta accepts the message, then reports 131026 (not on WhatsApp) asynchronously."""
    approved_template(fake_graph)
    topic = make_topic()
    fine, gone = make_subscriber(topics=[topic]), make_subscriber(topics=[topic])
    with wsgi_server() as server:
        webhooks_to(server, fake_graph, fail_after_send=[gone.wa_id])
        post = make_post(topics=[topic])
        publishing.post_publish(post=post)
        wait_for_statuses(fake_graph)
    rows = {row.subscriber_id: row for row in Delivery.objects.filter(post=post)}
    assert rows[fine.id].status == "delivered"
    assert (rows[gone.id].status, rows[gone.id].last_error_code) == ("failed", 131026)
    gone.refresh_from_db()
    assert gone.status == Subscriber.Status.UNREACHABLE


@pytest.mark.django_db
def test_a_status_that_overtakes_the_write_back_is_matched_by_our_reference():
    """The sender crashed (or is slow) between Meta's answer and writing the wamid: the status
    carries our reference in biz_opaque_callback_data, which settles the row."""
    delivery = in_flight()
    reference = delivery_reference(delivery.pk)
    changed = apply_statuses(
        [status("wamid.late", "delivered", biz_opaque_callback_data=reference)]
    )
    delivery.refresh_from_db()
    assert changed == 1
    assert (delivery.status, delivery.wa_message_id) == ("delivered", "wamid.late")
    # The write-back arrives afterwards: it keeps the better status Meta already reported.
    claim = settling.Claimed(delivery.pk, delivery.subscriber_id, 1, False, delivery.post_id, 0)
    settling.settle([settling.Outcome(claim, result=SendResult(wamid="wamid.late"))])
    delivery.refresh_from_db()
    assert (delivery.status, delivery.wa_message_id) == ("delivered", "wamid.late")
    assert delivery.sent_at is not None


@pytest.mark.django_db
def test_a_reference_to_a_row_with_another_wamid_changes_nothing():
    delivery = in_flight(status="sent", wa_message_id="wamid.real")
    forged = status("wamid.other", "read", biz_opaque_callback_data=delivery_reference(delivery.pk))
    assert apply_statuses([forged]) == 0
    delivery.refresh_from_db()
    assert (delivery.status, delivery.wa_message_id) == ("sent", "wamid.real")


@pytest.mark.django_db
def test_unknown_odd_and_repeated_statuses_are_harmless():
    delivery = in_flight(status="sent", wa_message_id="wamid.known")
    odd = [
        status("wamid.nobody", "delivered"),
        status("wamid.nobody", "delivered", biz_opaque_callback_data="d:99999999999999999999"),
        status("wamid.nobody", "read", biz_opaque_callback_data="svc-or-junk"),
        status("w" * 300, "read"),
        status("wamid.known", "deleted"),  # not a status we know: ignored
        status("wamid.known", "delivered"),
        status("wamid.known", "delivered"),
    ]
    apply_statuses(odd)
    apply_statuses(odd)
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert Delivery.objects.count() == 1


@pytest.mark.django_db
def test_failed_before_anything_else_fails_and_a_later_read_wins():
    """A `failed` we saw first, then Meta's own `read` for the same message: it was read."""
    delivery = in_flight(status="sent", wa_message_id="wamid.f")
    apply_statuses([status("wamid.f", "failed", errors=(MetaError(131000, "x"),))])
    delivery.refresh_from_db()
    assert delivery.status in ("failed", "queued")  # 131000 is retried, after a pause
    assert delivery.failed_at is not None
    apply_statuses([status("wamid.f", "read")])
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error_code) == ("read", 131000)
