"""The operator's status (/ops/status, the admin home), /metrics, heartbeats and alerts."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client, override_settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from channel.graph.account import pause_sending, resume_sending
from channel.models import InboundEvent
from deploy.__main__ import WORKER_POOLS
from deploy.alerts import alerts_check
from deploy.celery import check_alerts_task, heartbeat_task
from tests.factories import log_in_as, make_delivery, make_post, make_subscriber, make_topic
from tests.subscribers.api.helpers import token_with_key

pytestmark = pytest.mark.django_db

METRICS_TOKEN = "metrics-token-for-tests"


def _webhook(*, minutes_ago: float, processed: bool = False) -> InboundEvent:
    event = InboundEvent.objects.create(body="{}", signature_valid=True)
    received = timezone.now() - timedelta(minutes=minutes_ago)
    processed_at = received if processed else None
    InboundEvent.objects.filter(pk=event.pk).update(received_at=received, processed_at=processed_at)
    return event


def _sending_post(*, minutes_ago: float):
    topic = make_topic()
    post = make_post(topics=[topic], status="sending")
    post.published_at = timezone.now() - timedelta(minutes=minutes_ago)
    post.save(update_fields=["published_at"])
    return post


@override_settings(BANDITORE_METRICS_TOKEN=METRICS_TOKEN)
def test_ops_status_is_for_staff_or_a_token_only():
    url = "/ops/status"
    assert Client().get(url).status_code == 403
    assert Client().get(url, HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert Client().get(url, HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").status_code == 200
    _, stats_key = token_with_key(can_read_stats=True, name="stats")
    _, publish_key = token_with_key(can_read_stats=False, name="publish only")
    # An integration's key sees its own posts through the API, not every post being sent.
    assert Client().get(url, HTTP_AUTHORIZATION=f"Bearer {stats_key}").status_code == 403
    assert Client().get(url, HTTP_AUTHORIZATION=f"Bearer {publish_key}").status_code == 403
    staff = Client()
    log_in_as(staff, None)
    assert staff.get(url).status_code == 200


def test_ops_status_reports_backlog_posts_in_flight_pause_and_heartbeats(redis_conn):
    _webhook(minutes_ago=30, processed=True)
    _webhook(minutes_ago=7)
    _webhook(minutes_ago=2)
    post = _sending_post(minutes_ago=5)
    pause_sending(code=190, reason="Error validating access token")
    heartbeat_task("replies")
    PeriodicTask.objects.create(
        name="subscribers-publish-due-posts",
        task="banditore.subscribers.publish_due_posts",
        interval=IntervalSchedule.objects.create(every=15, period=IntervalSchedule.SECONDS),
        last_run_at=datetime(2026, 11, 30, 10, 0, tzinfo=UTC),
    )

    staff = Client()
    log_in_as(staff, None)
    status = staff.get("/ops/status").json()
    assert status["webhooks"]["backlog"] == 2
    assert 7 * 60 - 5 < status["webhooks"]["oldest_age_seconds"] < 7 * 60 + 60
    assert status["webhooks"]["last_received_age_seconds"] < 3 * 60
    assert [p["id"] for p in status["posts_sending"]] == [post.pk]
    assert status["sending_paused"]["error_code"] == 190
    assert "access token" in status["sending_paused"]["reason"]
    ages = status["workers"]["heartbeat_age_seconds"]
    assert ages["replies"] < 60
    assert ages["sends"] is None and ages["housekeeping"] is None
    assert status["access_token_expires_at"] is None
    # Beside the entries the database holds already (the weekly digest's, made at migrate).
    assert {
        "name": "subscribers-publish-due-posts",
        "task": "banditore.subscribers.publish_due_posts",
        "enabled": True,
        "last_run_at": "2026-11-30T10:00:00Z",
    } in status["periodic_tasks"]


def test_administrators_see_the_status_on_the_admin_home(redis_conn):
    pause_sending(code=131048, reason="Spam rate limit hit")
    admin = User.objects.create_superuser("root", password="x")
    client = Client()
    client.force_login(admin)
    page = client.get("/admin/").content.decode()
    assert 'id="ops-status"' in page
    assert "131048" in page
    editor = Client()
    log_in_as(editor, None)
    assert 'id="ops-status"' not in editor.get("/admin/").content.decode()


@override_settings(BANDITORE_METRICS_TOKEN=METRICS_TOKEN)
def test_metrics_need_the_token_and_show_the_gauges(redis_conn):
    post = _sending_post(minutes_ago=1)
    for status in ("queued", "queued", "failed"):
        make_delivery(
            post=post,
            subscriber=make_subscriber(),
            status=status,
            last_error_code=131026 if status == "failed" else None,
        )
    _webhook(minutes_ago=3)
    pause_sending(code=190, reason="token expired")

    assert Client().get("/metrics").status_code == 403
    # From inside, whatever the Host (Prometheus scrapes web:8000).
    response = Client().get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}", HTTP_HOST="web:8000"
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert 'banditore_deliveries{state="queued"} 2.0' in text
    assert (
        f'banditore_post_deliveries{{error_code="131026",post="{post.pk}",state="failed"}} 1.0'
        in (text)
    )
    assert "banditore_webhook_backlog 1.0" in text
    assert "banditore_posts_sending 1.0" in text
    assert "banditore_sending_paused 1.0" in text
    lag = float(re.search(r"(?m)^banditore_webhook_lag_seconds (\S+)$", text)[1])
    assert 170 < lag < 240


@override_settings(BANDITORE_METRICS_ALLOW=[ip_network("127.0.0.0/8")])
def test_metrics_allow_listed_addresses_but_never_through_the_proxy(redis_conn):
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 403
    # Through the reverse proxy every client has the proxy's address: not enough.
    proxied = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert proxied.get("/metrics").status_code == 403


@override_settings(ADMINS=[("IT", "it@comune.example.it")])
def test_sending_paused_mails_the_admins_once_per_incident(redis_conn, caplog):
    pause_sending(code=190, reason="Error validating access token")
    with caplog.at_level(logging.ERROR, logger="deploy.alerts"):
        check_alerts_task()
    assert [m.subject for m in mail.outbox] == ["[Django] Banditore: sending-paused"]
    assert "190" in mail.outbox[0].body
    assert any(r.levelno == logging.ERROR and "sending-paused" in r.message for r in caplog.records)
    assert alerts_check() == []  # still paused: already reported
    assert len(mail.outbox) == 1
    resume_sending()
    assert alerts_check() == []
    pause_sending(code=131048, reason="Spam rate limit hit")
    assert alerts_check() == ["sending-paused"]  # a new incident
    assert len(mail.outbox) == 2


@override_settings(
    ADMINS=[("IT", "it@comune.example.it")],
    BANDITORE_ALERT_BACKLOG_MINUTES=10,
    BANDITORE_ALERT_WEBHOOK_SILENCE_MINUTES=15,
)
def test_backlog_and_silence_while_sending_raise_alerts(redis_conn):
    _webhook(minutes_ago=40, processed=True)
    _sending_post(minutes_ago=5)
    assert alerts_check() == []  # the post started 5 minutes ago: not silence yet
    _webhook(minutes_ago=12)
    assert alerts_check() == ["webhook-backlog"]
    InboundEvent.objects.update(processed_at=timezone.now())
    _sending_post(minutes_ago=20)
    # The last webhook came 12 minutes ago; the newest post started 5 minutes ago but the
    # oldest one has been sending for 20: still quiet for less than 15 minutes.
    assert alerts_check() == []
    InboundEvent.objects.update(received_at=timezone.now() - timedelta(minutes=16))
    assert alerts_check() == ["webhook-silence"]
    assert sorted(m.subject for m in mail.outbox) == [
        "[Django] Banditore: webhook-backlog",
        "[Django] Banditore: webhook-silence",
    ]


def test_beat_sends_a_heartbeat_to_every_worker_pool_and_checks_alerts():
    entries = settings.CELERY_BEAT_SCHEDULE.values()
    heartbeats = [e for e in entries if e["task"] == "banditore.deploy.heartbeat"]
    assert sorted(e["options"]["queue"] for e in heartbeats) == sorted(
        pool.queue for pool in WORKER_POOLS.values()
    )
    assert all(e["args"] == [e["options"]["queue"]] for e in heartbeats)
    assert "banditore.deploy.check_alerts" in {e["task"] for e in entries}
