"""Shared set-up for the delivery-engine tests that run against the fake Graph API."""

from __future__ import annotations

from collections import Counter

from django.utils import timezone

from channel.graph.callbacks import delivery_attempt
from channel.models import MessageTemplate
from channel.webhook.drain import process_pending_inbound_events
from channel.webhook.parsing import MetaError, StatusUpdate
from subscribers.delivery import publishing, sending
from subscribers.delivery.inflight import Flight
from tests.factories import make_post, make_subscriber, make_template, make_topic
from topics.models import Post

# A time budget spent as soon as the first batch is claimed: drain_post sends that one batch.
ONE_BATCH = 1e-6


def fast_sending(settings, *, batch: int) -> None:
    """No rate or tier holds a sender back; each claims `batch` deliveries."""
    settings.WHATSAPP_MPS = 1000
    settings.WHATSAPP_MESSAGING_TIER = "unlimited"
    settings.BANDITORE_SEND_BATCH = batch


def approved_template(fake_graph) -> MessageTemplate:
    """The same approved template registered at "Meta" and in our registry."""
    fake_graph.register_template("avviso_comune", "it", "utility", body_params=2)
    return make_template()


def published(n: int, **subscriber_fields) -> Post:
    topic = make_topic()
    for _ in range(n):
        make_subscriber(topics=[topic], **subscriber_fields)
    post = make_post(topics=[topic], body="Riga uno\nRiga due")
    publishing.post_publish(post=post)
    return post


def sending_post(n: int, **subscriber_fields) -> Post:
    """A post fanned out to `n` people and sending, with no sender woken: the test runs them
    (publishing would start the eager in-process senders once it commits)."""
    topic = make_topic()
    for _ in range(n):
        make_subscriber(topics=[topic], **subscriber_fields)
    post = make_post(topics=[topic])
    Post.objects.filter(pk=post.pk).update(status=Post.Status.SENDING, published_at=timezone.now())
    publishing.fan_out(post)
    post.refresh_from_db()
    return post


def reported(entry: dict, status: str, *, with_reference: bool = True) -> StatusUpdate:
    """Meta's status of a message the fake accepted (an outbox entry); a failure is 131000,
    the error Meta asks to retry."""
    return StatusUpdate(
        wamid=entry["id"],
        status=status,
        timestamp=timezone.now(),
        biz_opaque_callback_data=entry["callback"] if with_reference else "",
        errors=(MetaError(131000, "Something went wrong"),) if status == "failed" else (),
    )


def callbacks(fake_graph) -> Counter:
    """How many times each delivery reached "Meta" (its accepted outbox), whatever the attempt
    its reference names."""
    return Counter(delivery_of(entry) for entry in fake_graph.outbox())


def delivery_of(entry: dict) -> int | None:
    """The delivery an outbox entry was sent for (None: not a post's delivery)."""
    return (delivery_attempt(entry["callback"]) or (None,))[0]


def batch_in_flight(post: Post, size: int) -> Flight:
    """A sender as drain_post runs it, with one batch claimed and its requests handed to the
    transport, nothing written back yet: `finish()` waits for the answers and writes them."""
    flight = Flight(size)
    flight.add(sending._start_batch(Post.objects.get(pk=post.pk), size, flight.wake))
    return flight


def webhooks_to(live_server, fake_graph, **options) -> None:
    """Point the fake's status webhooks at the real webhook view of a live server."""
    fake_graph.configure(webhook_url=f"{live_server.url}/whatsapp/webhook/", **options)


def wait_for_statuses(fake_graph) -> None:
    """Every status the fake owes has been POSTed, and every archived webhook processed."""
    fake_graph.flush_statuses()
    process_pending_inbound_events()
