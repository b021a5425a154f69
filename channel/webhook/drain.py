"""Webhook processing: drain the archive in batches and hand the results upward.

The intake only archives each POST (`channel.webhook.archive`), so Meta gets its answer fast;
this runs in Celery (`channel.tasks`). It claims archived webhooks in arrival order, walks
every entry/change, stores citizens' messages once per wamid and hands messages, statuses and
preferences up through `channel.signals`. No content of a webhook may stop the drain: whatever
cannot be processed is written on that webhook's archive row, and the next webhooks flow.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone

from channel import signals
from channel.erasure import erased_among
from channel.graph.account import pause_for_account_errors
from channel.graph.templates import template_events_apply
from channel.identity import USER_ID_MAX_LENGTH
from channel.models import InboundEvent, InboundMessage
from channel.service_messages import apply_outbound_statuses, is_service_status
from channel.webhook.arrivals import (
    disguise_statuses,
    drop_late_messages,
    redact_arrivals,
    webhook_identities,
)
from channel.webhook.parsing import ParsedWebhook, StatusUpdate, parse_webhook, storable_text
from channel.webhook.wake_flag import clear_wake_flag, hold_wake_flag

logger = logging.getLogger(__name__)

# How often a lingering drain looks at the archive again (a claim query costs ~0.3 ms).
LINGER_POLL_SECONDS = 0.05
# What is kept of one webhook's problem lines.
MAX_PROBLEMS_CHARS = 10_000
# Written instead when even the cleaned problem lines cannot be stored.
UNSTORABLE_PROBLEMS = "error: the problems found could not be stored (see the worker log)"


@dataclass(frozen=True)
class DrainRun:
    """What one drain did. `out_of_time`: it stopped at its deadline and webhooks may be left,
    so its caller hands over to a fresh drain."""

    processed: int
    out_of_time: bool = False


def process_pending_inbound_events(
    *,
    batch: int = 200,
    max_seconds: float = 20.0,
    linger: float | None = None,
    gather: float | None = None,
) -> DrainRun:
    """Process archived webhooks in arrival order until none is left.

    Works in batches of up to `batch` webhooks, one transaction each (`_process_batch`), so a
    burst of one-status webhooks costs a few statements per batch, not per webhook. The
    wake-up flag (`channel.webhook.wake_flag`) stays set while this runs, so the webhooks
    arriving meanwhile wake nobody else (one drain takes the whole stream, in big batches).
    When the archive is empty it looks again for `linger` seconds
    (BANDITORE_WEBHOOK_DRAIN_LINGER_SECONDS) before it clears the flag: at a steady trickle
    (80 msg/s is ~160 status webhooks/s) that spares a Celery publish per POST and a task per
    webhook. After the clear the archive is read once more: a webhook committed just before
    the clear found the flag set and woke nobody.

    Under a live stream a batch that was not full is followed by a pause: the next claim starts
    `gather` seconds (BANDITORE_WEBHOOK_DRAIN_GATHER_SECONDS) after this one did, so what
    arrives meanwhile is claimed together. Claiming as soon as a batch is done took whatever
    had arrived during it, a median of 4 webhooks, and each batch's fixed cost (claim, erasure
    look-up, status statements, commit) then dominated the processor's CPU. A full batch
    means a backlog: the next is claimed at once. A citizen's message waits at most `gather`
    longer for its reply.
    """
    if linger is None:
        linger = settings.BANDITORE_WEBHOOK_DRAIN_LINGER_SECONDS
    if gather is None:
        gather = settings.BANDITORE_WEBHOOK_DRAIN_GATHER_SECONDS
    deadline = time.monotonic() + max_seconds
    done = 0
    idle_since = None
    while time.monotonic() < deadline:
        # SKIP LOCKED: webhooks another worker holds right now are theirs, so an empty batch
        # means there is nothing left for us (no spinning on their rows).
        claimed_at = time.monotonic()
        claimed = len(_process_batch(limit=batch))
        if 0 < claimed < batch:
            time.sleep(max(0.0, gather - (time.monotonic() - claimed_at)))
        if not claimed:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since < linger:
                time.sleep(LINGER_POLL_SECONDS)
                continue
            clear_wake_flag()
            claimed = len(_process_batch(limit=batch))
            if not claimed:
                return DrainRun(done)
            hold_wake_flag()  # still busy: the webhooks arriving now need not wake anyone
        idle_since = None
        done += claimed
    clear_wake_flag()
    return DrainRun(done, out_of_time=True)


class _Redo(Exception):
    """The batch-wide status dispatch reported a problem: redo it webhook by webhook."""


def _process_batch(*, limit: int) -> dict[int, list[str]]:
    """Claim up to `limit` unprocessed webhooks and process them in one transaction.

    Claimed in arrival order with FOR UPDATE SKIP LOCKED, so concurrent workers share a
    backlog. Messages and preferences are handled webhook by webhook, each in a savepoint (one
    bad webhook is rolled back alone and reported); the statuses of the whole batch are
    applied together, set-based. Webhooks about people who asked for erasure are redacted
    once processed (their messages sent before the erasure are not processed at all). Every
    webhook of the batch is marked processed, with the
    problems found, whatever its content (`_mark_processed`). Only a crash of the worker rolls
    back the whole batch, which the next drain processes again: every step is idempotent.
    Returns the problems found, by webhook id; lines starting with "error:" are bugs or
    hostile content (that part's effects were rolled back).
    """
    with transaction.atomic():
        pending = InboundEvent.objects.select_for_update(skip_locked=True).filter(
            processed_at__isnull=True, signature_valid=True
        )
        rows = list(pending.order_by("id").values_list("id", "body")[:limit])
        problems: dict[int, list[str]] = {row_id: [] for row_id, _ in rows}
        parsed = {row_id: _parse(body, problems[row_id]) for row_id, body in rows}
        # People who asked for erasure: one query for the batch (channel.webhook.arrivals).
        identities = {row_id: webhook_identities(webhook) for row_id, webhook in parsed.items()}
        everyone = set().union(*identities.values())
        erased = erased_among(everyone)
        if erased:
            for row_id, webhook in parsed.items():
                if dropped := drop_late_messages(webhook, erased):
                    problems[row_id].append(f"{dropped} message(s) sent before an erasure ignored")
                disguise_statuses(webhook, erased)
        # Statuses first: they lock deliveries, then subscribers (unreachable, opted out), in
        # the order the sender's write-back takes them, so the two never deadlock.
        statuses = [(row_id, u) for row_id, p in parsed.items() for u in p.statuses]
        if statuses:
            _dispatch_statuses(statuses, problems)
        # Meta's template webhooks: a paused or re-categorised template is known at once.
        events = [e for webhook in parsed.values() for e in webhook.template_events]
        if events:
            template_events_apply(events)
        # Meta's system-level errors (`value.errors[]`): an account-level one pauses sending.
        pause_for_account_errors(
            [e for webhook in parsed.values() for e in webhook.errors], source="webhook"
        )
        for row_id, webhook in parsed.items():
            if not (webhook.messages or webhook.preferences):
                continue
            try:
                # A savepoint per webhook that writes: one bad webhook is rolled back alone.
                with transaction.atomic():
                    _dispatch(row_id, webhook, problems[row_id])
            except OperationalError:
                raise  # transient (deadlock, lost connection): the whole batch is redone
            except Exception as exc:  # a bug must not wedge the queue behind this webhook
                logger.exception("webhook %s: processing failed", row_id)
                problems[row_id].append(f"error: processing failed: {exc!r}")
        if any(webhook.messages for webhook in parsed.values()):
            erased = erased_among(everyone)  # a message may have erased someone, or brought back
        if erased:
            redact_arrivals(rows, identities, parsed, erased, problems)
        _mark_processed(problems)
    return problems


def _parse(body: str, problems: list[str]) -> ParsedWebhook:
    try:
        return _parse_unguarded(body, problems)
    except Exception as exc:  # a bug must not wedge the queue behind this webhook
        logger.exception("webhook: parsing failed")
        problems.append(f"error: parsing failed: {exc!r}")
        return ParsedWebhook()


def _parse_unguarded(body: str, problems: list[str]) -> ParsedWebhook:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        problems.append("body is not JSON")
        return ParsedWebhook()
    if not isinstance(data, dict):
        problems.append("body is not a JSON object")
        return ParsedWebhook()
    parsed = parse_webhook(data)
    problems += parsed.problems
    problems += [f"Meta error {e.code}: {e.title} {e.details}".strip() for e in parsed.errors]
    return parsed


def _dispatch(event_id: int, parsed: ParsedWebhook, problems: list[str]) -> None:
    """One webhook's messages (stored once per wamid) and preferences, to whoever listens."""
    if parsed.messages:
        new = _store_messages(event_id, parsed.messages, problems)
        if new:
            problems += _send(signals.inbound_messages_received, messages=new)
    if parsed.preferences:
        problems += _send(signals.preferences_received, preferences=parsed.preferences)


def _dispatch_statuses(
    statuses: list[tuple[int, StatusUpdate]], problems: dict[int, list[str]]
) -> None:
    """Apply the batch's statuses in one go (they are idempotent, and Meta does not guarantee
    their order anyway). If that reports anything, roll it back and apply them webhook by
    webhook, so each problem is written on the webhook that caused it."""
    by_event: dict[int, list[StatusUpdate]] = {}
    for event_id, update in statuses:
        by_event.setdefault(event_id, []).append(update)
    if len(by_event) > 1:
        try:
            with transaction.atomic():
                if not _apply_statuses([update for _, update in statuses]):
                    return
                raise _Redo  # rolls the savepoint back
        except _Redo:
            pass
        except OperationalError:
            raise
        except Exception:
            logger.warning("a batch of statuses failed; applying them webhook by webhook")
    for event_id, updates in by_event.items():
        try:
            with transaction.atomic():
                problems[event_id] += _apply_statuses(updates)
        except OperationalError:
            raise
        except Exception as exc:
            logger.exception("webhook %s: statuses failed", event_id)
            problems[event_id].append(f"error: processing failed: {exc!r}")


def _apply_statuses(updates: list[StatusUpdate]) -> list[str]:
    """Service replies' statuses here; posts' statuses to whoever listens (subscribers).
    An account-level error in any `failed` status pauses all sending, whichever message it
    is about (a reply, a post's, one we no longer know)."""
    failures = [u.errors[0] for u in updates if u.status == "failed" and u.errors]
    if failures:
        pause_for_account_errors(failures, source="status webhook")
    mine = [u for u in updates if is_service_status(u)]
    others = [u for u in updates if not is_service_status(u)]
    if mine:
        apply_outbound_statuses(mine)
    return _send(signals.statuses_received, updates=others) if others else []


def _mark_processed(problems: dict[int, list[str]]) -> None:
    """Mark the batch processed: the clean webhooks in one UPDATE, the others one by one.

    Problem lines may quote the webhook (Meta's error titles, receivers' messages), so they are
    cleaned and each row is written in a savepoint: a line the database refuses must not roll
    back the batch, or the same batch would fail on every pass and stop the drain.
    """
    now = timezone.now()
    clean = [event_id for event_id, found in problems.items() if not found]
    if clean:
        InboundEvent.objects.filter(pk__in=clean).update(processed_at=now, problems="")
    for event_id, found in problems.items():
        if not found:
            continue
        text = storable_text("\n".join(found))[:MAX_PROBLEMS_CHARS]
        try:
            with transaction.atomic():
                InboundEvent.objects.filter(pk=event_id).update(processed_at=now, problems=text)
        except Exception:
            logger.exception("webhook %s: its problems could not be stored", event_id)
            InboundEvent.objects.filter(pk=event_id).update(
                processed_at=now, problems=UNSTORABLE_PROBLEMS
            )


def _send(signal, **kwargs) -> list[str]:
    """send_robust: one failing receiver becomes a problem line, not a crashed worker; a
    transient database failure is raised, so the batch is redone rather than marked done."""
    problems: list[str] = []
    for receiver, response in signal.send_robust(sender=InboundEvent, **kwargs):
        if isinstance(response, OperationalError):
            raise response
        if isinstance(response, Exception):
            logger.error("receiver %r failed", receiver, exc_info=response)
            name = getattr(receiver, "__name__", receiver)
            problems.append(f"error: receiver {name} failed: {response!r}")
        elif isinstance(response, list):
            problems += [str(p) for p in response]
    return problems


def _store_messages(event_id: int, messages: Sequence, problems: list[str]) -> list:
    """Insert one row per wamid (ON CONFLICT DO NOTHING); return the messages not yet handled.

    "Not yet handled" includes rows left unprocessed by a crashed earlier run, so a retry
    finishes the job; the receiver's claim keeps concurrent runs from handling one twice.
    The parser's strings are storable already; only their lengths are cut to the columns'.
    """
    by_wamid: dict[str, Any] = {}
    for message in messages:
        wamid = message.wamid[:255]
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
                event_id=event_id,
                wa_id=message.wa_id[:20],
                user_id=message.user_id[:USER_ID_MAX_LENGTH],
                kind=message.kind[:32] or "unknown",
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
