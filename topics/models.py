"""Editorial content: topics citizens choose from, and the posts editors publish to them."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Length
from django.db.models.lookups import LessThanOrEqual
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

# WhatsApp limits: a text body holds 4,096 characters, a list-row description 72. See
# https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/text-messages
# and .../whatsapp/messages/interactive-list-messages.
POST_BODY_MAX = 4096
TOPIC_DESCRIPTION_MAX = 72


class TopicDelivery(models.TextChoices):
    IMMEDIATE = "immediate", _("at once")
    DIGEST = "digest", _("in the weekly digest")


class Topic(models.Model):
    Delivery = TopicDelivery

    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    name_it = models.CharField(_("name (Italian)"), max_length=60)
    name_en = models.CharField(_("name (English)"), max_length=60)
    description_it = models.CharField(
        _("description (Italian)"),
        max_length=TOPIC_DESCRIPTION_MAX,
        blank=True,
        help_text=_("Shown under the name in the WhatsApp list: 72 characters at most."),
    )
    description_en = models.CharField(
        _("description (English)"), max_length=TOPIC_DESCRIPTION_MAX, blank=True
    )
    emoji = models.CharField(_("emoji"), max_length=8, blank=True)
    order = models.PositiveSmallIntegerField(_("order"), default=0)
    is_active = models.BooleanField(
        _("active"), default=True, help_text=_("Inactive topics are hidden from citizens.")
    )
    # Whether a post waits for the weekly digest is decided here, per topic (README "The weekly
    # digest"); db_default so set-based inserts need not name it.
    delivery = models.CharField(
        _("delivery"),
        max_length=10,
        choices=TopicDelivery,
        default=TopicDelivery.IMMEDIATE,
        db_default=TopicDelivery.IMMEDIATE,
        help_text=_(
            "In the weekly digest: posts that are not urgent wait for the digest, for the "
            "people who chose it."
        ),
    )

    class Meta:
        verbose_name = _("topic")
        verbose_name_plural = _("topics")
        ordering = ["order", "id"]
        constraints = [
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("description_it"), TOPIC_DESCRIPTION_MAX)
                & LessThanOrEqual(Length("description_en"), TOPIC_DESCRIPTION_MAX),
                name="topic_description_fits_whatsapp_list",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.emoji} {self.name}".strip()

    @property
    def name(self) -> str:
        return self.name_en if (get_language() or "it").startswith("en") else self.name_it


class PostQuerySet(models.QuerySet):
    def due(self, now=None) -> PostQuerySet:
        return self.filter(status=Post.Status.SCHEDULED, send_at__lte=now or timezone.now())


class PostStatus(models.TextChoices):
    DRAFT = "draft", _("draft")
    SCHEDULED = "scheduled", _("scheduled")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    CANCELLED = "cancelled", _("cancelled")


class PostKind(models.TextChoices):
    POST = "post", _("post")
    DIGEST = "digest", _("weekly digest")


class PostDelivery(models.TextChoices):
    AS_TOPICS = "", _("as its topics say")
    IMMEDIATE = "immediate", _("at once")
    DIGEST = "digest", _("in the weekly digest")


class Post(models.Model):
    Status = PostStatus
    Kind = PostKind
    Delivery = PostDelivery

    class MediaKind(models.TextChoices):
        NONE = "", _("no media")
        IMAGE = "image", _("image")
        VIDEO = "video", _("video")
        DOCUMENT = "document", _("document")

    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(
        _("text"),
        validators=[MaxLengthValidator(POST_BODY_MAX)],
        help_text=_("What citizens read in WhatsApp: 4,096 characters at most."),
    )
    # Italian first, English too: people who chose English read these when they are filled.
    title_en = models.CharField(_("title (English)"), max_length=200, blank=True)
    body_en = models.TextField(
        _("text (English)"), blank=True, validators=[MaxLengthValidator(POST_BODY_MAX)]
    )
    media_kind = models.CharField(
        _("media type"), max_length=8, choices=MediaKind, blank=True, default=MediaKind.NONE
    )
    media_url = models.URLField(_("media link"), max_length=1000, blank=True)
    media_file = models.FileField(_("media file"), upload_to="posts/%Y/%m/", blank=True)
    link = models.URLField(_("link"), max_length=1000, blank=True)
    topics = models.ManyToManyField(Topic, related_name="posts", verbose_name=_("topics"))
    is_urgent = models.BooleanField(
        _("urgent"),
        default=False,
        help_text=_("Goes out at once to everyone, before other posts waiting in the queue."),
    )
    # A digest is itself a Post (kind=digest) whose text is rendered per person at send time,
    # so the engine, the progress and the results treat it like any other post.
    kind = models.CharField(
        _("kind"), max_length=8, choices=PostKind, default=PostKind.POST, db_default=PostKind.POST
    )
    delivery = models.CharField(
        _("delivery"),
        max_length=10,
        choices=PostDelivery,
        blank=True,
        default=PostDelivery.AS_TOPICS,
        db_default=PostDelivery.AS_TOPICS,
    )
    # Set when publishing: some of its readers get it in the next digest (frozen then, so a
    # topic switched later does not change a post already out).
    waits_for_digest = models.BooleanField(default=False, db_default=False, editable=False)
    # The digest that gathered this post; NULL while it waits.
    digest = models.ForeignKey(
        "self",
        verbose_name=_("gathered in digest"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="gathered_posts",
    )
    # A digest's period (the council-local day it was due): at most one digest per period.
    digest_of = models.DateField(_("digest of"), null=True, blank=True, editable=False)
    status = models.CharField(
        _("status"), max_length=16, choices=Status, default=Status.DRAFT, db_index=True
    )
    status_note = models.CharField(_("status note"), max_length=300, blank=True)
    send_at = models.DateTimeField(_("send at"), null=True, blank=True)
    expires_at = models.DateTimeField(
        _("expires at"),
        null=True,
        blank=True,
        help_text=_("After this moment nobody else receives the post (e.g. a pharmacy rota)."),
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("author"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_by_token = models.ForeignKey(
        "ApiToken",
        verbose_name=_("created through API token"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="posts",
    )
    external_id = models.CharField(
        _("external id"),
        max_length=255,
        blank=True,
        default="",
        editable=False,
        help_text=_("The integration's own id for a post created through the API."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    published_at = models.DateTimeField(_("publishing started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    objects = PostQuerySet.as_manager()

    class Meta:
        verbose_name = _("post")
        verbose_name_plural = _("posts")
        ordering = ["-created_at"]
        permissions = [("publish_post", _("Can send, schedule, cancel and resend posts"))]
        constraints = [
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("body"), POST_BODY_MAX), name="post_body_max"
            ),
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("body_en"), POST_BODY_MAX),
                name="post_body_en_max",
            ),
            models.CheckConstraint(
                condition=Q(status__in=PostStatus.values), name="post_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="scheduled") | Q(send_at__isnull=False),
                name="scheduled_post_has_send_at",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True)
                | Q(send_at__isnull=True)
                | Q(expires_at__gt=F("send_at")),
                name="post_expires_after_send_at",
            ),
            models.CheckConstraint(
                condition=(Q(media_kind="") & Q(media_url="") & Q(media_file=""))
                | (~Q(media_kind="") & (~Q(media_url="") | ~Q(media_file=""))),
                name="post_media_kind_matches_media",
            ),
            models.CheckConstraint(
                condition=(Q(kind="post") & Q(digest_of__isnull=True))
                | (Q(kind="digest") & Q(digest_of__isnull=False)),
                name="post_digest_has_period",
            ),
            # With UNIQUE(post, subscriber) on deliveries: at most one digest per person and period.
            models.UniqueConstraint(
                fields=["digest_of"], condition=Q(kind="digest"), name="one_digest_per_period"
            ),
            # One post per external_id and key, whatever Idempotency-Key the retries carry.
            models.UniqueConstraint(
                fields=["created_by_token", "external_id"],
                condition=~Q(external_id=""),
                name="post_external_id_per_token",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        has_media = bool(self.media_url or self.media_file)
        if has_media and not self.media_kind:
            raise ValidationError(
                {"media_kind": _("Say whether the media is an image, a video or a document.")}
            )
        if self.media_kind and not has_media:
            raise ValidationError({"media_url": _("Give a link to the media or upload a file.")})
        if self.send_at and self.expires_at and self.expires_at <= self.send_at:
            raise ValidationError({"expires_at": _("The post must expire after it is sent.")})

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


def hash_token_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    """A key for one integration (the pharmacy rota, the traffic office…), stored hashed."""

    name = models.CharField(_("integration"), max_length=100)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_prefix = models.CharField(_("key starts with"), max_length=12, editable=False)
    topics = models.ManyToManyField(
        Topic, related_name="+", verbose_name=_("may publish to"), blank=True
    )
    can_publish = models.BooleanField(
        _("may publish directly"),
        default=False,
        help_text=_("If off, its posts wait as drafts for a publisher's approval."),
    )
    can_read_stats = models.BooleanField(_("may read statistics"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class IdempotencyRecord(models.Model):
    """The first answer to an Idempotency-Key, replayed for repeats (kept at least 7 days)."""

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    post = models.ForeignKey(Post, on_delete=models.CASCADE, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token", "key"], name="idempotency_key_per_token")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.response_status})"


class AuditEntry(models.Model):
    """Who published, cancelled, resent, or changed a template or token, and when."""

    at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("who"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_token = models.ForeignKey(
        ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    action = models.CharField(_("action"), max_length=40)
    object_repr = models.CharField(_("object"), max_length=200)
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.object_repr}"
