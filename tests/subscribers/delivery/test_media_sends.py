"""A post's file goes to Meta once and every message carries its media id."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from channel.models import MediaUpload, MessageTemplate
from subscribers.delivery import publishing, sending
from subscribers.models import Delivery
from tests.factories import make_post, make_subscriber, make_template, make_topic
from tests.subscribers.delivery.helpers import fast_sending
from tests.subscribers.helpers import run_concurrently
from topics.models import Post

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


@pytest.fixture(autouse=True)
def fast(settings, redis_conn):
    fast_sending(settings, batch=5)


def image_post(fake_graph, n: int) -> Post:
    topic = make_topic()
    for _ in range(n):
        person = make_subscriber(topics=[topic], last_inbound_at=timezone.now())
        fake_graph.mark_inbound(person.wa_id)
    return make_post(
        topics=[topic],
        media_kind=Post.MediaKind.IMAGE,
        media_file=SimpleUploadedFile("manifesto.png", PNG, content_type="image/png"),
    )


def test_a_post_sent_to_many_uploads_its_image_once(fake_graph):
    post = image_post(fake_graph, 12)
    publishing.post_publish(post=post)
    sending.drain_post(post.pk)
    outbox = fake_graph.outbox()
    assert len(outbox) == 12
    ids = {entry["payload"]["image"].get("id") for entry in outbox}
    assert len(ids) == 1 and None not in ids
    assert not any("link" in entry["payload"]["image"] for entry in outbox)
    assert fake_graph.stats()["media_uploads"] == 1
    assert MediaUpload.objects.get().media_id == ids.pop()


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_of_one_post_upload_once(fake_graph):
    post = image_post(fake_graph, 30)
    Post.objects.filter(pk=post.pk).update(status=Post.Status.SENDING, published_at=timezone.now())
    publishing.fan_out(post)
    errors = run_concurrently(lambda _: sending.drain_post(post.pk), 3)
    assert errors == []
    assert len(fake_graph.outbox()) == 30
    assert fake_graph.stats()["media_uploads"] == 1


def test_media_meta_lost_is_uploaded_again_and_the_post_still_arrives(fake_graph, settings):
    post = image_post(fake_graph, 10)
    Post.objects.filter(pk=post.pk).update(status=Post.Status.SENDING, published_at=timezone.now())
    publishing.fan_out(post)
    sending.drain_post(post.pk, budget_seconds=1e-6)  # the first batch only
    assert len(fake_graph.outbox()) == 5
    fake_graph._post("forget_media", {})  # Meta no longer holds the upload
    Delivery.objects.update(next_attempt_at=None)
    while sending.drain_post(post.pk) is not None:  # 131053 → upload again → retried
        Delivery.objects.update(next_attempt_at=None)
    assert len(fake_graph.outbox()) == 10
    assert fake_graph.stats()["rejected"] == {"131053": 5}  # the batch in flight with it
    assert fake_graph.stats()["media_uploads"] == 2
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}


def test_a_template_with_a_media_header_carries_the_same_uploaded_id(fake_graph):
    """Outside the 24-hour window the template's image header is sent by id too."""
    fake_graph.register_template("avviso_foto", "it", "utility", body_params=2, header="image")
    make_template(name="avviso_foto", header=MessageTemplate.Header.MEDIA)
    post = image_post(fake_graph, 2)
    topic = post.topics.get()
    make_subscriber(topics=[topic], last_inbound_at=timezone.now() - timedelta(days=3))
    publishing.post_publish(post=post)
    sending.drain_post(post.pk)
    kinds = sorted(entry["payload"]["type"] for entry in fake_graph.outbox())
    assert kinds == ["image", "image", "template"]
    [template] = [
        e["payload"]["template"] for e in fake_graph.outbox() if "template" in e["payload"]
    ]
    [header] = [c for c in template["components"] if c["type"] == "header"]
    upload = MediaUpload.objects.get()
    assert header["parameters"] == [{"type": "image", "image": {"id": upload.media_id}}]
    assert fake_graph.stats()["media_uploads"] == 1
