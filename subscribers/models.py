"""Citizens, the topics they chose, the consent ledger, and one delivery row per post × person."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from channel.identity import USER_ID_MAX_LENGTH
from topics.models import Post, Topic


def mask_phone(wa_id: str) -> str:
    """+39 333 ••• ••12: enough for staff to recognise a number, not to copy it."""
    import phonenumbers

    try:
        number = phonenumbers.parse("+" + wa_id)
        country, national = str(number.country_code), str(number.national_number)
    except phonenumbers.NumberParseException:
        country, national = "", wa_id
    tail = national[-2:] if len(national) > 5 else ""
    head = national[:3] if len(national) > 7 else ""
    return " ".join(
        part for part in (f"+{country}" if country else "", head, "•••", f"••{tail}") if part
    )


class SubscriberStatus(models.TextChoices):
    PENDING = "pending", _("waiting for consent")
    ACTIVE = "active", _("active")
    LEFT = "left", _("left")
    UNREACHABLE = "unreachable", _("unreachable")
    ERASED = "erased", _("erased")


class DigestPreference(models.TextChoices):
    COUNCIL_DEFAULT = "", _("as the council sets (BANDITORE_DIGEST_DEFAULT)")
    IMMEDIATE = "immediate", _("everything at once")
    WEEKLY = "weekly", _("a weekly digest")


class Subscriber(models.Model):
    Status = SubscriberStatus
    DigestPreference = DigestPreference

    # Which status may follow which; anything else is a bug in the caller.
    TRANSITIONS: dict[str, set[str]] = {
        Status.PENDING: {Status.ACTIVE, Status.LEFT, Status.ERASED},
        Status.ACTIVE: {Status.LEFT, Status.UNREACHABLE, Status.ERASED},
        Status.LEFT: {Status.PENDING, Status.ACTIVE, Status.ERASED},
        Status.UNREACHABLE: {Status.PENDING, Status.ACTIVE, Status.LEFT, Status.ERASED},
        Status.ERASED: set(),
    }

    class Language(models.TextChoices):
        ITALIAN = "it", "Italiano"
        ENGLISH = "en", "English"

    # E.164 digits without "+", as Meta's wa_id; null once erased or when only user_id is known.
    wa_id = models.CharField(  # noqa: DJ001  (NULL, not "", so UNIQUE allows many absent)
        _("phone"), max_length=15, unique=True, null=True, blank=True
    )
    # Business-scoped user id: Meta's usernames mean some people come without a phone number.
    user_id = models.CharField(  # noqa: DJ001  (NULL, not "", so UNIQUE allows many absent)
        _("WhatsApp user id"), max_length=USER_ID_MAX_LENGTH, unique=True, null=True, blank=True
    )
    language = models.CharField(
        _("language"), max_length=2, choices=Language, default=Language.ITALIAN
    )
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.PENDING)
    last_inbound_at = models.DateTimeField(
        _("last message from them"),
        null=True,
        blank=True,
        db_index=True,
        help_text=_("Free-form messages are allowed for 24 hours after this."),
    )
    last_autoreply_at = models.DateTimeField(null=True, blank=True, editable=False)
    marketing_opt_out = models.BooleanField(_("refuses marketing messages"), default=False)
    # When the person chose what marketing_opt_out says (the `user_preferences` webhook's own
    # timestamp): Meta may deliver a stop and a resume out of order, or again for up to 7 days.
    marketing_preference_at = models.DateTimeField(null=True, blank=True, editable=False)
    # "" until the person chooses: the council's default applies, and follows it if it changes.
    digest_preference = models.CharField(
        _("posts of digest topics"),
        max_length=10,
        choices=DigestPreference,
        blank=True,
        default=DigestPreference.COUNCIL_DEFAULT,
        db_default=DigestPreference.COUNCIL_DEFAULT,
    )
    conversation_state = models.CharField(max_length=32, blank=True, editable=False)
    conversation_context = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(_("joined at"), auto_now_add=True)
    consented_at = models.DateTimeField(_("consent given at"), null=True, blank=True)
    left_at = models.DateTimeField(_("left at"), null=True, blank=True)
    topics = models.ManyToManyField(
        Topic, through="Subscription", related_name="subscribers", verbose_name=_("topics")
    )

    class Meta:
        verbose_name = _("subscriber")
        verbose_name_plural = _("subscribers")
        ordering = ["-created_at"]
        permissions = [
            ("view_full_number", _("Can see subscribers' full phone numbers")),
            ("import_subscribers", _("Can import subscribers from a CSV file")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(wa_id__isnull=False) | Q(user_id__isnull=False) | Q(status="erased"),
                name="subscriber_has_identity",
            ),
            models.CheckConstraint(
                condition=Q(wa_id__isnull=True) | Q(wa_id__regex=r"^[1-9][0-9]{6,14}$"),
                name="subscriber_wa_id_e164_digits",
            ),
            models.CheckConstraint(
                condition=Q(status__in=SubscriberStatus.values), name="subscriber_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="erased") | (Q(wa_id__isnull=True) & Q(user_id__isnull=True)),
                name="erased_subscriber_has_no_identity",
            ),
        ]
        indexes = [models.Index(fields=["status"], name="subscriber_status_idx")]

    def __str__(self) -> str:
        return self.masked_number

    def shown_number(self, *, full: bool) -> str:
        """The whole number for staff allowed to see it, otherwise masked."""
        return f"+{self.wa_id}" if full and self.wa_id else self.masked_number

    @property
    def masked_number(self) -> str:
        if self.wa_id:
            return mask_phone(self.wa_id)
        if self.user_id:
            return f"@•••{self.user_id[-4:]}"
        return str(_("(erased)"))

    def can_become(self, status: str) -> bool:
        return status in self.TRANSITIONS[self.status]


class Subscription(models.Model):
    class Source(models.TextChoices):
        CHAT = "chat", _("WhatsApp chat")
        IMPORT = "import", _("import")
        API = "api", _("API")
        ADMIN = "admin", _("admin")

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE)
    topic = models.ForeignKey(Topic, on_delete=models.PROTECT, verbose_name=_("topic"))
    created_at = models.DateTimeField(_("since"), auto_now_add=True)
    source = models.CharField(_("how"), max_length=8, choices=Source, default=Source.CHAT)

    class Meta:
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "topic"], name="one_subscription_per_topic"
            )
        ]
        # Fan-out reads subscriptions by topic.
        indexes = [models.Index(fields=["topic", "subscriber"], name="subscription_topic_idx")]

    def __str__(self) -> str:
        return f"{self.subscriber} → {self.topic}"


# Ledger events that change whether someone is a subscriber (the dashboard's joins and leaves).
CONSENT_STATE_KINDS = ["consent", "import", "leave", "erasure"]


class ConsentEvent(models.Model):
    """Append-only ledger: what a person agreed to, when, and the message that proves it."""

    class Kind(models.TextChoices):
        JOIN = "join", _("asked to join")
        CONSENT = "consent", _("accepted the privacy notice")
        REFUSAL = "refusal", _("refused the privacy notice")
        TOPIC_ADDED = "topic_added", _("added a topic")
        TOPIC_REMOVED = "topic_removed", _("removed a topic")
        LEAVE = "leave", _("left the channel")
        ERASURE = "erasure", _("asked to erase their data")
        IMPORT = "import", _("imported from an existing list")
        MARKETING_STOP = "marketing_stop", _("stopped marketing messages")
        MARKETING_RESUME = "marketing_resume", _("resumed marketing messages")
        NUMBER_CHANGED = "number_changed", _("changed their WhatsApp number")
        DIGEST_WEEKLY = "digest_weekly", _("chose the weekly digest")
        DIGEST_IMMEDIATE = "digest_immediate", _("chose everything at once")

    # PROTECT: a subscriber with a ledger is never deleted; erasure blanks their identity instead.
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.PROTECT, null=True, blank=True, related_name="consent_events"
    )
    kind = models.CharField(_("event"), max_length=20, choices=Kind)
    topic = models.ForeignKey(
        Topic, on_delete=models.PROTECT, null=True, blank=True, verbose_name=_("topic")
    )
    wa_message_id = models.CharField(_("proof (WhatsApp message id)"), max_length=255, blank=True)
    privacy_version = models.CharField(_("privacy notice version"), max_length=32, blank=True)
    source = models.CharField(_("source"), max_length=8, choices=Subscription.Source)
    # Imports have no WhatsApp message as proof: where and when the list says consent was given.
    note = models.CharField(_("note"), max_length=200, blank=True)
    at = models.DateTimeField(_("when"), db_index=True)

    class Meta:
        verbose_name = _("consent event")
        verbose_name_plural = _("consent ledger")
        ordering = ["-at", "-id"]
        # Partial (a minority of rows) and covering (index-only scans): joins and leaves per
        # week are read by time, and each one's previous event per person (bench/dashboard.py).
        indexes = [
            models.Index(
                fields=["at", "subscriber", "kind"],
                condition=Q(kind__in=CONSENT_STATE_KINDS),
                name="consent_state_by_time_idx",
            ),
            models.Index(
                fields=["subscriber", "at", "id", "kind"],
                condition=Q(kind__in=CONSENT_STATE_KINDS),
                name="consent_state_by_person_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.get_kind_display()}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("the consent ledger is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("the consent ledger is append-only")


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


class ImportRow(models.Model):
    """Scratch space of a CSV import in progress: checked lines wait here until the whole file
    is known to be valid, then set-based statements merge them; deleted in the same
    transaction, so the table is empty outside an import."""

    batch = models.CharField(max_length=32)
    line = models.PositiveIntegerField()
    wa_id = models.CharField(max_length=15)
    consented_at = models.DateTimeField()
    note = models.CharField(max_length=200)
    # One row per topic of the line; NULL means every active topic.
    topic = models.ForeignKey(
        Topic,
        on_delete=models.DO_NOTHING,
        null=True,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )

    # No index: imports run one at a time and read the whole table, so an index would only
    # slow down the COPY that fills it.

    def __str__(self) -> str:
        return f"{self.batch}:{self.line}"
