"""The audit log and audited message templates in the admin.

The Topic admin lives in subscribers (subscribers/desk/topic_admin.py): it shows how many people
follow each topic, and counting subscribers is subscribers' business.
"""

from __future__ import annotations

from django.contrib import admin

from channel.admin import MessageTemplateAdmin, ReadOnlyAdmin
from channel.models import MessageTemplate
from topics.audit import AuditedDeletesMixin, form_changes, form_values, record_audit
from topics.models import AuditEntry


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
