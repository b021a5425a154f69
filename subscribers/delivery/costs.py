"""What posts cost: the estimate before sending and the actual cost after, from Meta's own data.

- The rate card (`subscribers.models.Rate`, edited in the admin) is the one place for prices:
  EUR per message by Meta's pricing category and the recipient's country calling code, each
  from a date on. A number takes the rate of its longest matching code (calling codes are
  prefix-free), else the row without a code; a message the rate in force on the day it was sent.
- Actual cost: Meta's status webhooks say on every message whether it is billable, in which
  category (recorded per delivery by subscribers.delivery.statuses). Per-message pricing charges
  a *delivered* message, so the cost is billable rows delivered or read × their rate
  (https://developers.facebook.com/docs/whatsapp/pricing).
- Every figure comes from a GROUP BY over (category, first three digits of the number, day),
  a few dozen groups whatever the audience; the rates are applied to the groups in Python.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Value
from django.db.models.functions import Coalesce, Substr, TruncDate
from django.utils import timezone

from channel import clock
from subscribers.models import Delivery, Rate

SERVICE = Rate.Category.SERVICE
# Meta says `billable` "will be deprecated; use pricing.type together with pricing.category":
# without it, a `regular` type is what is charged (the free types are free_customer_service and
# free_entry_point).
BILLED = (Q(billable=True) | Q(billable__isnull=True, pricing_type="regular")) & Q(
    status__in=(Delivery.Status.DELIVERED, Delivery.Status.READ)
)
CENT = Decimal("0.01")


class RateCard:
    """Every rate, loaded once (a few dozen rows)."""

    def __init__(self, rows: Iterable[tuple[str, str, date, Decimal]]) -> None:
        self._rates: dict[tuple[str, str], list[tuple[date, Decimal]]] = defaultdict(list)
        for category, country, valid_from, price in rows:
            self._rates[(category, country)].append((valid_from, price))
        for dated in self._rates.values():
            dated.sort(reverse=True)

    def price(self, category: str, number_prefix: str, on: date) -> Decimal | None:
        """EUR for one message of `category` to a number starting with `number_prefix`, on
        the day `on`; None when the card has no rate for it."""
        for length in (3, 2, 1, 0):
            if length > len(number_prefix):
                continue
            for valid_from, price in self._rates.get((category, number_prefix[:length]), ()):
                if valid_from <= on:
                    return price
        return None


def rate_card() -> RateCard:
    return RateCard(Rate.objects.values_list("category", "country_code", "valid_from", "price_eur"))


@dataclass
class Cost:
    """Money and the messages it is for; `unpriced`: billable messages the card has no rate
    for (counted, not guessed)."""

    eur: Decimal = Decimal(0)
    messages: int = 0
    unpriced: int = 0

    def add(self, price: Decimal | None, n: int) -> None:
        self.messages += n
        if price is None:
            self.unpriced += n
        else:
            self.eur += price * n

    @property
    def rounded(self) -> Decimal:
        return self.eur.quantize(CENT)


def _prefix(lookup: str) -> Coalesce:
    return Coalesce(Substr(lookup, 1, 3), Value(""))


def billed_groups(deliveries: QuerySet[Delivery], *by: str) -> QuerySet:
    """Billed deliveries counted per (`by`…, category, number prefix, day sent)."""
    return (
        deliveries.filter(BILLED)
        .values(
            *by,
            "pricing_category",
            prefix=_prefix("subscriber__wa_id"),
            day=TruncDate(Coalesce("sent_at", "delivered_at", "read_at")),
        )
        .annotate(n=Count("id"))
        .order_by()
    )


def actual_costs(deliveries: QuerySet[Delivery], *by: str) -> dict[tuple, Cost]:
    """{(values of `by`…): Cost} of the billed deliveries; {(): Cost} without `by`."""
    card, today = rate_card(), timezone.localdate()
    costs: dict[tuple, Cost] = defaultdict(Cost)
    for row in billed_groups(deliveries, *by):
        price = card.price(row["pricing_category"] or "", row["prefix"], row["day"] or today)
        costs[tuple(row[key] for key in by)].add(price, row["n"])
    return costs


def post_actual_cost(post_id: int) -> Cost:
    return actual_costs(Delivery.objects.filter(post_id=post_id)).get((), Cost())


@dataclass
class Estimate:
    """The planner's figure before sending: people outside the 24-hour window get the template
    (its category's rate), the others a free-form message (the `service` rate)."""

    cost: Cost = field(default_factory=Cost)

    @property
    def eur(self) -> Decimal:
        return self.cost.rounded


def estimate_for(people: QuerySet, template_category: str, *, inside: Q, number: str) -> Estimate:
    """Estimate for a set of rows (subscribers, or deliveries still to send): `inside` says who
    is inside the window, `number` is the lookup of their wa_id. One GROUP BY."""
    card, today = rate_card(), clock.now().date()
    estimate = Estimate()
    rows = (
        people.values(prefix=_prefix(number))
        .annotate(inside=Count("pk", filter=inside), n=Count("pk"))
        .order_by()
    )
    for row in rows:
        inside_n = row["inside"]
        estimate.cost.add(card.price(SERVICE, row["prefix"], today), inside_n)
        estimate.cost.add(card.price(template_category, row["prefix"], today), row["n"] - inside_n)
    return estimate


def month_start(now: datetime | None = None) -> datetime:
    """Midnight of the first day of this month, in the council's time."""
    local = timezone.localtime(now or clock.now())
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_deliveries(now: datetime | None = None) -> QuerySet[Delivery]:
    """Deliveries sent this month (council time)."""
    return Delivery.objects.filter(sent_at__gte=month_start(now))


def spent_this_month(now: datetime | None = None) -> Cost:
    return actual_costs(month_deliveries(now)).get((), Cost())
