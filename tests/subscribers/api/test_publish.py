"""Publishing through the API with the real delivery engine and the fake Graph API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from subscribers.models import Delivery
from tests.factories import make_subscriber, make_topic
from tests.subscribers.api.helpers import client_for, token_with_key
from topics.models import AuditEntry, Post, Topic

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttle_counts(redis_conn):
    """Throttle counters live in Redis: every test starts with none."""


@pytest.fixture
def pharmacies():
    topic = make_topic(slug="farmacie")
    traffic = make_topic(slug="traffico")
    # Inside WhatsApp's 24-hour customer service window: free-form text, no template needed.
    recent = {"last_inbound_at": timezone.now() - timedelta(hours=1)}
    make_subscriber(topics=[topic, traffic], **recent)
    make_subscriber(topics=[topic], **recent)
    make_subscriber(topics=[traffic], **recent)
    return topic


BODY = {"topics": ["farmacie", "traffico"], "title": "Turno", "body": "Farmacia Centrale"}


def test_it_publishes_each_person_once_and_replays_without_a_second_fan_out(fake_graph, pharmacies):
    _token, key = token_with_key(topics=Topic.objects.filter(slug__in=["farmacie", "traffico"]))
    client = client_for(key)

    first = client.post("/api/v1/posts/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="p-1")
    again = client.post("/api/v1/posts/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="p-1")

    assert first.status_code == 202, first.json()
    assert first.json()["status"] in {"sending", "sent"}
    assert first.json()["counters"]["reach"] == 3
    assert again.json()["id"] == first.json()["id"]
    post = Post.objects.get()
    assert Delivery.objects.filter(post=post).count() == 3
    assert AuditEntry.objects.filter(action="post_created_api", actor_token=post.created_by_token)
    detail = client.get(f"/api/v1/posts/{post.pk}/").json()
    assert detail["counters"]["reach"] == 3


def test_it_schedules_and_cancels_a_post(fake_graph, pharmacies):
    _token, key = token_with_key(topics=[pharmacies])
    client = client_for(key)
    send_at = (timezone.now() + timedelta(hours=2)).isoformat()

    created = client.post(
        "/api/v1/posts/", BODY | {"topics": ["farmacie"], "send_at": send_at}, format="json"
    )
    assert created.status_code == 202, created.json()
    assert created.json()["status"] == "scheduled"
    assert created.json()["counters"]["reach"] == 2

    cancelled = client.post(f"/api/v1/posts/{created.json()['id']}/cancel/")
    assert cancelled.status_code == 200, cancelled.json()
    assert cancelled.json()["status"] == "cancelled"
    assert Post.objects.get().status == Post.Status.CANCELLED
    assert fake_graph.outbox() == []


def test_a_refused_publication_is_a_422_that_creates_nothing(fake_graph, pharmacies):
    from channel.graph.account import pause_sending

    pause_sending(code=131031, reason="account locked")  # Meta: account locked, stop sending
    _token, key = token_with_key(topics=[pharmacies])
    data = BODY | {"topics": ["farmacie"]}

    refused = client_for(key).post("/api/v1/posts/", data, format="json", HTTP_IDEMPOTENCY_KEY="k")

    assert refused.status_code == 422 and refused.json()["detail"]
    assert not Post.objects.exists() and not Delivery.objects.exists()
