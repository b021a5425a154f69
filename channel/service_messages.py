"""Service messages (conversation replies, test sends): queue, send, and their statuses.

Posts go through `subscribers.delivery.sending`; these are the one-off messages of the chat,
sent in the rate limiter's priority lane, free-form (the person has just written, so their
24-hour window is open: channel.graph.window).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db.models import F
from django.dispatch import Signal
from django.utils import timezone

from channel.erasure import redact_if_erased
from channel.graph import callbacks, payloads
from channel.graph.account import is_paused, pause_sending
from channel.graph.client import SendResult, get_client
from channel.graph.errors import ATTEMPT_FREE, Handling, handling_for, retry_delay
from channel.graph.ratelimit import Lane, SendRateLimiter, get_send_limiter
from channel.graph.window import in_window
from channel.models import OutboundMessage, OutboundStatus


def _clip(value: Any, length: int) -> str:
    return str(value or "").replace("\x00", "")[:length]


# outbound_id, countdown (seconds; None: at once): a queued service message waits for its
# sender. channel.tasks sits above this module (its task calls send_outbound_message), so it is
# never imported here: ChannelConfig.ready() connects its enqueue_outbound_message instead.
outbound_queued = Signal()


def queue_reply(
    *,
    to_wa_id: str = "",
    to_user_id: str = "",
    payload: dict,
    lane: str = OutboundMessage.Lane.REPLY,
) -> OutboundMessage:
    """Record a service message and send it after commit, in the limiter's priority lane."""
    [outbound] = queue_replies(
        to_wa_id=to_wa_id, to_user_id=to_user_id, payloads=[payload], lane=lane
    )
    return outbound


def queue_replies(
    *,
    to_wa_id: str = "",
    to_user_id: str = "",
    payloads: list[dict],
    lane: str = OutboundMessage.Lane.REPLY,
) -> list[OutboundMessage]:
    """Record the messages of one reply and send them after commit, in this order.

    One run sends them one after another (send_outbound_message, then next_in_sequence): each
    leaves only once Meta has answered for the one before it. Queued one by one, two workers
    could pick them up at once and a list could arrive before the hint that introduces it.
    """
    queued: list[OutboundMessage] = []
    for payload in payloads:
        queued.append(
            OutboundMessage.objects.create(
                lane=lane,
                to_wa_id=to_wa_id or "",
                to_user_id=to_user_id or "",
                payload=payload,
                after=queued[-1] if queued else None,
            )
        )
    if queued:
        send_outbound_later(outbound_id=queued[0].pk)
    return queued


def send_outbound_later(*, outbound_id: int, countdown: float | None = None) -> None:
    """Have a queued service message sent `countdown` seconds after the caller commits."""
    outbound_queued.send(sender=OutboundMessage, outbound_id=outbound_id, countdown=countdown)


class SendOutcome:
    SENT = "sent"
    SKIPPED = "skipped"  # not queued any more: another run got it, or it was settled
    THROTTLED = "throttled"  # no token yet: ask again after `retry_in`
    RETRY = "retry"  # transient error: try again after `retry_in`
    PAUSED = "paused"  # the account is paused: wait for an administrator
    FAILED = "failed"
    # No answer after the request left: Meta may have it, and a second copy would reach the
    # person twice. Its status webhook settles it.
    UNCERTAIN = "uncertain"


def send_outbound_message(*, outbound_id: int) -> tuple[str, float]:
    """Send one queued service message; returns (outcome, seconds before trying again).

    Safe to run twice: the row moves queued → sending with a compare-and-set, so only one run
    talks to Meta. Throttling and account pauses put it back to queued without using up an
    attempt; the caller (the task) re-queues it after the returned delay.
    """
    outbound = OutboundMessage.objects.filter(pk=outbound_id).first()
    if outbound is None or outbound.status != OutboundStatus.QUEUED:
        return SendOutcome.SKIPPED, 0.0
    # Free-form only while the window the person's message opened is still open.
    if not in_window(outbound.created_at):
        _fail(outbound_id, None, "the 24-hour window closed before this could be sent")
        redact_if_erased(outbound)
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
    reference = callbacks.service_reference(outbound_id)
    result = get_client().send(payloads.add_callback(dict(outbound.payload), reference))
    outcome = _settle(outbound_id, outbound.attempts + 1, result)
    if outcome[0] in (SendOutcome.SENT, SendOutcome.FAILED):
        # Settled: the message confirming an erasure needed the number until now.
        redact_if_erased(outbound)
    return outcome


def next_in_sequence(*, outbound_id: int, outcome: str) -> int | None:
    """The queued message that follows `outbound_id` in its reply, once that one is settled.

    Sent, failed or left uncertain (Meta may have it), the message is done with: the next one
    may go. Skipped, it is another run's (which goes on with the sequence itself) unless it was
    settled already, say by a status webhook.
    """
    if outcome == SendOutcome.SKIPPED:
        pending = [OutboundStatus.QUEUED, OutboundStatus.SENDING]
        if OutboundMessage.objects.filter(pk=outbound_id, status__in=pending).exists():
            return None
    elif outcome not in (SendOutcome.SENT, SendOutcome.FAILED, SendOutcome.UNCERTAIN):
        return None
    following = OutboundMessage.objects.filter(after_id=outbound_id, status=OutboundStatus.QUEUED)
    return following.values_list("pk", flat=True).first()


# A token normally frees within 1/WHATSAPP_MPS s: waiting that long here is cheaper (and
# quicker for the citizen) than a round trip through the broker.
REPLY_TOKEN_WAIT_SECONDS = 0.5


def _reply_token(limiter: SendRateLimiter, lane: Lane) -> float:
    """0.0 once a token is ours; else the seconds to wait, when longer than we wait here."""
    deadline = time.monotonic() + REPLY_TOKEN_WAIT_SECONDS
    while (wait := limiter.acquire(lane)) > 0:
        if time.monotonic() + wait > deadline:
            return wait
        time.sleep(wait)
    return 0.0


def _settle(outbound_id: int, attempts: int, result: SendResult) -> tuple[str, float]:
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
    if handling in ATTEMPT_FREE:
        _requeue(rows, error, give_back_attempt=True)
        return SendOutcome.THROTTLED, retry_delay(handling, attempts)
    if handling == Handling.TRANSIENT and attempts < settings.BANDITORE_REPLY_MAX_ATTEMPTS:
        _requeue(rows, error, give_back_attempt=False)
        return SendOutcome.RETRY, retry_delay(handling, attempts)
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


def is_service_status(update) -> bool:
    return callbacks.is_service(update.biz_opaque_callback_data)


def apply_outbound_statuses(updates: Iterable) -> int:
    """Apply Meta's statuses to service messages. Meta guarantees neither order nor
    uniqueness (`read` may come without `delivered`), so a status never moves a message down
    callbacks.RANK. Returns the rows changed."""
    changed = 0
    for update in updates:
        outbound_id = callbacks.service_id(update.biz_opaque_callback_data)
        if outbound_id is None:
            continue
        rows = OutboundMessage.objects.filter(pk=outbound_id)
        status = str(update.status)
        now = timezone.now()
        if status == callbacks.MessageStatus.FAILED:
            first = update.errors[0] if update.errors else None
            code = first.code if first and -(2**31) <= first.code < 2**31 else None
            if handling_for(code) == Handling.ACCOUNT_PAUSE:
                # As when the send's answer says so: the drain paused sending
                # (channel.graph.account); the reply waits in the queue at no cost.
                requeued = rows.filter(
                    status__in=[OutboundStatus.SENDING, OutboundStatus.SENT]
                ).update(
                    status=OutboundStatus.QUEUED,
                    attempts=F("attempts") - 1,
                    last_error_code=code,
                    last_error_text=_clip(f"{first.title} {first.details}".strip(), 2000),
                    wa_message_id=None,
                    updated_at=now,
                )
                if requeued:
                    changed += requeued
                    send_outbound_later(
                        outbound_id=outbound_id,
                        countdown=float(settings.BANDITORE_REPLY_PAUSED_RETRY_SECONDS),
                    )
                continue
            changed += rows.exclude(
                status__in=[OutboundStatus.DELIVERED, OutboundStatus.READ]
            ).update(
                status=OutboundStatus.FAILED,
                last_error_code=code,
                last_error_text=_clip(first and f"{first.title} {first.details}".strip(), 2000),
                updated_at=now,
            )
        elif status in callbacks.RANK:
            lower = [s for s, rank in callbacks.RANK.items() if rank < callbacks.RANK[status]]
            changed += rows.filter(
                status__in=[OutboundStatus.QUEUED, OutboundStatus.SENDING, *lower]
            ).update(status=status, updated_at=now)
        # A status can overtake our write-back of the wamid (crash, or a very fast Meta).
        wamid = _clip(update.wamid, 255)
        if wamid and not OutboundMessage.objects.filter(wa_message_id=wamid).exists():
            rows.filter(wa_message_id__isnull=True).update(wa_message_id=wamid)
    return changed
