"""Publishing a post: compare-and-set its status, then fan out in one set-based statement.

"Each person at most once" is the UNIQUE(post, subscriber) index plus ON CONFLICT DO NOTHING;
"publishing twice fans out once" is the status compare-and-set. Celery messages are only
wake-ups: the database says what is left to send, so a lost message never strands a post.
A service here that queues deliveries announces it (signals.senders_needed): the senders are
woken once the transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from channel import clock
from channel.graph.account import is_paused
from channel.graph.errors import Handling, handling_for
from channel.graph.window import window_cutoff
from subscribers.delivery.budget import OverBudget, budget_check, post_estimate
from subscribers.delivery.digest import at_once_condition, waits_for_digest
from subscribers.delivery.payloads import default_template, template_problem
from subscribers.delivery.quiet import quiet_until
from subscribers.delivery.settling import stop_senders
from subscribers.delivery.signals import senders_needed
from subscribers.models import Delivery, Subscriber, Subscription
from topics.audit import record_audit
from topics.models import AuditEntry, Post

PUBLISHABLE = (Post.Status.DRAFT, Post.Status.SCHEDULED)
# A resend skips people for whom another try cannot help (channel.graph.errors).
NOT_RESENT = {Handling.RECIPIENT_UNREACHABLE, Handling.MARKETING_OPT_OUT, Handling.INVALID}


class PublishError(Exception):
    """Publishing was refused; the message is meant for the editor. `figures`: numbers the API
    returns beside it (the budget's)."""

    def __init__(self, message: str, figures: dict | None = None) -> None:
        super().__init__(message)
        self.figures = figures or {}


@dataclass(frozen=True)
class PublishResult:
    post: Post
    recipients: int
    already_published: bool = False
    budget_warning: str = ""  # an urgent post sent over the monthly budget


def audit(*, action: str, post: Post, user=None, token=None, **details) -> None:
    record_audit(
        action=action,
        obj=f"post #{post.pk}: {post.title}",
        user=user,
        token=token,
        details={"post_id": post.pk, **details},
    )


def missing_templates(post: Post, now: datetime | None = None) -> list[str]:
    """Languages of people outside the 24-hour window that have no approved template."""
    outside = _outside_languages(post, now)
    return sorted({lang for lang in outside if default_template(lang) is None})


def _outside_languages(post: Post, now: datetime | None) -> set[str]:
    outside = (
        Subscriber.objects.filter(
            status=Subscriber.Status.ACTIVE,
            subscription__topic__in=post.topics.all(),
        )
        .filter(Q(last_inbound_at__isnull=True) | Q(last_inbound_at__lte=window_cutoff(now)))
        .values_list("language", flat=True)
        .distinct()
    )
    return set(outside)


def template_problems(post: Post, now: datetime | None = None) -> list[str]:
    """Why the templates of the people outside the window cannot carry this post (e.g. a
    link button and a post without a link), one line each; empty when they all can."""
    problems = []
    for language in sorted(_outside_languages(post, now)):
        template = default_template(language)
        problem = template_problem(post, template) if template else ""
        if problem and problem not in problems:
            problems.append(problem)
    return problems


def check_publishable(post: Post, now: datetime | None = None) -> None:
    now = now or timezone.now()
    if post.is_expired(now):
        raise PublishError(
            _("The post expired on %(when)s: it will not be sent.")
            % {"when": timezone.localtime(post.expires_at).strftime("%d/%m/%Y %H:%M")}
        )
    if not post.topics.exists():
        raise PublishError(_("Choose at least one topic."))
    if is_paused():
        raise PublishError(
            _("Sending is paused because of a WhatsApp account problem; resume it first.")
        )
    missing = missing_templates(post, now)
    if missing:
        raise PublishError(
            _(
                "Some subscribers have not written in the last 24 hours and need an approved "
                "template, but there is none for: %(languages)s. Add one under Message templates."
            )
            % {"languages": ", ".join(missing)}
        )
    problems = template_problems(post, now)
    if problems:
        raise PublishError(" ".join(problems))


def fan_out(post: Post) -> int:
    """One INSERT … SELECT DISTINCT: one delivery per distinct active subscriber of any topic
    who gets the post at once; the others wait for the digest (subscribers.delivery.digest)."""
    topic_ids = list(post.topics.values_list("id", flat=True))
    if not topic_ids:
        return 0
    placeholders = ", ".join(["%s"] * len(topic_ids))
    at_once, at_once_params = at_once_condition(post)
    sql = f"""
        INSERT INTO {Delivery._meta.db_table}
            (post_id, subscriber_id, status, used_template, attempts, last_error_text, queued_at)
        SELECT DISTINCT %s, s.subscriber_id, %s, %s, 0, '', %s
        FROM {Subscription._meta.db_table} s
        JOIN {Subscriber._meta.db_table} p ON p.id = s.subscriber_id
        WHERE s.topic_id IN ({placeholders}) AND p.status = %s AND {at_once}
        ON CONFLICT (post_id, subscriber_id) DO NOTHING
    """
    params = [post.pk, Delivery.Status.QUEUED, False, timezone.now(), *topic_ids]
    params += [Subscriber.Status.ACTIVE, *at_once_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _within_budget(post: Post) -> tuple[str, str]:
    """The budget's verdict (subscribers.delivery.budget): ("", "") when the post fits;
    (warning, estimate) for an urgent post over it; a non-urgent one is refused."""
    estimate = post_estimate(post).eur
    try:
        return budget_check(estimate, urgent=post.is_urgent), str(estimate)
    except OverBudget as refusal:
        raise PublishError(str(refusal), figures=refusal.figures) from None


def post_publish(*, post: Post, user=None, token=None, **audit_details) -> PublishResult:
    now = timezone.now()
    with transaction.atomic():
        check_publishable(post, now)
        over_budget, estimate = _within_budget(post)
        started = Post.objects.filter(pk=post.pk, status__in=PUBLISHABLE).update(
            status=Post.Status.SENDING, published_at=now, status_note="", updated_at=now
        )
        if not started:
            post.refresh_from_db()
            return PublishResult(
                post=post, recipients=post.deliveries.count(), already_published=True
            )
        waits = waits_for_digest(post)
        if waits:  # the digest gathers it for the others (subscribers.delivery.digest)
            Post.objects.filter(pk=post.pk).update(waits_for_digest=True)
        recipients = fan_out(post)
        if recipients == 0:
            Post.objects.filter(pk=post.pk).update(
                status=Post.Status.SENT,
                finished_at=now,
                status_note=_("Nobody gets it at once: it waits for the weekly digest.")
                if waits
                else _("Nobody is subscribed to these topics yet."),
            )
        audit(
            action="publish",
            post=post,
            user=user,
            token=token,
            recipients=recipients,
            estimate_eur=estimate,  # the plan's cost, shown beside the actual one afterwards
            **audit_details,
        )
        if over_budget:  # every override of the budget is on the record
            audit(action="budget_override", post=post, user=user, token=token, warning=over_budget)
        if recipients:
            senders_needed.send(sender=Post, post_id=post.pk)
    post.refresh_from_db()
    return PublishResult(post=post, recipients=recipients, budget_warning=over_budget)


def post_schedule(*, post: Post, send_at: datetime | None, user=None, token=None) -> Post:
    """Send at `send_at` (publish_due_posts does it). A time that has passed is refused: whoever
    chose it is told, rather than having the post go out within seconds."""
    if send_at is None:
        raise PublishError(_("Fill in “send at” on the post and save it, then schedule it."))
    if send_at <= timezone.now():
        raise PublishError(
            _("The time in “send at” has passed: choose a later time, or use “Send now”.")
        )
    if not post.topics.exists():
        raise PublishError(_("Choose at least one topic."))
    if post.expires_at and post.expires_at <= send_at:
        raise PublishError(_("The post would expire before it is sent."))
    with transaction.atomic():
        changed = Post.objects.filter(pk=post.pk, status__in=PUBLISHABLE).update(
            status=Post.Status.SCHEDULED, send_at=send_at, status_note=""
        )
        if not changed:
            raise PublishError(_("Only drafts and scheduled posts can be scheduled."))
        audit(action="schedule", post=post, user=user, token=token, send_at=send_at.isoformat())
    post.refresh_from_db()
    return post


def post_unschedule(*, post: Post, user=None, token=None) -> Post:
    """A scheduled post goes back to draft (to be corrected or rescheduled); nothing is sent."""
    with transaction.atomic():
        changed = Post.objects.filter(pk=post.pk, status=Post.Status.SCHEDULED).update(
            status=Post.Status.DRAFT, status_note="", updated_at=timezone.now()
        )
        if not changed:
            raise PublishError(_("Only scheduled posts can be unscheduled."))
        audit(action="unschedule", post=post, user=user, token=token)
    post.refresh_from_db()
    return post


def publish_due_posts(now: datetime | None = None) -> int:
    """Periodic: publish scheduled posts whose time has come; refuse expired ones, saying why."""
    now = now or clock.now()
    published = 0
    if is_paused():  # they stay scheduled and go out once an administrator resumes sending
        return 0
    due = Post.objects.due(now)
    if quiet_until(now) is not None:  # inside quiet hours only urgent posts go; the rest wait
        due = due.filter(is_urgent=True)
    while True:
        with transaction.atomic():
            post = due.select_for_update(skip_locked=True).first()
            if post is None:
                return published
            # Whoever scheduled it answers for it: the log names them, not an anonymous beat.
            scheduled = (
                AuditEntry.objects.filter(action="schedule", details__post_id=post.pk)
                .order_by("-at", "-pk")
                .first()
            )
            try:
                post_publish(
                    post=post,
                    user=scheduled and scheduled.actor,
                    token=scheduled and scheduled.actor_token,
                    trigger="schedule",
                    schedule_entry=scheduled and scheduled.pk,
                )
                published += 1
            except PublishError as refusal:
                status = Post.Status.CANCELLED if post.is_expired(now) else Post.Status.DRAFT
                Post.objects.filter(pk=post.pk).update(
                    status=status, status_note=str(refusal)[:300]
                )


def post_cancel(*, post: Post, user=None, token=None, only_drafts: bool = False) -> int:
    """Stop a post: nothing queued is sent any more, and senders in the middle of a batch hand
    no further request to Meta (settling.stop_senders); what they hold is cancelled when they
    write it back. The post's row is locked first, as the senders and the status webhooks lock
    it before they would queue a row again. Returns how many queued deliveries stopped.

    `only_drafts` (whoever may not publish): the check is part of the compare-and-set, so a
    publisher scheduling the draft at the same moment wins."""
    stoppable = [Post.Status.DRAFT] if only_drafts else [*PUBLISHABLE, Post.Status.SENDING]
    with transaction.atomic():
        changed = Post.objects.filter(pk=post.pk, status__in=stoppable).update(
            status=Post.Status.CANCELLED, finished_at=timezone.now()
        )
        if not changed:
            raise PublishError(
                _("Only a draft can be withdrawn without the right to publish.")
                if only_drafts
                else _("Only drafts, scheduled posts and posts being sent can be cancelled.")
            )
        stopped = Delivery.objects.filter(post=post, status=Delivery.Status.QUEUED).update(
            status=Delivery.Status.CANCELLED
        )
        stop_senders(post.pk)
        audit(action="cancel", post=post, user=user, token=token, stopped=stopped)
    post.refresh_from_db()
    return stopped


def resendable(post: Post) -> QuerySet[Delivery]:
    """Failed deliveries another try can fix, to people still subscribed."""
    failed = Delivery.objects.filter(post=post, status=Delivery.Status.FAILED)
    # Classify the few distinct error codes, not the rows.
    codes = failed.exclude(last_error_code=None).values_list("last_error_code", flat=True)
    retryable = [code for code in set(codes.distinct()) if handling_for(code) not in NOT_RESENT]
    return failed.filter(
        Q(last_error_code__isnull=True) | Q(last_error_code__in=retryable),
        subscriber__status=Subscriber.Status.ACTIVE,
    )


def resend_failed(*, post: Post, user=None) -> int:
    """Queue again the people whose delivery failed for a reason another try can fix."""
    with transaction.atomic():
        post = Post.objects.select_for_update().get(pk=post.pk)
        if post.status not in (Post.Status.SENT, Post.Status.SENDING):
            raise PublishError(_("Only posts that were sent can be resent."))
        if post.is_expired():
            raise PublishError(_("The post has expired: it will not be sent again."))
        # The failed attempt is over: its wamid goes and the attempt number moves on, so Meta
        # repeating that attempt's statuses changes nothing (subscribers.delivery.statuses).
        requeued = resendable(post).update(
            status=Delivery.Status.QUEUED,
            attempts=0,
            attempt_seq=F("attempt_seq") + 1,
            next_attempt_at=None,
            failed_at=None,
            wa_message_id=None,
        )
        if requeued:
            Post.objects.filter(pk=post.pk).update(status=Post.Status.SENDING, finished_at=None)
            senders_needed.send(sender=Post, post_id=post.pk)
        audit(action="resend_failed", post=post, user=user, requeued=requeued)
    return requeued
