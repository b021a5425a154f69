"""The monthly budget (BANDITORE_MONTHLY_BUDGET_EUR): non-urgent posts over what is left are
refused with the figures (desk and API), urgent ones go out, warn and are audited, and the
administrators get one e-mail a month at 80 %."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.utils import timezone

from channel import clock
from channel.models import MessageTemplate
from deploy.alerts import alerts_check, budget_alert
from deploy.env import env_optional_decimal
from subscribers.delivery import publishing
from subscribers.delivery.budget import (
    OverBudget,
    budget_check,
    budget_state,
    committed_estimate,
    post_estimate,
)
from subscribers.models import Delivery
from tests.factories import log_in_as, make_delivery, make_post, make_subscriber, make_topic
from tests.subscribers.api.helpers import client_for, token_with_key
from tests.subscribers.desk.helpers import confirm
from topics.models import AuditEntry, Post, Topic

pytestmark = pytest.mark.django_db

ROME = ZoneInfo("Europe/Rome")


@pytest.fixture(autouse=True)
def budget(settings, redis_conn, fake_graph):
    """€ 1 a month, € 0.90 of it spent; five people outside the window make a post cost
    5 × € 0.0691 (marketing template) = € 0.35."""
    settings.BANDITORE_MONTHLY_BUDGET_EUR = Decimal("1")
    settings.ADMINS = [("Ufficio IT", "it@comune.example.it")]
    fake_graph.register_template("avviso_comune", "it", "marketing", body_params=2)
    MessageTemplate.objects.create(
        name="avviso_comune",
        language="it",
        category="marketing",
        status="approved",
        body_text="{{1}} {{2}}",
        body_parameters=["title", "body"],
        is_default=True,
    )
    spent(Decimal("0.90"))


def spent(eur: Decimal, when: datetime | None = None) -> None:
    """Billable marketing messages delivered at `when` (now) worth about `eur`."""
    post = make_post(status=Post.Status.SENT, title="Già inviata")
    for _ in range(round(eur / Decimal("0.0691"))):
        make_delivery(
            post=post,
            subscriber=make_subscriber(),
            status="delivered",
            billable=True,
            pricing_category="marketing",
            sent_at=when or timezone.now(),
        )


def five_people_post(**fields) -> Post:
    topic = make_topic(slug="scuole")
    for _ in range(5):
        make_subscriber(topics=[topic])
    return make_post(topics=[topic], title="Chiusura scuole", **fields)


def test_the_variable_is_a_number_or_nothing(monkeypatch):
    monkeypatch.setitem(os.environ, "BANDITORE_MONTHLY_BUDGET_EUR", "")
    assert env_optional_decimal("BANDITORE_MONTHLY_BUDGET_EUR") is None
    monkeypatch.setitem(os.environ, "BANDITORE_MONTHLY_BUDGET_EUR", "750.50")
    assert env_optional_decimal("BANDITORE_MONTHLY_BUDGET_EUR") == Decimal("750.50")


def test_what_is_left_counts_what_was_spent_and_what_posts_being_sent_still_hold():
    assert budget_state().spent == Decimal("0.90")  # 13 messages × € 0.0691
    assert budget_state().left == Decimal("0.10")
    post = five_people_post()
    Post.objects.filter(pk=post.pk).update(status=Post.Status.SENDING)
    publishing.fan_out(post)
    state = budget_state()
    assert (state.committed, state.left) == (Decimal("0.35"), Decimal("0"))


def test_a_non_urgent_post_over_the_budget_is_refused_with_the_figures():
    post = five_people_post()
    with pytest.raises(publishing.PublishError) as refused:
        publishing.post_publish(post=post)
    assert "€ 0.35" in str(refused.value) and "€ 0.10" in str(refused.value)
    assert refused.value.figures["estimate_eur"] == "0.35"
    assert refused.value.figures["left_eur"] == "0.10"
    post.refresh_from_db()
    assert post.status == Post.Status.DRAFT
    assert not Delivery.objects.filter(post=post).exists()


def test_a_post_that_fits_goes_out_and_no_budget_means_no_limit(settings):
    settings.BANDITORE_MONTHLY_BUDGET_EUR = Decimal("2")
    result = publishing.post_publish(post=five_people_post())
    assert result.recipients == 5 and result.budget_warning == ""
    settings.BANDITORE_MONTHLY_BUDGET_EUR = None
    assert budget_check(Decimal("1000"), urgent=False) == ""


def test_an_urgent_post_goes_out_over_the_budget_warns_and_is_audited():
    post = five_people_post(is_urgent=True)
    result = publishing.post_publish(post=post)
    assert result.recipients == 5
    assert "€ 0.35" in result.budget_warning
    [override] = AuditEntry.objects.filter(action="budget_override")
    assert override.details["post_id"] == post.pk
    assert "0.35" in override.details["warning"]


def test_the_digest_can_ask_the_same_service():
    with pytest.raises(OverBudget):
        budget_check(Decimal("0.50"), urgent=False)
    assert budget_check(Decimal("0.05"), urgent=False) == ""
    warning = budget_check(Decimal("0.50"), urgent=True)  # sent anyway: the caller audits it
    assert "€ 0.50" in warning and "€ 0.10" in warning and "€ 1.00" in warning


def test_the_api_answers_422_with_the_figures():
    topic = make_topic(slug="farmacie")
    for _ in range(5):
        make_subscriber(topics=[topic])
    _token, key = token_with_key(topics=[topic])
    body = {"topics": ["farmacie"], "title": "Turno", "body": "Farmacia Centrale"}
    answer = client_for(key).post("/api/v1/posts/", body, format="json")
    assert answer.status_code == 422
    figures = answer.json()
    assert (figures["estimate_eur"], figures["left_eur"], figures["budget_eur"]) == (
        "0.35",
        "0.10",
        "1.00",
    )
    assert "0.35" in figures["detail"]
    assert not Post.objects.filter(title="Turno").exists()  # the creation rolled back


def test_the_editor_sees_the_refusal_and_the_plan_warns_beforehand(client):
    post = five_people_post()
    log_in_as(client, "Pubblicatore")
    page = client.get(f"/admin/topics/post/{post.pk}/change/").content.decode()
    assert 'id="plan-budget-left">€ 0,10<' in page  # Italian staff screens: decimal comma
    assert 'id="plan-cost">€ 0,35<' in page
    answer = confirm(client, "send_now", post, follow=True).content.decode()
    assert "€ 0.35" in answer and "€ 0.10" in answer
    post.refresh_from_db()
    assert post.status == Post.Status.DRAFT


def test_the_80_percent_mail_goes_once_a_month(settings):
    settings.BANDITORE_MONTHLY_BUDGET_EUR = Decimal("2")  # € 0.90 of € 2: 45 %
    assert alerts_check() == []
    spent(Decimal("0.76"))  # € 1.66 of € 2: 83 %
    assert "budget-80" in alerts_check()
    assert alerts_check() == []  # once a month
    [message] = mail.outbox
    assert "80%" in message.subject and "€ 1.66 of € 2" in message.body
    next_month = timezone.localtime().replace(day=1) + timedelta(days=40)
    spent(Decimal("1.66"), when=next_month)
    with clock.frozen(next_month.astimezone(ROME)):
        assert budget_alert()
    assert len(mail.outbox) == 2


def test_a_digest_checks_itself_after_its_fan_out_without_counting_itself_twice():
    """The weekly digest fans out first (one statement), then asks the budget inside the same
    transaction: its own queued rows are its estimate, not also 'committed'."""
    digest = five_people_post()
    Post.objects.filter(pk=digest.pk).update(status=Post.Status.SENDING)
    publishing.fan_out(digest)
    estimate = committed_estimate(post_id=digest.pk).eur
    assert estimate == Decimal("0.35")
    with pytest.raises(OverBudget) as refused:
        budget_check(estimate, urgent=False, excluding=digest.pk)
    assert refused.value.figures["left_eur"] == "0.10"  # € 1 − € 0.90, the digest not in it
    assert budget_check(Decimal("0.05"), urgent=False, excluding=digest.pk) == ""


def test_a_post_on_a_digest_topic_is_costed_for_those_who_get_it_at_once(settings):
    """Three of five follow the weekly digest: the post costs two messages now (the digest is
    checked and costed when it goes)."""
    settings.BANDITORE_DIGEST_DEFAULT = "weekly"
    topic = make_topic(slug="eventi", delivery=Topic.Delivery.DIGEST)
    for choice in ("", "weekly", "weekly", "immediate", "immediate"):
        make_subscriber(topics=[topic], digest_preference=choice)
    post = make_post(topics=[topic])
    assert post_estimate(post).eur == Decimal("0.14")  # 2 × € 0.0691
    assert post_estimate(make_post(topics=[topic], is_urgent=True)).eur == Decimal("0.35")
