from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path
from django.utils.html import format_html
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from channel.graph.template_shapes import POST_FIELDS, template_shape
from channel.graph.templates import TemplateSyncError, templates_sync
from channel.models import InboundEvent, InboundMessage, MessageTemplate, OutboundMessage
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
class MessageTemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = [
            "name",
            "language",
            "category",
            "status",
            "header",
            "body_text",
            "body_parameters",
            "is_default",
            "parameter_format",
            "components",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "parameter_format" in self.fields:  # typed by hand: {{1}}, {{2}}… unless chosen
            self.fields["parameter_format"].required = False

    def clean_parameter_format(self) -> str:
        chosen = self.cleaned_data.get("parameter_format")
        return chosen or MessageTemplate.ParameterFormat.POSITIONAL

    def clean_body_parameters(self):
        """One known post field per body placeholder of the template."""
        chosen = self.cleaned_data.get("body_parameters")
        if not isinstance(chosen, list) or not all(f in POST_FIELDS for f in chosen):
            raise forms.ValidationError(
                _("A list of post fields, each one of: %(fields)s.")
                % {"fields": ", ".join(POST_FIELDS)}
            )
        instance = self.instance
        if instance.pk and instance.synced_at:  # the wording is Meta's: count its placeholders
            wanted = len(template_shape(instance).body_params)
            if len(chosen) != wanted:
                raise forms.ValidationError(
                    _("The template has %(n)s body parameters: choose %(n)s post fields.")
                    % {"n": wanted}
                )
        return chosen


class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = [
        "name",
        "language",
        "category",
        "category_change",
        "status",
        "quality_score",
        "is_default",
        "synced_at",
        "gone_at",
    ]
    list_filter = ["category", "status", "language", "is_default"]
    actions = ["acknowledge_category_change"]
    # What Meta says is read-only once a template is synced: the sync would overwrite it.
    META_FIELDS = [
        "name",
        "language",
        "category",
        "status",
        "header",
        "body_text",
        "meta_id",
        "parameter_format",
        "components",
        "quality_score",
        "rejected_reason",
        "synced_at",
        "gone_at",
        "category_changed_from",
        "category_changed_at",
    ]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.synced_at is not None:
            return self.META_FIELDS
        return ["meta_id", "synced_at", "gone_at", "category_changed_from", "category_changed_at"]

    def has_delete_permission(self, request, obj=None) -> bool:
        """A template Meta knows is marked gone when Meta drops it, never deleted here."""
        if obj is not None and obj.synced_at is not None:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description=_("category change"))
    def category_change(self, template: MessageTemplate) -> str:
        """Meta re-categorised the template (e.g. utility → marketing): price and opt-outs
        change with it, so editors see it until someone acknowledges it."""
        if not template.category_changed_at:
            return ""
        return format_html(
            '<strong style="color:#ba2121" class="category-changed">⚠ {} → {}</strong>',
            template.category_changed_from,
            template.category,
        )

    @admin.action(description=_("Acknowledge Meta's category change"))
    def acknowledge_category_change(self, request, queryset) -> None:
        count = queryset.exclude(category_changed_at=None).update(
            category_changed_at=None, category_changed_from=""
        )
        self.message_user(request, _("%(n)s templates acknowledged.") % {"n": count})

    def changelist_view(self, request, extra_context=None):
        can_sync = self.has_change_permission(request)
        return super().changelist_view(request, (extra_context or {}) | {"can_sync": can_sync})

    def get_urls(self):
        sync = path(
            "sync/",
            self.admin_site.admin_view(self.sync_view),
            name="channel_messagetemplate_sync",
        )
        return [sync, *super().get_urls()]

    def sync_view(self, request: HttpRequest) -> HttpResponse:
        """The "Sync from Meta" button of the template list (POST only)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        try:
            result = templates_sync(user=request.user)
        except TemplateSyncError as exc:
            self.message_user(request, _("Sync failed: %(error)s") % {"error": exc}, messages.ERROR)
        else:
            self.message_user(request, result.summary(), messages.SUCCESS)
        return redirect("admin:channel_messagetemplate_changelist")
