"""Celery tasks of the channel app, and the helper that wakes the webhook processor.

Thin wrappers, each safe to run twice: they import their service inside their bodies (services
never import this module), call it, and decide what runs next.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from celery.signals import worker_ready
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Eager mode (tests, no broker) cannot hold a task for later: wait in-process, a bounded number
# of times, instead of recursing through apply_async.
_EAGER_MAX_ROUNDS = 30


# A drain that met a transient database failure tries again this much later.
DRAIN_RETRY_SECONDS = 5


@shared_task(name="banditore.channel.process_pending_inbound_events", bind=True, ignore_result=True)
def process_pending_inbound_events_task(self) -> int:
    """Drains the webhook backlog in batches; woken by the intake, swept by beat every minute."""
    from django.db import OperationalError

    from channel.webhook.drain import process_pending_inbound_events
    from channel.webhook.wake_flag import clear_wake_flag

    try:
        run = process_pending_inbound_events()
    except OperationalError:
        # Transient (a deadlock with another drain, a lost connection): the batch rolled back
        # whole. Let the next webhook wake a drain at once, and come back shortly ourselves
        # rather than leave the backlog to beat's minute.
        logger.warning("webhook drain: transient database failure, draining again shortly")
        clear_wake_flag()
        if not self.request.is_eager:
            self.apply_async(countdown=DRAIN_RETRY_SECONDS)
        return 0
    if run.out_of_time:  # work may be left: hand over to a fresh task
        wake_inbound_processor()
    return run.processed


@worker_ready.connect
def drain_after_worker_start(sender=None, **kwargs) -> None:
    """A worker that serves the drain's queue wakes a drain as it starts.

    A worker killed mid-drain (kill -9, out of memory) leaves its batch rolled back, the wake
    flag held for its TTL and its task unacknowledged until the broker's visibility timeout:
    the archived webhooks would wait for beat's minute. Its restart drains them at once.
    """
    from django.conf import settings

    from channel.webhook.wake_flag import clear_wake_flag

    queue = settings.CELERY_TASK_ROUTES[process_pending_inbound_events_task.name]["queue"]
    consumed = getattr(getattr(sender, "app", None), "amqp", None)
    if consumed is not None and queue not in consumed.queues.consume_from:
        return
    clear_wake_flag()
    wake_inbound_processor()


def enqueue_inbound_processing() -> None:
    """Wake the webhook processor once the archived webhook is committed (the intake's call)."""
    transaction.on_commit(wake_inbound_processor)


def wake_inbound_processor() -> None:
    """Publish the drain task unless a wake-up is pending (`channel.webhook.wake_flag`).

    Redis or broker trouble is logged, not raised: the webhook is archived already, and beat
    runs the drain every minute anyway.
    """
    from channel.webhook.wake_flag import clear_wake_flag, set_wake_flag

    try:
        if not set_wake_flag():
            return
    except RedisError:
        logger.exception("could not set the webhook wake-up flag; beat will drain")
        return
    try:
        process_pending_inbound_events_task.delay()
    except BrokerError:
        logger.exception("could not publish the webhook drain; beat will drain")
        clear_wake_flag()  # so the next webhook tries again


@shared_task(name="banditore.channel.prune_inbound_events", ignore_result=True)
def prune_inbound_events_task() -> int:
    """Nightly: old status webhooks go, old erasures are forgotten, leftovers are redacted."""
    from channel.erasure import sweep_erasures
    from channel.webhook.retention import prune_inbound_events

    return prune_inbound_events() + sweep_erasures()


def enqueue_outbound_message(*, outbound_id: int, countdown: float | None = None, **signal) -> None:
    """Send a queued service message (and those queued to follow it) once the caller commits:
    the receiver of channel.service_messages.outbound_queued (connected in ChannelConfig.ready)."""
    transaction.on_commit(
        lambda: send_outbound_message_task.apply_async((outbound_id,), countdown=countdown)
    )


@shared_task(name="banditore.channel.send_outbound_message", bind=True, ignore_result=True)
def send_outbound_message_task(self, outbound_id: int) -> str:
    """Sends one service message, then each one queued after it, in order; a message that has
    to wait is sent again later by a new run, which then goes on with the rest."""
    from channel.service_messages import SendOutcome, next_in_sequence, send_outbound_message

    waits = 0
    while True:
        outcome, retry_in = send_outbound_message(outbound_id=outbound_id)
        if outcome in (SendOutcome.THROTTLED, SendOutcome.RETRY, SendOutcome.PAUSED):
            if not self.request.is_eager:
                self.apply_async((outbound_id,), countdown=retry_in)
                return outcome
            waits += 1
            if outcome == SendOutcome.PAUSED or waits >= _EAGER_MAX_ROUNDS:
                return outcome  # stays queued; nothing will change within this call
            time.sleep(min(retry_in, 1.0))
            continue
        following = next_in_sequence(outbound_id=outbound_id, outcome=outcome)
        if following is None:
            return outcome
        outbound_id = following


@shared_task(name="banditore.channel.sync_templates", ignore_result=True)
def sync_templates_task() -> str:
    """Nightly: the message templates from Meta (status, category, wording). A failure is
    logged and changes nothing; tomorrow's run, the command or the admin button try again."""
    from channel.graph.templates import TemplateSyncError, templates_sync

    try:
        return templates_sync().summary()
    except TemplateSyncError as exc:
        logger.warning("template sync failed: %s", exc)
        return f"failed: {exc}"


@shared_task(name="banditore.channel.refresh_phone_facts", ignore_result=True)
def refresh_phone_facts_task() -> str:
    """Nightly and when sending resumes: the number's throughput, messaging limit, quality and
    name status from Meta (channel.graph.phone). A drop is kept for the editors' notice and
    the alert e-mail (deploy.alerts)."""
    from channel.graph.phone import phone_facts_refresh

    facts, drops = phone_facts_refresh()
    if facts.check_error:
        logger.warning("phone number facts not read: %s", facts.check_error)
    for drop in drops:
        logger.warning("phone number: %s", drop)
    return str(facts)
