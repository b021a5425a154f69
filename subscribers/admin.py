from __future__ import annotations

from functools import partial

from django.contrib import admin
from django.contrib.admin import helpers
from django.db import transaction
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from channel.admin import ReadOnlyAdmin
from subscribers.dashboard.views import dashboard_view
from subscribers.desk.post_admin import PostAdmin  # noqa: F401  (registers the editors' desk)
from subscribers.desk.token_admin import ApiTokenAdmin  # noqa: F401  (registers API tokens)
from subscribers.desk.topic_admin import TopicAdmin  # noqa: F401  (registers topics)
from subscribers.erasure import staff_erase
from subscribers.imports.views import import_view
from subscribers.models import ConsentEvent, Rate, Subscriber, Subscription


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    extra = 0
    fields = ["topic", "source", "created_at"]
    readonly_fields = ["created_at"]


class ConsentInline(admin.TabularInline):
    model = ConsentEvent
    extra = 0
    can_delete = False
    fields = ["at", "kind", "topic", "source", "privacy_version", "wa_message_id", "note"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["masked", "status", "language", "topic_list", "created_at", "last_inbound_at"]
    list_filter = ["status", "language", "topics"]
    search_fields = ["wa_id"]
    search_help_text = _("Type the last digits of the number.")
    inlines = [SubscriptionInline, ConsentInline]
    date_hierarchy = "created_at"
    actions = ["erase_selected"]
    _details = ["created_at", "consented_at", "left_at", "last_inbound_at", "marketing_opt_out"]

    def _may_see_numbers(self, request) -> bool:
        return request.user.has_perm("subscribers.view_full_number")

    def _number_field(self, request) -> str:
        return "full_number" if self._may_see_numbers(request) else "masked"

    def get_list_display(self, request):
        return [self._number_field(request), *self.list_display[1:]]

    def get_fields(self, request, obj=None):
        return [self._number_field(request), "status", "language", *self._details]

    def get_readonly_fields(self, request, obj=None):
        return [self._number_field(request), *self._details]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("topics")

    def get_search_results(self, request, queryset, search_term):
        digits = "".join(ch for ch in search_term if ch.isdigit())
        if not digits:
            return (queryset.none() if search_term.strip() else queryset), False
        if self._may_see_numbers(request):
            return queryset.filter(wa_id__contains=digits), False
        # Without the permission only the tail can be searched, so numbers can't be probed.
        return queryset.filter(wa_id__endswith=digits[-4:]), False

    @admin.display(description=_("phone"))
    def masked(self, subscriber: Subscriber) -> str:
        return subscriber.masked_number

    @admin.display(description=_("phone"))
    def full_number(self, subscriber: Subscriber) -> str:
        return subscriber.shown_number(full=True)

    @admin.display(description=_("topics"))
    def topic_list(self, subscriber: Subscriber) -> str:
        return ", ".join(topic.emoji or topic.name for topic in subscriber.topics.all())

    def has_add_permission(self, request) -> bool:
        return False  # people join from WhatsApp or an import, never typed in by staff

    def get_urls(self):
        site = self.admin_site
        return [
            path(
                "dashboard/",
                site.admin_view(partial(dashboard_view, site)),
                name="subscribers_dashboard",
            ),
            path(
                "import/",
                site.admin_view(partial(import_view, site)),
                name="subscribers_import",
            ),
            *super().get_urls(),
        ]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # erasure blanks the identity and keeps the ledger; see README

    def has_erase_permission(self, request) -> bool:
        return request.user.has_perm("subscribers.change_subscriber")

    @admin.action(description=_("Erase the selected people (irreversible)"), permissions=["erase"])
    def erase_selected(self, request, queryset):
        """The chat's erasure (CANCELLA I MIEI DATI), after a confirmation page; audited."""
        people = queryset.exclude(status=Subscriber.Status.ERASED)
        if request.POST.get("confirmed") != "yes":
            context = self.admin_site.each_context(request) | {
                "title": _("Erase these people?"),
                "opts": self.model._meta,
                "people": people,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            template = "admin/subscribers/subscriber/erase_confirmation.html"
            return TemplateResponse(request, template, context)
        with transaction.atomic():
            erased = [
                staff_erase(subscriber=subscriber, user=request.user, via="admin")
                for subscriber in people.select_for_update()
            ]
        message = ngettext("%(count)d person erased.", "%(count)d people erased.", len(erased))
        self.message_user(request, message % {"count": len(erased)})
        return None


@admin.register(ConsentEvent)
class ConsentEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "subscriber", "kind", "topic", "source", "privacy_version"]
    list_filter = ["kind", "source"]
    date_hierarchy = "at"


@admin.register(Rate)
class RateAdmin(admin.ModelAdmin):
    """Meta's prices per message (subscribers.delivery.costs): a new price is a new row with
    the date it applies from, so past months keep the price they were billed at."""

    list_display = ["category", "country", "price_eur", "valid_from"]
    list_filter = ["category", "country_code"]
    ordering = ["country_code", "category", "-valid_from"]

    @admin.display(description=_("country calling code"), ordering="country_code")
    def country(self, rate: Rate) -> str:
        return f"+{rate.country_code}" if rate.country_code else _("every other country")
