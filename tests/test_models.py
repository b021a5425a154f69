"""The data model's promises, checked by the database itself where it can."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from subscribers.delivery.audience import reach_count
from subscribers.models import ConsentEvent, Subscriber, Subscription, mask_phone
from tests.factories import make_delivery, make_post, make_subscriber, make_topic
from topics.models import Post, Topic

pytestmark = pytest.mark.django_db


def test_it_loads_the_default_topics_in_italian_and_english():
    slugs = list(Topic.objects.values_list("slug", flat=True))
    assert slugs[:6] == [
        "scuola",
        "cantieri-viabilita",
        "raccolta-differenziata",
        "eventi-cultura",
        "farmacie-di-turno",
        "avvisi-urgenti",
    ]
    urgent = Topic.objects.get(slug="avvisi-urgenti")
    assert urgent.name_it == "Avvisi urgenti / Protezione civile"
    assert urgent.name_en.startswith("Urgent alerts")
    assert all(
        len(t.description_it) <= 72 and len(t.description_en) <= 72 for t in Topic.objects.all()
    )


def test_it_refuses_a_second_subscription_to_the_same_topic():
    topic = make_topic()
    subscriber = make_subscriber(topics=[topic])
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscription.objects.create(subscriber=subscriber, topic=topic)


def test_it_refuses_a_second_delivery_of_a_post_to_the_same_person():
    topic = make_topic()
    subscriber = make_subscriber(topics=[topic])
    post = make_post(topics=[topic])
    make_delivery(post=post, subscriber=subscriber)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_delivery(post=post, subscriber=subscriber)


def test_it_refuses_two_deliveries_with_the_same_whatsapp_message_id():
    topic = make_topic()
    post = make_post(topics=[topic])
    make_delivery(post=post, subscriber=make_subscriber(), wa_message_id="wamid.X")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_delivery(post=post, subscriber=make_subscriber(), wa_message_id="wamid.X")


@pytest.mark.parametrize(
    ("wa_id", "masked"),
    [
        ("393331234512", "+39 333 ••• ••12"),
        ("4915112345678", "+49 151 ••• ••78"),
        ("12025550143", "+1 202 ••• ••43"),
    ],
)
def test_it_masks_phone_numbers_for_staff(wa_id, masked):
    assert mask_phone(wa_id) == masked
    assert make_subscriber(wa_id=wa_id).masked_number == masked


def test_it_never_shows_more_than_the_tail_of_the_number():
    subscriber = make_subscriber(wa_id="393331234567")
    assert "1234567" not in str(subscriber)
    assert str(subscriber).endswith("67")


def test_a_subscriber_needs_a_phone_or_a_user_id():
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscriber.objects.create(wa_id=None, user_id=None)
    assert Subscriber.objects.create(wa_id=None, user_id="IT.123456789").masked_number == "@•••6789"


@pytest.mark.parametrize("bad", ["+393331234567", "0333123", "39 333 123", "12345"])
def test_it_stores_phone_numbers_only_as_e164_digits(bad):
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscriber.objects.create(wa_id=bad)


def test_an_erased_subscriber_keeps_no_identity():
    subscriber = make_subscriber()
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscriber.objects.filter(pk=subscriber.pk).update(status="erased")
    Subscriber.objects.filter(pk=subscriber.pk).update(status="erased", wa_id=None)
    masked = Subscriber.objects.get(pk=subscriber.pk).masked_number
    assert masked and not any(ch.isdigit() for ch in masked)


def test_status_transitions_follow_the_lifecycle():
    subscriber = make_subscriber(status=Subscriber.Status.PENDING)
    assert subscriber.can_become("active")
    assert not subscriber.can_become("unreachable")
    subscriber.status = "erased"
    assert not any(subscriber.can_become(s) for s in Subscriber.Status.values)
    subscriber.status = "left"
    assert subscriber.can_become("pending") and subscriber.can_become("active")


def test_the_database_refuses_unknown_statuses():
    with pytest.raises(IntegrityError), transaction.atomic():
        make_subscriber(status="maybe")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_post(status="published")


def test_the_consent_ledger_is_append_only():
    subscriber = make_subscriber()
    event = ConsentEvent.objects.create(
        subscriber=subscriber, kind="consent", source="chat", at=timezone.now(), wa_message_id="w1"
    )
    event.kind = "refusal"
    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(ValueError):
        event.delete()


@pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="the trigger exists on PostgreSQL only; SQLite relies on the model guard",
)
def test_postgresql_itself_refuses_to_rewrite_the_consent_ledger():
    event = ConsentEvent.objects.create(kind="refusal", source="chat", at=timezone.now())
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ConsentEvent.objects.filter(pk=event.pk).update(kind="consent")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ConsentEvent.objects.filter(pk=event.pk).delete()


@pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="the trigger exists on PostgreSQL only; SQLite relies on the model guard",
)
def test_erasure_may_redact_a_ledger_rows_note_and_message_id_and_nothing_else():
    event = ConsentEvent.objects.create(
        kind="import", source="import", at=timezone.now(), note="Mario Rossi", wa_message_id="w1"
    )
    rows = ConsentEvent.objects.filter(pk=event.pk)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        rows.update(note="someone else")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        rows.update(note="[erased]", kind="consent")
    assert rows.update(note="[erased]", wa_message_id="[erased]0123abcd") == 1


def test_the_database_refuses_a_body_longer_than_whatsapp_allows():
    make_post(body="x" * 4096)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_post(body="x" * 4097)


def test_a_scheduled_post_needs_a_send_time_and_expires_after_it():
    with pytest.raises(IntegrityError), transaction.atomic():
        make_post(status=Post.Status.SCHEDULED)
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        make_post(send_at=now, expires_at=now)


def test_media_needs_a_kind_and_a_source():
    with pytest.raises(IntegrityError), transaction.atomic():
        make_post(media_kind="image")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_post(media_url="https://example.org/a.jpg")
    assert make_post(media_kind="image", media_url="https://example.org/a.jpg").pk


def test_reach_counts_each_person_once_across_overlapping_topics():
    school, roads, other = make_topic(), make_topic(), make_topic()
    make_subscriber(topics=[school, roads])
    make_subscriber(topics=[school])
    make_subscriber(topics=[other])
    make_subscriber(topics=[school], status=Subscriber.Status.LEFT)
    assert reach_count([school.pk, roads.pk]) == 2
    assert reach_count([other.pk]) == 1


def test_the_subscription_index_serves_fan_out_by_topic():
    names = {c.name for c in Subscription._meta.indexes}
    assert "subscription_topic_idx" in names
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, Subscription._meta.db_table)
    assert indexes["subscription_topic_idx"]["columns"] == ["topic_id", "subscriber_id"]
