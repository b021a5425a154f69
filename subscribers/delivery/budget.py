"""The monthly budget (BANDITORE_MONTHLY_BUDGET_EUR): what is left, and whether a post fits.

What is left this month = the budget − what Meta's billable statuses say was spent since the
first of the month (subscribers.delivery.costs) − the estimate of what posts being sent still
have queued. A non-urgent post (or digest) whose estimate exceeds it is refused with the
figures; an urgent one goes out with a warning, and the override is audited by the caller
(subscribers.delivery.publishing). `budget_check` is the one service every publishing path
calls. At 80 % of the budget spent the administrators get one e-mail a month (deploy.alerts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL
from django.utils.translation import gettext as _

from channel import clock
from channel.graph.window import window_cutoff
from subscribers.delivery.audience import audience_for_topics
from subscribers.delivery.costs import (
    CENT,
    Estimate,
    estimate_for,
    post_actual_cost,
    spent_this_month,
)
from subscribers.delivery.digest import at_once_condition
from subscribers.delivery.payloads import default_template
from subscribers.models import Delivery, Subscriber, Subscription
from topics.models import AuditEntry, Post

ALERT_SHARE = Decimal("0.8")


def euro(amount: Decimal) -> str:
    return f"€ {amount.quantize(CENT)}"


def post_estimate(post: Post, now: datetime | None = None) -> Estimate:
    """The cost of sending `post` now to those who get it at once (the others wait for the
    weekly digest, which is checked and costed as a post of its own): one GROUP BY."""
    template = default_template("it")
    topic_ids = list(post.topics.values_list("id", flat=True))
    audience = audience_for_topics(topic_ids)
    condition, params = at_once_condition(post)  # the digest's rule, in its one place
    if condition != "TRUE" and topic_ids:
        people, follows = Subscriber._meta.db_table, Subscription._meta.db_table
        marks = ", ".join(["%s"] * len(topic_ids))
        at_once = RawSQL(
            f"EXISTS (SELECT 1 FROM {follows} s JOIN {people} p ON p.id = s.subscriber_id "
            f"WHERE p.id = {people}.id AND s.topic_id IN ({marks}) AND {condition})",
            [*topic_ids, *params],
            output_field=BooleanField(),
        )
        audience = audience.filter(at_once)
    return estimate_for(
        audience,
        template.category if template else "",
        inside=Q(last_inbound_at__gt=window_cutoff(now or clock.now())),
        number="wa_id",
    )


@dataclass(frozen=True)
class CostReport:
    """A post's estimated cost beside its actual cost, for the results page and the API."""

    estimate_eur: Decimal | None  # the plan when it was published (now, for a draft)
    actual_eur: Decimal
    billable_messages: int
    unpriced_messages: int  # billable, but the rate card has no rate for them


def post_cost_report(post: Post) -> CostReport:
    published = (  # a digest's (subscribers.delivery.digest) may carry its estimate_eur too
        AuditEntry.objects.filter(action__in=("publish", "digest"), details__post_id=post.pk)
        .order_by("-at", "-pk")
        .values_list("details", flat=True)
        .first()
    )
    if published is not None:
        estimate = published.get("estimate_eur")
        estimate = Decimal(estimate) if estimate is not None else None
    else:
        estimate = post_estimate(post).eur
    actual = post_actual_cost(post.pk)
    return CostReport(estimate, actual.rounded, actual.messages, actual.unpriced)


def committed_estimate(
    now: datetime | None = None, *, post_id: int | None = None, excluding: int | None = None
) -> Estimate:
    """What posts being sent (or the one `post_id`) still have queued or in flight, priced
    like a plan. A digest, fanned out before it is checked, is `post_id` for its estimate and
    `excluding` for what is committed besides it."""
    template = default_template("it")
    rows = Delivery.objects.filter(
        status__in=(Delivery.Status.QUEUED, Delivery.Status.SENDING),
        post__status=Post.Status.SENDING,
    )
    if post_id is not None:
        rows = rows.filter(post_id=post_id)
    if excluding is not None:
        rows = rows.exclude(post_id=excluding)
    inside = Q(used_template=False, subscriber__last_inbound_at__gt=window_cutoff(now))
    return estimate_for(
        rows, template.category if template else "", inside=inside, number="subscriber__wa_id"
    )


@dataclass(frozen=True)
class BudgetState:
    budget: Decimal | None
    spent: Decimal
    committed: Decimal

    @property
    def left(self) -> Decimal | None:
        if self.budget is None:
            return None
        return max(Decimal(0), self.budget - self.spent - self.committed).quantize(CENT)

    @property
    def spent_share(self) -> Decimal | None:
        return self.spent / self.budget if self.budget else None


def budget_state(now: datetime | None = None, *, excluding: int | None = None) -> BudgetState:
    budget = settings.BANDITORE_MONTHLY_BUDGET_EUR
    if budget is None:
        return BudgetState(None, spent_this_month(now).rounded, Decimal(0))
    committed = committed_estimate(now, excluding=excluding).eur
    return BudgetState(budget, spent_this_month(now).rounded, committed)


class OverBudget(Exception):  # noqa: N818  (a refusal, like PublishError)
    """A non-urgent post does not fit in what is left; `figures` go into the API's 422 body."""

    def __init__(self, estimate: Decimal, state: BudgetState) -> None:
        self.figures = {
            "estimate_eur": str(estimate.quantize(CENT)),
            "left_eur": str(state.left),
            "budget_eur": str(state.budget.quantize(CENT)),
            "spent_eur": str(state.spent),
            "committed_eur": str(state.committed),
        }
        super().__init__(
            _(
                "Over this month's budget: this post would cost about %(estimate)s, and only "
                "%(left)s is left of %(budget)s (spent %(spent)s, posts being sent %(committed)s). "
                "Mark it urgent to send it anyway, or wait for next month."
            )
            % {
                "estimate": euro(estimate),
                "left": euro(state.left),
                "budget": euro(state.budget),
                "spent": euro(state.spent),
                "committed": euro(state.committed),
            }
        )

    def figures_text(self) -> str:
        figures = self.figures
        return _("estimate € %(estimate)s, left € %(left)s of € %(budget)s") % {
            "estimate": figures["estimate_eur"],
            "left": figures["left_eur"],
            "budget": figures["budget_eur"],
        }


def budget_check(
    estimate: Decimal, urgent: bool, now: datetime | None = None, *, excluding: int | None = None
) -> str:
    """'' when `estimate` fits in what is left (or there is no budget). Over it: raises
    OverBudget for a non-urgent post or digest; for an urgent one returns the warning, and the
    caller sends it anyway and audits the override. A digest checks itself after its fan-out,
    inside the same transaction (an OverBudget rolls it back):
    `budget_check(committed_estimate(post_id=d.pk).eur, urgent=False, excluding=d.pk)`."""
    if settings.BANDITORE_MONTHLY_BUDGET_EUR is None:
        return ""  # no budget: no need to add up the month
    state = budget_state(now, excluding=excluding)
    if estimate <= state.left:
        return ""
    refusal = OverBudget(estimate, state)
    if not urgent:
        raise refusal
    return _("Urgent, sent over the budget: %(why)s") % {"why": refusal.figures_text()}
