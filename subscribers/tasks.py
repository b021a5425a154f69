"""Celery tasks of the subscribers app, and the helper that wakes a post's senders.

Thin wrappers, each safe to run twice (the database decides what is left): they import their
service inside their bodies. Services never import this module: they announce work through
subscribers.delivery.signals, to which SubscribersConfig.ready() connects wake_senders.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import transaction

MAX_COUNTDOWN = 60.0


def wake_senders(*, post_id: int, **signal) -> None:
    """Start BANDITORE_SENDERS_PER_POST sender chains for the post once the caller commits.
    The receiver of subscribers.delivery.signals.senders_needed (publish, resend, sweeper)."""

    def enqueue() -> None:
        for _n in range(settings.BANDITORE_SENDERS_PER_POST):
            send_post_batch.delay(post_id)

    transaction.on_commit(enqueue)


@shared_task(name="banditore.subscribers.send_post_batch", bind=True, ignore_result=True)
def send_post_batch(self, post_id: int) -> None:
    from subscribers.delivery.sending import drain_post

    come_back_in = drain_post(post_id)
    # Eager mode (tests) cannot wait for later: the sweeper or the test drives the rest.
    # Only short countdowns: a long Celery ETA sits unacked in Redis and is handed out again
    # after the visibility timeout; later work (retries in hours) is woken by the sweeper.
    if come_back_in is not None and come_back_in <= MAX_COUNTDOWN and not self.request.is_eager:
        self.apply_async((post_id,), countdown=max(come_back_in, 0.2))


@shared_task(name="banditore.subscribers.publish_due_posts", ignore_result=True)
def publish_due_posts() -> int:
    from subscribers.delivery.publishing import publish_due_posts

    return publish_due_posts()


@shared_task(name="banditore.subscribers.send_digest", ignore_result=True)
def send_digest() -> int:
    """The weekly digest (its schedule is a beat entry editable in the admin, made after
    `migrate` by subscribers.delivery.digest_schedule). Safe to run twice: one per period."""
    from subscribers.delivery.digest import digest_publish

    return digest_publish().recipients


@shared_task(name="banditore.subscribers.sweep_deliveries", ignore_result=True)
def sweep_deliveries() -> dict:
    from subscribers.delivery.counters import active_count_fold, posts_fold_crowded
    from subscribers.delivery.sweeper import sweep

    swept = sweep()
    swept["counters_folded"] = posts_fold_crowded()  # the deltas of the last minute
    active_count_fold()
    return swept


@shared_task(name="banditore.subscribers.prune_idempotency_keys", ignore_result=True)
def prune_idempotency_keys() -> int:
    from subscribers.api.idempotency import idempotency_prune

    return idempotency_prune()


@shared_task(name="banditore.subscribers.count_subscribers", ignore_result=True)
def count_subscribers() -> int:
    from subscribers.dashboard.queries import flows_snapshot, take_snapshot

    flows_snapshot()
    return take_snapshot()
