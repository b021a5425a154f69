"""The desk's confirmed actions on posts: each first shows how many people it would reach and
asks, then calls its service once per selected post and tells the editor what happened.

What differs between them is one row of `ACTIONS`; `confirm_then_run` does the rest. Every one
needs the right to publish (`can_publish`), and each service writes its own audit entry.

Sending and scheduling approve a post's content: the confirmation shows it, and the post is sent
only as it was shown. A draft changed after that (an editor may change drafts at any time) is
refused and must be confirmed again, so what goes out is always what someone who may publish
saw."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _

from subscribers.delivery import publishing
from subscribers.delivery.audience import reach_count
from subscribers.desk.plan import can_publish, post_plan
from subscribers.desk.trial_send import TrialResult, post_send_test, trial_numbers
from subscribers.models import Delivery, mask_phone
from topics.models import Post

# What the editor is told after a service succeeded: (text, message level) pairs.
Told = Iterable[tuple[str, int]]


def _reach(post: Post) -> int:
    return reach_count(t.pk for t in post.topics.all())


def _no_notes(post: Post) -> list[str]:
    return []


def _warnings(post: Post) -> list[str]:
    return list(post_plan(post).warnings)


@dataclass(frozen=True)
class PostAction:
    name: str
    label: str  # in the action menu of the list
    question: str  # heads the confirmation page
    service: Callable[..., object]  # service(post=…, user=…); a PublishError is its refusal
    done: Callable[[Post, object], Told]  # from the post and what the service returned
    reach: Callable[[Post], int] = _reach
    notes: Callable[[Post], list[str]] = _no_notes
    approves_content: bool = False  # sends to citizens the content the confirmation showed


def content_version(post: Post) -> str:
    """Changes with every save of the post (the services that publish change its status with
    UPDATEs, which leave it alone)."""
    return post.updated_at.isoformat()


def _saying(text: str) -> Callable[[Post, object], Told]:
    return lambda post, outcome: [(text % {"title": post.title}, messages.INFO)]


def _test_phones(post: Post) -> list[str]:
    numbers = ", ".join(mask_phone(n) for n in trial_numbers()) or _("none set")
    return [_("Test phones: %(numbers)s") % {"numbers": numbers}]


def _test_results(post: Post, results: list[TrialResult]) -> Told:
    for result in results:
        version = _("free-form") if result.version == "free_form" else _("template")
        level = messages.SUCCESS if result.ok else messages.WARNING
        yield f"{post.title} → {result.number} ({version}): {result.detail}", level


def _going_out(post: Post) -> list[str]:
    if post.send_at is None:
        return [_("No “send at” time: fill it in on the post first.")]
    moment = date_format(timezone.localtime(post.send_at), "DATETIME_FORMAT")
    return [_("Goes out on %(when)s.") % {"when": moment}, *_warnings(post)]


def _published(post: Post, outcome: publishing.PublishResult) -> Told:
    yield _("“%(title)s” is being sent.") % {"title": post.title}, messages.INFO
    if outcome.budget_warning:  # an urgent post over the budget: sent, and audited
        yield f"{post.title}: {outcome.budget_warning}", messages.WARNING


def _schedule_at_send_at(*, post: Post, user) -> Post:
    return publishing.post_schedule(post=post, send_at=post.send_at, user=user)


def _still_to_reach(post: Post) -> int:
    if post.status == Post.Status.SENDING:
        return post.deliveries.filter(status=Delivery.Status.QUEUED).count()
    return _reach(post)


def _resend_note(post: Post) -> list[str]:
    return [
        _(
            "People who received it, and failures another try cannot fix (not on WhatsApp, "
            "stopped marketing messages), are skipped."
        )
    ]


ACTIONS = {
    action.name: action
    for action in (
        PostAction(
            name="send_test",
            label=_("Send a test to the staff phones (asks for confirmation)"),
            question=_("Send a test of these posts to the staff phones only?"),
            service=post_send_test,
            done=_test_results,
            reach=lambda post: len(trial_numbers()),
            notes=_test_phones,
        ),
        PostAction(
            name="send_now",
            label=_("Send now (asks for confirmation)"),
            question=_("Send these posts now?"),
            service=publishing.post_publish,
            done=_published,
            notes=_warnings,
            approves_content=True,
        ),
        PostAction(
            name="schedule",
            label=_("Schedule for its “send at” time (asks for confirmation)"),
            question=_("Schedule these posts?"),
            service=_schedule_at_send_at,
            done=_saying(_("“%(title)s” is scheduled.")),
            notes=_going_out,
            approves_content=True,
        ),
        PostAction(
            name="unschedule",
            label=_("Unschedule: back to draft (asks for confirmation)"),
            question=_("Take these posts off the schedule? They go back to draft."),
            service=publishing.post_unschedule,
            done=_saying(_("“%(title)s” is a draft again.")),
        ),
        PostAction(
            name="cancel_sending",
            label=_("Cancel sending (asks for confirmation)"),
            question=_("Stop these posts? People not reached yet will not get them."),
            service=publishing.post_cancel,
            done=_saying(_("“%(title)s” was cancelled.")),
            reach=_still_to_reach,
        ),
        PostAction(
            name="resend_failed",
            label=_("Resend to failed only (asks for confirmation)"),
            question=_("Send again to the people whose delivery failed?"),
            service=publishing.resend_failed,
            done=_saying(_("“%(title)s”: resending.")),
            reach=lambda post: publishing.resendable(post).count(),
            notes=_resend_note,
        ),
    )
}


def admin_action(action: PostAction):
    """`action` as an entry of ModelAdmin.actions, named after it."""

    def run(model_admin, request, queryset):
        return confirm_then_run(model_admin, action, request, queryset)

    run.__name__ = action.name
    return admin.action(description=action.label)(run)


def confirm_then_run(model_admin, action: PostAction, request, queryset):
    """The confirmation page; once confirmed, the service for each post, then back where the
    editor started (the post's page, or the list)."""
    if not can_publish(request.user):
        raise PermissionDenied
    if not (request.method == "POST" and request.POST.get("confirmed") == "yes"):
        return _confirmation(model_admin, action, request, queryset)
    for post in queryset:
        try:
            outcome = _run(action, request, post)
        except publishing.PublishError as refusal:
            model_admin.message_user(request, f"{post.title}: {refusal}", messages.ERROR)
            continue
        for text, level in action.done(post, outcome):
            model_admin.message_user(request, text, level)
    url = _next_url(request)
    return HttpResponseRedirect(url) if url else None


def _run(action: PostAction, request, post: Post) -> object:
    if not action.approves_content:
        return action.service(post=post, user=request.user)
    with transaction.atomic():
        # Locked, the post cannot be saved between the comparison and the service.
        post = Post.objects.select_for_update().get(pk=post.pk)
        if request.POST.get(f"version-{post.pk}") != content_version(post):
            raise publishing.PublishError(
                _(
                    "the post was changed after the confirmation page showed it. Nothing was "
                    "done: read it again and confirm again."
                )
            )
        return action.service(post=post, user=request.user)


def _confirmation(model_admin, action: PostAction, request, queryset):
    rows = [(post, action.reach(post), action.notes(post)) for post in queryset]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": action.question,
        "question": action.question,
        "rows": rows,
        "action": action.name,
        "approves_content": action.approves_content,
        "versions": [(row[0].pk, content_version(row[0])) for row in rows]
        if action.approves_content
        else [],
        "next": _next_url(request),
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "admin/topics/post/confirm_action.html", context)


def _next_url(request) -> str:
    url = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(url, {request.get_host()}, request.is_secure())
    return url if safe else ""
