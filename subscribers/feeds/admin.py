"""Feeds in the admin: where they point, what they feed, how they are doing."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from subscribers.feeds.models import Feed, FeedItem
from subscribers.feeds.schedule import feed_schedule


class FeedForm(forms.ModelForm):
    url = forms.URLField(label=_("address"), max_length=1000, assume_scheme="https")

    class Meta:
        model = Feed
        fields = ["name", "url", "kind", "topics", "mode", "poll_minutes", "is_active"]

    def clean(self):
        data = super().clean()
        if data.get("kind") == Feed.Kind.CAP and not (
            settings.BANDITORE_CAP_AREA_CODES or settings.BANDITORE_CAP_AREA_POLYGON
        ):
            raise forms.ValidationError(
                _(
                    "An alert feed needs the council's area: set BANDITORE_CAP_AREA_CODES "
                    "(ISTAT codes) or BANDITORE_CAP_AREA_POLYGON, then add the feed."
                )
            )
        return data


class FeedItemInline(admin.TabularInline):
    model = FeedItem
    extra = 0
    can_delete = False
    fields = ["taken_at", "title", "post_link", "skipped"]
    readonly_fields = fields
    ordering = ["-taken_at"]
    verbose_name_plural = _("items taken (newest first)")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("post"))
    def post_link(self, item: FeedItem):
        if item.post_id is None:
            return "—"
        url = reverse("admin:topics_post_change", args=[item.post_id])
        return format_html('<a href="{}">#{}</a>', url, item.post_id)


@admin.register(Feed)
class FeedAdmin(admin.ModelAdmin):
    form = FeedForm
    list_display = [
        "name",
        "kind",
        "mode",
        "is_active",
        "last_polled_at",
        "last_new_item_at",
        "items_taken",
        "last_error",
    ]
    list_filter = ["kind", "mode", "is_active"]
    readonly_fields = [
        "last_polled_at",
        "last_new_item_at",
        "items_taken",
        "alerts_ignored",
        "last_error",
        "last_error_at",
    ]
    filter_horizontal = ["topics"]
    inlines = [FeedItemInline]
    actions = ["poll_now"]

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        feed_schedule(form.instance)

    @admin.action(description=_("Poll the selected feeds now"))
    def poll_now(self, request, queryset) -> None:
        from subscribers.feeds.polling import feed_poll

        for feed in queryset:
            result = feed_poll(feed.pk)
            if result is None:
                self.message_user(
                    request,
                    _("%(feed)s: inactive or being polled.") % {"feed": feed},
                    messages.WARNING,
                )
            elif result.notes:
                self.message_user(
                    request,
                    _("%(feed)s: %(error)s") % {"feed": feed, "error": "; ".join(result.notes)},
                    messages.ERROR,
                )
            else:
                self.message_user(
                    request,
                    _("%(feed)s: %(new)d new posts, %(skipped)d items skipped.")
                    % {"feed": feed, "new": len(result.posts), "skipped": result.skipped},
                )
