"""The phone number's facts from Meta (the fake): limiter, planner, status page and alerts."""

from __future__ import annotations

import httpx
import pytest
from django.core import mail
from django.test import Client, override_settings

from channel.graph.account import pause_sending
from channel.graph.phone import effective_mps, effective_tier, phone_facts, phone_facts_refresh
from channel.graph.ratelimit import get_send_limiter, tier_limit
from channel.models import PhoneNumberFacts
from channel.tasks import refresh_phone_facts_task
from deploy.alerts import alerts_check
from deploy.ops import ops_status
from subscribers.delivery.progress import bulk_rate
from tests.factories import log_in_as, make_post, make_topic

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_caps(settings):
    """As a council's settings are by default: Meta's figures, no cap."""
    settings.WHATSAPP_MPS = 0
    settings.WHATSAPP_MESSAGING_TIER = ""


def test_before_meta_answers_the_settings_or_metas_defaults_apply(settings):
    assert phone_facts() is None
    assert (effective_mps(), effective_tier()) == (80, 2000)
    settings.WHATSAPP_MPS, settings.WHATSAPP_MESSAGING_TIER = 300, "unlimited"
    assert (effective_mps(), effective_tier()) == (300, None)


def test_metas_throughput_and_limit_drive_the_limiter_and_the_planner(fake_graph, settings):
    fake_graph.configure(throughput_level="HIGH", messaging_limit="TIER_10K")
    refresh_phone_facts_task.delay()  # what beat runs nightly
    facts = phone_facts()
    assert (facts.throughput_level, facts.messaging_limit) == ("HIGH", "TIER_10K")
    assert (facts.quality_rating, facts.name_status) == ("GREEN", "APPROVED")
    assert get_send_limiter().rate == 1000 and tier_limit() == 10000
    assert bulk_rate() == pytest.approx(900)
    # A setting set lower is a cap; one set higher never exceeds what Meta allows.
    settings.WHATSAPP_MPS, settings.WHATSAPP_MESSAGING_TIER = 200, "2000"
    assert get_send_limiter().rate == 200 and tier_limit() == 2000
    settings.WHATSAPP_MPS, settings.WHATSAPP_MESSAGING_TIER = 1000, "unlimited"
    fake_graph.configure(throughput_level="STANDARD", messaging_limit="TIER_UNLIMITED")
    phone_facts_refresh()
    assert get_send_limiter().rate == 80 and tier_limit() is None


def test_the_fake_answers_the_fields_asked_for_as_meta_does(fake_graph, settings):
    url = f"{fake_graph.url}/{settings.WHATSAPP_API_VERSION}/{settings.WHATSAPP_PHONE_NUMBER_ID}"
    auth = {"Authorization": f"Bearer {settings.WHATSAPP_ACCESS_TOKEN}"}
    body = httpx.get(url, params={"fields": "throughput,quality_rating"}, headers=auth).json()
    assert body == {
        "throughput": {"level": "STANDARD"},
        "quality_rating": "GREEN",
        "id": body["id"],
    }
    wrong = httpx.get(url, params={"fields": "nonsense"}, headers=auth)
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == 100


def test_a_failed_check_keeps_the_last_facts_and_says_why(fake_graph, settings):
    fake_graph.configure(throughput_level="HIGH")
    phone_facts_refresh()
    settings.WHATSAPP_ACCESS_TOKEN = "expired"
    facts, drops = phone_facts_refresh()
    assert drops == [] and facts.throughput_level == "HIGH"
    assert "190" in facts.check_error
    assert effective_mps() == 1000
    assert ops_status()["phone_number"]["check_error"] == facts.check_error


@override_settings(ADMINS=[("IT", "it@comune.example.it")])
def test_a_drop_in_quality_or_limit_alerts_the_editors_once(fake_graph, redis_conn, client):
    fake_graph.configure(quality_rating="GREEN", messaging_limit="TIER_10K")
    phone_facts_refresh()
    assert alerts_check() == []
    fake_graph.configure(quality_rating="YELLOW", messaging_limit="TIER_2K")
    facts, drops = phone_facts_refresh()
    assert drops == [
        "quality rating fell from GREEN to YELLOW",
        "messaging limit fell from TIER_10K to TIER_2K",
    ]
    assert alerts_check() == ["phone-number-drop"]
    [message] = mail.outbox
    assert message.subject == "[Django] Banditore: phone-number-drop"
    assert "GREEN to YELLOW" in message.body and "TIER_10K to TIER_2K" in message.body
    phone_facts_refresh()  # no further change: no new drop, the same incident
    assert alerts_check() == [] and len(mail.outbox) == 1
    # Every admin page says so until an editor has read it.
    log_in_as(client, "Redattore")
    page = client.get("/admin/").content.decode()
    assert 'id="phone-number-drop"' in page and "GREEN to YELLOW" in page
    assert 'id="ops-phone-number"' not in page  # the operations table is for superusers
    client.post("/admin/topics/post/dismiss-phone-notice/")
    assert 'id="phone-number-drop"' not in client.get("/admin/").content.decode()
    assert alerts_check() == []
    fake_graph.configure(quality_rating="RED")
    phone_facts_refresh()
    assert alerts_check() == ["phone-number-drop"]  # a new drop is a new incident
    assert len(mail.outbox) == 2


def test_a_rise_is_no_alert(fake_graph, redis_conn):
    fake_graph.configure(quality_rating="YELLOW", messaging_limit="TIER_250")
    phone_facts_refresh()
    fake_graph.configure(quality_rating="GREEN", messaging_limit="TIER_2K", throughput_level="HIGH")
    assert phone_facts_refresh()[1] == []
    assert PhoneNumberFacts.objects.get().drop_notice == ""


def test_the_status_page_and_the_plan_show_metas_facts(fake_graph, settings, redis_conn):
    fake_graph.configure(throughput_level="HIGH", quality_rating="YELLOW")
    phone_facts_refresh()
    admin = Client()
    log_in_as(admin, None, staff=True)
    status = admin.get("/ops/status").json()["phone_number"]
    assert status["throughput"] == "HIGH" and status["quality_rating"] == "YELLOW"
    assert status["messages_per_second"] == 1000 and status["daily_limit"] == 2000
    post = make_post(topics=[make_topic()])
    editor = Client()
    log_in_as(editor, "Pubblicatore")
    page = editor.get(f"/admin/topics/post/{post.pk}/change/").content.decode()
    assert 'id="plan-meta"' in page and "YELLOW" in page and "HIGH" in page
    i = page.find("plan-meta")
    assert "(1000 " in page[i - 600 : i]  # the plan's duration at Meta's HIGH throughput


def test_resuming_sending_reads_the_facts_again(
    fake_graph, client, django_capture_on_commit_callbacks
):
    pause_sending(code=131048, reason="Spam rate limit hit")
    fake_graph.configure(quality_rating="RED")
    log_in_as(client, "Pubblicatore")
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/topics/post/resume-sending/")
    assert PhoneNumberFacts.objects.get().quality_rating == "RED"
