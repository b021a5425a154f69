"""Writing a batch's outcomes back: sent, queued again, failed, or waiting for Meta's status.

Set-based: a handful of statements per batch, whatever its size. Errors are handled by Meta's
code (channel.graph.errors), never by HTTP status alone, and wait as long as its table says
before the next try. "Maybe sent" (timeout, crash with the request in flight) is never resent
blindly: the row stays in `sending` until Meta's status webhook echoing our reference settles
it (subscribers.delivery.statuses) or, after BANDITORE_SETTLE_SECONDS, the sweeper queues it
again (subscribers.delivery.sweeper). A row of a post that stopped (cancelled, expired) never
goes back to the queue: it is cancelled.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from channel.erasure import REDACTED, erased_wamid
from channel.graph.account import pause_sending
from channel.graph.client import SendResult
from channel.redis_client import redis_client
from subscribers.delivery.decisions import failure_decision
from subscribers.models import Delivery, Subscriber
from topics.models import Post


@dataclass(frozen=True)
class Claimed:
    """A delivery a sender holds (moved to `sending`), `attempts` counting this one; `seq` is
    the attempt's number (Delivery.attempt_seq), which our callback reference carries."""

    id: int
    subscriber_id: int
    attempts: int
    used_template: bool
    post_id: int
    seq: int


@dataclass
class Outcome:
    delivery: Claimed
    result: SendResult | None = None
    template: bool = False
    # Not sent, decided before calling Meta: (status, next attempt in seconds, code, text)
    held: tuple[str, float, int | None, str] | None = None


@dataclass
class _Plan:
    """A batch's outcomes grouped into the few statements that write them back."""

    sent: dict[bool, list[tuple[int, str, int]]] = field(  # used_template → (id, wamid, seq)
        default_factory=lambda: defaultdict(list)
    )
    # (next_attempt_at, give_back, code, text, used_template) → ids
    requeue: dict[tuple, list[int]] = field(default_factory=lambda: defaultdict(list))
    finals: dict[tuple, list[int]] = field(default_factory=lambda: defaultdict(list))
    maybe: dict[tuple, list[int]] = field(default_factory=lambda: defaultdict(list))
    unreachable: list[int] = field(default_factory=list)
    opted_out: list[int] = field(default_factory=list)
    pause: tuple[int | None, str] | None = None


def _plan(outcomes: list[Outcome], going: set[int], now: datetime) -> _Plan:  # noqa: C901
    """A failure goes by subscribers.delivery.decisions, as one reported by webhook. `going`:
    the posts still sending; a row of any other post that would go back to the queue is
    cancelled instead."""
    plan = _Plan()

    def again(claim: Claimed, delay: float, give_back: int, code, text, template=None) -> None:
        if claim.post_id not in going:
            plan.finals[("cancelled", code, text)].append(claim.id)
            return
        template = claim.used_template if template is None else template
        key = (now + timedelta(seconds=delay), give_back, code, text, template)
        plan.requeue[key].append(claim.id)

    for outcome in outcomes:
        claim, result = outcome.delivery, outcome.result
        if outcome.held is not None:
            status, delay, code, text = outcome.held
            if status == "queued":
                again(claim, delay, 1, code, text)
            else:
                plan.finals[(status, code, text)].append(claim.id)
                if code == 131050:
                    plan.opted_out.append(claim.subscriber_id)
            continue
        if result.ok:
            plan.sent[outcome.template].append((claim.id, result.wamid, claim.seq))
            continue
        if result.not_sent:  # stopped before its slot: nothing reached Meta, no attempt spent
            again(claim, 0, 1, None, "")
            continue
        code, text = result.error_code, result.error_text[:2000]
        if result.maybe_sent:
            # Never resend blindly: wait for the status webhook or the sweeper's settle time.
            plan.maybe[(code, f"no answer, waiting for status: {text}")].append(claim.id)
            continue
        decision = failure_decision(
            result.handling,
            attempts=claim.attempts,
            template=outcome.template,
            going=claim.post_id in going,
        )
        if decision.pause:
            plan.pause = plan.pause or (code, text)
        if decision.status == "queued":
            again(claim, decision.delay, decision.give_back, code, text, decision.template)
        else:
            plan.finals[(decision.status, code, text)].append(claim.id)
        if decision.unreachable:
            plan.unreachable.append(claim.subscriber_id)
        if decision.opted_out:
            plan.opted_out.append(claim.subscriber_id)
    return plan


def settle(outcomes: list[Outcome]) -> None:
    """Write every outcome back, set-based: a handful of statements per batch, whatever its
    size. Only rows still in `sending` change state, so a status webhook that arrived first
    is never overwritten."""
    now = timezone.now()
    in_flight = Delivery.objects.filter(status=Delivery.Status.SENDING)
    with transaction.atomic():
        # The post first, then the rows, as a cancel locks them (publishing.post_cancel): a
        # row is never queued again under a cancel being committed, and a cancel waits for
        # this write-back, then cancels what it queued. Then the rows in id order, as the
        # status webhooks lock them: no deadlocks with Meta's statuses for the same rows.
        going = _lock_going({o.delivery.post_id for o in outcomes})
        batch = [outcome.delivery.id for outcome in outcomes]
        locked = Delivery.objects.select_for_update().filter(id__in=batch).order_by("id")
        # Only the attempt each outcome belongs to: a batch carried over to a later sender
        # (subscribers.delivery.inflight) may answer for a row the sweeper queued again and
        # another sender claimed since (a new attempt_seq). Its rows are locked until this
        # commits, so matching (id, attempt_seq) here holds for every statement below.
        current = set(locked.values_list("id", "attempt_seq"))
        outcomes = [o for o in outcomes if (o.delivery.id, o.delivery.seq) in current]
        plan = _plan(outcomes, going, now)
        for template, rows in plan.sent.items():
            _mark_sent(rows, now, template)
        for (at, give_back, code, text, template), ids in plan.requeue.items():
            in_flight.filter(id__in=ids).update(
                status=Delivery.Status.QUEUED,
                next_attempt_at=at,
                attempts=F("attempts") - give_back,
                last_error_code=code,
                last_error_text=text,
                used_template=template,
            )
        for (status, code, text), ids in plan.finals.items():
            extra = {"failed_at": now} if status == "failed" else {}
            in_flight.filter(id__in=ids).update(
                status=status, last_error_code=code, last_error_text=text, **extra
            )
        for (code, text), ids in plan.maybe.items():
            in_flight.filter(id__in=ids).update(last_error_code=code, last_error_text=text)
        if plan.unreachable:
            Subscriber.objects.filter(
                id__in=plan.unreachable, status=Subscriber.Status.ACTIVE
            ).update(status=Subscriber.Status.UNREACHABLE)
        if plan.opted_out:
            Subscriber.objects.filter(id__in=plan.opted_out).update(marketing_opt_out=True)
    if plan.pause is not None:
        pause_sending(code=plan.pause[0], reason=plan.pause[1])


def _lock_going(post_ids: set[int]) -> set[int]:
    """Lock the posts (FOR SHARE: two senders of one post do not wait for each other, a
    cancel waits for both) and return those still sending."""
    ids = sorted(post_ids)
    if not ids:
        return set()
    placeholders = ", ".join(["%s"] * len(ids))
    lock = " FOR SHARE" if connection.vendor == "postgresql" else ""  # SQLite: one writer
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {Post._meta.db_table} WHERE id IN ({placeholders}) AND status = %s "
            f"ORDER BY id{lock}",
            [*ids, Post.Status.SENDING],
        )
        return {row[0] for row in cursor.fetchall()}


def _mark_sent(rows: list[tuple[int, str, int]], now: datetime, template: bool) -> None:
    """One UPDATE for all accepted sends. A row a status webhook already moved on keeps its
    status but still learns its wamid (the status may have matched it by our reference).
    Only the attempt that was sent: a row claimed again meanwhile keeps the new attempt's.

    Meta derives the wamid from the phone number: a person erased while their message was in
    flight gets the redacted form (channel.erasure.erased_wamid), never the original — put in
    its place in the same transaction by a second statement that finds only their rows (by
    primary key, usually none; SQLite's RETURNING cannot name a joined table's columns)."""
    table = Delivery._meta.db_table
    values = ", ".join(["(%s, %s, %s)"] * len(rows))
    sql = f"""WITH v(id, wamid, seq) AS (VALUES {values})
        UPDATE {table} AS d SET
        status = CASE WHEN d.status = 'sending' THEN 'sent' ELSE d.status END,
        wa_message_id = COALESCE(d.wa_message_id, v.wamid),
        sent_at = COALESCE(d.sent_at, %s),
        used_template = %s,
        last_error_code = CASE WHEN d.status = 'sending' THEN NULL ELSE d.last_error_code END,
        last_error_text = CASE WHEN d.status = 'sending' THEN '' ELSE d.last_error_text END
        FROM v WHERE d.id = v.id AND d.attempt_seq = v.seq"""
    params = [value for row in rows for value in row] + [now, template]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    erased = Delivery.objects.filter(
        pk__in=[pk for pk, _, _ in rows], subscriber__status=Subscriber.Status.ERASED
    ).exclude(wa_message_id__startswith=REDACTED)
    redact = list(erased.exclude(wa_message_id=None).values_list("pk", "wa_message_id"))
    if redact:
        Delivery.objects.bulk_update(
            [Delivery(pk=pk, wa_message_id=erased_wamid(wamid)) for pk, wamid in redact],
            ["wa_message_id"],
        )


# --- finishing and expiry ------------------------------------------------------------------


def finish_if_done(post_id: int) -> bool:
    """sending → sent once nothing is queued or in flight. The post is locked first, as
    whoever queues its rows again does (settle, statuses, publishing.resend_failed), and the
    check runs after the lock: a row queued again by a transaction that committed meanwhile is
    seen, one that comes later finds the post sent and sets it sending again."""
    with transaction.atomic():
        sending = Post.objects.select_for_update(no_key=True).filter(
            pk=post_id, status=Post.Status.SENDING
        )
        if not list(sending.values_list("pk", flat=True)):
            return False
        busy = Delivery.objects.filter(
            post_id=post_id, status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING]
        ).exists()
        if busy:
            return False
        Post.objects.filter(pk=post_id).update(status=Post.Status.SENT, finished_at=timezone.now())
    return True


def expire_post(post: Post) -> int:
    """An expired post stops like a cancelled one: what was not sent yet never will be, and
    the post says why."""
    with transaction.atomic():
        # The post first, as the senders lock it before writing a batch back (settle).
        sending = Post.objects.select_for_update(no_key=True).filter(
            pk=post.pk, status=Post.Status.SENDING
        )
        if not list(sending.values_list("pk", flat=True)):
            return 0
        stopped = Delivery.objects.filter(post=post, status=Delivery.Status.QUEUED).update(
            status=Delivery.Status.CANCELLED
        )
        Post.objects.filter(pk=post.pk).update(
            status=Post.Status.CANCELLED,
            finished_at=timezone.now(),
            status_note=f"expired before everyone was reached ({stopped} not sent)"[:300],
        )
        stop_senders(post.pk)
    return stopped


# --- stopping senders mid-batch ------------------------------------------------------------

# A sender checks before each request whether its post stopped (subscribers.delivery.sending).
# Past a batch the database says so (the post's status): the flag only has to outlive one.
STOP_FLAG_SECONDS = 3600


def _stop_key(post_id: int) -> str:
    return f"banditore:subscribers:stopped:{post_id}"


def stop_senders(post_id: int) -> None:
    """Once the caller commits, the post's senders hand no more of its requests to Meta.
    Robust: should Redis fail here, the stop stands in the database, which the senders read
    before each batch."""
    transaction.on_commit(
        lambda: redis_client().set(_stop_key(post_id), 1, ex=STOP_FLAG_SECONDS), robust=True
    )


def senders_stopped(post_id: int) -> bool:
    return bool(redis_client().exists(_stop_key(post_id)))
