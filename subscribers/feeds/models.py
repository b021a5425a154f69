"""A feed the council trusts to propose (or publish) posts, and the items it has given."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from django_celery_beat.models import PeriodicTask

from topics.models import Post, Topic


class Feed(models.Model):
    class Kind(models.TextChoices):
        NEWS = "news", _("News (RSS or Atom)")
        CAP = "cap", _("Civil-protection alerts (CAP)")

    class Mode(models.TextChoices):
        DRAFT = "draft", _("Draft: an editor reviews and sends")
        PUBLISH = "publish", _("Publish: a trusted source, sent at once")

    name = models.CharField(_("name"), max_length=100)
    url = models.URLField(_("address"), max_length=1000)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind, default=Kind.NEWS)
    topics = models.ManyToManyField(Topic, related_name="+", verbose_name=_("topics"))
    mode = models.CharField(_("mode"), max_length=8, choices=Mode, default=Mode.DRAFT)
    poll_minutes = models.PositiveIntegerField(
        _("poll every (minutes)"),
        default=15,
        help_text=_("How often Banditore asks the feed for new items."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    # Conditional GET: the feed's own validators, sent back so an unchanged feed costs a 304.
    etag = models.CharField(max_length=300, blank=True, editable=False)
    last_modified = models.CharField(max_length=100, blank=True, editable=False)
    last_polled_at = models.DateTimeField(_("last poll"), null=True, blank=True, editable=False)
    last_new_item_at = models.DateTimeField(
        _("last new item"), null=True, blank=True, editable=False
    )
    last_error = models.CharField(_("last error"), max_length=500, blank=True, editable=False)
    last_error_at = models.DateTimeField(_("last error at"), null=True, blank=True, editable=False)
    items_taken = models.PositiveIntegerField(_("items taken"), default=0, editable=False)
    alerts_ignored = models.PositiveIntegerField(
        _("alerts for other areas"), default=0, editable=False
    )
    periodic_task = models.OneToOneField(
        PeriodicTask, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("feed")
        verbose_name_plural = _("feeds")
        constraints = [
            models.CheckConstraint(condition=models.Q(poll_minutes__gte=1), name="feed_poll_min"),
        ]

    def __str__(self) -> str:
        return self.name


class FeedItem(models.Model):
    """One item of a feed, taken once: the key is unique per feed, whatever the feed does later."""

    feed = models.ForeignKey(Feed, on_delete=models.CASCADE, related_name="items")
    # guid, else link, else a hash of title and summary; CAP: the alert's identifier.
    key = models.CharField(max_length=255)
    post = models.ForeignKey(
        Post, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    title = models.CharField(max_length=200, blank=True)
    # CAP alerts listed in an index: the alert's own address, so it is fetched only once.
    source = models.CharField(max_length=1000, blank=True)
    taken_at = models.DateTimeField(auto_now_add=True)
    # Why an item made no post (another area, a test alert…); empty when it made one.
    skipped = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = _("feed item")
        verbose_name_plural = _("feed items")
        constraints = [
            models.UniqueConstraint(fields=["feed", "key"], name="feed_item_once"),
        ]

    def __str__(self) -> str:
        return self.title or self.key
