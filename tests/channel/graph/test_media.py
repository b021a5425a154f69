"""Media uploaded to the fake Graph API once and sent by id (channel.graph.media)."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from channel.graph import payloads
from channel.graph.errors import Handling, handling_for
from channel.graph.media import MediaFile, MediaUploadError, media_forget, media_id_for
from channel.models import MediaUpload
from tests.subscribers.helpers import run_concurrently

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100


def image(key: str = "post:1:a.png", content: bytes = PNG, mime: str = "image/png") -> MediaFile:
    return MediaFile(key, "image", mime, "a.png", len(content), lambda: content)


def send_image(fake_graph, settings, media_id: str) -> httpx.Response:
    """A send by id, straight to the fake, as Meta would get it."""
    url = f"{fake_graph.url}/{settings.WHATSAPP_API_VERSION}/{settings.WHATSAPP_PHONE_NUMBER_ID}"
    fake_graph.mark_inbound("393330000001")
    message = payloads.media("393330000001", "image", caption="Avviso", media_id=media_id)
    return httpx.post(
        f"{url}/messages",
        json=message,
        headers={"Authorization": f"Bearer {settings.WHATSAPP_ACCESS_TOKEN}"},
    )


def test_a_file_is_uploaded_once_and_its_id_reused(fake_graph, settings):
    first = media_id_for(image())
    assert media_id_for(image()) == first
    assert fake_graph.stats()["media_uploads"] == 1
    row = MediaUpload.objects.get(key="post:1:a.png")
    assert row.uploads == 1 and row.claimed_at is None
    assert row.expires_at - row.uploaded_at == timedelta(days=30)
    assert send_image(fake_graph, settings, first).status_code == 200


def test_the_fake_refuses_a_media_id_it_never_issued_with_131053(fake_graph, settings):
    response = send_image(fake_graph, settings, "1234567890123456")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 131053
    assert handling_for(131053) is Handling.MEDIA_GONE


def test_an_id_near_its_expiry_is_replaced_by_a_new_upload(fake_graph, settings):
    first = media_id_for(image())
    MediaUpload.objects.update(expires_at=timezone.now() + timedelta(hours=20))
    second = media_id_for(image())
    assert second != first
    assert fake_graph.stats()["media_uploads"] == 2


def test_an_id_meta_forgot_is_uploaded_again_once(fake_graph, settings):
    first = media_id_for(image())
    fake_graph._post("forget_media", {})
    assert send_image(fake_graph, settings, first).json()["error"]["code"] == 131053
    assert media_forget([first, first]) == 1
    second = media_id_for(image())
    assert media_forget([first]) == 0  # a late report about the old id keeps the new one
    assert media_id_for(image()) == second
    assert send_image(fake_graph, settings, second).status_code == 200
    assert fake_graph.stats()["media_uploads"] == 2


def test_a_file_outside_metas_limits_is_refused_before_upload(fake_graph):
    too_big = b"\xff\xd8\xff" + b"\x00" * (5 * 1000 * 1000)
    with pytest.raises(MediaUploadError, match="at most 5,000,000") as error:
        media_id_for(image(content=too_big, mime="image/jpeg"))
    assert error.value.handling is Handling.INVALID
    with pytest.raises(MediaUploadError, match="image/jpeg, image/png"):
        media_id_for(image(mime="image/gif"))
    assert fake_graph.stats()["media_uploads"] == 0


def test_metas_refusal_of_an_upload_is_the_error(fake_graph, settings):
    """A refused upload (here: a wrong token) leaves no id, no claim, and the reason."""
    settings.WHATSAPP_ACCESS_TOKEN = "wrong"
    with pytest.raises(MediaUploadError) as error:
        media_id_for(image())
    assert error.value.code == 190 and error.value.handling is Handling.ACCOUNT_PAUSE
    row = MediaUpload.objects.get()
    assert row.media_id == "" and row.claimed_at is None and "190" in row.last_error


def test_the_fake_checks_uploads_as_meta_does(fake_graph, settings):
    url = f"{fake_graph.url}/{settings.WHATSAPP_API_VERSION}/{settings.WHATSAPP_PHONE_NUMBER_ID}"
    auth = {"Authorization": f"Bearer {settings.WHATSAPP_ACCESS_TOKEN}"}

    def upload(mime: str, content: bytes, product: str = "whatsapp") -> dict:
        files = {"file": ("f", content, mime)}
        data = {"messaging_product": product, "type": mime}
        return httpx.post(f"{url}/media", data=data, files=files, headers=auth).json()

    assert upload("image/gif", b"GIF89a")["error"]["code"] == 100
    assert upload("image/png", PNG, product="")["error"]["code"] == 100
    assert upload("image/png", b"x" * 5_000_001)["error"]["code"] == 131053
    assert upload("image/webp", b"x" * 500_001)["error"]["code"] == 131053
    assert upload("application/pdf", b"%PDF-1.4" + b"x" * 6_000_000)["id"].isdigit()
    assert fake_graph.stats()["media_uploads"] == 1


@pytest.mark.django_db(transaction=True)
def test_senders_of_the_same_file_at_once_upload_it_once(fake_graph):
    ids = []

    def slow_read() -> bytes:  # the upload takes a while: the others find it claimed
        time.sleep(0.5)
        return PNG

    media = MediaFile("post:9:b.png", "image", "image/png", "b.png", len(PNG), slow_read)
    errors = run_concurrently(lambda _: ids.append(media_id_for(media)), 4)
    assert errors == []
    assert len(ids) == 4 and len(set(ids)) == 1
    assert fake_graph.stats()["media_uploads"] == 1
