"""The weekly digest in the editors' desk: topics marked digest, the plan's split, the digest
itself listed and shown like a post (plan, preview for one recipient, progress, results)."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.utils import timezone

from subscribers.delivery import digest, publishing
from subscribers.desk.plan import post_plan, post_preview
from tests.factories import log_in_as, make_post, make_subscriber, make_template, make_topic
from tests.subscribers.desk.helpers import change_form_data
from topics.models import Topic

pytestmark = pytest.mark.django_db

THURSDAY = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.get_default_timezone())


@pytest.fixture
def waiting(settings):
    settings.BANDITORE_DIGEST_DEFAULT = "weekly"
    make_template()
    topic = make_topic(name_it="Cultura", delivery=Topic.Delivery.DIGEST)
    make_subscriber(topics=[topic])
    make_subscriber(topics=[topic])
    make_subscriber(topics=[topic], digest_preference="immediate")
    return make_post(topics=[topic], title="Mostra in biblioteca", body="Da lunedì.\nAltro")


def test_the_plan_counts_who_gets_it_at_once_and_names_the_digest(waiting):
    plan = post_plan(waiting)
    assert plan.reach == 1
    assert any("2" in w and "riepilogo settimanale" in w for w in plan.warnings)  # Italian


def test_a_digest_is_listed_and_shown_like_a_post(client, waiting):
    publishing.post_publish(post=waiting)
    made = digest.digest_publish(THURSDAY).digest
    log_in_as(client, "Pubblicatore")
    listing = client.get("/admin/topics/post/?kind__exact=digest").content.decode()
    assert made.title in listing and waiting.title not in listing
    assert post_plan(made).reach == 2
    preview = post_preview(made)
    assert "Mostra in biblioteca" in preview["free_form"] and preview["sample"]
    assert "Mostra in biblioteca" in preview["template"]
    page = client.get(f"/admin/topics/post/{made.pk}/change/").content.decode()
    assert 'data-testid="preview-sample"' in page and "Mostra in biblioteca" in page
    assert 'id="post-preview"' in page and "Cultura" in page  # results by topic
    progress = client.get(f"/admin/topics/post/{made.pk}/progress/").json()
    assert progress["counters"]["queued"] == 2 or progress.get("queued") == 2


def test_topics_are_marked_digest_in_the_admin_and_urgent_digest_is_refused(client, waiting):
    log_in_as(client, "Pubblicatore")
    topics = client.get("/admin/topics/topic/").content.decode()
    assert "in the weekly digest" in topics or "nel riepilogo settimanale" in topics
    data = change_form_data(waiting, is_urgent=True, delivery="digest")
    answer = client.post(f"/admin/topics/post/{waiting.pk}/change/", data)
    assert answer.status_code == 200  # the form again, with the error
    waiting.refresh_from_db()
    assert not waiting.is_urgent
