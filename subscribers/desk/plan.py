"""Small pieces of the editors' desk shared by the admin screens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q
from django.http import HttpRequest
from django.utils.translation import gettext as _

from channel import clock
from channel.graph.account import is_paused, pause_state
from channel.graph.rendering import formatted, template_bubble
from channel.graph.window import window_cutoff
from channel.models import MessageTemplate, PhoneNumberFacts
from subscribers.delivery.budget import budget_state, committed_estimate, post_estimate
from subscribers.delivery.digest import at_once_audience, later_count
from subscribers.delivery.digest_render import digest_sample
from subscribers.delivery.payloads import (
    TemplateMismatch,
    default_template,
    free_form_text,
    media_link,
    template_fill,
    template_problem,
)
from subscribers.delivery.progress import send_duration
from subscribers.delivery.quiet import finish_after_quiet, quiet_note
from subscribers.models import Subscriber
from topics.models import Post


def can_publish(user) -> bool:
    return user.has_perm("topics.publish_post")


def may_change_post(user, post: Post | None) -> bool:
    """A draft is every editor's to change. Once a post is scheduled (or further) what goes out
    is what someone who may publish approved: only they may change or delete it."""
    return post is None or post.status == Post.Status.DRAFT or can_publish(user)


def sending_state(request: HttpRequest) -> dict:
    """Every admin page shows, at the top, when Meta stopped the whole account's sending."""
    user = getattr(request, "user", None)
    if not (request.path.startswith("/admin/") and user and user.is_staff):
        return {}
    state = pause_state()
    return {
        "sending_paused": state,
        "can_resume_sending": bool(state and can_publish(user)),
        # Meta lowered the number's quality, limit or throughput (channel.graph.phone).
        "phone_drop": PhoneNumberFacts.objects.exclude(drop_notice="").filter(id=1).first(),
    }


@dataclass(frozen=True)
class Plan:
    reach: int
    inside_window: int
    needing_template: int
    template: MessageTemplate | None
    cost: Decimal
    duration: timedelta
    warnings: tuple[str, ...]
    finish: datetime | None = None  # if sent now, quiet hours included
    quiet: str = ""  # "paused for quiet hours until 08:00" when sending now would wait for them
    budget_left: Decimal | None = None  # what is left of this month's budget (None: no budget)


def _template_missing(outside: int) -> str:
    """Say what to do: an approved template that is not marked for posts is the usual slip."""
    unmarked = MessageTemplate.objects.filter(
        status=MessageTemplate.Status.APPROVED, is_default=False
    ).first()
    if unmarked is not None:
        return _(
            "%(n)s people are outside the 24-hour window and no template is marked “Use for "
            "posts”: tick it on the approved template “%(name)s” (Message templates)."
        ) % {"n": outside, "name": unmarked.name}
    return _("No approved template: %(n)s people outside the 24-hour window.") % {"n": outside}


def _template_warnings(post: Post, template: MessageTemplate) -> list[str]:
    """The template cannot carry this post (e.g. it has a link button and the post has no
    link), or Meta changed its category since an editor last looked."""
    warnings = []
    problem = template_problem(post, template)
    if problem:
        warnings.append(problem)
    if template.quality_score == "red":
        warnings.append(
            _(
                "Meta rates the quality of the template “%(name)s” low (people block or report "
                "it): Meta may pause it."
            )
            % {"name": template.name}
        )
    if template.category_changed_at:
        warnings.append(
            _(
                "Meta changed the category of the template “%(name)s” from %(old)s to %(new)s: "
                "the price and who may receive it change with it (Message templates)."
            )
            % {
                "name": template.name,
                "old": template.category_changed_from,
                "new": template.get_category_display(),
            }
        )
    return warnings


def post_plan(post: Post) -> Plan:
    """What sending this post now means: who, how (free-form or template), cost and time.
    Two COUNTs over the audience; nothing is loaded per person."""
    if post.kind == Post.Kind.DIGEST:  # each person its own digest: its rows are the audience
        audience = Subscriber.objects.filter(deliveries__post=post)
    else:  # those who get it at once; the others wait for the digest (subscribers.delivery.digest)
        audience = at_once_audience(post)
    counts = audience.aggregate(
        reach=Count("id"),
        inside=Count("id", filter=Q(last_inbound_at__gt=window_cutoff())),
    )
    reach, inside = counts["reach"], counts["inside"]
    outside = reach - inside
    template = default_template("it")
    cost = post_estimate(post).eur  # the rate card (subscribers.delivery.costs)
    if post.kind == Post.Kind.DIGEST:
        cost = committed_estimate(post_id=post.pk).eur  # what its queue still holds
    budget = budget_state()
    warnings = []
    if budget.left is not None and cost > budget.left:
        warnings.append(
            _(
                "Over this month's budget: about € %(cost)s, and € %(left)s is left. Only an "
                "urgent post can be sent."
            )
            % {"cost": cost, "left": budget.left}
        )
    if outside and template is None:
        warnings.append(_template_missing(outside))
    if outside and template is not None:
        warnings.extend(_template_warnings(post, template))
    if is_paused():
        warnings.append(_("Sending is paused because of a WhatsApp account problem."))
    if post.is_expired():
        warnings.append(_("The post has expired."))
    later = later_count(post)
    if later:
        warnings.append(
            _(
                "%(n)s more people get it in the next weekly digest instead (they chose it): "
                "they are not counted here."
            )
            % {"n": later}
        )
    elif not reach:
        warnings.append(_("Nobody is subscribed to these topics yet."))
    duration = send_duration(total=reach, needing_template=outside)
    finish, resumes = finish_after_quiet(clock.now(), duration, urgent=post.is_urgent)
    return Plan(
        reach=reach,
        inside_window=inside,
        needing_template=outside,
        template=template,
        cost=cost,
        duration=duration,
        warnings=tuple(warnings),
        finish=finish,
        quiet=quiet_note(resumes),
        budget_left=budget.left,
    )


def post_preview(post: Post) -> dict:
    """The post as WhatsApp shows it: free-form, and the template version with its real
    wording (header, body, footer, buttons) and the post's fields filled in by the same code
    the sender uses; WhatsApp's formatting rendered (channel.graph.rendering)."""
    template = default_template("it")
    sample = digest_sample(post) if post.kind == Post.Kind.DIGEST else None
    template_post = post
    if sample is not None:  # a digest is each person's own: one of them, as they get it
        person, language, mine = sample
        post = mine.free_form
        template_post = mine.for_template(template, person, language) if template else post
    preview = {
        "free_form": formatted(free_form_text(post)),
        "media": media_link(post),
        "template": "",
        "template_name": template.name if template else "",
        "template_problem": "",
        "category_changed": bool(template and template.category_changed_at),
        "sample": _("The digest as one of its recipients gets it (each gets their own topics).")
        if sample
        else "",
    }
    if template is not None:
        try:
            filled = template_fill(template_post, template)
        except TemplateMismatch as exc:
            preview["template_problem"] = str(exc)
        else:
            preview["template"] = template_bubble(
                filled.shape, filled.body, filled.header_values, media=media_link(template_post)
            )
    return preview
