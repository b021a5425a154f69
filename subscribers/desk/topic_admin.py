"""Topics in the admin: what citizens can choose in WhatsApp, with how many follow each now."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from subscribers.delivery.audience import with_active_subscribers
from topics.models import Topic


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "slug",
        "name_en",
        "order",
        "is_active",
        "delivery",
        "subscriber_count",
    ]
    list_editable = ["order", "is_active", "delivery"]
    list_filter = ["is_active", "delivery"]
    search_fields = ["name_it", "name_en", "slug"]
    prepopulated_fields = {"slug": ["name_it"]}
    actions = ["activate", "deactivate"]
    fieldsets = [
        (None, {"fields": ["name_it", "name_en", "slug", "emoji"]}),
        (_("Shown in the WhatsApp list"), {"fields": ["description_it", "description_en"]}),
        (_("Publishing"), {"fields": ["order", "is_active", "delivery"]}),
    ]

    def get_queryset(self, request):
        return with_active_subscribers(super().get_queryset(request))

    @admin.display(description=_("active subscribers"), ordering="active_subscribers")
    def subscriber_count(self, topic: Topic) -> int:
        return topic.active_subscribers

    @admin.action(description=_("Show the selected topics to citizens"))
    def activate(self, request, queryset) -> None:
        queryset.update(is_active=True)

    @admin.action(description=_("Hide the selected topics from citizens"))
    def deactivate(self, request, queryset) -> None:
        queryset.update(is_active=False)
