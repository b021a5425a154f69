"""API tokens in the admin: create one per integration, see its key once, replace or revoke it."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from topics.audit import AuditedDeletesMixin, form_changes, form_values, record_audit
from topics.models import ApiToken
from topics.tokens import api_token_assign_key, api_token_regenerate_key, api_token_revoke


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
        # Shown by response_add on the page that answers this request, and nowhere else.
        obj.new_key = key

    def response_add(self, request, obj: ApiToken, post_url_continue=None):
        key = getattr(obj, "new_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        return self.key_page(request, obj, key)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/regenerate-key/",
                view(require_POST(self.regenerate_key_view)),
                name="topics_apitoken_regenerate_key",
            ),
            *super().get_urls(),
        ]

    def regenerate_key_view(self, request, pk: int):
        token = get_object_or_404(ApiToken, pk=pk, revoked_at__isnull=True)
        if not self.has_change_permission(request, token):
            raise PermissionDenied
        key = api_token_regenerate_key(token=token, user=request.user)
        return self.key_page(request, token, key)

    def key_page(self, request, token: ApiToken, key: str) -> TemplateResponse:
        """The one page that shows the key. Not a redirect with a message: Django's messages
        travel in a signed (readable, not encrypted) cookie or in the session, and the key
        must be in neither. The database keeps only its SHA-256 hash."""
        context = {
            **self.admin_site.each_context(request),
            "title": _("API key for “%(name)s”") % {"name": token.name},
            "opts": self.model._meta,
            "original": token,
            "token": token,
            "key": key,
        }
        # admin_view() marks every admin page never_cache (no-store): no copy of it is kept.
        return TemplateResponse(request, "admin/topics/apitoken/key_created.html", context)

    @admin.action(description=_("Revoke the selected API keys (they stop working at once)"))
    def revoke(self, request, queryset) -> None:
        revoked = api_token_revoke(tokens=queryset, user=request.user)
        self.message_user(
            request, _("%(count)d API key(s) revoked.") % {"count": revoked}, messages.SUCCESS
        )
