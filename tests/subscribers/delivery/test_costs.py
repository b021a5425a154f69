"""The real cost of a post, from Meta's own data: the fake Graph API's status webhooks carry
Meta's `pricing` object, every delivery records it, the rate card prices it; the estimate and the
actual cost side by side on the results page, in the API and on the dashboard."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from channel.models import MessageTemplate
from channel.webhook.parsing import StatusUpdate, parse_webhook
from subscribers.dashboard.spend import spend
from subscribers.delivery import publishing, sending
from subscribers.delivery.budget import post_cost_report
from subscribers.delivery.costs import RateCard, post_actual_cost
from subscribers.delivery.statuses import apply_statuses
from subscribers.models import Delivery, Rate
from tests.factories import (
    log_in_as,
    make_delivery,
    make_post,
    make_subscriber,
    make_template,
    make_topic,
)
from tests.subscribers.api.helpers import client_for, token_with_key
from tests.subscribers.delivery.helpers import fast_sending
from topics.models import Post

pytestmark = pytest.mark.django_db

MARKETING_IT = Decimal("0.0691")


@pytest.fixture
def marketing(fake_graph, settings, redis_conn):
    fast_sending(settings, batch=20)
    fake_graph.register_template("avviso_comune", "it", "marketing", body_params=2)
    return make_template(category=MessageTemplate.Category.MARKETING)


@pytest.mark.django_db(transaction=True)
def test_every_delivery_records_what_metas_status_webhook_says_about_its_price(
    fake_graph, live_server, marketing
):
    """End to end: templates outside the window are billable marketing, the free-form message
    inside it is free customer service, as Meta marks them; the actual cost follows."""
    fake_graph.configure(webhook_url=f"{live_server.url}/whatsapp/webhook/", status_delay_ms=10)
    # A transactional test may find the tables flushed by the one before: the migration's rate.
    Rate.objects.get_or_create(
        category="marketing",
        country_code="39",
        valid_from=date(2025, 7, 1),
        defaults={"price_eur": MARKETING_IT},
    )
    topic = make_topic()
    outside = [make_subscriber(topics=[topic]) for _ in range(2)]
    inside = make_subscriber(topics=[topic], last_inbound_at=timezone.now())
    fake_graph.mark_inbound(inside.wa_id)
    post = make_post(topics=[topic])
    publishing.post_publish(post=post)
    sending.drain_post(post.pk)
    fake_graph.flush_statuses()
    rows = {
        d.subscriber_id: (d.billable, d.pricing_model, d.pricing_type, d.pricing_category)
        for d in Delivery.objects.filter(post=post)
    }
    assert rows == {
        outside[0].pk: (True, "PMP", "regular", "marketing"),
        outside[1].pk: (True, "PMP", "regular", "marketing"),
        inside.pk: (False, "PMP", "free_customer_service", "service"),
    }
    assert post_actual_cost(post.pk).eur == 2 * MARKETING_IT
    report = post_cost_report(post)
    assert report.estimate_eur == (2 * MARKETING_IT).quantize(Decimal("0.01"))
    assert (report.actual_eur, report.billable_messages) == (Decimal("0.14"), 2)


def _status(entry_wamid: str, status: str, **pricing) -> StatusUpdate:
    return StatusUpdate(wamid=entry_wamid, status=status, timestamp=timezone.now(), **pricing)


def test_pricing_is_kept_when_a_later_status_has_none(settings):
    """Meta sends `pricing` with `sent` and one of delivered/read, never with both: a `read`
    without it leaves what `sent` said. Runs the set-based path on PostgreSQL."""
    person = make_subscriber()
    post = make_post(status=Post.Status.SENDING)
    delivery = make_delivery(post=post, subscriber=person, status="sending", wa_message_id="w1")
    priced = {
        "pricing_billable": True,
        "pricing_model": "PMP",
        "pricing_type": "regular",
        "pricing_category": "utility",
    }
    apply_statuses([_status("w1", "sent", **priced)])
    apply_statuses([_status("w1", "read")])
    delivery.refresh_from_db()
    assert delivery.status == "read"
    assert (delivery.billable, delivery.pricing_category, delivery.pricing_type) == (
        True,
        "utility",
        "regular",
    )


def test_the_webhook_parser_reads_metas_pricing_object_and_drops_wrong_types():
    value = {
        "statuses": [
            {
                "id": "wamid.1",
                "status": "sent",
                "timestamp": "1750030073",
                "recipient_id": "393331234567",
                "pricing": {
                    "billable": True,
                    "pricing_model": "PMP",
                    "type": "regular",
                    "category": "marketing",
                },
            },
            {
                "id": "wamid.2",
                "status": "sent",
                "timestamp": "1750030073",
                "pricing": {"billable": "yes", "category": ["x"]},
            },
        ]
    }
    envelope = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }
    first, second = parse_webhook(envelope).statuses
    assert (first.pricing_billable, first.pricing_model, first.pricing_type) == (
        True,
        "PMP",
        "regular",
    )
    assert first.pricing_category == "marketing"
    assert (second.pricing_billable, second.pricing_category) == (None, "")


def test_the_rate_card_takes_the_longest_country_code_and_the_rate_of_the_day():
    card = RateCard(
        [
            ("marketing", "39", date(2025, 7, 1), Decimal("0.0691")),
            ("marketing", "39", date(2026, 12, 1), Decimal("0.0800")),
            ("marketing", "1", date(2025, 7, 1), Decimal("0.0250")),
            ("marketing", "", date(2025, 7, 1), Decimal("0.0500")),
        ]
    )
    assert card.price("marketing", "393", date(2026, 11, 30)) == Decimal("0.0691")
    assert card.price("marketing", "393", date(2026, 12, 1)) == Decimal("0.0800")
    assert card.price("marketing", "120", date(2026, 1, 1)) == Decimal("0.0250")
    assert card.price("marketing", "447", date(2026, 1, 1)) == Decimal("0.0500")
    assert card.price("marketing", "393", date(2025, 1, 1)) is None  # before any rate
    assert card.price("utility", "393", date(2026, 1, 1)) is None


def test_the_default_card_has_italys_rates_and_a_fallback_for_other_countries():
    defaults = Rate.objects.filter(valid_from__year=2025)
    rates = {(r.category, r.country_code): r.price_eur for r in defaults}
    assert rates[("marketing", "39")] == MARKETING_IT
    assert rates[("utility", "39")] == Decimal("0.0300")
    assert rates[("service", "39")] == Decimal(0)
    assert {category for category, country in rates if country == ""} == set(Rate.Category.values)


def _billed(post, subscriber, category="marketing", status="delivered", billable=True, **extra):
    return make_delivery(
        post=post,
        subscriber=subscriber,
        status=status,
        billable=billable,
        pricing_category=category,
        sent_at=timezone.now(),
        **extra,
    )


def test_only_billable_messages_that_were_delivered_cost_money():
    topic = make_topic()
    post = make_post(topics=[topic], status=Post.Status.SENT)
    uk = make_subscriber(wa_id="447700900123")
    Rate.objects.create(
        category="marketing", country_code="44", price_eur="0.0500", valid_from="2025-07-01"
    )
    _billed(post, make_subscriber())  # Italy
    _billed(post, make_subscriber(), status="read")
    _billed(post, uk)
    _billed(post, make_subscriber(), status="failed")  # not delivered: not charged
    _billed(post, make_subscriber(), status="sent")  # not (yet) delivered
    _billed(post, make_subscriber(), billable=False, category="service")
    _billed(post, make_subscriber(), category="marketing_lite")  # no rate: counted apart
    # Without `billable` (Meta will drop it), the type says it: `regular` is charged.
    _billed(post, make_subscriber(), billable=None, pricing_type="regular")
    _billed(post, make_subscriber(), billable=None, pricing_type="free_entry_point")
    cost = post_actual_cost(post.pk)
    assert cost.eur == 3 * MARKETING_IT + Decimal("0.0500")
    assert (cost.messages, cost.unpriced) == (5, 1)


def test_results_page_api_and_dashboard_show_estimate_and_actual_cost(client, settings):
    settings.BANDITORE_MONTHLY_BUDGET_EUR = Decimal("100")
    topic = make_topic(slug="rifiuti")
    post = make_post(topics=[topic], status=Post.Status.SENT, published_at=timezone.now())
    publishing.audit(action="publish", post=post, estimate_eur="0.21")
    for _ in range(2):
        _billed(post, make_subscriber(topics=[topic]))
    log_in_as(client, "Pubblicatore")
    page = client.get(f"/admin/topics/post/{post.pk}/change/").content.decode()
    # Staff screens are in Italian: decimal commas.
    assert 'id="cost-estimate">€ 0,21<' in page
    assert 'id="cost-actual">€ 0,14<' in page

    token, key = token_with_key(topics=[topic])
    Post.objects.filter(pk=post.pk).update(created_by_token=token)
    body = client_for(key).get(f"/api/v1/posts/{post.pk}/").json()
    assert body["cost"] == {
        "estimate_eur": "0.21",
        "actual_eur": "0.14",
        "billable_messages": 2,
        "unpriced_messages": 0,
    }

    month = spend()
    assert month.total.rounded == Decimal("0.14")
    assert [(p.pk, c.rounded) for p, c in month.posts] == [(post.pk, Decimal("0.14"))]
    assert [(t.slug, eur) for t, eur in month.topics] == [("rifiuti", Decimal("0.14"))]
    assert month.per_subscriber == (2 * MARKETING_IT / 2).quantize(Decimal("0.0001"))
    assert month.budget.left == Decimal("99.86")
    assert month.digest.messages_avoided == 0  # no digest this month
    dashboard = client.get("/admin/subscribers/subscriber/dashboard/").content.decode()
    assert 'id="spend-total">€ 0,14<' in dashboard
    assert 'id="spend-left">€ 99,86<' in dashboard


def test_last_months_messages_do_not_count_this_month():
    post = make_post(status=Post.Status.SENT)
    _billed(post, make_subscriber()).__class__.objects.update(
        sent_at=timezone.now() - timedelta(days=40)
    )
    assert spend().total.messages == 0


def test_the_digest_saving_is_the_messages_it_avoided_times_the_rate():
    """Three posts gathered in one digest for two followers: 6 messages at once, 2 digests,
    4 avoided, at the default template's rate (utility, € 0.03)."""
    make_template()
    topic, other = make_topic(), make_topic()
    people = [make_subscriber(topics=[topic]) for _ in range(2)]
    digest = make_post(
        topics=[topic],
        kind=Post.Kind.DIGEST,
        digest_of=timezone.localdate(),
        status=Post.Status.SENT,
        published_at=timezone.now(),
    )
    for n in range(3):
        make_post(topics=[topic], title=f"Avviso {n}", digest=digest, status=Post.Status.SENT)
    make_post(topics=[other], digest=digest, status=Post.Status.SENT)  # nobody here follows it
    for person in people:
        _billed(digest, person, category="utility")
    saving = spend().digest
    assert (saving.messages_avoided, saving.eur) == (4, Decimal("0.12"))


def test_administrators_keep_the_rate_card_in_the_admin(client):
    log_in_as(client, "Amministratore")
    page = client.get("/admin/subscribers/rate/").content.decode()
    assert "Tariffe WhatsApp" in page and "ogni altro paese" in page and "+39" in page
    answer = client.post(
        "/admin/subscribers/rate/add/",
        {"category": "marketing", "country_code": "+39", "price_eur": "0.07", "valid_from": ""},
    )
    assert answer.status_code == 200  # the form again, with its errors: nothing saved
    assert not Rate.objects.filter(price_eur=Decimal("0.07")).exists()


def test_the_former_price_variables_stop_the_start_pointing_to_the_rate_card():
    from tests.test_settings_parsing import _load_settings

    result = _load_settings(WHATSAPP_PRICE_MARKETING="0.0691")
    assert result.returncode != 0
    assert "WHATSAPP_PRICE_MARKETING was renamed to the rate card" in result.stderr
