"""The compose form: WhatsApp's limits checked on save, with errors an editor can act on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from subscribers.desk.compose import MB
from tests.factories import make_topic
from topics.models import Post

pytestmark = pytest.mark.django_db

ADD = "/admin/topics/post/add/"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"\x00" * 64


@pytest.fixture
def editor(client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    user = User.objects.create_user(username="redattore", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Redattore"))
    client.force_login(user)
    return user


def compose(client, **fields):
    topic = make_topic()
    data = {
        "title": "Scuole chiuse",
        "body": "Domani le scuole restano chiuse.",
        "topics": [topic.pk],
    }
    for name in ("send_at", "expires_at"):
        moment = fields.pop(name, None)
        if moment:
            local = timezone.localtime(moment)
            data[f"{name}_0"], data[f"{name}_1"] = f"{local:%d/%m/%Y}", f"{local:%H:%M:%S}"
    return client.post(ADD, data | fields)


def errors(response) -> dict:
    assert response.status_code == 200, "the form should come back with errors"
    return {name: list(errs) for name, errs in response.context["adminform"].form.errors.items()}


def upload(name: str, head: bytes, size: int | None = None) -> SimpleUploadedFile:
    content = head if size is None else head + b"\x00" * (size - len(head))
    return SimpleUploadedFile(name, content)


def test_it_saves_a_post_with_an_image_and_recognises_its_kind(client, editor):
    response = compose(client, media_file=upload("piazza.png", PNG))
    assert response.status_code == 302
    post = Post.objects.get()
    assert post.media_kind == Post.MediaKind.IMAGE
    assert post.author == editor


def test_it_stores_line_breaks_as_whatsapp_counts_them(client, editor):
    compose(client, body="Riga uno\r\nRiga due")
    assert Post.objects.get().body == "Riga uno\nRiga due"


def test_it_refuses_an_image_over_5_mb(client, editor):
    response = compose(client, media_file=upload("foto.jpg", JPEG, 5 * MB + 1))
    [message] = errors(response)["media_file"]
    assert "5" in message
    assert not Post.objects.exists()


def test_it_accepts_an_image_of_exactly_5_mb(client, editor):
    assert compose(client, media_file=upload("foto.jpg", JPEG, 5 * MB)).status_code == 302


def test_it_refuses_a_video_over_16_mb_and_a_document_over_100_mb(client, editor):
    assert "media_file" in errors(compose(client, media_file=upload("v.mp4", MP4, 16 * MB + 1)))
    big_pdf = upload("atto.pdf", PDF, 100 * MB + 1)
    assert "media_file" in errors(compose(client, media_file=big_pdf))


def test_it_refuses_a_file_whatsapp_cannot_send(client, editor):
    gif = upload("animazione.gif", b"GIF89a" + b"\x00" * 64)
    assert "media_file" in errors(compose(client, media_file=gif))
    # A renamed file is judged by its content, not its name.
    assert "media_file" in errors(compose(client, media_file=upload("foto.png", PDF)))


def test_it_refuses_a_kind_that_contradicts_the_file_or_the_link(client, editor):
    response = compose(client, media_kind="video", media_file=upload("foto.png", PNG))
    assert "media_file" in errors(response)
    response = compose(client, media_kind="image", media_url="https://example.org/atto.pdf")
    assert "media_url" in errors(response)


def test_a_link_needs_a_kind_when_its_name_does_not_say(client, editor):
    response = compose(client, media_url="https://example.org/media?id=3")
    assert "media_url" in errors(response)
    compose(client, media_url="https://example.org/locandina.jpeg")
    assert Post.objects.get().media_kind == "image"


def test_a_link_and_a_file_together_are_refused(client, editor):
    response = compose(
        client, media_url="https://example.org/a.png", media_file=upload("b.png", PNG)
    )
    assert "media_url" in errors(response)


def test_it_refuses_a_text_over_4096_characters(client, editor):
    assert "body" in errors(compose(client, body="x" * 4097))
    assert compose(client, body="é" * 4096).status_code == 302


def test_expiry_must_follow_the_send_time_and_neither_may_be_past(client, editor):
    soon = timezone.now() + timedelta(hours=2)
    response = compose(client, send_at=soon, expires_at=soon - timedelta(hours=1))
    assert "expires_at" in errors(response)
    response = compose(client, send_at=timezone.now() - timedelta(hours=1))
    assert "send_at" in errors(response)


def test_the_form_explains_the_limits_and_loads_the_counter(client, editor):
    page = client.get(ADD).content.decode()
    assert "subscribers/post_compose.js" in page
    assert 'data-counter="post-body"' in page and 'data-max="4096"' in page
    assert "5 MB" in page and "16 MB" in page and "100 MB" in page


def test_changing_the_kind_of_a_saved_file_is_checked_too(client, editor):
    compose(client, media_file=upload("piazza.png", PNG))
    post = Post.objects.get()
    data = {
        "title": post.title,
        "body": post.body,
        "topics": [t.pk for t in post.topics.all()],
        "media_kind": "video",
    }
    response = client.post(f"/admin/topics/post/{post.pk}/change/", data)
    assert "media_file" in errors(response)
