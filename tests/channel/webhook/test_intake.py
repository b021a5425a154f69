"""The lean webhook intake: `deploy.wsgi` answers the webhook POST in front of Django.

The signature covers the raw body (4xx otherwise); status webhooks arrive at ~3 per message
sent; Meta retries anything that is not a 200 for up to 7 days, so a webhook that cannot be
archived must not get a 200.
"""

from __future__ import annotations

import json

import pytest
from django.core import signals
from django.db import connection
from django.test import Client, RequestFactory
from django.urls import reverse

from channel.models import InboundEvent
from channel.webhook.intake import WEBHOOK_PATH
from channel.webhook.signatures import HEADER, sign
from channel.webhook.wake_flag import WAKE_KEY
from tests.channel.webhook.helpers import (
    call_wsgi,
    envelope,
    held_by_another_session,
    post_webhook,
    status_item,
)
from tests.markers import needs_postgresql

pytestmark = pytest.mark.django_db
SECRET = "test-app-secret"  # tests/settings.py


@pytest.fixture(autouse=True)
def _flag_held(redis_conn):
    """A drain is "on its way" (flag set): POSTs only archive, so effects are the intake's."""
    redis_conn.set(WAKE_KEY, 1)


def _status_body() -> bytes:
    return json.dumps(envelope(statuses=[status_item("wamid.intake", "delivered")])).encode()


def test_the_intake_path_is_the_url_django_routes_to_the_webhook_view():
    assert reverse("channel:webhook") == WEBHOOK_PATH


def test_the_webhook_post_is_answered_without_a_django_request(client):
    """The point of the lean path: no Django request cycle (middleware, request objects)."""
    started = []

    def count(**kwargs):
        started.append(kwargs["environ"]["REQUEST_METHOD"])

    signals.request_started.connect(count)
    try:
        assert post_webhook(client, _status_body()).status_code == 200
        handshake = RequestFactory().get(
            WEBHOOK_PATH, {"hub.mode": "subscribe", "hub.verify_token": "test-verify-token"}
        )
        assert call_wsgi(handshake).status_code == 200  # the GET still goes to Django
    finally:
        signals.request_started.disconnect(count)
    assert started == ["GET"]
    assert InboundEvent.objects.get().signature_valid


def _django_view(body: bytes, headers: dict, **extra) -> tuple[int, bytes]:
    """The same POST through Django's handler (test client → the Django view)."""
    response = Client().post(
        WEBHOOK_PATH, data=body, content_type="application/json", headers=headers, **extra
    )
    return response.status_code, response.content


def _lean(body: bytes, headers: dict, **extra) -> tuple[int, bytes]:
    request = RequestFactory().post(
        WEBHOOK_PATH, data=body, content_type="application/json", headers=headers, **extra
    )
    response = call_wsgi(request)
    return response.status_code, response.content


def _archive() -> list[tuple]:
    rows = InboundEvent.objects.order_by("id")
    return [(e.signature_valid, e.problems, e.processed_at is None, e.body) for e in rows]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("valid", 200),
        ("unsigned", 401),  # nothing stored
        ("forged", 403),  # archived for audit, never processed
        ("malformed", 400),  # archived, never processed
        ("bad length", 400),
    ],
)
def test_both_routes_give_the_same_answer_and_the_same_archive(case, expected):
    body = b'{"object": "whatsapp_business_account", "entry": [}' if case == "malformed" else b""
    body = body or _status_body()
    headers = {HEADER: sign(body, "wrong" if case == "forged" else SECRET)}
    if case == "unsigned":
        headers = {}
    extra = {"CONTENT_LENGTH": "12x"} if case == "bad length" else {}

    lean = _lean(body, headers, **extra)
    lean_archive = _archive()
    InboundEvent.objects.all().delete()
    django = _django_view(body, headers, **extra)
    assert lean[0] == expected
    assert lean == django
    assert lean_archive == _archive()
    if case in ("unsigned", "bad length"):
        assert lean_archive == []
    if case in ("forged", "malformed"):
        ((valid, problems, unprocessed, _),) = lean_archive
        assert not unprocessed and problems
        assert valid == (case == "malformed")


def test_a_body_over_the_limit_is_413_and_not_stored(settings, client):
    settings.BANDITORE_WEBHOOK_MAX_BYTES = 1024
    small = _status_body()
    assert len(small) <= 1024
    big = json.dumps(envelope(statuses=[status_item("w" * 1200, "delivered")])).encode()
    assert post_webhook(client, big).status_code == 413
    assert not InboundEvent.objects.exists()
    assert post_webhook(client, small).status_code == 200
    assert InboundEvent.objects.count() == 1


def test_a_host_django_would_refuse_is_left_to_django(client):
    """ALLOWED_HOSTS still applies: Django answers 400, nothing is archived."""
    body = _status_body()
    request = RequestFactory().post(
        WEBHOOK_PATH,
        data=body,
        content_type="application/json",
        headers={HEADER: sign(body, SECRET)},
        HTTP_HOST="evil.example",
    )
    assert call_wsgi(request).status_code == 400
    assert not InboundEvent.objects.exists()


def test_accented_bodies_are_archived_byte_for_byte(client):
    """Verified over the raw bytes; the archive keeps them as received."""
    body = json.dumps({"object": "whatsapp_business_account", "entry": [], "x": "più è ❤️"})
    raw = body.replace(" ", "  ").encode()  # not what json.dumps would re-serialise
    assert post_webhook(client, raw).status_code == 200
    assert InboundEvent.objects.get().body.encode() == raw


def test_without_redis_the_webhook_is_still_archived_and_answered_200(
    settings, client, redis_conn, django_capture_on_commit_callbacks
):
    """The wake-up is best effort: beat drains every minute (README, "The WhatsApp webhook")."""
    redis_conn.delete(WAKE_KEY)
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    with django_capture_on_commit_callbacks(execute=True) as wake_ups:
        assert post_webhook(client, _status_body()).status_code == 200
    assert len(wake_ups) == 1  # it did try
    event = InboundEvent.objects.get()
    assert event.processed_at is None  # left for the drain


@pytest.mark.django_db(transaction=True)
@needs_postgresql
def test_when_the_archive_cannot_be_written_meta_gets_503_and_retries(client):
    """Never a 200 for a webhook we did not store (Meta retries for 7 days), never a
    bare 500: the INSERT times out behind a lock another session holds on the table."""

    def lock_the_archive() -> None:
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE channel_inboundevent IN ACCESS EXCLUSIVE MODE")

    with held_by_another_session(lock_the_archive):
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 300")
        try:
            response = post_webhook(client, _status_body())
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET statement_timeout = 0")
    assert response.status_code == 503
    assert not InboundEvent.objects.exists()
    # The same POST once the database is back: archived.
    assert post_webhook(client, _status_body()).status_code == 200
    assert InboundEvent.objects.count() == 1


def test_the_wake_up_survives_a_dropped_redis_connection(
    client, redis_conn, django_capture_on_commit_callbacks
):
    """The flag's own connection (one per thread) reconnects once when Redis dropped it."""
    from channel.webhook import wake_flag

    with django_capture_on_commit_callbacks(execute=True):  # the flag is set: no drain yet
        assert post_webhook(client, _status_body()).status_code == 200
    wake_flag._flag.connection.send_command("CLIENT", "ID")  # TCP or the embedded Redis' socket
    client_id = wake_flag._flag.connection.read_response()
    assert redis_conn.execute_command("CLIENT", "KILL", "ID", client_id)  # as a Redis restart
    redis_conn.delete(WAKE_KEY)

    with django_capture_on_commit_callbacks(execute=True):
        assert post_webhook(client, _status_body()).status_code == 200
    # The flag was set through a new connection, so the drain was published (eagerly here).
    assert not InboundEvent.objects.filter(processed_at__isnull=True).exists()
    assert InboundEvent.objects.count() == 2
