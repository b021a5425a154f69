"""Sending a post's deliveries: claim a small batch, send it at the shared rate, settle it.

- Claims are `FOR UPDATE SKIP LOCKED` + a compare-and-set to `sending`, so any number of
  workers on any number of machines share the work without overlap.
- One Redis rate limiter for the phone number (channel.graph.ratelimit), shared by every process:
  a sender reserves a few slots at a time and each message leaves at its own slot.
- A batch's requests are all in flight at once on the process's event loop
  (channel.graph.client), and a sender keeps two batches going: while one waits for Meta, the
  other is written back and the next claimed.
- Errors are handled by Meta's code (channel.graph.errors), never by HTTP status alone.
- "Maybe sent" (timeout, crash with the request in flight) is never resent blindly: the row
  stays in `sending` with our reference in `biz_opaque_callback_data`; Meta's status webhook
  echoing it settles the row (subscribers.delivery.statuses). Only when no status came within
  BANDITORE_SETTLE_SECONDS does the sweeper queue it again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from channel.graph.account import is_paused, pause_sending
from channel.graph.client import SendResult, get_client
from channel.graph.errors import Handling
from channel.graph.ratelimit import (
    Lane,
    UniqueRecipientWindow,
    get_send_limiter,
    get_tier_window,
)
from channel.models import MessageTemplate
from channel.redis_client import redis_client
from subscribers.delivery.payloads import (
    Recipient,
    default_template,
    free_form_payload,
    in_window,
    template_payload,
)
from subscribers.delivery.statuses import delivery_reference
from subscribers.models import Delivery, Subscriber
from topics.models import Post

logger = logging.getLogger(__name__)


def _setting(name: str, default):
    return getattr(settings, name, default)


@dataclass(frozen=True)
class Claimed:
    id: int
    subscriber_id: int
    attempts: int
    used_template: bool


@dataclass
class Outcome:
    delivery: Claimed
    result: SendResult | None = None
    template: bool = False
    # Not sent, decided before calling Meta: (status, next attempt in seconds, code, text)
    held: tuple[str, float, int | None, str] | None = None


@dataclass(frozen=True)
class BatchReport:
    claimed: int
    sent: int
    retry_in: float | None  # seconds until rows of this post become due again; None = done


# --- claiming ------------------------------------------------------------------------------


def claim_batch(post_id: int, size: int, now: datetime | None = None) -> list[Claimed]:
    """Lock up to `size` due rows nobody else holds, then move them to `sending`. Two
    statements in one transaction: the locked ids are fixed before the UPDATE runs."""
    now = now or timezone.now()
    due = (
        Delivery.objects.filter(post_id=post_id, status=Delivery.Status.QUEUED)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("id")
    )
    with transaction.atomic():
        ids = list(due.select_for_update(skip_locked=True).values_list("id", flat=True)[:size])
        if not ids:
            return []
        Delivery.objects.filter(id__in=ids, status=Delivery.Status.QUEUED).update(
            status=Delivery.Status.SENDING, sending_at=now, attempts=F("attempts") + 1
        )
        rows = Delivery.objects.filter(id__in=ids, sending_at=now).values_list(
            "id", "subscriber_id", "attempts", "used_template"
        )
        return [Claimed(*row) for row in rows.order_by("id")]


# --- sending -------------------------------------------------------------------------------


def _recipients(claimed: list[Claimed]) -> dict[int, Recipient]:
    rows = Subscriber.objects.filter(id__in=[c.subscriber_id for c in claimed]).values_list(
        "id", "wa_id", "user_id", "language", "last_inbound_at", "marketing_opt_out", "status"
    )
    return {
        row[0]: Recipient(*row[1:6])
        for row in rows
        if row[6] == Subscriber.Status.ACTIVE and (row[1] or row[2])
    }


@dataclass(frozen=True)
class _Context:
    """What every send of a batch shares."""

    post: Post
    templates: dict[str, MessageTemplate | None]
    tier: UniqueRecipientWindow


def _prepare(
    ctx: _Context, claimed: Claimed, recipient: Recipient | None
) -> Outcome | tuple[dict, bool]:
    """The payload for one delivery, or the Outcome when it must not be sent now."""
    if recipient is None:  # left, erased or unreachable since the fan-out
        return Outcome(claimed, held=("cancelled", 0, None, "no longer subscribed"))
    use_template = claimed.used_template or not in_window(recipient.last_inbound_at)
    if use_template:
        template = ctx.templates.get(recipient.language)
        if template is None:
            return Outcome(claimed, held=("failed", 0, None, "no approved template"))
        if template.category == "marketing" and recipient.marketing_opt_out:
            return Outcome(claimed, held=("failed", 0, 131050, "stopped marketing messages"))
        wait = ctx.tier.admit(recipient.wa_id or recipient.user_id)
        if wait > 0:  # messaging-limit tier reached: continue when the window allows
            return Outcome(claimed, held=("queued", wait, None, "messaging limit reached"))
        payload = template_payload(ctx.post, recipient, template)
    else:
        payload = free_form_payload(ctx.post, recipient)
    payload["biz_opaque_callback_data"] = delivery_reference(claimed.id)
    return payload, use_template


@dataclass
class _Batch:
    """A claimed batch: the outcomes decided without calling Meta, and the requests in flight."""

    claimed: list[Claimed]
    outcomes: list[Outcome]
    prepared: list[tuple[Claimed, dict, bool]]
    future: Future | None = None
    wait_limit: float = 0.0


def _sendable(post_id: int) -> Post | float | None:
    """The post when it may send now; else None (no longer sending, or expired just now) or
    the seconds to wait (sending paused)."""
    post = Post.objects.filter(pk=post_id).first()
    if post is None or post.status != Post.Status.SENDING:
        return None
    if post.is_expired():
        expire_post(post)
        return None
    if is_paused():
        return float(_setting("BANDITORE_PAUSED_RETRY_SECONDS", 60))
    return post


def _start_batch(post: Post, size: int) -> _Batch:
    """Claim up to `size` due rows and put their requests in flight, all at once (the API
    answers in ~100 ms or more, so the rate needs that many in flight), each leaving at its
    own slot of the one limiter."""
    batch = _Batch(claim_batch(post.pk, size), [], [])
    if not batch.claimed:
        return batch
    recipients = _recipients(batch.claimed)
    languages = {r.language for r in recipients.values()}
    ctx = _Context(
        post=post,
        templates={lang: default_template(lang) for lang in languages},
        tier=get_tier_window(),
    )
    for claim in batch.claimed:
        ready = _prepare(ctx, claim, recipients.get(claim.subscriber_id))
        if isinstance(ready, Outcome):
            batch.outcomes.append(ready)
        else:
            batch.prepared.append((claim, *ready))
    if batch.prepared:
        limiter, client = get_send_limiter(), get_client()
        batch.future = client.submit(
            [payload for _, payload, _ in batch.prepared],
            lambda count: limiter.reserve(Lane.BULK, count, max_ahead=limiter.MAX_AHEAD),
            chunk=limiter.chunk(Lane.BULK),
        )
        # Past this something is wrong (each request has its own timeout): give up like a
        # crash would, rows stay in `sending` for the statuses or the sweeper to settle.
        batch.wait_limit = 4 * len(batch.prepared) / limiter.bulk_rate + client.timeout + 60
    return batch


def _finish_batch(batch: _Batch) -> int:
    """Wait for the batch's answers and write every outcome back; returns how many Meta took."""
    if batch.future is not None:
        try:
            results = batch.future.result(batch.wait_limit)
        except TimeoutError:
            # Stop pacing the rest: unsent rows stay `sending` and the sweeper queues them
            # again; a batch still sending after that would send them twice.
            batch.future.cancel()
            raise
        batch.outcomes += [
            Outcome(claim, result=result, template=template)
            for (claim, _, template), result in zip(batch.prepared, results, strict=True)
        ]
    if batch.claimed:
        settle(batch.outcomes)
    return sum(1 for o in batch.outcomes if o.result is not None and o.result.ok)


def send_batch(post_id: int, *, size: int | None = None) -> BatchReport:
    """Claim up to `size` due deliveries of a sending post, send them, settle them."""
    size = size or int(_setting("BANDITORE_SEND_BATCH", 100))
    post = _sendable(post_id)
    if not isinstance(post, Post):
        return BatchReport(0, 0, post)
    batch = _start_batch(post, size)
    sent = _finish_batch(batch)
    return BatchReport(len(batch.claimed), sent, next_due_in(post_id))


def next_due_in(post_id: int) -> float | None:
    """0 when queued rows are due now; seconds until the next one; None when none is queued."""
    now = timezone.now()
    queued = Delivery.objects.filter(post_id=post_id, status=Delivery.Status.QUEUED)
    if (
        queued.filter(next_attempt_at__isnull=True).exists()
        or queued.filter(next_attempt_at__lte=now).exists()
    ):
        return 0.0
    first = queued.order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first()
    if first is None:
        return None
    return max(0.0, (first - now).total_seconds())


def drain_post(post_id: int, *, budget_seconds: float | None = None) -> float | None:
    """Send batches until nothing is due or the time budget is spent. Returns when to come
    back (seconds) or None when the post has nothing queued.

    Two batches overlap: the next one is claimed and in flight while the previous one's
    answers are written back, so the sender never leaves its share of the rate unused while
    it waits for the API or the database."""
    budget = budget_seconds or float(_setting("BANDITORE_SEND_BUDGET_SECONDS", 60))
    deadline = timezone.now() + timedelta(seconds=budget)
    size = int(_setting("BANDITORE_SEND_BATCH", 100))
    pending: _Batch | None = None
    try:
        while True:
            mark_sender_alive(post_id)
            post = _sendable(post_id)
            batch = _start_batch(post, size) if isinstance(post, Post) else None
            # The new batch is `pending` before the previous one is written back, so if that
            # raises, `finally` still settles the batch already in flight.
            finishing, pending = pending, batch if batch is not None and batch.claimed else None
            settled = finishing is not None
            if finishing is not None:
                _finish_batch(finishing)
            if pending is not None:
                if timezone.now() < deadline:
                    continue
                finishing, pending = pending, None
                _finish_batch(finishing)
                return 0.0  # budget spent with work left: a fresh task goes on at once
            retry = next_due_in(post_id) if isinstance(post, Post) else post
            if retry is None:
                finish_if_done(post_id)
                return None
            if retry > 0:
                return retry
            if settled and timezone.now() < deadline:
                continue  # the batch just settled queued rows again for now (e.g. 131047)
            return 0.5  # due rows that other senders hold: look again shortly
    finally:
        if pending is not None:
            _finish_batch(pending)


# A sender chain marks the post while it works, so the sweeper only wakes senders for posts
# nobody is sending (a lost Celery message), instead of adding chains every minute.
SENDER_HEARTBEAT_SECONDS = 120


def _heartbeat_key(post_id: int) -> str:
    return f"banditore:subscribers:sender:{post_id}"


def mark_sender_alive(post_id: int) -> None:
    redis_client().set(_heartbeat_key(post_id), 1, ex=SENDER_HEARTBEAT_SECONDS)


def sender_alive(post_id: int) -> bool:
    return bool(redis_client().exists(_heartbeat_key(post_id)))


# --- settling ------------------------------------------------------------------------------


def _backoff(attempts: int) -> float:
    return min(3600.0, 2.0**attempts)


def settle(outcomes: list[Outcome]) -> None:  # noqa: C901  (one branch per Meta handling)
    """Write every outcome back, set-based: a handful of statements per batch, whatever its
    size. Only rows still in `sending` change state, so a status webhook that arrived first
    is never overwritten."""
    now = timezone.now()
    max_attempts = int(_setting("BANDITORE_MAX_ATTEMPTS", 5))
    sent: dict[bool, list[tuple[int, str]]] = defaultdict(list)  # used_template → (id, wamid)
    # (next_attempt_at, give_back, code, text, used_template) → ids
    requeue: dict[tuple, list[int]] = defaultdict(list)
    finals: dict[tuple, list[int]] = defaultdict(list)  # (status, code, text) → ids
    maybe: dict[tuple, list[int]] = defaultdict(list)  # (code, text) → ids
    unreachable: list[int] = []
    opted_out: list[int] = []
    pause: tuple[int | None, str] | None = None

    def again(claim: Claimed, delay: float, give_back: int, code, text, template=None) -> None:
        template = claim.used_template if template is None else template
        requeue[(now + timedelta(seconds=delay), give_back, code, text, template)].append(claim.id)

    for outcome in outcomes:
        claim, result = outcome.delivery, outcome.result
        if outcome.held is not None:
            status, delay, code, text = outcome.held
            if status == "queued":
                again(claim, delay, 1, code, text)
            else:
                finals[(status, code, text)].append(claim.id)
                if code == 131050:
                    opted_out.append(claim.subscriber_id)
            continue
        if result.ok:
            sent[outcome.template].append((claim.id, result.wamid))
            continue
        code, text = result.error_code, result.error_text[:2000]
        if result.maybe_sent:
            # Never resend blindly: wait for the status webhook or the sweeper's settle time.
            maybe[(code, f"no answer, waiting for status: {text}")].append(claim.id)
            continue
        handling = result.handling
        if handling == Handling.THROTTLED:
            again(claim, 1, 1, code, text)
        elif handling == Handling.PAIR_RATE:
            again(claim, 4.0 ** min(claim.attempts, 6), 1, code, text)  # Meta: 4^X s (§4.1)
        elif handling == Handling.ACCOUNT_PAUSE:
            pause = pause or (code, text)
            again(claim, 0, 1, code, text)
        elif handling == Handling.NEEDS_TEMPLATE and not outcome.template:
            again(claim, 0, 1, code, text, template=True)
        elif handling == Handling.RETRY_AFTER_DAY and claim.attempts < max_attempts:
            again(claim, 86400, 0, code, text)
        elif handling == Handling.TRANSIENT and claim.attempts < max_attempts:
            again(claim, _backoff(claim.attempts), 0, code, text)
        else:
            finals[("failed", code, text)].append(claim.id)
            if handling == Handling.RECIPIENT_UNREACHABLE:
                unreachable.append(claim.subscriber_id)
            elif handling == Handling.MARKETING_OPT_OUT:
                opted_out.append(claim.subscriber_id)
    in_flight = Delivery.objects.filter(status=Delivery.Status.SENDING)
    with transaction.atomic():
        # Lock the batch's rows in id order first, as the status webhooks lock them: no
        # deadlocks between a sender settling a batch and Meta's statuses for the same rows.
        batch = [outcome.delivery.id for outcome in outcomes]
        list(Delivery.objects.select_for_update().filter(id__in=batch).order_by("id").values("id"))
        for template, rows in sent.items():
            _mark_sent(rows, now, template)
        for (at, give_back, code, text, template), ids in requeue.items():
            in_flight.filter(id__in=ids).update(
                status=Delivery.Status.QUEUED,
                next_attempt_at=at,
                attempts=F("attempts") - give_back,
                last_error_code=code,
                last_error_text=text,
                used_template=template,
            )
        for (status, code, text), ids in finals.items():
            extra = {"failed_at": now} if status == "failed" else {}
            in_flight.filter(id__in=ids).update(
                status=status, last_error_code=code, last_error_text=text, **extra
            )
        for (code, text), ids in maybe.items():
            in_flight.filter(id__in=ids).update(last_error_code=code, last_error_text=text)
        if unreachable:
            Subscriber.objects.filter(id__in=unreachable, status=Subscriber.Status.ACTIVE).update(
                status=Subscriber.Status.UNREACHABLE
            )
        if opted_out:
            Subscriber.objects.filter(id__in=opted_out).update(marketing_opt_out=True)
    if pause is not None:
        pause_sending(code=pause[0], reason=pause[1])


def _mark_sent(rows: list[tuple[int, str]], now: datetime, template: bool) -> None:
    """One UPDATE for all accepted sends. A row a status webhook already moved on keeps its
    status but still learns its wamid (the status may have matched it by our reference)."""
    table = Delivery._meta.db_table
    values = ", ".join(["(%s, %s)"] * len(rows))
    sql = f"""WITH v(id, wamid) AS (VALUES {values})
        UPDATE {table} AS d SET
        status = CASE WHEN d.status = 'sending' THEN 'sent' ELSE d.status END,
        wa_message_id = COALESCE(d.wa_message_id, v.wamid),
        sent_at = COALESCE(d.sent_at, %s),
        used_template = %s,
        last_error_code = CASE WHEN d.status = 'sending' THEN NULL ELSE d.last_error_code END,
        last_error_text = CASE WHEN d.status = 'sending' THEN '' ELSE d.last_error_text END
        FROM v WHERE d.id = v.id"""
    params = [value for row in rows for value in row] + [now, template]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# --- finishing, expiry, sweeping -----------------------------------------------------------


def finish_if_done(post_id: int) -> bool:
    """sending → sent once nothing is queued or in flight (compare-and-set)."""
    busy = Delivery.objects.filter(
        post_id=post_id, status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING]
    ).exists()
    if busy:
        return False
    return bool(
        Post.objects.filter(pk=post_id, status=Post.Status.SENDING).update(
            status=Post.Status.SENT, finished_at=timezone.now()
        )
    )


def expire_post(post: Post) -> int:
    """An expired post stops: what was not sent yet never will be, and the post says why."""
    with transaction.atomic():
        stopped = Delivery.objects.filter(post=post, status=Delivery.Status.QUEUED).update(
            status=Delivery.Status.CANCELLED
        )
        Post.objects.filter(pk=post.pk, status=Post.Status.SENDING).update(
            status=Post.Status.CANCELLED,
            finished_at=timezone.now(),
            status_note=f"expired before everyone was reached ({stopped} not sent)"[:300],
        )
    return stopped


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Periodic and idempotent: return stale in-flight rows to the queue, finish or expire
    posts, and wake senders for every post with due work (Celery messages may be lost)."""
    now = now or timezone.now()
    settle_after = timedelta(seconds=float(_setting("BANDITORE_SETTLE_SECONDS", 600)))
    returned = Delivery.objects.filter(
        status=Delivery.Status.SENDING, sending_at__lt=now - settle_after
    ).update(status=Delivery.Status.QUEUED, next_attempt_at=None)
    woken = finished = expired = 0
    for post in Post.objects.filter(status=Post.Status.SENDING):
        if post.is_expired(now):
            expire_post(post)
            expired += 1
        elif finish_if_done(post.pk):
            finished += 1
        elif next_due_in(post.pk) == 0.0 and not is_paused() and not sender_alive(post.pk):
            from subscribers.delivery.publishing import wake_senders

            wake_senders(post.pk)
            woken += 1
    return {"returned": returned, "woken": woken, "finished": finished, "expired": expired}
