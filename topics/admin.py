from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from channel.admin import MessageTemplateAdmin, ReadOnlyAdmin
from channel.models import MessageTemplate
from topics.audit import AuditedDeletesMixin, form_changes, form_values, record_audit
from topics.models import AuditEntry, Topic


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ["__str__", "slug", "name_en", "order", "is_active", "subscriber_count"]
    list_editable = ["order", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name_it", "name_en", "slug"]
    prepopulated_fields = {"slug": ["name_it"]}
    actions = ["activate", "deactivate"]
    fieldsets = [
        (None, {"fields": ["name_it", "name_en", "slug", "emoji"]}),
        (_("Shown in the WhatsApp list"), {"fields": ["description_it", "description_en"]}),
        (_("Publishing"), {"fields": ["order", "is_active"]}),
    ]

    def get_queryset(self, request):
        from django.db.models import Count, Q

        return (
            super()
            .get_queryset(request)
            .annotate(
                active_subscribers=Count(
                    "subscribers", filter=Q(subscribers__status="active"), distinct=True
                )
            )
        )

    @admin.display(description=_("active subscribers"), ordering="active_subscribers")
    def subscriber_count(self, topic: Topic) -> int:
        return topic.active_subscribers

    @admin.action(description=_("Show the selected topics to citizens"))
    def activate(self, request, queryset) -> None:
        queryset.update(is_active=True)

    @admin.action(description=_("Hide the selected topics from citizens"))
    def deactivate(self, request, queryset) -> None:
        queryset.update(is_active=False)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """The audit log, read-only: publish, schedule, cancel, resend, test sends, template and
    API key changes, resume after an account problem."""

    list_display = ["at", "actor", "actor_token", "action", "object_repr"]
    list_filter = ["action", "at"]
    search_fields = ["object_repr", "actor__username", "action"]
    date_hierarchy = "at"
    list_select_related = ["actor", "actor_token"]
    fields = ["at", "actor", "actor_token", "action", "object_repr", "details"]
    readonly_fields = fields


# Registered here rather than in channel/admin.py: channel may not import topics, and every
# change of a template is written to the audit log (who, when, what: old → new).
@admin.register(MessageTemplate)
class AuditedMessageTemplateAdmin(AuditedDeletesMixin, MessageTemplateAdmin):
    audit_noun = "template"

    def save_model(self, request, obj, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change:
            details = {"changed": form_changes(form)}
            record_audit(user=request.user, action="template_changed", obj=obj, details=details)
        else:
            details = {"fields": form_values(form)}
            record_audit(user=request.user, action="template_created", obj=obj, details=details)
