"""Thin Celery wrappers around channel.webhook.drain and channel.service_messages; each is safe to run twice."""

from __future__ import annotations

import time

from celery import shared_task

from channel import service_messages
from channel.service_messages import SendOutcome
from channel.webhook import drain

# Eager mode (tests, no broker) cannot hold a task for later: wait in-process, a bounded number
# of times, instead of recursing through apply_async.
_EAGER_MAX_ROUNDS = 30


@shared_task(name="banditore.channel.process_inbound_event", ignore_result=True)
def process_inbound_event_task(event_id: int) -> None:
    drain.process_inbound_event(event_id=event_id)


@shared_task(name="banditore.channel.process_pending_inbound_events", ignore_result=True)
def process_pending_inbound_events_task() -> int:
    """Drains the webhook backlog in batches; woken by the intake, swept by beat every minute."""
    return drain.process_pending_inbound_events()


@shared_task(name="banditore.channel.prune_inbound_events", ignore_result=True)
def prune_inbound_events_task() -> int:
    return drain.prune_inbound_events()


@shared_task(name="banditore.channel.send_outbound_message", bind=True, ignore_result=True)
def send_outbound_message_task(self, outbound_id: int) -> str:
    for _ in range(_EAGER_MAX_ROUNDS):
        outcome, retry_in = service_messages.send_outbound_message(outbound_id=outbound_id)
        if outcome not in (SendOutcome.THROTTLED, SendOutcome.RETRY, SendOutcome.PAUSED):
            return outcome
        if not self.request.is_eager:
            self.apply_async((outbound_id,), countdown=retry_in)
            return outcome
        if outcome == SendOutcome.PAUSED:
            return outcome  # stays queued; nothing will change within this call
        time.sleep(min(retry_in, 1.0))
    return outcome
