"""A test send uploads the post's file as the broadcast will send it: by media id, once."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from channel.models import MediaUpload
from subscribers.delivery import sending
from tests.factories import log_in_as, make_subscriber
from tests.subscribers.desk.helpers import confirm
from topics.models import Post

pytestmark = pytest.mark.django_db

STAFF = "393330000001"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def staff_phone(settings, fake_graph, redis_conn):
    settings.BANDITORE_TEST_NUMBERS = [STAFF]
    settings.WHATSAPP_MPS = 1000
    fake_graph.register_template("avviso_comune", "it", "utility", body_params=2)
    make_subscriber(wa_id=STAFF, last_inbound_at=timezone.now())
    fake_graph.mark_inbound(STAFF)
    return fake_graph


def with_file(post: Post, name: str, content: bytes) -> Post:
    post.media_kind = Post.MediaKind.IMAGE
    post.media_file = SimpleUploadedFile(name, content)
    post.save()
    return post


def test_the_test_send_uploads_the_file_and_the_broadcast_reuses_it(client, post, staff_phone):
    with_file(post, "avviso.png", PNG)
    log_in_as(client, "Pubblicatore")
    confirm(client, "send_test", post, follow=True)
    [image] = [e["payload"] for e in staff_phone.outbox() if e["payload"]["type"] == "image"]
    media_id = image["image"]["id"]
    assert "link" not in image["image"]
    confirm(client, "send_now", post, follow=True)
    sending.drain_post(post.pk)
    assert staff_phone.stats()["media_uploads"] == 1
    assert MediaUpload.objects.get().media_id == media_id


def test_a_file_whatsapp_cannot_take_is_a_clear_message_not_an_error(client, post, staff_phone):
    with_file(post, "avviso.gif", b"GIF89a" + b"\x00" * 64)  # saved without the desk's form
    log_in_as(client, "Pubblicatore")
    response = confirm(client, "send_test", post, follow=True)
    assert response.status_code == 200
    said = " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert "image/jpeg, image/png" in said
    assert staff_phone.outbox() == [] and staff_phone.stats()["media_uploads"] == 0
