"""Idempotent POST /api/v1/posts/: replay, conflict, per-token keys, races, retention."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from subscribers.api.idempotency import idempotency_prune
from tests.factories import make_topic
from tests.markers import needs_postgresql
from tests.subscribers.api.helpers import client_for, token_with_key
from tests.subscribers.helpers import run_concurrently
from topics.models import IdempotencyRecord, Post

BODY = {"topics": ["farmacie"], "title": "Turno", "body": "Farmacia Centrale", "publish": False}


@pytest.fixture(autouse=True)
def _fresh_throttle_counts(redis_conn):
    """Throttle counters live in Redis: every test starts with none."""


@pytest.fixture
def pharmacies(db):
    return make_topic(slug="farmacie")


def post(key: str, body, idempotency_key: str | None = None):
    headers = {"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key else {}
    raw = body if isinstance(body, str) else json.dumps(body)
    return client_for(key).post("/api/v1/posts/", raw, content_type="application/json", **headers)


def test_the_same_key_and_body_replays_the_first_answer(pharmacies):
    _token, key = token_with_key(topics=[pharmacies])
    first = post(key, BODY, "rota-2026-05-01")
    # Same JSON, different key order and spacing: still the same request.
    again = post(key, json.dumps(dict(reversed(list(BODY.items()))), indent=2), "rota-2026-05-01")

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Post.objects.count() == 1


def test_external_id_works_as_the_key(pharmacies):
    _token, key = token_with_key(topics=[pharmacies])
    first = post(key, BODY | {"external_id": "asl-42"})
    again = post(key, BODY | {"external_id": "asl-42"})
    assert again.json()["id"] == first.json()["id"]
    assert Post.objects.count() == 1


def test_the_same_key_with_another_body_is_a_409(pharmacies):
    _token, key = token_with_key(topics=[pharmacies])
    post(key, BODY, "k1")
    changed = post(key, BODY | {"title": "Turno cambiato"}, "k1")
    assert changed.status_code == 409
    assert "different request body" in changed.json()["detail"]
    assert Post.objects.count() == 1


def test_keys_belong_to_one_token(pharmacies):
    _a, key_a = token_with_key(topics=[pharmacies])
    _b, key_b = token_with_key(topics=[pharmacies])
    first = post(key_a, BODY, "shared-key")
    other = post(key_b, BODY, "shared-key")
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]


def test_a_refused_request_does_not_use_up_the_key(pharmacies):
    _token, key = token_with_key(topics=[pharmacies])
    refused = post(key, BODY | {"topics": ["meteo"]}, "k2")
    assert refused.status_code == 400
    accepted = post(key, BODY, "k2")
    assert accepted.status_code == 202
    assert not IdempotencyRecord.objects.filter(response_status=0).exists()


def test_an_overlong_key_is_a_400(pharmacies):
    _token, key = token_with_key(topics=[pharmacies])
    assert post(key, BODY, "k" * 256).status_code == 400


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_create_one_post():
    """Insert-first: racing requests with the same key create one post and agree on its id."""
    pharmacies = make_topic(slug="farmacie")
    _token, key = token_with_key(topics=[pharmacies])
    answers: list[tuple[int, int]] = []

    def send(_: int) -> None:
        response = post(key, BODY, "race")
        answers.append((response.status_code, response.json()["id"]))

    run_concurrently(send, 6)

    assert Post.objects.count() == 1
    assert answers == [(202, Post.objects.get().pk)] * 6


def test_one_external_id_is_one_post_whatever_the_idempotency_key(pharmacies):
    _token, key = token_with_key(topics=[pharmacies])
    first = post(key, BODY | {"external_id": "asl-7"}, "attempt-1")
    retry = post(key, BODY | {"external_id": "asl-7"}, "attempt-2")
    changed = post(key, BODY | {"external_id": "asl-7", "title": "Altro"}, "attempt-3")

    assert first.status_code == retry.status_code == 202
    assert retry.json()["id"] == first.json()["id"] and retry["Idempotent-Replayed"] == "true"
    assert changed.status_code == 409 and "external_id" in changed.json()["detail"]
    assert Post.objects.get().external_id == "asl-7"


def test_external_ids_belong_to_one_token(pharmacies):
    _a, key_a = token_with_key(topics=[pharmacies])
    _b, key_b = token_with_key(topics=[pharmacies])
    post(key_a, BODY | {"external_id": "asl-8"}, "a")
    assert post(key_b, BODY | {"external_id": "asl-8"}, "b").status_code == 202
    assert Post.objects.count() == 2


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_external_id_and_different_keys_create_one_post():
    """The unique (token, external_id) index decides the race; the losers replay the winner."""
    pharmacies = make_topic(slug="farmacie")
    _token, key = token_with_key(topics=[pharmacies])
    answers: list[tuple[int, int]] = []

    def send(attempt: int) -> None:
        response = post(key, BODY | {"external_id": "asl-9"}, f"attempt-{attempt}")
        answers.append((response.status_code, response.json()["id"]))

    run_concurrently(send, 6)

    assert Post.objects.count() == 1
    assert answers == [(202, Post.objects.get().pk)] * 6


def test_keys_are_kept_seven_days_then_pruned(pharmacies, settings):
    settings.BANDITORE_API_IDEMPOTENCY_DAYS = 7
    _token, key = token_with_key(topics=[pharmacies])
    post(key, BODY, "old")
    post(key, BODY | {"title": "nuovo"}, "recent")
    IdempotencyRecord.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(days=7, minutes=1)
    )
    IdempotencyRecord.objects.filter(key="recent").update(
        created_at=timezone.now() - timedelta(days=6, hours=23)
    )

    assert idempotency_prune() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["recent"]


def test_the_nightly_task_prunes_and_is_safe_to_run_twice(pharmacies, settings):
    from subscribers.tasks import prune_idempotency_keys

    _token, key = token_with_key(topics=[pharmacies])
    post(key, BODY, "old")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(days=30))
    assert "banditore.subscribers.prune_idempotency_keys" in {
        entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
    }

    assert prune_idempotency_keys.delay().get() == 1
    assert prune_idempotency_keys.delay().get() == 0
    assert Post.objects.count() == 1  # forgetting a key never deletes the post
