"""The weekly digest: who waits for it, and gathering the waiting posts into one digest.

The rule (README, "The weekly digest"). A post that is not urgent waits for the digest when it
is on a digest topic, or its editor chose "in the weekly digest", for the people whose choice
is the weekly digest (their own, else BANDITORE_DIGEST_DEFAULT); everyone else gets it at once,
and so does whoever follows one of the post's immediate topics. Each person gets each post at
most once: at once (its own delivery row), or in the digest, which leaves out the posts the
person already has a row for.

A digest is itself a Post (kind=digest) with one Delivery per person, so the sending engine,
the progress, the results and the desk treat it like any other post; the text is rendered per
person at send time (subscribers.delivery.digest_render). At most one digest per period: the
UNIQUE(digest_of) of digests, with UNIQUE(post, subscriber) of deliveries, holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from channel import clock
from subscribers.delivery.audience import audience_for_topics
from subscribers.delivery.signals import senders_needed
from subscribers.models import Delivery, DigestPreference, Subscriber, Subscription
from topics.audit import record_audit
from topics.models import Post, Topic

# Published posts may be gathered; a cancelled one is not.
GATHERED_STATUSES = (Post.Status.SENDING, Post.Status.SENT)


def immediate_preferences() -> list[str]:
    """The stored choices that mean "everything at once" ("" follows the council's default)."""
    values = [DigestPreference.IMMEDIATE.value]
    if settings.BANDITORE_DIGEST_DEFAULT == DigestPreference.IMMEDIATE:
        values.append(DigestPreference.COUNCIL_DEFAULT.value)
    return values


def waits_for_digest(post: Post) -> bool:
    """Whether some readers of this post get it in the digest rather than at once."""
    if post.is_urgent or post.kind == Post.Kind.DIGEST:
        return False
    if post.delivery == Post.Delivery.IMMEDIATE:
        return False
    if post.delivery == Post.Delivery.DIGEST:
        return True
    return post.topics.filter(delivery=Topic.Delivery.DIGEST).exists()


def at_once_condition(post: Post) -> tuple[str, list]:
    """SQL on the fan-out's subscription `s` and subscriber `p`: who of the audience gets the
    post at once. ("TRUE", []) when everyone does."""
    if not waits_for_digest(post):
        return "TRUE", []
    preferences = immediate_preferences()
    condition = f"p.digest_preference IN ({', '.join(['%s'] * len(preferences))})"
    params: list = list(preferences)
    if post.delivery != Post.Delivery.DIGEST:
        immediate = list(
            post.topics.filter(delivery=Topic.Delivery.IMMEDIATE).values_list("id", flat=True)
        )
        if immediate:
            condition += f" OR s.topic_id IN ({', '.join(['%s'] * len(immediate))})"
            params += immediate
    return f"({condition})", params


def at_once_audience(post: Post) -> QuerySet[Subscriber]:
    """The people who get this post at once (the plan's reach), as a queryset."""
    topic_ids = list(post.topics.values_list("id", flat=True))
    audience = audience_for_topics(topic_ids)
    if not waits_for_digest(post):
        return audience
    immediate = []
    if post.delivery != Post.Delivery.DIGEST:
        immediate = post.topics.filter(delivery=Topic.Delivery.IMMEDIATE).values("id")
    follows = Subscription.objects.filter(subscriber=OuterRef("pk"), topic_id__in=immediate)
    return audience.filter(Q(digest_preference__in=immediate_preferences()) | Exists(follows))


def later_count(post: Post) -> int:
    """People who will get this post in the next digest rather than at once (the plan)."""
    if not waits_for_digest(post):
        return 0
    condition, params = at_once_condition(post)
    topic_ids = list(post.topics.values_list("id", flat=True))
    sql = f"""
        SELECT COUNT(*) FROM {Subscriber._meta.db_table} p
        WHERE p.status = %s
          AND EXISTS (SELECT 1 FROM {Subscription._meta.db_table} s
                      WHERE s.subscriber_id = p.id AND s.topic_id IN ({_marks(topic_ids)}))
          AND NOT EXISTS (SELECT 1 FROM {Subscription._meta.db_table} s
                          WHERE s.subscriber_id = p.id AND s.topic_id IN ({_marks(topic_ids)})
                            AND {condition})
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [Subscriber.Status.ACTIVE, *topic_ids, *topic_ids, *params])
        return cursor.fetchone()[0]


def _marks(values: list) -> str:
    return ", ".join(["%s"] * len(values)) or "NULL"


def waiting_posts() -> QuerySet[Post]:
    """Published posts some readers still wait for, not gathered in a digest yet."""
    return Post.objects.filter(
        kind=Post.Kind.POST,
        waits_for_digest=True,
        digest__isnull=True,
        status__in=GATHERED_STATUSES,
    )


def digest_fan_out(digest: Post, now: datetime) -> int:
    """ONE statement for the whole audience: a delivery of the digest for every active person
    following a topic of a gathered post (not expired) they have no delivery of. The content
    is not stored: it is rendered per person at send time.

    The gathered posts are named by id (a dozen a week), and the check for an earlier delivery
    is written only for those that have any (a post on digest topics alone, for people who all
    chose the digest, has none): the planner then keeps the bare statement's plan, where the
    check made it scan the subscriptions in person order (bench/digest.py)."""
    gathered = list(
        Post.objects.filter(digest=digest)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .values_list("id", flat=True)
    )
    if not gathered:
        return 0
    sent = [pk for pk in gathered if Delivery.objects.filter(post_id=pk).exists()]
    already = ""
    if sent:
        already = f"""AND NOT EXISTS (SELECT 1 FROM {Delivery._meta.db_table} d
                          WHERE d.post_id IN ({_marks(sent)}) AND d.post_id = pt.post_id
                            AND d.subscriber_id = s.subscriber_id)"""
    sql = f"""
        INSERT INTO {Delivery._meta.db_table}
            (post_id, subscriber_id, status, used_template, attempts, last_error_text, queued_at)
        SELECT DISTINCT %s, s.subscriber_id, %s, %s, 0, '', %s
        FROM {Subscription._meta.db_table} s
        JOIN {Post.topics.through._meta.db_table} pt ON pt.topic_id = s.topic_id
        JOIN {Subscriber._meta.db_table} p ON p.id = s.subscriber_id
        WHERE pt.post_id IN ({_marks(gathered)}) AND p.status = %s {already}
        ON CONFLICT (post_id, subscriber_id) DO NOTHING
    """
    params = [digest.pk, Delivery.Status.QUEUED, False, now, *gathered]
    params += [Subscriber.Status.ACTIVE, *sent]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


@dataclass(frozen=True)
class DigestResult:
    digest: Post | None
    recipients: int
    gathered: int = 0
    already_made: bool = False
    refused: str = ""  # over the monthly budget: why, with the figures


def digest_publish(now: datetime | None = None, *, user=None) -> DigestResult:
    """The digest of the period that `now` falls in (the council's day): gather the waiting
    posts, fan out, wake the senders. Safe to run twice: a second run for the same period
    finds the digest made and only wakes its senders. Nothing waiting: no digest at all.
    Over the monthly budget (subscribers.delivery.budget) nothing is made, the posts keep
    waiting, and the refusal is audited with its figures."""
    # The budget prices posts by this module's rule (at_once_condition): imported here.
    from subscribers.delivery.budget import OverBudget

    now = now or clock.now()
    try:
        return _digest_publish(now, user)
    except OverBudget as refusal:
        period = timezone.localdate(now).isoformat()
        record_audit(
            action="digest_refused",
            obj=f"digest of {period}",
            user=user,
            details={"reason": str(refusal), **refusal.figures},
        )
        return DigestResult(None, 0, refused=str(refusal))


def _digest_publish(now: datetime, user) -> DigestResult:
    from subscribers.delivery.budget import budget_check, committed_estimate

    period = timezone.localdate(now)
    with transaction.atomic():
        made = Post.objects.filter(kind=Post.Kind.DIGEST, digest_of=period).first()
        if made is not None:
            if made.status == Post.Status.SENDING:
                senders_needed.send(sender=Post, post_id=made.pk)
            return DigestResult(made, made.deliveries.count(), already_made=True)
        if not waiting_posts().exists():
            return DigestResult(None, 0)
        try:
            with transaction.atomic():
                digest = Post.objects.create(
                    kind=Post.Kind.DIGEST,
                    digest_of=period,
                    title=_("Weekly digest of %(date)s") % {"date": period.strftime("%d/%m/%Y")},
                    body=_("The posts that waited for the digest: each person gets their topics'."),
                    status=Post.Status.SENDING,
                    published_at=now,
                    author=user,
                )
        except IntegrityError:  # another run made this period's digest at the same moment
            made = Post.objects.get(kind=Post.Kind.DIGEST, digest_of=period)
            return DigestResult(made, made.deliveries.count(), already_made=True)
        gathered = waiting_posts().update(digest=digest)
        digest.topics.set(Topic.objects.filter(posts__digest=digest).distinct())
        recipients = digest_fan_out(digest, now)
        estimate = committed_estimate(now, post_id=digest.pk).eur
        budget_check(estimate, urgent=False, now=now, excluding=digest.pk)  # may roll it back
        if recipients == 0:
            Post.objects.filter(pk=digest.pk).update(
                status=Post.Status.SENT,
                finished_at=now,
                status_note=_("Nobody had anything new: everyone already had these posts."),
            )
        record_audit(
            action="digest",
            obj=f"post #{digest.pk}: {digest.title}",
            user=user,
            details={
                "post_id": digest.pk,
                "gathered": gathered,
                "recipients": recipients,
                "estimate_eur": str(estimate),  # the plan, beside the actual cost afterwards
            },
        )
        if recipients:
            senders_needed.send(sender=Post, post_id=digest.pk)
    digest.refresh_from_db()
    return DigestResult(digest, recipients, gathered=gathered)


def gathered_posts(digest: Post) -> QuerySet[Post]:
    return Post.objects.filter(digest=digest).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=clock.now())
    )
