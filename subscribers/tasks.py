"""Thin Celery wrappers; each is safe to run twice (the database decides what is left)."""

from __future__ import annotations

from celery import shared_task

from subscribers.delivery import publishing, sending

MAX_COUNTDOWN = 60.0


@shared_task(name="banditore.subscribers.send_post_batch", bind=True, ignore_result=True)
def send_post_batch(self, post_id: int) -> None:
    come_back_in = sending.drain_post(post_id)
    # Eager mode (tests) cannot wait for later: the sweeper or the test drives the rest.
    # Only short countdowns: a long Celery ETA sits unacked in Redis and is handed out again
    # after the visibility timeout; later work (retries in hours) is woken by the sweeper.
    if come_back_in is not None and come_back_in <= MAX_COUNTDOWN and not self.request.is_eager:
        self.apply_async((post_id,), countdown=max(come_back_in, 0.2))


@shared_task(name="banditore.subscribers.publish_due_posts", ignore_result=True)
def publish_due_posts() -> int:
    return publishing.publish_due_posts()


@shared_task(name="banditore.subscribers.sweep_deliveries", ignore_result=True)
def sweep_deliveries() -> dict:
    return sending.sweep()


@shared_task(name="banditore.subscribers.prune_idempotency_keys", ignore_result=True)
def prune_idempotency_keys() -> int:
    # Lazy import: the API package loads DRF, which workers need only for this task.
    from subscribers.api.idempotency import idempotency_prune

    return idempotency_prune()


@shared_task(name="banditore.subscribers.count_subscribers", ignore_result=True)
def count_subscribers() -> int:
    # Lazy import: only the dashboard's counts need it.
    from subscribers.dashboard.queries import take_snapshot

    return take_snapshot()
