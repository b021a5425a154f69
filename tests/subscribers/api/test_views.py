"""REST API for other city systems: auth, scope, validation, reads, throttling. Without an
Accept-Language header its errors speak the council's language (LANGUAGE_CODE "it")."""

from __future__ import annotations

import logging
import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from subscribers.api import throttling
from subscribers.models import Delivery, Subscriber
from tests.factories import make_post, make_subscriber, make_topic
from tests.subscribers.api.helpers import client_for, token_with_key
from topics.models import ApiToken, AuditEntry, Post

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttle_counts(redis_conn):
    """Throttle counters live in Redis: every test starts with none."""


DRAFT = {
    "title": "Farmacie di turno",
    "body": "Oggi è di turno la farmacia Centrale.",
    "publish": False,
}


@pytest.fixture
def pharmacies():
    return make_topic(slug="farmacie", name_it="Farmacie", name_en="Pharmacies")


@pytest.fixture
def traffic():
    return make_topic(slug="traffico", name_it="Traffico", name_en="Traffic")


def test_it_refuses_requests_without_a_key():
    response = client_for(None).get("/api/v1/topics/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_a_wrong_key():
    token_with_key()
    response = client_for("bnd_not-the-key").get("/api/v1/topics/")
    assert response.status_code == 401


def test_it_refuses_a_revoked_key():
    token, key = token_with_key()
    assert client_for(key).get("/api/v1/topics/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    response = client_for(key).get("/api/v1/topics/")
    assert response.status_code == 401
    assert "revocata" in response.json()["detail"]


def test_it_accepts_the_token_keyword_too():
    _token, key = token_with_key()
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/topics/").status_code == 200


def test_it_stores_only_a_hash_of_the_key_and_records_last_use():
    token, key = token_with_key()
    assert key not in (token.key_hash, token.key_prefix) and key.startswith(token.key_prefix)
    assert token.last_used_at is None
    client_for(key).get("/api/v1/topics/")
    token.refresh_from_db()
    first_use = token.last_used_at
    assert first_use is not None
    client_for(key).get("/api/v1/topics/")
    token.refresh_from_db()
    assert token.last_used_at == first_use  # at most one write a minute


def test_it_lists_active_topics_with_their_active_subscribers(pharmacies, traffic):
    make_topic(slug="nascosto", is_active=False)
    make_subscriber(topics=[pharmacies, traffic])
    make_subscriber(topics=[pharmacies])
    make_subscriber(topics=[pharmacies], status=Subscriber.Status.LEFT)
    _token, key = token_with_key()

    response = client_for(key).get("/api/v1/topics/")

    assert response.status_code == 200
    counts = {topic["slug"]: topic["active_subscribers"] for topic in response.json()}
    assert "nascosto" not in counts
    assert (counts["farmacie"], counts["traffico"]) == (2, 1)


def test_it_hides_subscriber_counts_from_keys_without_statistics(pharmacies):
    make_subscriber(topics=[pharmacies])
    _token, key = token_with_key(can_read_stats=False)
    topics = client_for(key).get("/api/v1/topics/").json()
    assert "farmacie" in {topic["slug"] for topic in topics}
    assert {topic["active_subscribers"] for topic in topics} == {None}


def test_it_creates_a_draft_with_planned_reach_and_a_poll_url(pharmacies):
    make_subscriber(topics=[pharmacies])
    make_subscriber(topics=[pharmacies])
    token, key = token_with_key(topics=[pharmacies])

    response = client_for(key).post(
        "/api/v1/posts/", DRAFT | {"topics": ["farmacie"]}, format="json"
    )

    assert response.status_code == 202, response.json()
    body = response.json()
    post = Post.objects.get(pk=body["id"])
    assert post.status == body["status"] == "draft"
    assert post.created_by_token == token
    assert body["counters"]["reach"] == 2
    assert body["url"] == f"http://testserver/api/v1/posts/{post.pk}/"
    assert response["Location"] == body["url"]
    audit = AuditEntry.objects.get(action="post_created_api")
    assert audit.actor_token == token and audit.details["post_id"] == post.pk


def test_draft_only_keys_get_drafts_by_default(pharmacies):
    _token, key = token_with_key(topics=[pharmacies], can_publish=False)
    data = {"topics": ["farmacie"], "title": "Turno", "body": "Farmacia Centrale"}
    response = client_for(key).post("/api/v1/posts/", data, format="json")
    assert response.status_code == 202
    assert Post.objects.get().status == Post.Status.DRAFT


def test_draft_only_keys_cannot_publish(pharmacies):
    _token, key = token_with_key(topics=[pharmacies], can_publish=False)
    data = DRAFT | {"topics": ["farmacie"], "publish": True}
    response = client_for(key).post("/api/v1/posts/", data, format="json")
    assert response.status_code == 403
    assert "bozze" in response.json()["detail"]
    assert not Post.objects.exists()


def test_a_key_for_one_topic_cannot_post_to_another(pharmacies, traffic):
    _token, key = token_with_key(topics=[pharmacies])
    data = DRAFT | {"topics": ["farmacie", "traffico"]}
    response = client_for(key).post("/api/v1/posts/", data, format="json")
    assert response.status_code == 403
    assert "'traffico'" in response.json()["detail"]
    assert "'farmacie'" not in response.json()["detail"]
    assert not Post.objects.exists()


def test_it_names_unknown_topic_slugs(pharmacies):
    _token, key = token_with_key(topics=[pharmacies])
    data = DRAFT | {"topics": ["farmacie", "meteo"]}
    response = client_for(key).post("/api/v1/posts/", data, format="json")
    assert response.status_code == 400
    assert "'meteo'" in str(response.json()["topics"])


def test_it_says_the_body_limit_is_4096(pharmacies):
    """WhatsApp: a text message body holds at most 4,096 characters."""
    _token, key = token_with_key(topics=[pharmacies])
    client = client_for(key)
    fits = client.post(
        "/api/v1/posts/", DRAFT | {"topics": ["farmacie"], "body": "à" * 4096}, format="json"
    )
    assert fits.status_code == 202
    too_long = client.post(
        "/api/v1/posts/", DRAFT | {"topics": ["farmacie"], "body": "à" * 4097}, format="json"
    )
    assert too_long.status_code == 400
    assert "4.096" in too_long.json()["body"][0]


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"[]",
        b'"a string"',
        b"null",
        b'{"topics": "farmacie", "title": 5, "body": []}',
        b'{"topics": [1e999], "title": "t", "body": "b"}',
        b'{"topics": ["farmacie"], "title": "t\\u0000", "body": "b"}',
        b'{"topics": ["farmacie"], "title": "t", "body": "b", "send_at": "99999-01-01"}',
        b'{"topics": ["farmacie"], "title": "t", "body": "b", "media_url": "https://x.it/a.jpg"}',
        b'{"topics": ["farmacie"], "title": "t", "body": "b", "expires_at": "2001-01-01T00:00Z"}',
        b'{"topics": ["\\ud800"], "title": "t", "body": "b"}',
        b'{"external_id": "'
        + b"k" * 300
        + b'", "topics": ["farmacie"], "title": "t", "body": "b"}',
    ],
)
def test_bad_input_is_a_400_never_a_500(pharmacies, payload):
    _token, key = token_with_key(topics=[pharmacies])
    response = client_for(key).post("/api/v1/posts/", payload, content_type="application/json")
    assert response.status_code == 400, response.content
    assert not Post.objects.exists()


def test_it_wants_json(pharmacies):
    _token, key = token_with_key(topics=[pharmacies])
    response = client_for(key).post("/api/v1/posts/", {"title": "t"})  # multipart form
    assert response.status_code == 415


def test_it_shows_a_posts_status_and_counters(pharmacies):
    make_subscriber(topics=[pharmacies])
    token, key = token_with_key(topics=[pharmacies])
    post = make_post(topics=[pharmacies], created_by_token=token)

    body = client_for(key).get(f"/api/v1/posts/{post.pk}/").json()

    assert body["id"] == post.pk and body["status"] == "draft" and body["topics"] == ["farmacie"]
    # Before fan-out: the planned reach, and every status a delivery can have at zero.
    assert body["counters"] == {"reach": 1, **dict.fromkeys(Delivery.Status.values, 0)}
    assert body["estimated_finish"] is None


def test_it_gives_times_in_utc_whatever_the_councils_time_zone(pharmacies, settings):
    settings.TIME_ZONE = "Europe/Rome"
    token, key = token_with_key(topics=[pharmacies])
    send_at = timezone.now() + timedelta(days=1)
    post = make_post(topics=[pharmacies], created_by_token=token, send_at=send_at)

    body = client_for(key).get(f"/api/v1/posts/{post.pk}/").json()

    assert body["send_at"] == send_at.isoformat().replace("+00:00", "Z")
    assert body["created_at"].endswith("Z") and body["published_at"] is None


def test_it_shows_only_the_keys_own_posts(pharmacies):
    mine, key = token_with_key(topics=[pharmacies])
    other, _other_key = token_with_key(topics=[pharmacies])
    theirs = make_post(topics=[pharmacies], created_by_token=other)
    by_editor = make_post(topics=[pharmacies])
    own = make_post(topics=[pharmacies], created_by_token=mine)
    client = client_for(key)

    assert client.get(f"/api/v1/posts/{theirs.pk}/").status_code == 404
    assert client.get(f"/api/v1/posts/{by_editor.pk}/").status_code == 404
    assert client.get(f"/api/v1/posts/{2**70}/").status_code == 404
    listed = client.get("/api/v1/posts/").json()
    assert [item["id"] for item in listed["results"]] == [own.pk]


def test_it_filters_and_paginates_the_keys_posts(pharmacies, traffic):
    token, key = token_with_key(topics=[pharmacies, traffic])
    old = make_post(topics=[pharmacies], created_by_token=token)
    Post.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    drafts = [make_post(topics=[pharmacies], created_by_token=token) for _ in range(3)]
    cancelled = make_post(topics=[traffic], created_by_token=token, status="cancelled")
    client = client_for(key)

    def ids(query: str) -> list[int]:
        response = client.get(f"/api/v1/posts/?{query}")
        assert response.status_code == 200, response.json()
        return [item["id"] for item in response.json()["results"]]

    assert ids("status=cancelled") == [cancelled.pk]
    assert ids("topic=traffico") == [cancelled.pk]
    since = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert old.pk not in ids(f"since={since}") and len(ids(f"since={since}")) == 4
    page = client.get("/api/v1/posts/?page_size=2").json()
    assert page["count"] == 5 and len(page["results"]) == 2 and page["next"]
    assert [item["id"] for item in page["results"]] == [cancelled.pk, drafts[-1].pk]
    assert client.get("/api/v1/posts/?status=bogus").status_code == 400
    assert "stauts" in client.get("/api/v1/posts/?stauts=sent").json()
    assert client.get("/api/v1/posts/?page=99").status_code == 404


def test_it_throttles_each_key_with_retry_after(settings):
    settings.BANDITORE_API_THROTTLE_RATE = "3/min"
    _token, key = token_with_key()
    _other, other_key = token_with_key()
    client = client_for(key)

    statuses = [client.get("/api/v1/topics/").status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    limited = client.get("/api/v1/topics/")
    assert limited.status_code == 429 and 0 < int(limited["Retry-After"]) <= 60
    assert client_for(other_key).get("/api/v1/topics/").status_code == 200


def test_without_redis_the_limit_is_not_enforced_and_it_says_so_once(
    settings, pharmacies, caplog, monkeypatch
):
    # A port nobody listens on: connections to it are refused at once.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port}/0",
        }
    }
    settings.BANDITORE_API_THROTTLE_RATE = "1/min"
    monkeypatch.setattr(throttling, "_last_logged_at", None)  # as in a fresh process
    _token, key = token_with_key(topics=[pharmacies])
    client = client_for(key)

    with caplog.at_level(logging.WARNING, logger="subscribers.api.throttling"):
        statuses = [client.get("/api/v1/topics/").status_code for _ in range(3)]
        created = client.post("/api/v1/posts/", DRAFT | {"topics": ["farmacie"]}, format="json")

    assert statuses == [200, 200, 200] and created.status_code == 202
    warnings = [r for r in caplog.records if r.name == "subscribers.api.throttling"]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
