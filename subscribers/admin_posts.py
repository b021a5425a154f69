"""The editors' desk for posts. It lives here, not in topics, because every figure on it
(reach, progress, results) is about the audience, which topics must not know about."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from channel.account import resume_sending
from channel.errors import explain
from channel.models import SendingState
from subscribers import publishing
from subscribers.desk import can_publish, post_plan, post_preview
from subscribers.models import Delivery
from subscribers.progress import estimated_finish, post_counters
from subscribers.selectors import reach_count
from topics.models import AuditEntry, Post


def progress_report(post: Post) -> dict:
    """Counters, finish estimate, pause reason and failures grouped by Meta's error code."""
    counters = post_counters(post)
    done = sum(counters[s] for s in ("sent", "delivered", "read", "failed", "cancelled"))
    failures = (
        Delivery.objects.filter(post=post, status=Delivery.Status.FAILED)
        .values("last_error_code")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    paused = SendingState.objects.filter(id=1, paused=True).first()
    return {
        "status": post.status,
        "counters": counters,
        "percent": round(100 * done / counters["reach"]) if counters["reach"] else 100,
        "finish": estimated_finish(post),
        "paused": paused.reason if paused else "",
        "failures": [
            {
                "code": row["last_error_code"],
                "count": row["n"],
                "why": explain(row["last_error_code"]),
            }
            for row in failures
        ],
    }


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "topic_list", "reach_now", "send_at", "created_at"]
    list_filter = ["status", "topics", "is_urgent"]
    search_fields = ["title", "body"]
    date_hierarchy = "created_at"
    filter_horizontal = ["topics"]
    readonly_fields = [
        "status",
        "status_note",
        "reach_now",
        "progress",
        "plan",
        "preview",
        "author",
        "created_by_token",
    ]
    fieldsets = [
        (None, {"fields": ["title", "body", "link", "topics", "is_urgent"]}),
        (_("Media"), {"fields": ["media_kind", "media_url", "media_file"]}),
        (_("When"), {"fields": ["send_at", "expires_at"]}),
        (_("Plan before sending"), {"fields": ["plan"]}),
        (_("Preview as WhatsApp shows it"), {"fields": ["preview"]}),
        (_("State"), {"fields": [f for f in readonly_fields if f not in ("plan", "preview")]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("topics")

    @admin.display(description=_("topics"))
    def topic_list(self, post: Post) -> str:
        return ", ".join(str(topic) for topic in post.topics.all())

    @admin.display(description=_("people it would reach now"))
    def reach_now(self, post: Post) -> int | str:
        if post.pk is None:
            return _("saved posts show their reach")
        return reach_count(topic.pk for topic in post.topics.all())

    actions = ["send_now", "cancel_sending", "resend_failed"]

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.author = request.user
        super().save_model(request, obj, form, change)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not can_publish(request.user):  # Redattore: drafts only
            for name in self.actions:
                actions.pop(name, None)
        return actions

    def _confirm(self, request, queryset, *, action: str, question, reach) -> TemplateResponse:
        rows = [(post, reach(post)) for post in queryset]
        context = {
            **self.admin_site.each_context(request),
            "title": question,
            "question": question,
            "rows": rows,
            "action": action,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/topics/post/confirm_action.html", context)

    def _run(self, request, queryset, service, done_message) -> None:
        if not can_publish(request.user):
            raise PermissionDenied
        for post in queryset:
            try:
                service(post=post, user=request.user)
            except publishing.PublishError as refusal:
                self.message_user(request, f"{post.title}: {refusal}", messages.ERROR)
            else:
                self.message_user(request, done_message % {"title": post.title})

    @admin.action(description=_("Send now (asks for confirmation)"))
    def send_now(self, request, queryset):
        if request.POST.get("confirmed") != "yes":
            return self._confirm(
                request,
                queryset,
                action="send_now",
                question=_("Send these posts now?"),
                reach=lambda post: reach_count(t.pk for t in post.topics.all()),
            )
        self._run(request, queryset, publishing.post_publish, _("“%(title)s” is being sent."))
        return None

    @admin.action(description=_("Cancel sending (asks for confirmation)"))
    def cancel_sending(self, request, queryset):
        if request.POST.get("confirmed") != "yes":
            return self._confirm(
                request,
                queryset,
                action="cancel_sending",
                question=_("Stop these posts? People not reached yet will not get them."),
                reach=lambda post: post.deliveries.filter(status=Delivery.Status.QUEUED).count(),
            )
        self._run(request, queryset, publishing.post_cancel, _("“%(title)s” was cancelled."))
        return None

    @admin.action(description=_("Resend to failed only (asks for confirmation)"))
    def resend_failed(self, request, queryset):
        if request.POST.get("confirmed") != "yes":
            return self._confirm(
                request,
                queryset,
                action="resend_failed",
                question=_("Send again to the people whose delivery failed?"),
                reach=lambda post: post.deliveries.filter(status=Delivery.Status.FAILED).count(),
            )
        self._run(request, queryset, publishing.resend_failed, _("“%(title)s”: resending."))
        return None

    @admin.display(description=_("plan"))
    def plan(self, post: Post) -> str:
        if post.pk is None:
            return _("Save the post to see its plan.")
        plan = post_plan(post)
        return render_to_string(
            "admin/topics/post/plan.html",
            {"plan": plan, "days": plan.duration.days, "hours": plan.duration.seconds // 3600,
             "minutes": plan.duration.seconds // 60 % 60, "tier": settings.WHATSAPP_MESSAGING_TIER,
             "mps": settings.WHATSAPP_MPS},
        )  # fmt: skip

    @admin.display(description=_("preview"))
    def preview(self, post: Post) -> str:
        if post.pk is None:
            return _("Save the post to see the preview.")
        return render_to_string("admin/topics/post/preview.html", post_preview(post))

    @admin.display(description=_("progress"))
    def progress(self, post: Post) -> str:
        if post.pk is None or post.status in (Post.Status.DRAFT, Post.Status.SCHEDULED):
            return "—"
        url = reverse("admin:topics_post_progress", args=[post.pk])
        return render_to_string(
            "admin/topics/post/progress.html", {"url": url, **progress_report(post)}
        )

    def progress_view(self, request, post_id: int) -> JsonResponse:
        post = Post.objects.filter(pk=post_id).first()
        if post is None or not self.has_view_permission(request, post):
            raise PermissionDenied
        report = progress_report(post)
        report["finish"] = report["finish"] and date_format(
            timezone.localtime(report["finish"]), "DATETIME_FORMAT"
        )
        return JsonResponse(report)

    def get_urls(self):
        resume = self.admin_site.admin_view(require_POST(self.resume_sending_view))
        progress = self.admin_site.admin_view(self.progress_view)
        return [
            path("resume-sending/", resume, name="topics_post_resume_sending"),
            path("<int:post_id>/progress/", progress, name="topics_post_progress"),
            *super().get_urls(),
        ]

    def resume_sending_view(self, request):
        if not can_publish(request.user):
            raise PermissionDenied
        if resume_sending(user=request.user):
            AuditEntry.objects.create(
                actor=request.user, action="resume_sending", object_repr="WhatsApp account"
            )
            self.message_user(request, _("Sending resumed."))
        return redirect(request.META.get("HTTP_REFERER") or "admin:index")
