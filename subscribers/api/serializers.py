"""Input validation and output shapes of the REST API (what the OpenAPI schema documents)."""

from __future__ import annotations

from datetime import UTC

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from topics.models import POST_BODY_MAX, Post, Topic

MAX_TOPICS_PER_POST = 50
EXTERNAL_ID_MAX = 255


class UtcDateTimeField(serializers.DateTimeField):
    """A time as ISO 8601 in UTC ("…Z"), whatever TIME_ZONE the council runs in."""

    def __init__(self, **kwargs) -> None:
        super().__init__(default_timezone=UTC, **kwargs)


class SlugsField(serializers.ListField):
    """A many-to-many relation (e.g. a post's topics) as its objects' slugs."""

    child = serializers.CharField()

    def to_representation(self, related) -> list[str]:
        return [item.slug for item in related.all()]


class TopicOutput(serializers.Serializer):
    slug = serializers.CharField()
    name_it = serializers.CharField()
    name_en = serializers.CharField()
    description_it = serializers.CharField()
    description_en = serializers.CharField()
    emoji = serializers.CharField()
    delivery = serializers.ChoiceField(
        choices=Topic.Delivery.values,
        help_text='"digest": its posts that are not urgent wait for the weekly digest, for '
        "the people who chose it.",
    )
    active_subscribers = serializers.IntegerField(
        allow_null=True, help_text="Null when the key may not read statistics."
    )


class PostCreateInput(serializers.Serializer):
    topics = serializers.ListField(
        child=serializers.SlugField(max_length=50),
        min_length=1,
        max_length=MAX_TOPICS_PER_POST,
        help_text="Topic slugs, as listed by GET /api/v1/topics/.",
    )
    title = serializers.CharField(max_length=200)
    body = serializers.CharField(
        max_length=POST_BODY_MAX,
        error_messages={
            "max_length": _("The text is too long: WhatsApp allows 4,096 characters at most.")
        },
    )
    link = serializers.URLField(max_length=1000, required=False, allow_blank=True, default="")
    media_kind = serializers.ChoiceField(
        choices=[c for c in Post.MediaKind.values if c],
        required=False,
        allow_blank=True,
        default="",
    )
    media_url = serializers.URLField(max_length=1000, required=False, allow_blank=True, default="")
    is_urgent = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Urgent: goes out at once to everyone (never waits for the weekly digest), "
        "before other posts in the queue.",
    )
    urgent = serializers.BooleanField(
        required=False, write_only=True, help_text="The same as is_urgent."
    )
    delivery = serializers.ChoiceField(
        choices=Post.Delivery.values,
        required=False,
        allow_blank=True,
        default="",
        help_text='When readers get it: "" as its topics say (a digest topic\'s posts wait for '
        'the weekly digest, for the people who chose it); "digest": in the weekly digest '
        'whatever its topics; "immediate": at once to everyone.',
    )
    send_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    publish = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="True: publish (now, or at send_at). False: leave a draft for an editor. "
        "Omitted: publish if the key may publish directly, else a draft.",
    )
    external_id = serializers.CharField(
        max_length=EXTERNAL_ID_MAX,
        required=False,
        allow_blank=False,
        help_text="Your own id for this post; used as the idempotency key when no "
        "Idempotency-Key header is sent.",
    )

    def validate_topics(self, slugs: list[str]) -> list[Topic]:
        wanted = list(dict.fromkeys(slugs))
        found = {t.slug: t for t in Topic.objects.filter(slug__in=wanted, is_active=True)}
        unknown = [slug for slug in wanted if slug not in found]
        if unknown:
            raise serializers.ValidationError(
                [_("Unknown topic: '%(slug)s'.") % {"slug": slug} for slug in unknown]
            )
        return [found[slug] for slug in wanted]

    def validate(self, attrs: dict) -> dict:
        now = timezone.now()
        urgent = attrs.pop("urgent", None)
        if urgent is not None and "is_urgent" in self.initial_data and urgent != attrs["is_urgent"]:
            raise serializers.ValidationError({"urgent": _("urgent and is_urgent disagree.")})
        if urgent is not None:
            attrs["is_urgent"] = urgent
        if attrs["is_urgent"] and attrs["delivery"] == Post.Delivery.DIGEST:
            raise serializers.ValidationError(
                {"delivery": _("An urgent post goes out at once: it cannot wait for the digest.")}
            )
        if attrs["media_url"] and not attrs["media_kind"]:
            raise serializers.ValidationError(
                {"media_kind": _("Say whether the media is an image, a video or a document.")}
            )
        if attrs["media_kind"] and not attrs["media_url"]:
            raise serializers.ValidationError({"media_url": _("Give a link to the media.")})
        send_at, expires_at = attrs["send_at"], attrs["expires_at"]
        if expires_at is not None and expires_at <= max(send_at or now, now):
            raise serializers.ValidationError(
                {"expires_at": _("The post must expire in the future and after it is sent.")}
            )
        return attrs


class CountersOutput(serializers.Serializer):
    reach = serializers.IntegerField(help_text="People the post goes (or would go) to.")
    queued = serializers.IntegerField()
    sending = serializers.IntegerField()
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    read = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()


class CostOutput(serializers.Serializer):
    estimate_eur = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        allow_null=True,
        help_text="The plan's cost when the post was published (for a draft: now).",
    )
    actual_eur = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        help_text="Billable messages Meta reports delivered × the rate card.",
    )
    billable_messages = serializers.IntegerField()
    unpriced_messages = serializers.IntegerField(
        help_text="Billable messages the rate card has no rate for (not in actual_eur)."
    )


class PostSummaryOutput(serializers.Serializer):
    # (No docstring: it would become the schema's description.) Needs {"request": …} in its
    # context, to make `url` absolute.
    id = serializers.IntegerField()
    url = serializers.HyperlinkedIdentityField(
        view_name="api:post-detail", help_text="Poll this URL for status and counters."
    )
    status = serializers.ChoiceField(choices=Post.Status.values)
    status_note = serializers.CharField()
    title = serializers.CharField()
    topics = SlugsField()
    is_urgent = serializers.BooleanField()
    kind = serializers.ChoiceField(
        choices=Post.Kind.values, help_text='"digest": a weekly digest (each person\'s own).'
    )
    delivery = serializers.ChoiceField(choices=Post.Delivery.values, allow_blank=True)
    waits_for_digest = serializers.BooleanField(
        help_text="Some of its readers get it in the weekly digest rather than at once."
    )
    digest_id = serializers.IntegerField(
        allow_null=True, help_text="The digest that carried it to them (null while it waits)."
    )
    send_at = UtcDateTimeField(allow_null=True)
    expires_at = UtcDateTimeField(allow_null=True)
    created_at = UtcDateTimeField()
    published_at = UtcDateTimeField(allow_null=True)
    finished_at = UtcDateTimeField(allow_null=True)


class PostOutput(PostSummaryOutput):
    body = serializers.CharField()
    link = serializers.CharField()
    media_kind = serializers.CharField()
    media_url = serializers.CharField()
    counters = CountersOutput(
        allow_null=True, help_text="Null when the key may not read statistics."
    )
    estimated_finish = UtcDateTimeField(
        allow_null=True, help_text="While sending: when the last message should go out."
    )
    cost = CostOutput(allow_null=True, help_text="Null when the key may not read statistics.")


class PostListFilter(serializers.Serializer):
    status = serializers.ChoiceField(choices=Post.Status.values, required=False)
    topic = serializers.SlugField(max_length=50, required=False)
    since = serializers.DateTimeField(required=False, help_text="Created at or after this time.")


class ErrorOutput(serializers.Serializer):
    detail = serializers.CharField()
