"""API tokens in the admin: create one per integration, see its key once, revoke it."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from topics.audit import AuditedDeletesMixin, form_changes, form_values, record_audit
from topics.models import ApiToken
from topics.tokens import api_token_assign_key, api_token_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedDeletesMixin, admin.ModelAdmin):
    audit_noun = "token"

    list_display = [
        "name",
        "key_prefix",
        "topic_list",
        "can_publish",
        "can_read_stats",
        "last_used_at",
        "is_active",
    ]
    list_filter = ["can_publish", "can_read_stats", "revoked_at"]
    search_fields = ["name", "key_prefix"]
    filter_horizontal = ["topics"]
    fields = [
        "name",
        "topics",
        "can_publish",
        "can_read_stats",
        "key_prefix",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = ["key_prefix", "created_at", "created_by", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("topics")

    @admin.display(description=_("may publish to"))
    def topic_list(self, token: ApiToken) -> str:
        return ", ".join(topic.slug for topic in token.topics.all())

    @admin.display(description=_("active"), boolean=True)
    def is_active(self, token: ApiToken) -> bool:
        return token.is_active

    def save_model(self, request, obj: ApiToken, form, change: bool) -> None:
        # The key itself is never written to the log: it is secret, and only its hash is kept.
        if change:
            super().save_model(request, obj, form, change)
            record_audit(
                user=request.user,
                action="token_changed",
                obj=obj,
                details={"changed": form_changes(form)},
            )
            return
        key = api_token_assign_key(token=obj)
        obj.created_by = request.user
        super().save_model(request, obj, form, change)
        record_audit(
            user=request.user,
            action="token_created",
            obj=obj,
            details={"fields": form_values(form)},
        )
        # The key exists only in this message: the database keeps its SHA-256 hash.
        messages.warning(
            request,
            _(
                "The API key for “%(name)s” is: %(key)s — copy it now and give it to the "
                "integration. It will not be shown again."
            )
            % {"name": obj.name, "key": key},
        )

    @admin.action(description=_("Revoke the selected API keys (they stop working at once)"))
    def revoke(self, request, queryset) -> None:
        revoked = api_token_revoke(tokens=queryset, user=request.user)
        self.message_user(
            request, _("%(count)d API key(s) revoked.") % {"count": revoked}, messages.SUCCESS
        )
