"""Sending a post's deliveries: claim a small batch, send it at the shared rate, settle it.

- Claims are `FOR UPDATE SKIP LOCKED` + a compare-and-set to `sending`, so any number of
  workers on any number of machines share the work without overlap.
- One Redis rate limiter for the phone number (channel.graph.ratelimit), shared by every
  process: a sender reserves a few slots at a time and each message leaves at its own slot.
- A batch's requests are all in flight at once on the process's event loop
  (channel.graph.client), and a sender keeps two batches being paced while earlier ones wait
  for their answers; answers are written back (subscribers.delivery.settling) as they come, so
  one slow request never holds the others (subscribers.delivery.inflight).
- Each message carries our reference (channel.graph.callbacks) with the attempt's number,
  which Meta echoes in its statuses: that is how a message that got no answer is settled
  without being resent, and why an earlier attempt's status never settles a later one.
- A cancel stops a batch between two requests: each request first checks the post's stop flag
  (settling.stop_senders); what was not handed to Meta yet is cancelled when written back.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from channel import clock
from channel.graph.account import is_paused
from channel.graph.callbacks import delivery_reference
from channel.graph.client import get_client
from channel.graph.media import MediaUploadError
from channel.graph.payloads import add_callback, by_media_id
from channel.graph.ratelimit import (
    Lane,
    UniqueRecipientWindow,
    get_send_limiter,
    get_tier_window,
)
from channel.graph.window import in_window
from channel.models import MessageTemplate
from channel.redis_client import redis_client
from subscribers.delivery.digest_render import PersonalDigest, personal_digests
from subscribers.delivery.inflight import Batch, Flight
from subscribers.delivery.media import media_hold, post_media_id
from subscribers.delivery.payloads import (
    Recipient,
    TemplateMismatch,
    default_template,
    free_form_payload,
    template_payload,
)
from subscribers.delivery.quiet import quiet_until
from subscribers.delivery.settling import (
    Claimed,
    Outcome,
    expire_post,
    finish_if_done,
    senders_stopped,
)
from subscribers.models import Delivery, Subscriber
from topics.models import Post

logger = logging.getLogger(__name__)


# --- claiming ------------------------------------------------------------------------------


def claim_batch(post_id: int, size: int, now: datetime | None = None) -> list[Claimed]:
    """Lock up to `size` due rows nobody else holds, then move them to `sending`. Two
    statements in one transaction: the locked ids are fixed before the UPDATE runs. Each
    claim is a new attempt: a new number, and no message id until Meta gives one."""
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
            status=Delivery.Status.SENDING,
            sending_at=now,
            attempts=F("attempts") + 1,
            attempt_seq=F("attempt_seq") + 1,
            wa_message_id=None,
        )
        rows = Delivery.objects.filter(id__in=ids, sending_at=now).values_list(
            "id", "subscriber_id", "attempts", "used_template", "post_id", "attempt_seq"
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
    media_id: str = ""  # the post's file, uploaded once (subscribers.delivery.media)
    digest: PersonalDigest | None = None  # a digest's post rendered for this person


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
        wait = ctx.tier.admit(recipient.to)
        if wait > 0:  # messaging-limit tier reached: continue when the window allows
            return Outcome(claimed, held=("queued", wait, None, "messaging limit reached"))
        post = ctx.post
        if ctx.digest is not None:
            post = ctx.digest.for_template(template, claimed.subscriber_id, recipient.language)
        try:
            payload = template_payload(post, recipient, template)
        except TemplateMismatch as exc:  # publishing checks it; the template changed since
            return Outcome(claimed, held=("failed", 0, None, str(exc)[:300]))
    else:
        payload = free_form_payload(ctx.post, recipient)
    if ctx.media_id:
        by_media_id(payload, ctx.media_id)
    return add_callback(payload, delivery_reference(claimed.id, claimed.seq)), use_template


def _sendable(post_id: int) -> Post | float | None:
    """The post when it may send now; else None (no longer sending, or expired just now) or
    the seconds to wait (sending paused, or quiet hours until their end)."""
    post = Post.objects.filter(pk=post_id).first()
    if post is None or post.status != Post.Status.SENDING:
        return None
    if post.is_expired():
        expire_post(post)
        return None
    if is_paused():
        return float(settings.BANDITORE_PAUSED_RETRY_SECONDS)
    now = clock.now()
    resumes = quiet_until(now, urgent=post.is_urgent)
    if resumes is not None:  # rows stay queued; the sweeper wakes the post once they end
        return max(1.0, (resumes - now).total_seconds())
    return post


# How late a sender may learn that its post was cancelled: the check before each request
# asks Redis at most this often, so at 1,000 messages/s it costs 50 reads a second, not 1,000.
STOP_POLL_SECONDS = 0.02


class _StopCheck:
    """Whether the post stopped (cancelled, expired) since its batch was claimed. Called on
    the event loop right before each request; one instance per batch."""

    def __init__(self, post_id: int) -> None:
        self.post_id = post_id
        self.stopped = False
        self.next_look = 0.0

    def __call__(self) -> bool:
        if not self.stopped and time.monotonic() >= self.next_look:
            self.stopped = senders_stopped(self.post_id)
            self.next_look = time.monotonic() + STOP_POLL_SECONDS
        return self.stopped


def _start_batch(post: Post, size: int, wake: threading.Event | None = None) -> Batch:
    """Claim up to `size` due rows and put their requests in flight, all at once (the API
    answers in ~100 ms or more, so the rate needs that many in flight), each leaving at its
    own slot of the one limiter. `wake` is set when the batch has something to write back."""
    batch = Batch(claim_batch(post.pk, size), [], [], wake=wake)
    batch.paced_at = batch.started  # until requests are handed to the client
    if not batch.claimed:
        return batch
    try:
        media_id = post_media_id(post)  # one SELECT once uploaded; the first batch uploads
    except MediaUploadError as error:
        hold = media_hold(error)
        batch.outcomes += [Outcome(claim, held=hold) for claim in batch.claimed]
        return batch
    recipients = _recipients(batch.claimed)
    languages = {r.language for r in recipients.values()}
    ctx = _Context(
        post=post,
        templates={lang: default_template(lang) for lang in languages},
        tier=get_tier_window(),
        media_id=media_id,
    )
    digests = None  # a digest's text is each person's own (subscribers.delivery.digest_render)
    if post.kind == Post.Kind.DIGEST:
        digests = personal_digests(post, {p: r.language for p, r in recipients.items()})
    for claim in batch.claimed:
        recipient = recipients.get(claim.subscriber_id)
        if digests is not None and recipient is not None:
            mine = digests.get(claim.subscriber_id)
            if mine is None:  # all it held reached them otherwise since
                batch.outcomes.append(Outcome(claim, held=("cancelled", 0, None, "nothing new")))
                continue
            ready = _prepare(replace(ctx, post=mine.free_form, digest=mine), claim, recipient)
        else:
            ready = _prepare(ctx, claim, recipient)
        if isinstance(ready, Outcome):
            batch.outcomes.append(ready)
        else:
            batch.prepared.append((claim, *ready))
    if batch.prepared:
        limiter, client = get_send_limiter(), get_client()
        batch.paced_at, batch.unanswered = None, len(batch.prepared)
        # Past this something is wrong (each request has its own timeout): give up like a
        # crash would, rows stay in `sending` for the statuses or the sweeper to settle.
        batch.wait_limit = 4 * len(batch.prepared) / limiter.bulk_rate + client.timeout + 60
        batch.future = client.submit(
            [payload for _, payload, _ in batch.prepared],
            lambda count: limiter.reserve(Lane.BULK, count, max_ahead=limiter.MAX_AHEAD),
            chunk=limiter.chunk(Lane.BULK),
            stop=_StopCheck(post.pk),
            answered=batch.answered,
        )
    return batch


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

    The next batch is claimed as soon as one has handed its requests over, and answers are
    written back as they come (subscribers.delivery.inflight): the sender never leaves its
    share of the rate unused while it waits for the API, a slow answer or the database."""
    budget = budget_seconds or settings.BANDITORE_SEND_BUDGET_SECONDS
    deadline = timezone.now() + timedelta(seconds=budget)
    flight = Flight(settings.BANDITORE_SEND_BATCH)
    carried = False
    try:
        while True:
            if flight.claimed and timezone.now() >= deadline:
                # Budget spent with work left: a fresh task goes on at once, and requests
                # still unanswered are left to the next sender in this process.
                flight.settle_answered()
                carried = True
                return 0.0
            if not flight.has_room():
                flight.write_back(until_room=True)
                continue
            mark_sender_alive(post_id)
            post = _sendable(post_id)
            if isinstance(post, Post):
                batch = _start_batch(post, flight.size, flight.wake)
                if batch.claimed:
                    flight.add(batch)
                    continue
            if flight.batches:
                # Nothing to claim now: what is written back may queue rows again (131047).
                flight.write_back(until_room=False)
                continue
            retry = next_due_in(post_id) if isinstance(post, Post) else post
            if retry is None:
                finish_if_done(post_id)
                return None
            if retry > 0:
                return retry
            return 0.5  # due rows that other senders hold: look again shortly
    finally:
        if not carried:
            flight.finish()


# A sender chain marks the post while it works, so the sweeper (subscribers.delivery.sweeper)
# only wakes senders for posts nobody is sending (a lost Celery message), instead of adding
# chains every minute.
SENDER_HEARTBEAT_SECONDS = 120


def _heartbeat_key(post_id: int) -> str:
    return f"banditore:subscribers:sender:{post_id}"


def mark_sender_alive(post_id: int) -> None:
    redis_client().set(_heartbeat_key(post_id), 1, ex=SENDER_HEARTBEAT_SECONDS)


def sender_alive(post_id: int) -> bool:
    return bool(redis_client().exists(_heartbeat_key(post_id)))
