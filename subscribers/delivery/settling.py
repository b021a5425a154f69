"""Writing a batch's outcomes back: sent, queued again, failed, or waiting for Meta's status.

Set-based: a handful of statements per batch, whatever its size. Errors are handled by Meta's
code (channel.graph.errors), never by HTTP status alone, and wait as long as its table says
before the next try. "Maybe sent" (timeout, crash with the request in flight) is never resent
blindly: the row stays in `sending` until Meta's status webhook echoing our reference settles
it (subscribers.delivery.statuses) or, after BANDITORE_SETTLE_SECONDS, the sweeper queues it
again (subscribers.delivery.sweeper).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from channel.graph.account import pause_sending
from channel.graph.client import SendResult
from channel.graph.errors import ATTEMPT_FREE, RETRIABLE, Handling, retry_delay
from subscribers.models import Delivery, Subscriber
from topics.models import Post


@dataclass(frozen=True)
class Claimed:
    """A delivery a sender holds (moved to `sending`), `attempts` counting this one."""

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


def settle(outcomes: list[Outcome]) -> None:  # noqa: C901  (one branch per Meta handling)
    """Write every outcome back, set-based: a handful of statements per batch, whatever its
    size. Only rows still in `sending` change state, so a status webhook that arrived first
    is never overwritten."""
    now = timezone.now()
    max_attempts = settings.BANDITORE_MAX_ATTEMPTS
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
        if handling == Handling.ACCOUNT_PAUSE:
            pause = pause or (code, text)
            again(claim, 0, 1, code, text)
        elif handling == Handling.NEEDS_TEMPLATE and not outcome.template:
            again(claim, 0, 1, code, text, template=True)
        elif handling in ATTEMPT_FREE:
            again(claim, retry_delay(handling, claim.attempts), 1, code, text)
        elif handling in RETRIABLE and claim.attempts < max_attempts:
            again(claim, retry_delay(handling, claim.attempts), 0, code, text)
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


# --- finishing and expiry ------------------------------------------------------------------


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
