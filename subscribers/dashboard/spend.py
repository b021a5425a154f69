"""The dashboard's money: what Meta billed this month, per post, per topic and per subscriber,
against the budget, and what the weekly digest saved. Every figure is a GROUP BY over the
month's billed deliveries (subscribers.delivery.costs); nothing is loaded per person."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection

from channel import clock
from subscribers.delivery.budget import BudgetState, budget_state
from subscribers.delivery.costs import (
    CENT,
    Cost,
    actual_costs,
    month_deliveries,
    month_start,
    rate_card,
)
from subscribers.delivery.payloads import default_template
from subscribers.models import Delivery, Subscriber, Subscription
from topics.models import Post, Topic

TOP_POSTS = 20


@dataclass(frozen=True)
class DigestSaving:
    messages_avoided: int
    eur: Decimal


@dataclass(frozen=True)
class Spend:
    since: datetime
    total: Cost
    budget: BudgetState
    posts: list[tuple[Post, Cost]]  # this month's most expensive first
    topics: list[tuple[Topic, Decimal]]  # a post on two topics counts under both
    per_subscriber: Decimal | None  # this month's total / active subscribers now
    digest: DigestSaving


def spend(now: datetime | None = None) -> Spend:
    now = now or clock.now()
    by_post = actual_costs(month_deliveries(now), "post_id")
    total = Cost()
    for cost in by_post.values():
        total.eur += cost.eur
        total.messages += cost.messages
        total.unpriced += cost.unpriced
    ranked = sorted(by_post.items(), key=lambda item: item[1].eur, reverse=True)[:TOP_POSTS]
    posts = Post.objects.in_bulk([key[0] for key, _cost in ranked])
    per_topic: dict[int, Decimal] = defaultdict(Decimal)
    tagged = Post.topics.through.objects.filter(post_id__in=[key[0] for key in by_post])
    for post_id, topic_id in tagged.values_list("post_id", "topic_id"):
        per_topic[topic_id] += by_post[(post_id,)].eur
    topics = Topic.objects.in_bulk(list(per_topic))
    active = Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).count()
    return Spend(
        since=month_start(now),
        total=total,
        budget=budget_state(now),
        posts=[(posts[key[0]], cost) for key, cost in ranked if key[0] in posts],
        topics=sorted(
            ((topics[pk], eur.quantize(CENT)) for pk, eur in per_topic.items() if pk in topics),
            key=lambda row: row[1],
            reverse=True,
        ),
        per_subscriber=(total.eur / active).quantize(Decimal("0.0001")) if active else None,
        digest=digest_saving(now),
    )


# Messages the digest avoided: for each digest delivered this month, one message per gathered
# post its person follows a topic of (what "everything at once" would have sent them), minus
# the digest itself. Grouped by the number's first digits, to price them with the rate card.
_AVOIDED_SQL = """
    SELECT x.prefix, COUNT(*) - COUNT(DISTINCT x.delivery_id) FROM (
        SELECT DISTINCT d.id AS delivery_id, p.id AS post_id,
               COALESCE(SUBSTR(who.wa_id, 1, 3), '') AS prefix
        FROM {delivery} d
        JOIN {subscriber} who ON who.id = d.subscriber_id
        JOIN {post} p ON p.digest_id = d.post_id
        JOIN {post_topics} pt ON pt.post_id = p.id
        JOIN {subscription} s ON s.subscriber_id = d.subscriber_id AND s.topic_id = pt.topic_id
        WHERE d.sent_at >= %s AND d.status IN ('delivered', 'read')
    ) x GROUP BY x.prefix
"""


def digest_saving(now: datetime | None = None) -> DigestSaving:
    """Messages avoided × the rate of the template they would have gone as. Hook: it reads
    the weekly digest's rows (Post.digest, set on the posts a digest gathered); without any
    digest this month it is 0."""
    if not Post.objects.filter(kind=Post.Kind.DIGEST, published_at__gte=month_start(now)).exists():
        return DigestSaving(0, Decimal(0))
    sql = _AVOIDED_SQL.format(
        delivery=Delivery._meta.db_table,
        subscriber=Subscriber._meta.db_table,
        post=Post._meta.db_table,
        post_topics=Post.topics.through._meta.db_table,
        subscription=Subscription._meta.db_table,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [month_start(now)])
        rows = cursor.fetchall()
    template = default_template("it")
    card, today = rate_card(), clock.now().date()
    saved = Cost()
    for prefix, avoided in rows:
        saved.add(card.price(template.category if template else "", prefix, today), avoided)
    return DigestSaving(saved.messages, saved.rounded)
