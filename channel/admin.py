from __future__ import annotations

from django.contrib import admin
from redis.exceptions import RedisError

from channel.models import InboundEvent, InboundMessage, OutboundMessage
from channel.webhook.forgeries import forged_post_counts


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "received_at", "signature_valid", "processed_at"]
    list_filter = ["signature_valid"]
    date_hierarchy = "received_at"

    def changelist_view(self, request, extra_context=None):
        # Forged POSTs are counted, not archived one by one: the counts are shown here.
        try:
            hours = forged_post_counts(hours=24)
        except RedisError:
            counts = {"forged_last_day": None}
        else:
            counts = {"forged_last_day": sum(hours), "forged_this_hour": hours[0]}
        return super().changelist_view(request, (extra_context or {}) | counts)


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdmin):
    list_display = ["sent_at", "kind", "processed_at"]
    list_filter = ["kind"]
    exclude = ["wa_id", "user_id"]  # personal data: shown masked on the subscriber's page


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "lane", "status", "attempts", "last_error_code"]
    list_filter = ["lane", "status"]
    exclude = ["to_wa_id", "to_user_id"]


# Registered by topics/admin.py, which adds the audit log entry for each change (channel may
# not import topics, where the audit log lives).
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "language", "category", "status", "is_default"]
    list_filter = ["category", "status", "language"]
