"""Forged webhook POSTs (wrong signature) are counted, and only a bounded sample is archived:
a flood must neither fill the disk nor cost a database write per POST."""

from __future__ import annotations

import json
import time

import pytest

from channel.models import InboundEvent
from channel.webhook.forgeries import COUNT_KEY, forged_post_counts
from channel.webhook.signatures import sign
from tests.channel.webhook.helpers import envelope, post_webhook, status_item


@pytest.fixture(autouse=True)
def _isolated(redis_conn):
    """Counts live in Redis: each test starts from zero."""


def _forged(n: int) -> bytes:
    body = envelope(statuses=[status_item(f"wamid.FORGED{n}", "delivered")])
    return json.dumps(body).encode() + b" " * 4096


@pytest.mark.django_db
def test_a_flood_of_forged_posts_is_counted_and_leaves_a_bounded_sample(settings, client):
    """Through deploy.wsgi.application, what gunicorn serves."""
    settings.BANDITORE_WEBHOOK_REJECTED_SAMPLES = 25
    for n in range(500):
        body = _forged(n)
        assert post_webhook(client, body, signature=sign(body, "wrong")).status_code == 403
    samples = InboundEvent.objects.filter(signature_valid=False)
    assert 0 < samples.count() <= 25
    assert all(len(body) <= 1024 for body in samples.values_list("body", flat=True))
    assert sum(forged_post_counts(hours=24)) == 500


@pytest.mark.django_db
def test_once_the_sample_is_full_a_forged_post_writes_nothing(
    settings, client, django_assert_num_queries
):
    settings.BANDITORE_WEBHOOK_REJECTED_SAMPLES = 2
    for n in range(2):
        assert post_webhook(client, _forged(n), signature=sign(b"x", "wrong")).status_code == 403
    with django_assert_num_queries(0):
        assert post_webhook(client, _forged(3), signature=sign(b"x", "wrong")).status_code == 403
    assert InboundEvent.objects.count() == 2
    assert forged_post_counts(hours=1) == [3]


@pytest.mark.django_db
def test_the_newest_samples_replace_the_oldest_and_real_webhooks_stay(settings, client, redis_conn):
    settings.BANDITORE_WEBHOOK_REJECTED_SAMPLES = 3
    assert post_webhook(client, _forged(0)).status_code == 200  # a real one
    for n in range(1, 7):
        if n == 4:  # a new hour: its sample starts again
            redis_conn.delete(f"{COUNT_KEY}{int(time.time()) // 3600}")
        assert post_webhook(client, _forged(n), signature=sign(b"x", "wrong")).status_code == 403
    kept = InboundEvent.objects.filter(signature_valid=False).order_by("id")
    assert [next(n for n in range(7) if f'FORGED{n}"' in e.body) for e in kept] == [4, 5, 6]
    assert InboundEvent.objects.filter(signature_valid=True).count() == 1


@pytest.mark.django_db
def test_the_archive_admin_page_shows_the_count(settings, admin_client, client):
    settings.BANDITORE_WEBHOOK_REJECTED_SAMPLES = 1
    for n in range(7):
        post_webhook(client, _forged(n), signature=sign(b"x", "wrong"))
    page = admin_client.get("/admin/channel/inboundevent/").content.decode()
    # The admin speaks the council's language (LANGUAGE_CODE "it").
    assert "7 nelle ultime 24 ore, 7 nell'ora in corso" in page
