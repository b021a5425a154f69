"""Webhook intake: archive, then process in Celery (service messages: `channel.service_messages`).

Intake is split in two so the webhook answers Meta fast (doc §1.3: median under 250 ms):
`record_inbound_event` archives the raw body inside the request (`channel.webhook.intake`);
`process_pending_inbound_events` runs in Celery, drains the archive in batches, walks every
entry/change, deduplicates messages by wamid and hands the results upward through
`channel.signals`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Q, Value
from django.db.models.functions import Replace
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from channel import signals
from channel.models import InboundEvent, InboundMessage, OutboundMessage
from channel.redis_client import redis_client

# The reply side is part of this module's public surface (contract in common.md).
from channel.service_messages import (  # noqa: F401
    SendOutcome,
    apply_outbound_statuses,
    is_service_status,
    queue_reply,
    send_outbound_message,
)
from channel.webhook.parsing import ParsedWebhook, StatusUpdate, parse_webhook

logger = logging.getLogger(__name__)

# Bodies with a bad signature are kept for audit only; cap them so junk can't fill the disk.
MAX_ARCHIVED_UNSIGNED_BYTES = 16 * 1024


# --- Intake -------------------------------------------------------------------------------


def _as_text(body: bytes) -> str:
    # PostgreSQL text cannot hold NUL; undecodable bytes are kept visibly rather than dropped.
    return body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


_ARCHIVE_SQL = (
    f"INSERT INTO {InboundEvent._meta.db_table}"
    " (received_at, body, signature_valid, problems, processed_at)"
)
# PostgreSQL: constant statements with one parameter each; clock_timestamp(), not now(), so
# rows archived inside one transaction (tests) still get distinct, ordered times.
_ARCHIVE_PG = _ARCHIVE_SQL + " VALUES (clock_timestamp(), %s, true, '', NULL)"
_ARCHIVE_REJECTED_PG = _ARCHIVE_SQL + " VALUES (clock_timestamp(), %s, %s, %s, clock_timestamp())"
_ARCHIVE_OTHER = _ARCHIVE_SQL + " VALUES (%s, %s, %s, %s, %s)"


def record_inbound_event(*, body: bytes, signature_valid: bool, problems: str = "") -> None:
    """Archive a webhook POST exactly as received (Meta cannot resend past webhooks, doc §1.2).

    Rows that are rejected (bad signature, malformed JSON) are archived already processed, so
    no drain picks them up. One INSERT on Django's own connection (its transaction, its error
    bookkeeping), without the ORM: this runs once per status webhook.
    """
    if not signature_valid:
        body = body[:MAX_ARCHIVED_UNSIGNED_BYTES]
    text = _as_text(body)
    rejected = not signature_valid or bool(problems)
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor == "postgresql":
        import psycopg

        db.ensure_connection()
        sql, params = (
            (_ARCHIVE_REJECTED_PG, [text, signature_valid, problems])
            if rejected
            else (_ARCHIVE_PG, [text])
        )
        # A plain psycopg cursor binds server-side: ~35 µs against ~60 µs for Django's
        # client-side cursor and ~150 µs for the ORM (bench/webhook_intake.py).
        with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
            cursor.execute(sql, params)
        return
    now = db.ops.adapt_datetimefield_value(timezone.now())
    with db.cursor() as cursor:
        cursor.execute(
            _ARCHIVE_OTHER, [now, text, signature_valid, problems, now if rejected else None]
        )


def enqueue_inbound_processing() -> None:
    """Wake the processor after commit, publishing at most one Celery task per wake-up.

    A Celery publish costs more CPU than the rest of the intake together (measured: see the
    README), and statuses arrive at about three per message sent. So a POST only sets a Redis
    flag (SET NX); whoever sets it publishes the drain task. The drain keeps the flag while it
    works and clears it only when it finds nothing left, then reads once more, so nothing
    committed while the flag was set can be missed (`process_pending_inbound_events`).
    """
    transaction.on_commit(wake_inbound_processor)


WAKE_KEY = "banditore:channel:inbound-wake"
# A lost wake-up (worker killed before it cleared the flag) heals after this; beat also sweeps.
WAKE_TTL_SECONDS = 60
# How often a lingering drain looks at the archive again (a claim query costs ~0.3 ms).
LINGER_POLL_SECONDS = 0.05


class _FlagConnection(threading.local):
    """Each thread's own Redis connection for the wake-up flag, with the command packed once.

    `SET NX` runs once per webhook POST. Through `Redis.set` it costs ~40 µs of CPU (pool
    checkout with a readiness poll, command packing, observability hooks), a third of the
    whole intake; on a connection of its own it costs ~13 µs (bench/webhook_intake.py).
    """

    connection: Any = None
    packed: Any = None
    owner: tuple[int, str] = (0, "")


_flag = _FlagConnection()


def _set_wake_flag() -> bool:
    """SET the flag NX with its TTL; True when this call set it (and must publish the drain)."""
    owner = (os.getpid(), settings.REDIS_URL)
    if _flag.owner != owner:  # first use in this thread, a forked child, or another Redis
        pool = redis_client().connection_pool
        _flag.connection = pool.connection_class(**pool.connection_kwargs)
        _flag.packed = _flag.connection.pack_command(
            "SET", WAKE_KEY, 1, "NX", "EX", WAKE_TTL_SECONDS
        )
        _flag.owner = owner
    try:
        return _send_flag_command()
    except (RedisConnectionError, RedisTimeoutError):
        _flag.connection.disconnect()  # a stale socket (Redis restarted, say): once more
        return _send_flag_command()


def _send_flag_command() -> bool:
    _flag.connection.send_packed_command(_flag.packed, check_health=False)
    return _flag.connection.read_response() is not None  # "OK", or None when already set


def wake_inbound_processor() -> None:
    """Publish the drain task if no wake-up is pending. Redis or broker trouble is logged, not
    raised: the webhook is archived already, and beat runs the drain every minute anyway."""
    from channel.tasks import process_pending_inbound_events_task

    try:
        if not _set_wake_flag():
            return
    except RedisError:
        logger.exception("could not set the webhook wake-up flag; beat will drain")
        return
    try:
        process_pending_inbound_events_task.delay()
    except BrokerError:
        logger.exception("could not publish the webhook drain; beat will drain")
        with contextlib.suppress(RedisError):
            redis_client().delete(WAKE_KEY)  # so the next webhook tries again


def process_pending_inbound_events(
    *, batch: int = 200, max_seconds: float = 20.0, linger: float | None = None
) -> int:
    """Process archived webhooks in arrival order until none is left; returns how many.

    Works in batches of up to `batch` webhooks, one transaction each (`_process_batch`), so a
    burst of one-status webhooks costs a few statements per batch, not per webhook. The
    wake-up flag stays set while this runs, so the webhooks arriving meanwhile wake nobody
    else (one drain takes the whole stream, in big batches). When the archive is empty it
    looks again for `linger` seconds (BANDITORE_WEBHOOK_DRAIN_LINGER_SECONDS) before it clears the flag:
    at a steady trickle (80 msg/s is ~160 status webhooks/s) that spares a Celery publish per
    POST and a task per webhook. After the clear the archive is read once more: a webhook
    committed just before the clear found the flag set and woke nobody.
    """
    if linger is None:
        linger = settings.BANDITORE_WEBHOOK_DRAIN_LINGER_SECONDS
    deadline = time.monotonic() + max_seconds
    done = 0
    idle_since = None
    while time.monotonic() < deadline:
        # SKIP LOCKED: webhooks another worker holds right now are theirs, so an empty batch
        # means there is nothing left for us (no spinning on their rows).
        claimed = len(_process_batch(limit=batch))
        if not claimed:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since < linger:
                time.sleep(LINGER_POLL_SECONDS)
                continue
            _set_flag(False)
            claimed = len(_process_batch(limit=batch))
            if not claimed:
                return done
            _set_flag(True)  # still busy: the webhooks arriving now need not wake anyone
        idle_since = None
        done += claimed
    _set_flag(False)
    wake_inbound_processor()  # out of time with work left: hand over to a fresh task
    return done


def _set_flag(held: bool) -> None:
    try:
        if held:
            redis_client().set(WAKE_KEY, 1, ex=WAKE_TTL_SECONDS)
        else:
            redis_client().delete(WAKE_KEY)
    except RedisError:  # the drain goes on; at worst a wake-up waits for beat's sweep
        logger.exception("could not update the webhook wake-up flag")


def process_inbound_event(*, event_id: int) -> list[str]:
    """Process one archived webhook (if unprocessed and free); returns the problems found.

    The same path as the drain, with a batch of one. Safe to run twice: messages are unique by
    wamid and claimed one by one (`claim_inbound_message`), statuses are applied
    monotonically, preferences only when they change something. Never raises for bad input:
    problems are written to `InboundEvent.problems`; lines starting with "error:" are bugs
    (that part's effects were rolled back; clear `processed_at` to run it again after the fix).
    """
    return _process_batch(limit=1, event_id=event_id).get(event_id, [])


class _Redo(Exception):
    """The batch-wide status dispatch reported a problem: redo it webhook by webhook."""


def _process_batch(*, limit: int, event_id: int | None = None) -> dict[int, list[str]]:
    """Claim up to `limit` unprocessed webhooks and process them in one transaction.

    Claimed in arrival order with FOR UPDATE SKIP LOCKED, so concurrent workers share a
    backlog. Messages and preferences are handled webhook by webhook, each in a savepoint (one
    bad webhook is rolled back alone and reported); the statuses of the whole batch are
    applied together, set-based. One UPDATE marks the batch processed. A crash rolls back the
    whole batch, which the next drain processes again: every step is idempotent.
    Returns the problems found, by webhook id.
    """
    with transaction.atomic():
        pending = InboundEvent.objects.select_for_update(skip_locked=True).filter(
            processed_at__isnull=True, signature_valid=True
        )
        if event_id is not None:
            pending = pending.filter(pk=event_id)
        rows = list(pending.order_by("id").values_list("id", "body")[:limit])
        problems: dict[int, list[str]] = {row_id: [] for row_id, _ in rows}
        parsed = {row_id: _parse(body, problems[row_id]) for row_id, body in rows}
        # Statuses first: they lock deliveries, then subscribers (unreachable, opted out), in
        # the order the sender's write-back takes them, so the two never deadlock.
        statuses = [(row_id, u) for row_id, p in parsed.items() for u in p.statuses]
        if statuses:
            _dispatch_statuses(statuses, problems)
        for row_id, webhook in parsed.items():
            if not (webhook.messages or webhook.preferences):
                continue
            try:
                # A savepoint per webhook that writes: one bad webhook is rolled back alone.
                with transaction.atomic():
                    _dispatch(row_id, webhook, problems[row_id])
            except Exception as exc:  # a bug must not wedge the queue behind this webhook
                logger.exception("webhook %s: processing failed", row_id)
                problems[row_id].append(f"error: processing failed: {exc!r}")
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
    except ValueError:
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
    """Apply the batch's statuses in one go (they are idempotent and order-independent, doc
    §1.5). If that reports anything, roll it back and apply them webhook by webhook, so each
    problem is written on the webhook that caused it."""
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
        except Exception:
            logger.warning("a batch of statuses failed; applying them webhook by webhook")
    for event_id, updates in by_event.items():
        try:
            with transaction.atomic():
                problems[event_id] += _apply_statuses(updates)
        except Exception as exc:
            logger.exception("webhook %s: statuses failed", event_id)
            problems[event_id].append(f"error: processing failed: {exc!r}")


def _apply_statuses(updates: list[StatusUpdate]) -> list[str]:
    """Service replies' statuses here; posts' statuses to whoever listens (subscribers)."""
    mine = [u for u in updates if is_service_status(u)]
    others = [u for u in updates if not is_service_status(u)]
    if mine:
        apply_outbound_statuses(mine)
    return _send(signals.statuses_received, updates=others) if others else []


def _mark_processed(problems: dict[int, list[str]]) -> None:
    now = timezone.now()
    clean = [event_id for event_id, found in problems.items() if not found]
    if clean:
        InboundEvent.objects.filter(pk__in=clean).update(processed_at=now, problems="")
    for event_id, found in problems.items():
        if found:
            InboundEvent.objects.filter(pk=event_id).update(
                processed_at=now, problems="\n".join(found)[:10_000]
            )


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


def _store_messages(event_id: int, messages: Sequence, problems: list[str]) -> list:
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
                event_id=event_id,
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


def prune_inbound_events(*, now: datetime | None = None, chunk: int = 10_000) -> int:
    """Delete processed webhooks older than BANDITORE_WEBHOOK_ARCHIVE_DAYS; returns how many.

    Status webhooks are most of the archive (about three per message sent) and carry phone
    numbers: keeping them forever is neither needed nor fair. Webhooks that carried a citizen's
    message stay, since the message log points at them (and dedups Meta's retries by wamid).
    Unprocessed ones always stay. Deleted in chunks, so the table is never locked for long.
    """
    days = settings.BANDITORE_WEBHOOK_ARCHIVE_DAYS
    if not days:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = InboundEvent.objects.filter(
        processed_at__isnull=False, received_at__lt=cutoff, messages__isnull=True
    )
    deleted = 0
    while ids := list(old.values_list("id", flat=True)[:chunk]):
        deleted += InboundEvent.objects.filter(id__in=ids).delete()[0]
    return deleted


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
