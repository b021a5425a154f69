"""WhatsApp I/O records: raw webhook archive, inbound dedup, service-message log, templates."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from channel.identity import USER_ID_MAX_LENGTH


class InboundEvent(models.Model):
    """Every webhook POST exactly as received: Meta offers no way to fetch past webhooks."""

    received_at = models.DateTimeField(_("received at"), auto_now_add=True, db_index=True)
    body = models.TextField(_("raw body"))
    signature_valid = models.BooleanField(_("signature valid"), default=False)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    problems = models.TextField(_("problems found while parsing"), blank=True)

    class Meta:
        verbose_name = _("inbound webhook")
        verbose_name_plural = _("inbound webhooks")
        ordering = ["-received_at"]
        # The simulator signs webhooks as a citizen: a right of its own, for administrators.
        permissions = [("use_simulator", _("Can play a citizen in the chat simulator"))]
        indexes = [
            # The processor's claim (oldest unprocessed first) reads only pending rows: without
            # it every claim walks the whole archive, which is never pruned.
            models.Index(
                fields=["id"],
                condition=Q(processed_at__isnull=True, signature_valid=True),
                name="inboundevent_pending",
            )
        ]

    def __str__(self) -> str:
        return f"webhook #{self.pk} {self.received_at:%Y-%m-%d %H:%M:%S}"


class InboundMessage(models.Model):
    """One citizen message; unique on its wamid so Meta's retries (up to 7 days) are harmless."""

    wamid = models.CharField(_("WhatsApp message id"), max_length=255, unique=True)
    event = models.ForeignKey(InboundEvent, on_delete=models.PROTECT, related_name="messages")
    wa_id = models.CharField(_("sender phone"), max_length=20, blank=True)
    user_id = models.CharField(_("sender user id"), max_length=USER_ID_MAX_LENGTH, blank=True)
    kind = models.CharField(_("type"), max_length=32)
    sent_at = models.DateTimeField(_("sent at"))
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("inbound message")
        verbose_name_plural = _("inbound messages")
        ordering = ["-sent_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.wamid}"


class ErasedIdentity(models.Model):
    """Someone who asked for erasure, kept only as a keyed hash (channel.pseudonyms) of their
    number or user id, for as long as webhooks about them can still arrive: what arrives is
    redacted on arrival (channel.erasure), and the row is then deleted."""

    digest = models.CharField(_("keyed hash"), max_length=64, primary_key=True)
    erased_at = models.DateTimeField(_("erased at"))

    class Meta:
        verbose_name = _("erased identity")
        verbose_name_plural = _("erased identities")

    def __str__(self) -> str:
        return f"{self.digest[:12]}… {self.erased_at:%Y-%m-%d}"


class OutboundStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    DELIVERED = "delivered", _("delivered")
    READ = "read", _("read")
    FAILED = "failed", _("failed")


class OutboundMessage(models.Model):
    """A service message (conversation reply, test send): posts use subscribers.Delivery."""

    class Lane(models.TextChoices):
        REPLY = "reply", _("conversation reply")
        TEST = "test", _("test send")

    lane = models.CharField(_("lane"), max_length=16, choices=Lane, default=Lane.REPLY)
    to_wa_id = models.CharField(_("to phone"), max_length=20, blank=True)
    to_user_id = models.CharField(_("to user id"), max_length=USER_ID_MAX_LENGTH, blank=True)
    payload = models.JSONField(_("payload"))
    # The message of the same reply that goes first: this one is sent by the run that settles
    # it, never on its own, so the parts of one reply (a hint, then a list) arrive in order.
    after = models.ForeignKey(
        "self",
        verbose_name=_("sent after"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="followers",
    )
    status = models.CharField(
        _("status"), max_length=16, choices=OutboundStatus, default=OutboundStatus.QUEUED
    )
    wa_message_id = models.CharField(
        _("WhatsApp message id"), max_length=255, null=True, blank=True, unique=True
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error_code = models.IntegerField(_("last error code"), null=True, blank=True)
    last_error_text = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("service message")
        verbose_name_plural = _("service messages")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(to_wa_id="") | ~Q(to_user_id=""), name="outbound_has_recipient"
            ),
            models.CheckConstraint(
                condition=Q(status__in=OutboundStatus.values), name="outbound_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_lane_display()} #{self.pk} ({self.status})"


class MessageTemplate(models.Model):
    """An approved WhatsApp template, used for people outside the 24-hour window.

    Synced from Meta (channel.graph.templates: name, language, category, status, quality,
    components as Meta returns them); the council only chooses which one posts use and which
    post field fills each parameter. Rows Meta no longer lists are marked gone, never deleted.
    """

    class Category(models.TextChoices):
        MARKETING = "marketing", _("marketing")
        UTILITY = "utility", _("utility")
        AUTHENTICATION = "authentication", _("authentication")

    # Meta's template statuses, lowercased; only APPROVED is ever sent
    # (https://developers.facebook.com/docs/whatsapp/message-templates/guidelines).
    class Status(models.TextChoices):
        APPROVED = "approved", _("approved")
        PENDING = "pending", _("pending review")
        REJECTED = "rejected", _("rejected")
        PAUSED = "paused", _("paused")
        DISABLED = "disabled", _("disabled")
        IN_APPEAL = "in_appeal", _("in appeal")
        LIMIT_EXCEEDED = "limit_exceeded", _("limit exceeded")
        PENDING_DELETION = "pending_deletion", _("pending deletion")
        DELETED = "deleted", _("deleted")
        ARCHIVED = "archived", _("archived")

    class Header(models.TextChoices):
        NONE = "", _("none")
        TEXT = "text", _("text (the post title)")
        MEDIA = "media", _("the post's image, video or document")

    class ParameterFormat(models.TextChoices):
        POSITIONAL = "positional", _("positional ({{1}}, {{2}}…)")
        NAMED = "named", _("named ({{title}}…)")

    name = models.CharField(_("name at Meta"), max_length=512)
    language = models.CharField(_("language code"), max_length=15, default="it")
    category = models.CharField(_("category"), max_length=16, choices=Category)
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.PENDING)
    header = models.CharField(_("header"), max_length=8, choices=Header, blank=True)
    body_text = models.TextField(
        _("body wording"),
        help_text=_("The template's text exactly as approved, with {{1}}, {{2}}… placeholders."),
    )
    body_parameters = models.JSONField(
        _("body parameters"),
        default=list,
        help_text=_(
            "Which post field (title, body, link) fills each body placeholder, in order: "
            'e.g. ["title", "body"].'
        ),
    )
    is_default = models.BooleanField(
        _("use for posts"),
        default=False,
        help_text=_("Posts use this template for people outside the 24-hour window."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    # What Meta says (channel.graph.templates); empty on rows typed by hand before the sync.
    meta_id = models.CharField(_("id at Meta"), max_length=64, blank=True)
    parameter_format = models.CharField(
        _("parameter format"),
        max_length=16,
        choices=ParameterFormat,
        default=ParameterFormat.POSITIONAL,
    )
    components = models.JSONField(_("components (from Meta)"), default=list, blank=True)
    quality_score = models.CharField(_("quality"), max_length=16, blank=True)
    rejected_reason = models.CharField(_("reason given by Meta"), max_length=200, blank=True)
    synced_at = models.DateTimeField(_("last synced from Meta"), null=True, blank=True)
    gone_at = models.DateTimeField(
        _("gone from Meta"),
        null=True,
        blank=True,
        help_text=_("Meta no longer lists this template: it is never sent."),
    )
    # Meta re-categorised the template (e.g. utility → marketing): shown to the editors until
    # someone acknowledges it in the admin.
    category_changed_from = models.CharField(
        _("category before Meta's change"), max_length=16, blank=True
    )
    category_changed_at = models.DateTimeField(_("category changed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        constraints = [
            models.UniqueConstraint(fields=["name", "language"], name="template_name_language"),
            models.UniqueConstraint(
                fields=["language"], condition=Q(is_default=True), name="one_default_per_language"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"

    @property
    def sendable(self) -> bool:
        """Approved by Meta and still listed there: the only templates ever sent."""
        return self.status == self.Status.APPROVED and self.gone_at is None


class SendingState(models.Model):
    """One row: whether Meta told us to stop sending for the whole account (e.g. token expired)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    paused = models.BooleanField(_("paused"), default=False)
    error_code = models.IntegerField(_("error code"), null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    since = models.DateTimeField(_("since"), null=True, blank=True)

    class Meta:
        verbose_name = _("sending state")
        verbose_name_plural = _("sending state")
        constraints = [models.CheckConstraint(condition=Q(id=1), name="sending_state_singleton")]

    def __str__(self) -> str:
        return str(_("paused") if self.paused else _("sending"))

    @classmethod
    def current(cls) -> SendingState:
        return cls.objects.get_or_create(id=1)[0]


class MediaUpload(models.Model):
    """A file uploaded to Meta once (POST /{phone-number-id}/media), sent by its id to everyone:
    Meta keeps an upload 30 days
    (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#upload-media).
    `key` is the caller's name for the file; `claimed_at` is set while one process uploads it,
    so two senders of the same file never upload it twice (channel.graph.media)."""

    key = models.CharField(_("file"), max_length=255, unique=True)
    kind = models.CharField(_("type"), max_length=8)
    mime_type = models.CharField(_("MIME type"), max_length=100, blank=True)
    size = models.PositiveBigIntegerField(_("bytes"), default=0)
    media_id = models.CharField(_("WhatsApp media id"), max_length=64, blank=True)
    uploaded_at = models.DateTimeField(_("uploaded at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    claimed_at = models.DateTimeField(_("upload started at"), null=True, blank=True)
    uploads = models.PositiveIntegerField(_("uploads"), default=0)
    last_error = models.TextField(_("last upload error"), blank=True)

    class Meta:
        verbose_name = _("uploaded media")
        verbose_name_plural = _("uploaded media")

    def __str__(self) -> str:
        return f"{self.key} → {self.media_id or '-'}"


class PhoneNumberFacts(models.Model):
    """One row: what Meta last said about the phone number (GET /{phone-number-id}?fields=…),
    read nightly and when sending resumes (channel.graph.phone). Empty until Meta answered;
    the settings WHATSAPP_MPS and WHATSAPP_MESSAGING_TIER stand in until then."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    throughput_level = models.CharField(_("throughput"), max_length=16, blank=True)
    messaging_limit = models.CharField(_("messaging limit"), max_length=32, blank=True)
    quality_rating = models.CharField(_("quality rating"), max_length=16, blank=True)
    name_status = models.CharField(_("display name status"), max_length=32, blank=True)
    checked_at = models.DateTimeField(_("checked at"), null=True, blank=True)
    check_error = models.TextField(_("last check error"), blank=True)
    # A fall in quality or messaging limit the editors have not dismissed yet (shown in the admin).
    drop_notice = models.TextField(_("drop notice"), blank=True)
    drop_at = models.DateTimeField(_("drop noticed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("phone number facts")
        verbose_name_plural = _("phone number facts")
        constraints = [models.CheckConstraint(condition=Q(id=1), name="phone_facts_singleton")]

    def __str__(self) -> str:
        return f"{self.throughput_level or '?'} / {self.messaging_limit or '?'}"
