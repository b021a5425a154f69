"""One delivery row per post × person, and the rate card that prices it."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from subscribers.models.people import Subscriber
from topics.models import Post


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    DELIVERED = "delivered", _("delivered")
    READ = "read", _("read")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")


class Delivery(models.Model):
    """One post to one person. UNIQUE(post, subscriber) is what makes 'at most once' hold."""

    Status = DeliveryStatus

    # No database FK constraints: their per-row triggers tripled the fan-out time (bench/plan.py).
    # Rows are only ever inserted by the fan-out from existing posts and subscribers, and
    # neither is deleted (PROTECT still holds in the ORM; erasure blanks a person instead).
    # No separate post_id index either: UNIQUE(post, subscriber) serves it.
    post = models.ForeignKey(
        Post,
        on_delete=models.PROTECT,
        related_name="deliveries",
        db_constraint=False,
        db_index=False,
    )
    subscriber = models.ForeignKey(
        Subscriber,
        on_delete=models.PROTECT,
        related_name="deliveries",
        db_constraint=False,
        db_index=False,
    )
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.QUEUED)
    # Unique where set (constraint below): NULL at fan-out time, so inserts do not pay for it.
    wa_message_id = models.CharField(  # noqa: DJ001  (NULL until Meta accepts the message)
        _("WhatsApp message id"), max_length=255, null=True, blank=True
    )
    used_template = models.BooleanField(_("sent as template"), default=False)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # The attempt's number: every claim and every resend move it on, never back (unlike
    # `attempts`, which a resend resets and a throttled try gives back). Our callback reference
    # carries it, so a status of an earlier attempt never applies to a later one
    # (subscribers.delivery.statuses). A database default: the fan-out's INSERT does not name it.
    attempt_seq = models.IntegerField(_("attempt number"), default=0, db_default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error_code = models.IntegerField(_("last error code"), null=True, blank=True)
    last_error_text = models.TextField(_("last error"), blank=True)
    queued_at = models.DateTimeField(_("queued at"), auto_now_add=True)
    sending_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)
    failed_at = models.DateTimeField(_("failed at"), null=True, blank=True)
    # What Meta's status webhooks say about the price (https://developers.facebook.com/docs/
    # whatsapp/pricing): NULL until one says it, so the fan-out's INSERT pays nothing for them.
    billable = models.BooleanField(_("billable"), null=True, blank=True)
    pricing_category = models.CharField(_("pricing category"), max_length=32, null=True)  # noqa: DJ001
    pricing_model = models.CharField(_("pricing model"), max_length=8, null=True)  # noqa: DJ001
    pricing_type = models.CharField(_("pricing type"), max_length=32, null=True)  # noqa: DJ001

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        constraints = [
            models.UniqueConstraint(fields=["post", "subscriber"], name="one_delivery_per_person"),
            models.CheckConstraint(
                condition=Q(status__in=DeliveryStatus.values), name="delivery_status_valid"
            ),
            models.UniqueConstraint(
                fields=["wa_message_id"],
                condition=Q(wa_message_id__isnull=False),
                name="delivery_wamid_unique",
            ),
        ]
        indexes = [
            # Workers claim queued rows of a post in id order.
            models.Index(
                fields=["post", "id"], condition=Q(status="queued"), name="delivery_queued_idx"
            ),
            # The sweeper finds rows in flight for too long; empty at fan-out, so free there.
            models.Index(
                fields=["sending_at"], condition=Q(status="sending"), name="delivery_in_flight_idx"
            ),
            # Retries waiting for their time (the finish estimate's latest, the next one due):
            # a few rows, and none at fan-out (next_attempt_at is NULL), so free there.
            models.Index(
                fields=["post", "next_attempt_at"],
                condition=Q(status="queued", next_attempt_at__isnull=False),
                name="delivery_retry_idx",
            ),
            # Failures by Meta's code (one row's text per code for the failures table).
            models.Index(
                fields=["post", "last_error_code"],
                condition=Q(status="failed"),
                name="delivery_failed_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.post_id} → {self.subscriber_id} ({self.status})"


class Rate(models.Model):
    """Meta's price of one billable message of a category to a country, from a date on
    (https://developers.facebook.com/docs/whatsapp/pricing); subscribers.delivery.costs reads it."""

    class Category(models.TextChoices):
        MARKETING = "marketing", _("marketing")
        UTILITY = "utility", _("utility")
        AUTHENTICATION = "authentication", _("authentication")
        SERVICE = "service", _("service (free-form inside the 24-hour window)")

    category = models.CharField(_("category"), max_length=32, choices=Category)
    country_code = models.CharField(
        _("country calling code"),
        max_length=3,
        blank=True,
        validators=[RegexValidator(r"^[1-9][0-9]{0,2}$", _("Digits only, e.g. 39 for Italy."))],
        help_text=_("Without + (39 for Italy); empty: every country without a rate of its own."),
    )
    price_eur = models.DecimalField(_("price (EUR)"), max_digits=8, decimal_places=4)
    valid_from = models.DateField(_("valid from"))

    class Meta:
        verbose_name = _("WhatsApp rate")
        verbose_name_plural = _("WhatsApp rate card")
        ordering = ["country_code", "category", "-valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["category", "country_code", "valid_from"], name="one_rate_per_day"
            ),
            models.CheckConstraint(condition=Q(price_eur__gte=0), name="rate_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.category} +{self.country_code or '*'} {self.price_eur} € ({self.valid_from})"
