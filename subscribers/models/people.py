"""Citizens, the topics they chose, the consent ledger, and a CSV import's scratch rows."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from channel.identity import USER_ID_MAX_LENGTH
from topics.models import Topic


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
