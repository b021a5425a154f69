"""The editors' desk for posts. It lives here, not in topics, because every figure on it
(reach, progress, results) is about the audience, which topics must not know about.

The admin only parses, checks permissions and calls: the work is in subscribers.desk.post_form and
compose (checks before saving), desk (plan, preview, scheduling), publishing (send, cancel, resend),
trial_send (test to staff phones) and results (progress, results by topic, recipients)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from channel.graph.account import resume_sending
from channel.graph.errors import explain
from subscribers.delivery import publishing
from subscribers.delivery.audience import reach_count
from subscribers.delivery.progress import post_counters
from subscribers.delivery.results import post_recipients, progress_report, results_by_topic
from subscribers.desk.plan import can_publish, post_plan, post_preview
from subscribers.desk.post_form import PostForm
from subscribers.desk.trial_send import post_send_test, trial_numbers
from subscribers.models import Delivery, mask_phone
from topics.audit import record_audit
from topics.models import Post

RECIPIENTS_PER_PAGE = 50
# Actions that may also be started from a post's own page (a link to the same confirmation).
PAGE_ACTIONS = (
    "send_test",
    "send_now",
    "schedule",
    "unschedule",
    "cancel_sending",
    "resend_failed",
)


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    form = PostForm
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
        "results",
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
        (_("Results"), {"fields": ["results"]}),
        (
            _("State"),
            {"fields": [f for f in readonly_fields if f not in ("plan", "preview", "results")]},
        ),
    ]
    actions = [*PAGE_ACTIONS]

    class Media:
        js = ["subscribers/post_compose.js"]

    def get_readonly_fields(self, request, obj=None):
        # Once sending has started the content is what people received: it is not edited.
        if obj is not None and obj.status not in publishing.PUBLISHABLE:
            return [*PostForm.Meta.fields, *self.readonly_fields]
        return self.readonly_fields

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

    # --- confirmed actions -------------------------------------------------------------------

    def _confirm(self, request, queryset, *, action: str, question, reach, note=None):
        rows = [(post, reach(post), note(post) if note else []) for post in queryset]
        context = {
            **self.admin_site.each_context(request),
            "title": question,
            "question": question,
            "rows": rows,
            "action": action,
            "next": self._next_url(request),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/topics/post/confirm_action.html", context)

    def _next_url(self, request) -> str:
        url = request.POST.get("next") or request.GET.get("next") or ""
        safe = url_has_allowed_host_and_scheme(url, {request.get_host()}, request.is_secure())
        return url if safe else ""

    def _done(self, request):
        """Back where the editor started: the post's page, or the list."""
        url = self._next_url(request)
        return HttpResponseRedirect(url) if url else None

    def _run(self, request, queryset, service, done_message):
        if not can_publish(request.user):
            raise PermissionDenied
        for post in queryset:
            try:
                service(post=post, user=request.user)
            except publishing.PublishError as refusal:
                self.message_user(request, f"{post.title}: {refusal}", messages.ERROR)
            else:
                self.message_user(request, done_message % {"title": post.title})
        return self._done(request)

    def _confirmed(self, request) -> bool:
        if not can_publish(request.user):
            raise PermissionDenied
        return request.method == "POST" and request.POST.get("confirmed") == "yes"

    @staticmethod
    def _reach(post: Post) -> int:
        return reach_count(t.pk for t in post.topics.all())

    @staticmethod
    def _warnings(post: Post) -> list[str]:
        return list(post_plan(post).warnings)

    @admin.action(description=_("Send a test to the staff phones (asks for confirmation)"))
    def send_test(self, request, queryset):
        if not self._confirmed(request):
            numbers = ", ".join(mask_phone(n) for n in trial_numbers()) or _("none set")
            return self._confirm(
                request,
                queryset,
                action="send_test",
                question=_("Send a test of these posts to the staff phones only?"),
                reach=lambda post: len(trial_numbers()),
                note=lambda post: [_("Test phones: %(numbers)s") % {"numbers": numbers}],
            )
        for post in queryset:
            try:
                results = post_send_test(post=post, user=request.user)
            except publishing.PublishError as refusal:
                self.message_user(request, f"{post.title}: {refusal}", messages.ERROR)
                continue
            for result in results:
                version = _("free-form") if result.version == "free_form" else _("template")
                self.message_user(
                    request,
                    f"{post.title} → {result.number} ({version}): {result.detail}",
                    messages.SUCCESS if result.ok else messages.WARNING,
                )
        return self._done(request)

    @admin.action(description=_("Send now (asks for confirmation)"))
    def send_now(self, request, queryset):
        if not self._confirmed(request):
            return self._confirm(
                request,
                queryset,
                action="send_now",
                question=_("Send these posts now?"),
                reach=self._reach,
                note=self._warnings,
            )
        return self._run(
            request, queryset, publishing.post_publish, _("“%(title)s” is being sent.")
        )

    @admin.action(description=_("Schedule for its “send at” time (asks for confirmation)"))
    def schedule(self, request, queryset):
        if not self._confirmed(request):

            def when(post: Post) -> list[str]:
                if post.send_at is None:
                    return [_("No “send at” time: fill it in on the post first.")]
                moment = date_format(timezone.localtime(post.send_at), "DATETIME_FORMAT")
                return [_("Goes out on %(when)s.") % {"when": moment}, *self._warnings(post)]

            return self._confirm(
                request,
                queryset,
                action="schedule",
                question=_("Schedule these posts?"),
                reach=self._reach,
                note=when,
            )

        def schedule_at_send_at(*, post, user):
            return publishing.post_schedule(post=post, send_at=post.send_at, user=user)

        return self._run(request, queryset, schedule_at_send_at, _("“%(title)s” is scheduled."))

    @admin.action(description=_("Unschedule: back to draft (asks for confirmation)"))
    def unschedule(self, request, queryset):
        if not self._confirmed(request):
            return self._confirm(
                request,
                queryset,
                action="unschedule",
                question=_("Take these posts off the schedule? They go back to draft."),
                reach=self._reach,
            )
        return self._run(
            request, queryset, publishing.post_unschedule, _("“%(title)s” is a draft again.")
        )

    @admin.action(description=_("Cancel sending (asks for confirmation)"))
    def cancel_sending(self, request, queryset):
        if not self._confirmed(request):
            return self._confirm(
                request,
                queryset,
                action="cancel_sending",
                question=_("Stop these posts? People not reached yet will not get them."),
                reach=lambda post: (
                    post.deliveries.filter(status=Delivery.Status.QUEUED).count()
                    if post.status == Post.Status.SENDING
                    else self._reach(post)
                ),
            )
        return self._run(request, queryset, publishing.post_cancel, _("“%(title)s” was cancelled."))

    @admin.action(description=_("Resend to failed only (asks for confirmation)"))
    def resend_failed(self, request, queryset):
        if not self._confirmed(request):
            return self._confirm(
                request,
                queryset,
                action="resend_failed",
                question=_("Send again to the people whose delivery failed?"),
                reach=lambda post: publishing.resendable(post).count(),
                note=lambda post: [
                    _(
                        "People who received it, and failures another try cannot fix (not on "
                        "WhatsApp, stopped marketing messages), are skipped."
                    )
                ],
            )
        return self._run(request, queryset, publishing.resend_failed, _("“%(title)s”: resending."))

    # --- read-only panels on the post's page ----------------------------------------------

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
        if action not in PAGE_ACTIONS or request.method != "GET":
            raise Http404
        queryset = self.get_queryset(request).filter(pk=post_id)
        if not queryset.exists():
            raise Http404
        return getattr(self, action)(request, queryset)

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
            self.message_user(request, _("Sending resumed."))
        return redirect(request.META.get("HTTP_REFERER") or "admin:index")
