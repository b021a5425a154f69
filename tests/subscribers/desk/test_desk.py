"""The editors' desk: roles, confirmed actions that call the services, the paused-account alert."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone, translation
from django.utils.html import escape

from channel.graph.account import pause_sending
from channel.models import SendingState
from subscribers.delivery import publishing
from subscribers.delivery.progress import send_duration
from subscribers.desk.plan import post_plan, post_preview
from subscribers.models import Delivery
from tests.factories import log_in_as, make_post, make_subscriber, make_template, make_topic
from tests.subscribers.desk.helpers import versions_in
from topics.models import AuditEntry, Post

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/topics/post/"


def test_the_three_roles_exist_with_their_rights():
    rights = {
        group.name: {p.codename for p in group.permissions.all()} for group in Group.objects.all()
    }
    assert "publish_post" not in rights["Redattore"]
    assert {"add_post", "change_post"} <= rights["Redattore"]
    assert "publish_post" in rights["Pubblicatore"]
    assert {"change_topic", "add_apitoken", "change_messagetemplate"} <= rights["Amministratore"]


def test_a_redattore_cannot_send(client, post):
    log_in_as(client, "Redattore")
    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert b"send_now" not in page.content
    client.post(
        CHANGELIST, {"action": "send_now", "_selected_action": [post.pk], "confirmed": "yes"}
    )
    post.refresh_from_db()
    assert post.status == Post.Status.DRAFT
    assert not Delivery.objects.exists()


def test_a_pubblicatore_confirms_with_the_reach_then_sends(client, post):
    log_in_as(client, "Pubblicatore")
    form = {"action": "send_now", "_selected_action": [post.pk]}
    confirmation = client.post(CHANGELIST, form)
    assert confirmation.status_code == 200
    assert (
        "3 people" in confirmation.content.decode() or "3 persone" in confirmation.content.decode()
    )
    post.refresh_from_db()
    assert post.status == Post.Status.DRAFT  # nothing happens before confirming
    client.post(
        CHANGELIST, {**form, **versions_in(confirmation.content.decode()), "confirmed": "yes"}
    )
    post.refresh_from_db()
    assert post.status == Post.Status.SENDING
    assert Delivery.objects.filter(post=post).count() == 3
    assert AuditEntry.objects.filter(action="publish", actor__username="pubblicatore").exists()


def test_a_paused_account_shows_an_alert_with_resume_on_every_admin_page(client):
    log_in_as(client, "Pubblicatore")
    pause_sending(code=190, reason="Access token has expired")
    page = client.get("/admin/").content.decode()
    assert 'id="sending-paused"' in page and "Access token has expired" in page
    assert "/admin/topics/post/resume-sending/" in page
    client.post("/admin/topics/post/resume-sending/")
    assert not SendingState.current().paused
    assert 'id="sending-paused"' not in client.get("/admin/").content.decode()


def test_a_redattore_sees_the_alert_but_cannot_resume(client):
    log_in_as(client, "Redattore")
    pause_sending(code=190, reason="expired")
    page = client.get("/admin/").content.decode()
    assert 'id="sending-paused"' in page
    assert "resume-sending" not in page
    assert client.post("/admin/topics/post/resume-sending/").status_code == 403
    assert SendingState.current().paused


def test_the_progress_view_shows_counts_finish_and_failures_explained(client, post):
    log_in_as(client, "Pubblicatore")
    publishing.post_publish(post=post)
    first = Delivery.objects.filter(post=post).order_by("id").first()
    Delivery.objects.filter(pk=first.pk).update(status="failed", last_error_code=131026)
    page = client.get(f"/admin/topics/post/{post.pk}/change/").content.decode()
    assert 'id="post-progress"' in page and 'id="progress-bar"' in page
    report = client.get(f"/admin/topics/post/{post.pk}/progress/").json()
    assert report["counters"]["queued"] == 2 and report["counters"]["failed"] == 1
    assert report["percent"] == 33
    assert report["finish"]
    [failure] = report["failures"]
    assert failure["code"] == 131026 and "WhatsApp" in failure["why"]


def test_the_plan_splits_the_window_and_prices_the_templates(settings):
    """9,000 people, tier 2,000/day → finishes in days, not minutes."""
    settings.WHATSAPP_MESSAGING_TIER = "2000"
    settings.WHATSAPP_PRICE_UTILITY = Decimal("0.03")
    topic, other = make_topic(), make_topic()
    for n in range(5):
        make_subscriber(topics=[topic], last_inbound_at=timezone.now() if n < 2 else None)
    make_subscriber(topics=[other])
    make_template(category="utility")
    plan = post_plan(make_post(topics=[topic]))
    assert (plan.reach, plan.inside_window, plan.needing_template) == (5, 2, 3)
    assert plan.cost == Decimal("0.09")
    assert plan.warnings == ()
    assert send_duration(total=9000, needing_template=9000).days == 4


def test_the_plan_warns_when_no_template_is_approved():
    topic = make_topic()
    make_subscriber(topics=[topic], last_inbound_at=None)
    plan = post_plan(make_post(topics=[topic]))
    assert any("template" in w for w in plan.warnings)


def test_the_plan_names_an_approved_template_not_marked_for_posts():
    topic = make_topic()
    make_subscriber(topics=[topic], last_inbound_at=None)
    make_template(name="notizie_comune", is_default=False)
    with translation.override("it"):
        [warning] = post_plan(make_post(topics=[topic])).warnings
    assert "notizie_comune" in warning and "Usa per le notizie" in warning


def test_the_preview_fills_the_template_with_the_post(client, post):
    log_in_as(client, "Redattore")
    preview = post_preview(post)
    assert (
        f'<div class="wa-body">{escape(f"{post.title}: {post.body}")}</div>' in preview["template"]
    )
    page = client.get(f"/admin/topics/post/{post.pk}/change/").content.decode()
    assert 'id="post-plan"' in page and 'id="post-preview"' in page
    assert escape(f"{post.title}: {post.body}") in page
