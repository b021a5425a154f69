"""Sending a post's deliveries: claim a small batch, send it at the shared rate, settle it.

- Claims are `FOR UPDATE SKIP LOCKED` + a compare-and-set to `sending`, so any number of
  workers on any number of machines share the work without overlap.
- One Redis rate limiter for the phone number (channel.ratelimit), shared by every process.
- Errors are handled by Meta's code (channel.errors), never by HTTP status alone.
- "Maybe sent" (timeout, crash with the request in flight) is never resent blindly: the row
  stays in `sending` with our reference in `biz_opaque_callback_data`; Meta's status webhook
  echoing it settles the row (subscribers.statuses). Only when no status came within
  DELIVERY_SETTLE_SECONDS does the sweeper queue it again.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis as redis_lib
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from channel.account import is_paused, pause_sending
from channel.errors import Handling
from channel.graph import SendResult, get_client
from channel.models import MessageTemplate
from channel.ratelimit import (
    Lane,
    SendRateLimiter,
    UniqueRecipientWindow,
    get_send_limiter,
    get_tier_window,
)
from subscribers.models import Delivery, Subscriber
from subscribers.post_payloads import (
    Recipient,
    default_template,
    free_form_payload,
    in_window,
    template_payload,
)
from subscribers.statuses import delivery_reference
from topics.models import Post

logger = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        threads = int(getattr(settings, "BANDITORE_SEND_THREADS", 16))
        _executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="send")
    return _executor


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
    """What every send of a batch shares; built in the calling thread, because the sending
    threads must not touch the database (their connections would not see its transaction)."""

    post: Post
    templates: dict[str, MessageTemplate | None]
    limiter: SendRateLimiter
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


def _post(claimed: Claimed, payload: dict, use_template: bool) -> Outcome:
    return Outcome(claimed, result=get_client().send(payload), template=use_template)


def send_batch(post_id: int, *, size: int | None = None) -> BatchReport:
    """Claim up to `size` due deliveries of a sending post, send them, settle them."""
    size = size or int(_setting("BANDITORE_SEND_BATCH", 100))
    post = Post.objects.filter(pk=post_id).first()
    if post is None or post.status != Post.Status.SENDING:
        return BatchReport(0, 0, None)
    if post.is_expired():
        expire_post(post)
        return BatchReport(0, 0, None)
    if is_paused():
        return BatchReport(0, 0, float(_setting("BANDITORE_PAUSED_RETRY_SECONDS", 60)))
    claimed = claim_batch(post_id, size)
    outcomes: list[Outcome] = []
    if claimed:
        recipients = _recipients(claimed)
        languages = {r.language for r in recipients.values()}
        ctx = _Context(
            post=post,
            templates={lang: default_template(lang) for lang in languages},
            limiter=get_send_limiter(),
            tier=get_tier_window(),
        )
        futures = []
        for claim in claimed:
            prepared = _prepare(ctx, claim, recipients.get(claim.subscriber_id))
            if isinstance(prepared, Outcome):
                outcomes.append(prepared)
                continue
            # One pacing loop per process hands out the tokens: sending threads never poll
            # the limiter (a herd of pollers costs more CPU than the sends themselves).
            if not ctx.limiter.wait(Lane.BULK, timeout=30):
                outcomes.append(Outcome(claim, held=("queued", 1, None, "rate limiter busy")))
                continue
            futures.append(_pool().submit(_post, claim, *prepared))
        outcomes += [f.result() for f in futures]
        settle(outcomes)
    sent = sum(1 for o in outcomes if o.result is not None and o.result.ok)
    return BatchReport(len(claimed), sent, next_due_in(post_id))


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
    back (seconds) or None when the post has nothing queued."""
    budget = budget_seconds or float(_setting("BANDITORE_SEND_BUDGET_SECONDS", 60))
    deadline = timezone.now() + timedelta(seconds=budget)
    while True:
        mark_sender_alive(post_id)
        report = send_batch(post_id)
        if report.retry_in is None:
            finish_if_done(post_id)
            return None
        if report.retry_in > 0 or report.claimed == 0 or timezone.now() >= deadline:
            return max(report.retry_in, 0.5 if report.claimed == 0 else 0.0)


# A sender chain marks the post while it works, so the sweeper only wakes senders for posts
# nobody is sending (a lost Celery message), instead of adding chains every minute.
SENDER_HEARTBEAT_SECONDS = 120
_redis_clients: dict[str, redis_lib.Redis] = {}


def _redis() -> redis_lib.Redis:
    url = settings.REDIS_URL
    if url not in _redis_clients:
        _redis_clients[url] = redis_lib.Redis.from_url(url)
    return _redis_clients[url]


def _heartbeat_key(post_id: int) -> str:
    return f"banditore:subscribers:sender:{post_id}"


def mark_sender_alive(post_id: int) -> None:
    _redis().set(_heartbeat_key(post_id), 1, ex=SENDER_HEARTBEAT_SECONDS)


def sender_alive(post_id: int) -> bool:
    return bool(_redis().exists(_heartbeat_key(post_id)))


# --- settling ------------------------------------------------------------------------------


def _backoff(attempts: int) -> float:
    return min(3600.0, 2.0**attempts)


def settle(outcomes: list[Outcome]) -> None:  # noqa: C901  (one branch per Meta handling)
    """Write every outcome back; only rows still in `sending` change, so a status webhook
    that arrived first is never overwritten."""
    now = timezone.now()
    max_attempts = int(_setting("BANDITORE_MAX_ATTEMPTS", 5))
    sent: list[tuple] = []
    requeue: list[tuple] = []  # (next_attempt_at, give_back, code, text, used_template, id)
    finals: list[tuple] = []  # (status, code, text, id)
    unreachable: list[int] = []
    opted_out: list[int] = []
    pause: tuple[int | None, str] | None = None
    for outcome in outcomes:
        claim, result = outcome.delivery, outcome.result
        if outcome.held is not None:
            status, delay, code, text = outcome.held
            if status == "queued":
                requeue.append(
                    (now + timedelta(seconds=delay), 1, code, text, claim.used_template, claim.id)
                )
            else:
                finals.append((status, code, text, claim.id))
                if code == 131050:
                    opted_out.append(claim.subscriber_id)
            continue
        if result.ok:
            sent.append((result.wamid, now, outcome.template, claim.id))
            continue
        code, text = result.error_code, result.error_text[:2000]
        if result.maybe_sent:
            # Never resend blindly: wait for the status webhook or the sweeper's settle time.
            Delivery.objects.filter(id=claim.id, status="sending").update(
                last_error_code=code, last_error_text=f"no answer, waiting for status: {text}"
            )
            continue
        handling = result.handling
        if handling == Handling.THROTTLED:
            requeue.append(
                (now + timedelta(seconds=1), 1, code, text, claim.used_template, claim.id)
            )
        elif handling == Handling.PAIR_RATE:
            delay = 4.0 ** min(claim.attempts, 6)  # Meta: retry after 4^X seconds (§4.1)
            requeue.append(
                (now + timedelta(seconds=delay), 1, code, text, claim.used_template, claim.id)
            )
        elif handling == Handling.ACCOUNT_PAUSE:
            pause = pause or (code, text)
            requeue.append((now, 1, code, text, claim.used_template, claim.id))
        elif handling == Handling.NEEDS_TEMPLATE and not outcome.template:
            requeue.append((now, 1, code, text, True, claim.id))
        elif handling == Handling.RETRY_AFTER_DAY and claim.attempts < max_attempts:
            requeue.append(
                (now + timedelta(hours=24), 0, code, text, claim.used_template, claim.id)
            )
        elif handling == Handling.TRANSIENT and claim.attempts < max_attempts:
            delay = _backoff(claim.attempts)
            requeue.append(
                (now + timedelta(seconds=delay), 0, code, text, claim.used_template, claim.id)
            )
        else:
            finals.append(("failed", code, text, claim.id))
            if handling == Handling.RECIPIENT_UNREACHABLE:
                unreachable.append(claim.subscriber_id)
            elif handling == Handling.MARKETING_OPT_OUT:
                opted_out.append(claim.subscriber_id)
    table = Delivery._meta.db_table
    sent_sql = f"""UPDATE {table} SET
        status = CASE WHEN status = 'sending' THEN 'sent' ELSE status END,
        wa_message_id = COALESCE(wa_message_id, %s), sent_at = COALESCE(sent_at, %s),
        used_template = %s,
        last_error_code = CASE WHEN status = 'sending' THEN NULL ELSE last_error_code END,
        last_error_text = CASE WHEN status = 'sending' THEN '' ELSE last_error_text END
        WHERE id = %s"""
    requeue_sql = f"""UPDATE {table} SET status = 'queued', next_attempt_at = %s,
        attempts = attempts - %s, last_error_code = %s, last_error_text = %s, used_template = %s
        WHERE id = %s AND status = 'sending'"""
    final_sql = f"""UPDATE {table} SET status = %s, last_error_code = %s, last_error_text = %s,
        failed_at = CASE WHEN %s = 'failed' THEN %s ELSE failed_at END
        WHERE id = %s AND status = 'sending'"""
    operations = [(row[-1], sent_sql, row) for row in sent]
    operations += [(row[-1], requeue_sql, row) for row in requeue]
    operations += [(i, final_sql, (s, c, t, s, now, i)) for s, c, t, i in finals]
    # Rows are locked in id order, as the status webhooks lock them: no deadlocks between
    # a sender settling a batch and Meta's statuses for the same rows.
    operations.sort(key=lambda operation: operation[0])
    with transaction.atomic(), connection.cursor() as cursor:
        for _id, sql, params in operations:
            cursor.execute(sql, params)
        if unreachable:
            Subscriber.objects.filter(id__in=unreachable, status=Subscriber.Status.ACTIVE).update(
                status=Subscriber.Status.UNREACHABLE
            )
        if opted_out:
            Subscriber.objects.filter(id__in=opted_out).update(marketing_opt_out=True)
    if pause is not None:
        pause_sending(code=pause[0], reason=pause[1])


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
    settle_after = timedelta(seconds=float(_setting("DELIVERY_SETTLE_SECONDS", 600)))
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
            from subscribers.publishing import wake_senders

            wake_senders(post.pk)
            woken += 1
    return {"returned": returned, "woken": woken, "finished": finished, "expired": expired}
