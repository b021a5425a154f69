"""A draft-only API key (can_publish=False) leaves drafts for a Pubblicatore: whatever body it
crafts, it neither publishes, nor schedules, nor changes a post someone scheduled."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from subscribers.delivery import publishing
from subscribers.models import Delivery
from tests.factories import make_post, make_subscriber, make_topic
from tests.subscribers.api.helpers import client_for, token_with_key
from topics.models import AuditEntry, Post

pytestmark = pytest.mark.django_db

POSTS = "/api/v1/posts/"


@pytest.fixture(autouse=True)
def _fresh_throttle_counts(redis_conn):
    """Throttle counters live in Redis: every test starts with none."""


@pytest.fixture
def pharmacies():
    topic = make_topic(slug="farmacie")
    make_subscriber(topics=[topic])
    return topic


@pytest.fixture
def drafts_only(pharmacies):
    token, key = token_with_key(topics=[pharmacies], can_publish=False, name="Sito")
    return token, client_for(key)


def later(**delta) -> str:
    return (timezone.now() + timedelta(**delta)).isoformat()


def body(**fields) -> dict:
    return {"topics": ["farmacie"], "title": "Turno", "body": "Farmacia Centrale", **fields}


def snapshot(post: Post) -> tuple:
    post = Post.objects.get(pk=post.pk)
    return post.status, post.title, post.body, post.send_at, list(post.topics.all())


@pytest.mark.parametrize("publish", [True, "true", "True", 1, "1", "yes", "on"])
@pytest.mark.parametrize("send_at", [None, {"hours": 1}])
def test_a_draft_only_key_cannot_publish_or_schedule(drafts_only, publish, send_at):
    _token, client = drafts_only
    entries = AuditEntry.objects.count()
    fields = {"publish": publish} | ({"send_at": later(**send_at)} if send_at else {})
    response = client.post(POSTS, body(**fields), format="json")
    assert response.status_code == 403, response.json()
    assert not Post.objects.exists() and AuditEntry.objects.count() == entries


def test_a_draft_only_key_with_a_send_at_leaves_a_draft(drafts_only):
    _token, client = drafts_only
    response = client.post(POSTS, body(send_at=later(minutes=1)), format="json")
    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "draft"
    assert publishing.publish_due_posts(now=timezone.now() + timedelta(minutes=2)) == 0
    assert not Delivery.objects.exists()
    post_actions = AuditEntry.objects.filter(details__post_id=response.json()["id"])
    assert list(post_actions.values_list("action", flat=True)) == ["post_created_api"]


def test_fields_the_api_does_not_take_are_ignored(drafts_only, pharmacies):
    token, client = drafts_only
    scheduled = make_post(
        topics=[pharmacies],
        created_by_token=token,
        status=Post.Status.SCHEDULED,
        send_at=timezone.now() + timedelta(days=1),
    )
    before = snapshot(scheduled)
    crafted = body(
        id=scheduled.pk,
        pk=scheduled.pk,
        status="scheduled",
        published_at=later(),
        created_by_token=None,
        author=1,
        send_at=later(minutes=1),
    )
    response = client.post(POSTS, crafted, format="json")
    assert response.status_code == 202, response.json()
    assert response.json()["id"] != scheduled.pk and response.json()["status"] == "draft"
    assert snapshot(scheduled) == before


def test_a_draft_scheduled_by_a_pubblicatore_cannot_be_changed_by_resending(drafts_only):
    """Same external_id (the idempotency key): a changed body is a conflict, the same body
    only replays the first answer. The post stays as the Pubblicatore scheduled it."""
    _token, client = drafts_only
    first = client.post(POSTS, body(external_id="turno-1"), format="json")
    post = Post.objects.get(pk=first.json()["id"])
    publisher = User.objects.create_user(username="pubblicatore", is_staff=True)
    publishing.post_schedule(post=post, send_at=timezone.now() + timedelta(days=1), user=publisher)
    before = snapshot(post)

    changed = body(external_id="turno-1", body="Altro testo", send_at=later(minutes=1))
    assert client.post(POSTS, changed, format="json").status_code == 409
    header = client.post(POSTS, changed, format="json", HTTP_IDEMPOTENCY_KEY="turno-1")
    assert header.status_code == 409
    again = client.post(POSTS, body(external_id="turno-1"), format="json")
    assert again.status_code == 202 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == post.pk
    assert snapshot(post) == before and Post.objects.count() == 1


def test_another_keys_external_id_touches_nothing_of_that_key(drafts_only, pharmacies):
    publisher_token, publisher_key = token_with_key(topics=[pharmacies], name="Protezione civile")
    scheduled = client_for(publisher_key).post(
        POSTS, body(external_id="allerta-1", send_at=later(days=1)), format="json"
    )
    assert scheduled.json()["status"] == "scheduled"
    post = Post.objects.get(pk=scheduled.json()["id"])
    before = snapshot(post)
    _token, client = drafts_only
    response = client.post(POSTS, body(external_id="allerta-1", body="Altro"), format="json")
    assert response.json()["status"] == "draft" and response.json()["id"] != post.pk
    assert snapshot(post) == before


def test_a_key_cannot_cancel_or_read_another_keys_post(drafts_only, pharmacies):
    other, _key = token_with_key(topics=[pharmacies], name="Altro")
    scheduled = make_post(
        topics=[pharmacies],
        created_by_token=other,
        status=Post.Status.SCHEDULED,
        send_at=timezone.now() + timedelta(days=1),
    )
    _token, client = drafts_only
    assert client.post(f"{POSTS}{scheduled.pk}/cancel/").status_code == 404
    assert client.get(f"{POSTS}{scheduled.pk}/").status_code == 404
    assert Post.objects.get(pk=scheduled.pk).status == Post.Status.SCHEDULED


def test_a_draft_only_key_withdraws_its_draft_but_cannot_stop_what_a_publisher_scheduled(
    drafts_only, pharmacies
):
    token, client = drafts_only
    draft = client.post(POSTS, body(), format="json").json()
    assert client.post(f"{POSTS}{draft['id']}/cancel/").json()["status"] == "cancelled"

    own = client.post(POSTS, body(title="Da approvare"), format="json").json()
    publisher = User.objects.create_user("pubblicatore", is_staff=True)
    post = Post.objects.get(pk=own["id"])
    publishing.post_schedule(post=post, send_at=timezone.now() + timedelta(hours=2), user=publisher)
    response = client.post(f"{POSTS}{post.pk}/cancel/")
    assert response.status_code == 403
    assert Post.objects.get(pk=post.pk).status == Post.Status.SCHEDULED
