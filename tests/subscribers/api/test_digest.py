"""The API publishes to the weekly digest or as urgent, and says which a post is."""

from __future__ import annotations

import pytest
from django.utils import timezone

from subscribers.delivery import digest
from subscribers.models import Delivery
from tests.factories import make_subscriber, make_topic
from tests.subscribers.api.helpers import client_for, token_with_key
from topics.models import Post, Topic

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttle_counts(redis_conn, settings):
    settings.BANDITORE_DIGEST_DEFAULT = "weekly"


@pytest.fixture
def key():
    news = make_topic(slug="notizie", delivery=Topic.Delivery.DIGEST)
    roads = make_topic(slug="strade")
    recent = {"last_inbound_at": timezone.now()}
    make_subscriber(topics=[news], **recent)
    make_subscriber(topics=[roads], **recent)
    return token_with_key(topics=[news, roads])[1]


def create(key, **fields) -> dict:
    body = {"topics": ["notizie"], "title": "Mercato", "body": "Sabato"} | fields
    answer = client_for(key).post("/api/v1/posts/", body, format="json")
    return answer.status_code, answer.json()


def test_a_post_on_a_digest_topic_waits_and_an_urgent_one_goes_at_once(fake_graph, key):
    status, waiting = create(key)
    assert status == 202 and waiting["waits_for_digest"] and waiting["digest_id"] is None
    assert waiting["kind"] == "post" and waiting["delivery"] == ""
    assert Delivery.objects.filter(post_id=waiting["id"]).count() == 0
    status, urgent = create(key, urgent=True, title="Allerta")
    assert status == 202 and urgent["is_urgent"] and not urgent["waits_for_digest"]
    assert Delivery.objects.filter(post_id=urgent["id"]).count() == 1
    made = digest.digest_publish().digest
    detail = client_for(key).get(f"/api/v1/posts/{waiting['id']}/").json()
    assert detail["digest_id"] == made.pk


def test_a_post_of_an_immediate_topic_can_target_the_digest(fake_graph, key):
    status, post = create(key, topics=["strade"], delivery="digest")
    assert status == 202 and post["delivery"] == "digest" and post["waits_for_digest"]
    assert Delivery.objects.filter(post_id=post["id"]).count() == 0
    status, at_once = create(key, delivery="immediate")
    assert Delivery.objects.filter(post_id=at_once["id"]).count() == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"urgent": True, "delivery": "digest"}, "delivery"),
        ({"is_urgent": True, "delivery": "digest"}, "delivery"),
        ({"urgent": True, "is_urgent": False}, "urgent"),
        ({"delivery": "weekly"}, "delivery"),
        ({"urgent": "maybe"}, "urgent"),
    ],
)
def test_contradictions_and_unknown_values_are_refused_clearly(key, fields, field):
    status, answer = create(key, **fields)
    assert status == 400 and field in answer
    assert not Post.objects.exists()


def test_topics_say_which_are_digest_topics(key):
    topics = client_for(key).get("/api/v1/topics/").json()
    kinds = {topic["slug"]: topic["delivery"] for topic in topics}
    assert kinds["notizie"] == "digest" and kinds["strade"] == "immediate"
