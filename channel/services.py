"""Webhook intake and service-message sending: the channel's write-side logic.

Intake is split in two so the webhook answers Meta fast (doc §1.3: median under 250 ms):
`record_inbound_event` archives the raw body inside the request; `process_inbound_event` runs
in Celery after commit, walks every entry/change, deduplicates messages by wamid and hands the
results upward through `channel.signals`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from channel import signals
from channel.account import is_paused, pause_sending
from channel.models import InboundEvent, InboundMessage, OutboundMessage, OutboundStatus

logger = logging.getLogger(__name__)

# Bodies with a bad signature are kept for audit only; cap them so junk can't fill the disk.
MAX_ARCHIVED_UNSIGNED_BYTES = 16 * 1024
# Service messages carry this prefix in biz_opaque_callback_data, so their statuses are told
# apart from posts' deliveries without a database lookup (Meta echoes it: doc §1.5).
CALLBACK_PREFIX = "svc:"


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
    while time.monotonic() < deadline:
        pending = list(
            InboundEvent.objects.filter(processed_at__isnull=True, signature_valid=True)
            .order_by("id")
            .values_list("id", flat=True)[:batch]
        )
        if not pending:
            return done
        for event_id in pending:
            process_inbound_event(event_id=event_id)
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
    with transaction.atomic():
        event = (
            InboundEvent.objects.select_for_update(skip_locked=True)
            .filter(pk=event_id, processed_at__isnull=True, signature_valid=True)
            .first()
        )
        if event is None:
            return []
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
        mine = [u for u in parsed.statuses if _is_service_status(u)]
        others = [u for u in parsed.statuses if not _is_service_status(u)]
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


# --- Service messages (conversation replies, test sends) ----------------------------------


def queue_reply(
    *,
    to_wa_id: str = "",
    to_user_id: str = "",
    payload: dict,
    lane: str = OutboundMessage.Lane.REPLY,
) -> OutboundMessage:
    """Record a service message and send it after commit, in the limiter's priority lane."""
    outbound = OutboundMessage.objects.create(
        lane=lane, to_wa_id=to_wa_id or "", to_user_id=to_user_id or "", payload=payload
    )
    enqueue_outbound_message(outbound.pk)
    return outbound


def enqueue_outbound_message(outbound_id: int, *, countdown: float | None = None) -> None:
    from channel.tasks import send_outbound_message_task

    transaction.on_commit(
        lambda: send_outbound_message_task.apply_async((outbound_id,), countdown=countdown)
    )


class SendOutcome:
    SENT = "sent"
    SKIPPED = "skipped"  # not queued any more: another run got it, or it was settled
    THROTTLED = "throttled"  # no token yet: ask again after `retry_in`
    RETRY = "retry"  # transient error: try again after `retry_in`
    PAUSED = "paused"  # the account is paused: wait for an administrator
    FAILED = "failed"
    UNCERTAIN = "uncertain"  # no answer after the request left: Meta may have it (doc §4.3)


def _reply_window_closed(outbound: OutboundMessage) -> bool:
    # Free-form replies are only allowed within 24 h of the citizen's message (doc §2.5).
    return outbound.created_at < timezone.now() - timedelta(hours=24)


def send_outbound_message(*, outbound_id: int) -> tuple[str, float]:
    """Send one queued service message; returns (outcome, seconds before trying again).

    Safe to run twice: the row moves queued → sending with a compare-and-set, so only one run
    talks to Meta. Throttling and account pauses put it back to queued without using up an
    attempt; the caller (the task) re-queues it after the returned delay.
    """
    from channel.graph import get_client
    from channel.ratelimit import Lane, get_send_limiter

    outbound = OutboundMessage.objects.filter(pk=outbound_id).first()
    if outbound is None or outbound.status != OutboundStatus.QUEUED:
        return SendOutcome.SKIPPED, 0.0
    if _reply_window_closed(outbound):
        _fail(outbound_id, None, "the 24-hour window closed before this could be sent")
        return SendOutcome.FAILED, 0.0
    if is_paused():
        return SendOutcome.PAUSED, float(settings.BANDITORE_REPLY_PAUSED_RETRY_SECONDS)
    wait = _reply_token(get_send_limiter(), Lane.REPLY)
    if wait > 0:
        return SendOutcome.THROTTLED, wait
    claimed = OutboundMessage.objects.filter(pk=outbound_id, status=OutboundStatus.QUEUED).update(
        status=OutboundStatus.SENDING, attempts=F("attempts") + 1, updated_at=timezone.now()
    )
    if not claimed:
        return SendOutcome.SKIPPED, 0.0
    payload = dict(outbound.payload)
    payload.setdefault("biz_opaque_callback_data", f"{CALLBACK_PREFIX}{outbound_id}")
    result = get_client().send(payload)
    return _settle(outbound_id, outbound.attempts + 1, result)


# A token normally frees within 1/WHATSAPP_MPS s: waiting that long here is cheaper (and
# quicker for the citizen) than a round trip through the broker.
REPLY_TOKEN_WAIT_SECONDS = 0.5


def _reply_token(limiter, lane) -> float:
    """0.0 once a token is ours; else the seconds to wait, when longer than we wait here."""
    deadline = time.monotonic() + REPLY_TOKEN_WAIT_SECONDS
    while (wait := limiter.acquire(lane)) > 0:
        if time.monotonic() + wait > deadline:
            return wait
        time.sleep(wait)
    return 0.0


def _settle(outbound_id: int, attempts: int, result) -> tuple[str, float]:
    from channel.errors import Handling

    rows = OutboundMessage.objects.filter(pk=outbound_id, status=OutboundStatus.SENDING)
    if result.ok:
        rows.update(
            status=OutboundStatus.SENT,
            wa_message_id=result.wamid,
            sent_at=timezone.now(),
            updated_at=timezone.now(),
        )
        return SendOutcome.SENT, 0.0
    error = {"last_error_code": result.error_code, "last_error_text": result.error_text[:2000]}
    if result.maybe_sent:
        # Resending could duplicate the reply; a status webhook (echoing our callback data)
        # settles it if Meta did take it. Left in `sending`, visible in the admin log.
        rows.update(**error, updated_at=timezone.now())
        return SendOutcome.UNCERTAIN, 0.0
    handling = result.handling
    if handling == Handling.ACCOUNT_PAUSE:
        pause_sending(code=result.error_code, reason=result.error_text)
        _requeue(rows, error, give_back_attempt=True)
        return SendOutcome.PAUSED, float(settings.BANDITORE_REPLY_PAUSED_RETRY_SECONDS)
    if handling in (Handling.THROTTLED, Handling.PAIR_RATE):
        _requeue(rows, error, give_back_attempt=True)
        return SendOutcome.THROTTLED, 1.0 if handling == Handling.THROTTLED else 6.0
    if handling == Handling.TRANSIENT and attempts < settings.BANDITORE_REPLY_MAX_ATTEMPTS:
        _requeue(rows, error, give_back_attempt=False)
        return SendOutcome.RETRY, float(2**attempts)
    # Everything else cannot succeed as a free-form reply: unreachable, opted out, window
    # closed (a reply is never a template), invalid payload, or out of transient retries.
    _fail(outbound_id, result.error_code, result.error_text)
    return SendOutcome.FAILED, 0.0


def _requeue(rows, error: dict, *, give_back_attempt: bool) -> None:
    extra = {"attempts": F("attempts") - 1} if give_back_attempt else {}
    rows.update(status=OutboundStatus.QUEUED, updated_at=timezone.now(), **error, **extra)


def _fail(outbound_id: int, code: int | None, text: str) -> None:
    OutboundMessage.objects.filter(
        pk=outbound_id, status__in=[OutboundStatus.QUEUED, OutboundStatus.SENDING]
    ).update(
        status=OutboundStatus.FAILED,
        last_error_code=code,
        last_error_text=text[:2000],
        updated_at=timezone.now(),
    )


# --- Statuses of service messages ---------------------------------------------------------

_RANK = {OutboundStatus.SENT: 1, OutboundStatus.DELIVERED: 2, OutboundStatus.READ: 3}


def _is_service_status(update) -> bool:
    return str(update.biz_opaque_callback_data or "").startswith(CALLBACK_PREFIX)


def _service_id(update) -> int | None:
    tail = str(update.biz_opaque_callback_data or "")[len(CALLBACK_PREFIX) :]
    return int(tail) if tail.isdigit() and len(tail) < 19 else None


def apply_outbound_statuses(updates: Iterable) -> int:
    """Apply Meta's statuses to service messages; never downgrades (doc §1.5: order is not
    guaranteed, `read` may come without `delivered`). Returns the rows changed."""
    changed = 0
    for update in updates:
        outbound_id = _service_id(update)
        if outbound_id is None:
            continue
        rows = OutboundMessage.objects.filter(pk=outbound_id)
        status = str(update.status)
        now = timezone.now()
        if status == "failed":
            first = update.errors[0] if update.errors else None
            code = first.code if first and -(2**31) <= first.code < 2**31 else None
            changed += rows.exclude(
                status__in=[OutboundStatus.DELIVERED, OutboundStatus.READ]
            ).update(
                status=OutboundStatus.FAILED,
                last_error_code=code,
                last_error_text=_clip(first and f"{first.title} {first.details}".strip(), 2000),
                updated_at=now,
            )
        elif status in _RANK:
            lower = [s for s, rank in _RANK.items() if rank < _RANK[status]]
            changed += rows.filter(
                status__in=[OutboundStatus.QUEUED, OutboundStatus.SENDING, *lower]
            ).update(status=status, updated_at=now)
        # A status can overtake our write-back of the wamid (crash, or a very fast Meta).
        wamid = _clip(update.wamid, 255)
        if wamid and not OutboundMessage.objects.filter(wa_message_id=wamid).exists():
            rows.filter(wa_message_id__isnull=True).update(wa_message_id=wamid)
    return changed
