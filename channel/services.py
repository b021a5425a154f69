"""Webhook intake: archive, then process in Celery (service messages: `channel.replies`).

Intake is split in two so the webhook answers Meta fast (doc §1.3: median under 250 ms):
`record_inbound_event` archives the raw body inside the request; `process_inbound_event` runs
in Celery after commit, walks every entry/change, deduplicates messages by wamid and hands the
results upward through `channel.signals`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Value
from django.db.models.functions import Replace
from django.utils import timezone

from channel import signals
from channel.models import InboundEvent, InboundMessage, OutboundMessage

# The reply side is part of this module's public surface (contract in common.md).
from channel.replies import (  # noqa: F401
    SendOutcome,
    apply_outbound_statuses,
    is_service_status,
    queue_reply,
    send_outbound_message,
)

logger = logging.getLogger(__name__)

# Bodies with a bad signature are kept for audit only; cap them so junk can't fill the disk.
MAX_ARCHIVED_UNSIGNED_BYTES = 16 * 1024


# --- Intake -------------------------------------------------------------------------------


def _as_text(body: bytes) -> str:
    # PostgreSQL text cannot hold NUL; undecodable bytes are kept visibly rather than dropped.
    return body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def record_inbound_event(*, body: bytes, signature_valid: bool, problems: str = "") -> InboundEvent:
    """Archive a webhook POST exactly as received (Meta cannot resend past webhooks, doc §1.2)."""
    if not signature_valid:
        body = body[:MAX_ARCHIVED_UNSIGNED_BYTES]
    return InboundEvent.objects.create(
        body=_as_text(body),
        signature_valid=signature_valid,
        problems=problems,
        # Nothing to process for rejected bodies: mark them done so no sweep picks them up.
        processed_at=None if signature_valid and not problems else timezone.now(),
    )


def enqueue_inbound_processing() -> None:
    """Wake the processor after commit, publishing at most one Celery task per wake-up.

    A Celery publish costs more CPU than the rest of the webhook view together (measured: see
    the README), and statuses arrive at about three per message sent. So a POST only sets a
    Redis flag; whoever sets it first publishes the drain task, which clears the flag before it
    reads the pending rows, so nothing committed before the flag was set can be missed.
    """
    transaction.on_commit(wake_inbound_processor)


WAKE_KEY = "banditore:channel:inbound-wake"
# A lost wake-up (worker killed before it cleared the flag) heals after this; beat also sweeps.
WAKE_TTL_SECONDS = 60
_redis_clients: dict[str, Any] = {}


def _redis():
    # One client (and connection pool) per process; redis-py's pool is fork-safe.
    import redis

    url = settings.REDIS_URL
    if url not in _redis_clients:
        _redis_clients[url] = redis.Redis.from_url(url)
    return _redis_clients[url]


def wake_inbound_processor() -> None:
    from channel.tasks import process_pending_inbound_events_task

    if _redis().set(WAKE_KEY, 1, nx=True, ex=WAKE_TTL_SECONDS):
        process_pending_inbound_events_task.delay()


def process_pending_inbound_events(*, batch: int = 100, max_seconds: float = 20.0) -> int:
    """Process archived webhooks in arrival order until none is left; returns how many."""
    _redis().delete(WAKE_KEY)
    deadline = time.monotonic() + max_seconds
    done = 0
    # Webhooks another worker holds right now are theirs: don't spin on them.
    busy: set[int] = set()
    while time.monotonic() < deadline:
        pending = list(
            InboundEvent.objects.filter(processed_at__isnull=True, signature_valid=True)
            .exclude(id__in=busy)
            .order_by("id")
            .values_list("id", flat=True)[:batch]
        )
        if not pending:
            return done
        for event_id in pending:
            if _process(event_id) is None:
                busy.add(event_id)
            else:
                done += 1
    wake_inbound_processor()  # out of time with work left: hand over to a fresh task
    return done


def process_inbound_event(*, event_id: int) -> list[str]:
    """Parse one archived webhook and dispatch its contents; returns the problems found.

    One transaction per webhook, holding its row with SKIP LOCKED so concurrent workers share
    the backlog: a crash rolls everything back and the webhook is processed again. Safe to run
    twice: messages are unique by wamid and claimed one by one (`claim_inbound_message`),
    statuses are applied monotonically, preferences only when they change something. Never
    raises for bad input: problems are written to `InboundEvent.problems`; lines starting
    with "error:" are bugs (this webhook's effects were rolled back; clear `processed_at` to
    run it again after the fix).
    """
    return _process(event_id) or []


def _process(event_id: int) -> list[str] | None:
    """process_inbound_event's body; None when the webhook is done or another worker has it."""
    with transaction.atomic():
        event = (
            InboundEvent.objects.select_for_update(skip_locked=True)
            .filter(pk=event_id, processed_at__isnull=True, signature_valid=True)
            .first()
        )
        if event is None:
            return None
        problems: list[str] = []
        try:
            with transaction.atomic():
                problems += _dispatch(event)
        except Exception as exc:  # a bug must not wedge the queue behind this webhook
            logger.exception("webhook %s: processing failed", event_id)
            problems.append(f"error: processing failed: {exc!r}")
        event.processed_at = timezone.now()
        event.problems = "\n".join(problems)[:10_000]
        event.save(update_fields=["processed_at", "problems"])
    return problems


def _dispatch(event: InboundEvent) -> list[str]:
    from channel.inbound import parse_webhook

    try:
        body = json.loads(event.body)
    except ValueError:
        return ["body is not JSON"]
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    parsed = parse_webhook(body)
    problems = list(parsed.problems)
    problems += [f"Meta error {e.code}: {e.title} {e.details}".strip() for e in parsed.errors]

    # Savepoints around our own writes: a failed statement must not poison an enclosing
    # transaction (tests, or a caller that runs this inside atomic()).
    if parsed.messages:
        with transaction.atomic():
            new = _store_messages(event, parsed.messages, problems)
        if new:
            problems += _send(signals.inbound_messages_received, messages=new)
    if parsed.statuses:
        mine = [u for u in parsed.statuses if is_service_status(u)]
        others = [u for u in parsed.statuses if not is_service_status(u)]
        if mine:
            with transaction.atomic():
                apply_outbound_statuses(mine)
        if others:
            problems += _send(signals.statuses_received, updates=others)
    if parsed.preferences:
        problems += _send(signals.preferences_received, preferences=parsed.preferences)
    return problems


def _send(signal, **kwargs) -> list[str]:
    """send_robust: one failing receiver becomes a problem line, not a crashed worker."""
    problems: list[str] = []
    for receiver, response in signal.send_robust(sender=InboundEvent, **kwargs):
        if isinstance(response, Exception):
            logger.error("receiver %r failed", receiver, exc_info=response)
            name = getattr(receiver, "__name__", receiver)
            problems.append(f"error: receiver {name} failed: {response!r}")
        elif isinstance(response, list):
            problems += [str(p) for p in response]
    return problems


def _clip(value: Any, length: int) -> str:
    return str(value or "").replace("\x00", "")[:length]


def _store_messages(event: InboundEvent, messages: Sequence, problems: list[str]) -> list:
    """Insert one row per wamid (ON CONFLICT DO NOTHING); return the messages not yet handled.

    "Not yet handled" includes rows left unprocessed by a crashed earlier run, so a retry
    finishes the job; the receiver's claim keeps concurrent runs from handling one twice.
    """
    by_wamid: dict[str, Any] = {}
    for message in messages:
        wamid = _clip(message.wamid, 255)
        if not wamid:
            problems.append("message without id ignored")
            continue
        by_wamid.setdefault(wamid, message)
    if not by_wamid:
        return []
    now = timezone.now()
    rows = []
    for wamid, message in by_wamid.items():
        sent_at = message.timestamp if isinstance(message.timestamp, datetime) else now
        rows.append(
            InboundMessage(
                wamid=wamid,
                event=event,
                wa_id=_clip(message.wa_id, 20),
                user_id=_clip(message.user_id, 128),
                kind=_clip(message.kind, 32) or "unknown",
                sent_at=sent_at,
            )
        )
    # Sorted, so two workers inserting the same duplicates lock them in the same order.
    rows.sort(key=lambda row: row.wamid)
    InboundMessage.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    pending = set(
        InboundMessage.objects.filter(
            wamid__in=list(by_wamid), processed_at__isnull=True
        ).values_list("wamid", flat=True)
    )
    return [m for w, m in by_wamid.items() if w in pending]


def claim_inbound_message(*, wamid: str) -> bool:
    """Mark one message handled; True only for the first caller. Call inside the transaction
    that handles it: a rollback un-claims it, and a concurrent claimer waits on the row lock."""
    return bool(
        InboundMessage.objects.filter(wamid=wamid, processed_at__isnull=True).update(
            processed_at=timezone.now()
        )
    )


# --- Erasure ------------------------------------------------------------------------------

REDACTED = "[erased]"


def redact_person(*, wa_id: str = "", user_id: str = "") -> int:
    """Remove a person's number / user id from the raw archives (right to erasure).

    The raw webhook bodies are kept for audit, so they would otherwise keep the number of a
    person who asked to be forgotten. Message texts stay, without the identity. Returns the
    rows changed. Erasure is rare, so the unindexed `contains` scan is acceptable.
    """
    changed = 0
    for identity in {wa_id, user_id} - {""}:
        changed += InboundEvent.objects.filter(body__contains=identity).update(
            body=Replace("body", Value(identity), Value(REDACTED))
        )
        changed += InboundMessage.objects.filter(wa_id=identity).update(wa_id="")
        changed += InboundMessage.objects.filter(user_id=identity).update(user_id="")
        rows = OutboundMessage.objects.filter(Q(to_wa_id=identity) | Q(to_user_id=identity))
        for outbound in rows.only("id", "payload", "to_wa_id", "to_user_id"):
            payload = json.loads(json.dumps(outbound.payload).replace(identity, REDACTED))
            OutboundMessage.objects.filter(pk=outbound.pk).update(
                payload=payload,
                # The row must keep some recipient (check constraint): the placeholder.
                to_wa_id=REDACTED if outbound.to_wa_id == identity else outbound.to_wa_id,
                to_user_id=REDACTED if outbound.to_user_id == identity else outbound.to_user_id,
            )
            changed += 1
    return changed
