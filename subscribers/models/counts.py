"""Figures kept so that screens never count a million rows: per topic, per post, per day."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from topics.models import Post, Topic


class TopicCount(models.Model):
    """Active subscribers per topic (and in all, topic NULL) on a day, kept for the dashboard's
    trend. The consent ledger cannot rebuild this honestly: leaving removes every topic without
    naming them, staff can edit subscriptions, and "unreachable" is not a ledger event. A beat
    task rewrites today's rows every hour, so each day keeps its last count."""

    day = models.DateField(_("day"))
    topic = models.ForeignKey(
        Topic, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    subscribers = models.PositiveIntegerField(_("active subscribers"))
    taken_at = models.DateTimeField(_("counted at"))

    class Meta:
        verbose_name = _("daily subscriber count")
        verbose_name_plural = _("daily subscriber counts")
        constraints = [
            models.UniqueConstraint(
                fields=["day", "topic"],
                condition=Q(topic__isnull=False),
                name="one_count_per_topic_day",
            ),
            models.UniqueConstraint(
                fields=["day"], condition=Q(topic__isnull=True), name="one_total_count_per_day"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.topic_id or 'all'}: {self.subscribers}"


class PostCount(models.Model):
    """A post's deliveries by status (failed ones by Meta's error code too), as signed deltas
    that add up: triggers on the delivery table insert them in the same transaction as every
    change (migration 0013_post_counters), so the progress panel and the dashboard never count
    a post's rows. subscribers.delivery.counters reads, folds and recounts them."""

    # No FK constraint (its per-row check on every delta) and no index of its own: the one
    # below serves the post. Deleting a post deletes its counts through the ORM.
    post = models.ForeignKey(
        Post, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    status = models.CharField(max_length=16)
    error_code = models.IntegerField(null=True, blank=True)
    n = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["post", "status"], name="postcount_post_idx")]

    def __str__(self) -> str:
        return f"{self.post_id} {self.status} {self.error_code or ''}: {self.n:+d}"


class ActiveCount(models.Model):
    """Active subscribers, as signed deltas that add up: triggers on the subscriber table insert
    them in the same transaction as every change of status (migration 0016_active_count), so
    the dashboard's "active now" is exact without counting a million rows
    (subscribers.delivery.counters.active_subscribers)."""

    n = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.n:+d}"


class DashboardFigure(models.Model):
    """A dashboard figure that grows with the audience, kept once counted
    (subscribers.dashboard.queries): joins and leaves per day before today (beat), a post's
    leaves within 24 hours once those hours are over (final)."""

    key = models.CharField(max_length=64, unique=True)
    value = models.JSONField()
    taken_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.key
