"""The editors' desk for posts. It lives here, not in topics, because every figure on it
(reach, progress, results) is about the audience, which topics must not know about.

The admin only parses, checks permissions and calls: the work is in post_form and compose
(checks before saving), plan (plan, preview), post_actions (confirmed actions, which call
publishing and trial_send) and subscribers.delivery.results (progress, results by topic,
recipients)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, JsonResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from channel.graph.account import resume_sending
from channel.graph.errors import explain
from channel.graph.phone import drop_dismiss, effective_mps, phone_facts
from channel.graph.ratelimit import tier_limit
from channel.tasks import refresh_phone_facts_task
from subscribers.delivery import publishing
from subscribers.delivery.audience import reach_count
from subscribers.delivery.budget import post_cost_report
from subscribers.delivery.progress import post_counters
from subscribers.delivery.results import post_recipients, progress_report, results_by_topic
from subscribers.desk.plan import can_publish, may_change_post, post_plan, post_preview
from subscribers.desk.post_actions import ACTIONS, admin_action, confirm_then_run
from subscribers.desk.post_form import PostForm
from subscribers.models import Delivery
from topics.audit import form_changes, record_audit
from topics.models import Post

RECIPIENTS_PER_PAGE = 50


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    form = PostForm
    list_display = ["title", "kind", "status", "topic_list", "reach_now", "send_at", "created_at"]
    list_filter = ["status", "kind", "topics", "is_urgent", "delivery"]
    search_fields = ["title", "body"]
    date_hierarchy = "created_at"
    filter_horizontal = ["topics"]
    readonly_fields = [
        "status",
        "status_note",
        "reach_now",
        "progress",
        "results",
        "plan",
        "preview",
        "author",
        "created_by_token",
    ]
    fieldsets = [
        (None, {"fields": ["title", "body", "link", "topics", "is_urgent", "delivery"]}),
        (_("In English (optional)"), {"fields": ["title_en", "body_en"], "classes": ["collapse"]}),
        (_("Media"), {"fields": ["media_kind", "media_url", "media_file"]}),
        (_("When"), {"fields": ["send_at", "expires_at"]}),
        (_("Plan before sending"), {"fields": ["plan"]}),
        (_("Preview as WhatsApp shows it"), {"fields": ["preview"]}),
        (_("Results"), {"fields": ["results"]}),
        (
            _("State"),
            {"fields": [f for f in readonly_fields if f not in ("plan", "preview", "results")]},
        ),
    ]
    # Each may also be started from the post's own page (a link to the same confirmation).
    actions = [admin_action(action) for action in ACTIONS.values()]

    class Media:
        js = ["subscribers/post_compose.js", "subscribers/post_progress.js"]

    def get_readonly_fields(self, request, obj=None):
        # Once sending has started the content is what people received: it is not edited.
        if obj is not None and obj.status not in publishing.PUBLISHABLE:
            return [*PostForm.Meta.fields, *self.readonly_fields]
        return self.readonly_fields

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("topics")

    # Without the right to change, Django shows the post read-only and refuses a POST to its
    # change or delete page (403), whatever the form data says.
    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and may_change_post(request.user, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and may_change_post(request.user, obj)

    @admin.display(description=_("topics"))
    def topic_list(self, post: Post) -> str:
        return ", ".join(str(topic) for topic in post.topics.all())

    @admin.display(description=_("people it would reach now"))
    def reach_now(self, post: Post) -> int | str:
        if post.pk is None:
            return _("saved posts show their reach")
        if post.kind == Post.Kind.DIGEST:  # each person its own digest
            return post.deliveries.count()
        return reach_count(topic.pk for topic in post.topics.all())

    def save_model(self, request, obj, form, change) -> None:
        if change:
            self._lock_status(obj)
        else:
            obj.author = request.user
        super().save_model(request, obj, form, change)

    @staticmethod
    def _lock_status(post: Post) -> None:
        """The rights were checked against the status read when the request began. The admin
        saves inside a transaction: locked, the row keeps that status until the save commits
        (a post being scheduled or published waits instead of going out half-edited), and a
        post that moved on in between is not saved at all."""
        current = Post.objects.select_for_update().values_list("status", flat=True)
        if current.get(pk=post.pk) != post.status:
            raise PermissionDenied

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        post = form.instance
        changes = form_changes(form) if change and post.status != Post.Status.DRAFT else {}
        if changes:  # someone approved this post for sending: the log says who changed what
            publishing.audit(
                action="edit", post=post, user=request.user, status=post.status, changed=changes
            )

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not can_publish(request.user):  # Redattore: drafts only
            for name in ACTIONS:
                actions.pop(name, None)
        return actions

    # --- read-only panels on the post's page ----------------------------------------------

    @admin.display(description=_("plan"))
    def plan(self, post: Post) -> str:
        if post.pk is None:
            return _("Save the post to see its plan.")
        plan = post_plan(post)
        return render_to_string(
            "admin/topics/post/plan.html",
            {"plan": plan, "days": plan.duration.days, "hours": plan.duration.seconds // 3600,
             "minutes": plan.duration.seconds // 60 % 60,
             "tier": "unlimited" if tier_limit() is None else tier_limit(), "mps": effective_mps(),
             "facts": phone_facts()},
        )  # fmt: skip

    @admin.display(description=_("preview"))
    def preview(self, post: Post) -> str:
        if post.pk is None:
            return _("Save the post to see the preview.")
        return render_to_string("admin/topics/post/preview.html", post_preview(post))

    def _not_sent_yet(self, post: Post) -> bool:
        return post.pk is None or post.status in publishing.PUBLISHABLE

    @admin.display(description=_("progress"))
    def progress(self, post: Post) -> str:
        if self._not_sent_yet(post):
            return "—"
        url = reverse("admin:topics_post_progress", args=[post.pk])
        return render_to_string(
            "admin/topics/post/progress.html", {"url": url, **progress_report(post)}
        )

    @admin.display(description=_("results by topic"))
    def results(self, post: Post) -> str:
        if self._not_sent_yet(post):
            return _("Shown once the post has been sent.")
        return render_to_string(
            "admin/topics/post/results.html",
            {
                "rows": results_by_topic(post),
                "cost": post_cost_report(post),
                "recipients_url": reverse("admin:topics_post_recipients", args=[post.pk]),
            },
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context["page_actions"] = self._page_actions(request, obj)
            context["may_see_recipients"] = self._may_see_recipients(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _page_actions(self, request, post: Post) -> list[tuple[str, str]]:
        if not can_publish(request.user):
            return []
        by_status = {
            Post.Status.DRAFT: ("send_test", "send_now", "schedule", "cancel_sending"),
            Post.Status.SCHEDULED: ("send_test", "send_now", "unschedule", "cancel_sending"),
            Post.Status.SENDING: ("cancel_sending", "resend_failed"),
            Post.Status.SENT: ("resend_failed",),
        }
        labels = {
            "send_test": _("Send a test"),
            "send_now": _("Send now"),
            "schedule": _("Schedule"),
            "unschedule": _("Unschedule"),
            "cancel_sending": (
                _("Stop sending") if post.status == Post.Status.SENDING else _("Cancel the post")
            ),
            "resend_failed": _("Resend to failed only"),
        }
        here = reverse("admin:topics_post_change", args=[post.pk])
        return [
            (name, labels[name], self._confirm_url(post, name) + f"?next={here}")
            for name in by_status.get(post.status, ())
        ]

    @staticmethod
    def _confirm_url(post: Post, action: str) -> str:
        return reverse("admin:topics_post_confirm", args=[post.pk, action])

    # --- extra views ------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "resume-sending/",
                view(require_POST(self.resume_sending_view)),
                name="topics_post_resume_sending",
            ),
            path(
                "dismiss-phone-notice/",
                view(require_POST(self.dismiss_phone_notice_view)),
                name="topics_post_dismiss_phone_notice",
            ),
            path("<int:post_id>/progress/", view(self.progress_view), name="topics_post_progress"),
            path(
                "<int:post_id>/recipients/",
                view(self.recipients_view),
                name="topics_post_recipients",
            ),
            path(
                "<int:post_id>/confirm/<str:action>/",
                view(self.confirm_view),
                name="topics_post_confirm",
            ),
            *super().get_urls(),
        ]

    def confirm_view(self, request, post_id: int, action: str):
        """The confirmation page of an action for one post, opened from the post's page."""
        if action not in ACTIONS or request.method != "GET":
            raise Http404
        queryset = self.get_queryset(request).filter(pk=post_id)
        if not queryset.exists():
            raise Http404
        return confirm_then_run(self, ACTIONS[action], request, queryset)

    def progress_view(self, request, post_id: int) -> JsonResponse:
        post = Post.objects.filter(pk=post_id).first()
        if post is None or not self.has_view_permission(request, post):
            raise PermissionDenied
        report = progress_report(post)
        report["finish"] = report["finish"] and date_format(
            timezone.localtime(report["finish"]), "DATETIME_FORMAT"
        )
        return JsonResponse(report)

    def _may_see_recipients(self, request, post: Post) -> bool:
        return self.has_view_permission(request, post) and request.user.has_perm(
            "subscribers.view_delivery"
        )

    def recipients_view(self, request, post_id: int):
        post = Post.objects.filter(pk=post_id).first()
        if post is None or not self._may_see_recipients(request, post):
            raise PermissionDenied
        statuses = dict(Delivery.Status.choices)
        status = request.GET.get("status", "")
        if status not in statuses:
            status = ""
        page = Paginator(post_recipients(post, status=status), RECIPIENTS_PER_PAGE).get_page(
            request.GET.get("page")
        )
        full = request.user.has_perm("subscribers.view_full_number")
        counters = post_counters(post)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Recipients of “%(title)s”") % {"title": post.title},
            "opts": self.model._meta,
            "post": post,
            "page": page,
            "status": status,
            "filters": [("", _("all"), counters["reach"])]
            + [(key, label, counters[key]) for key, label in statuses.items()],
            "rows": [
                {
                    "number": delivery.subscriber.shown_number(full=full),
                    "delivery": delivery,
                    "problem": explain(delivery.last_error_code)
                    if delivery.status == Delivery.Status.FAILED
                    else "",
                }
                for delivery in page.object_list
            ],
        }
        return TemplateResponse(request, "admin/topics/post/recipients.html", context)

    def resume_sending_view(self, request):
        if not can_publish(request.user):
            raise PermissionDenied
        if resume_sending(user=request.user):
            record_audit(user=request.user, action="resume_sending", obj="WhatsApp account")
            # What Meta says about the number now (the pause may have lowered its limits).
            transaction.on_commit(refresh_phone_facts_task.delay)
            self.message_user(request, _("Sending resumed."))
        return redirect(request.META.get("HTTP_REFERER") or "admin:index")

    def dismiss_phone_notice_view(self, request):
        if drop_dismiss():
            record_audit(user=request.user, action="dismiss_phone_notice", obj="WhatsApp number")
        return redirect(request.META.get("HTTP_REFERER") or "admin:index")
