"""Sending through the fake Graph API: what reached "Meta" is read from its outbox."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from channel.models import MessageTemplate, SendingState
from channel.webhook.parsing import MetaError, StatusUpdate
from subscribers.delivery import publishing, sending, sweeper
from subscribers.delivery.progress import post_counters
from subscribers.delivery.settling import finish_if_done
from subscribers.delivery.statuses import apply_statuses
from subscribers.models import Delivery, Subscriber
from tests.channel.graph.helpers import close_clients
from tests.factories import make_post, make_subscriber, make_topic
from tests.subscribers.delivery.helpers import (
    ONE_BATCH,
    callbacks,
    fast_sending,
    published,
    reported,
)
from tests.subscribers.helpers import run_concurrently
from topics.models import Post

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast(settings, redis_conn):
    fast_sending(settings, batch=20)


def test_each_recipient_gets_the_post_once_and_the_post_finishes(fake_graph, template):
    post = published(45)
    assert sending.drain_post(post.pk) is None
    assert sorted(callbacks(fake_graph).values()) == [1] * 45
    post.refresh_from_db()
    assert post.status == Post.Status.SENT
    assert post_counters(post)["sent"] == 45


def test_a_batch_leaves_at_the_numbers_rate_not_in_one_burst(fake_graph, template, settings):
    """All of a batch is in flight at once, but each message leaves at its own slot of the
    Redis limiter: Meta sees them spaced at the bulk share of WHATSAPP_MPS."""
    settings.WHATSAPP_MPS = 50  # bulk: 45/s, with BANDITORE_REPLY_RESERVE = 0.1
    settings.BANDITORE_SEND_BATCH = 30
    post = published(30)
    sending.drain_post(post.pk)
    arrivals = sorted(entry["at"] for entry in fake_graph.outbox())
    assert len(arrivals) == 30
    assert arrivals[-1] - arrivals[0] >= 29 / 45 * 0.95
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert sum(1 for gap in gaps if gap < 0.5 / 45) <= 2  # no bunching


def test_window_picks_free_form_inside_and_the_template_outside(fake_graph, template):
    """Free-form only within 24 h of the person's message."""
    topic = make_topic()
    recent = make_subscriber(topics=[topic], last_inbound_at=timezone.now())
    fake_graph.mark_inbound(recent.wa_id)
    old = make_subscriber(topics=[topic], last_inbound_at=timezone.now() - timedelta(days=3))
    post = make_post(topics=[topic], body="Riga uno\nRiga due")
    publishing.post_publish(post=post)
    sending.drain_post(post.pk)
    types = {e["to"]: e["payload"]["type"] for e in fake_graph.outbox()}
    assert types == {recent.wa_id: "text", old.wa_id: "template"}
    # Parameters are flattened: Meta refuses newlines in them (error 132018).
    [template_entry] = fake_graph.outbox(to=old.wa_id)
    params = template_entry["payload"]["template"]["components"][0]["parameters"]
    assert params[1]["text"] == "Riga uno Riga due"
    assert Delivery.objects.get(subscriber=old).used_template


def test_a_stale_window_answered_with_131047_is_resent_as_template(fake_graph, template):
    # We believe the window is open, Meta's clock says it closed: the template goes instead.
    topic = make_topic()
    person = make_subscriber(topics=[topic], last_inbound_at=timezone.now())
    post = make_post(topics=[topic])
    publishing.post_publish(post=post)
    sending.drain_post(post.pk)
    assert [e["payload"]["type"] for e in fake_graph.outbox(to=person.wa_id)] == ["template"]
    assert fake_graph.stats()["rejected"] == {"131047": 1}


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_send_the_same_delivery(fake_graph, template):
    fake_graph.configure(mps=1000)  # above Meta's default 80/s: three senders at full speed
    post = published(120)
    errors = run_concurrently(lambda _: sending.drain_post(post.pk), 3)
    assert errors == []
    counts = callbacks(fake_graph)
    assert len(counts) == 120 and set(counts.values()) == {1}


def test_unreachable_number_fails_and_marks_the_person(fake_graph, template):
    """131026 → stop for this person."""
    post = published(2)
    unreachable = Subscriber.objects.order_by("id").first()
    fake_graph.configure(unreachable=[unreachable.wa_id])
    sending.drain_post(post.pk)
    unreachable.refresh_from_db()
    assert unreachable.status == Subscriber.Status.UNREACHABLE
    delivery = Delivery.objects.get(subscriber=unreachable)
    assert (delivery.status, delivery.last_error_code) == ("failed", 131026)
    assert post_counters(post)["sent"] == 1


def test_marketing_opt_out_stops_marketing_to_that_person(fake_graph, template):
    """131050 → do not retry; mirror it as an opt-out from marketing."""
    template.category = MessageTemplate.Category.MARKETING
    template.save()
    fake_graph.register_template("avviso_comune", "it", "marketing", body_params=2)
    post = published(1)
    person = Subscriber.objects.get()
    fake_graph.configure(marketing_opted_out=[person.wa_id])
    sending.drain_post(post.pk)
    person.refresh_from_db()
    assert person.marketing_opt_out
    assert Delivery.objects.get().last_error_code == 131050


def test_an_account_error_pauses_everything_and_loses_nobody(fake_graph, template):
    """190 (token expired) → pause all sending until an administrator resumes."""
    post = published(5)
    fake_graph.configure(token_expired=True)
    sending.drain_post(post.pk)
    state = SendingState.current()
    assert state.paused and state.error_code == 190
    assert post_counters(post)["queued"] == 5
    assert Delivery.objects.filter(attempts__gt=0).count() == 0  # the pause cost no attempt
    fake_graph.configure(token_expired=False)
    from channel.graph.account import resume_sending

    resume_sending()
    sending.drain_post(post.pk)
    assert len(callbacks(fake_graph)) == 5


def test_transient_errors_retry_with_a_bounded_number_of_attempts(fake_graph, template, settings):
    settings.BANDITORE_MAX_ATTEMPTS = 2
    post = published(1)
    fake_graph.configure(error_5xx_rate=1.0)
    sending.drain_post(post.pk)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("queued", 1)
    Delivery.objects.update(next_attempt_at=None)
    sending.drain_post(post.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error_code) == ("failed", 2, 131000)


def test_throttling_requeues_without_using_attempts(fake_graph, template):
    """130429 is our pace, not the message's fault."""
    post = published(1)
    fake_graph.configure(error_130429_rate=1.0)
    sending.drain_post(post.pk)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("queued", 0)


def test_pair_rate_backs_off_that_person_only(fake_graph, template):
    """131056 → retry that user after 4^X seconds; others keep flowing."""
    post = published(3)
    slow = Subscriber.objects.order_by("id").first()
    fake_graph.configure(pair_burst=0)  # everyone hits the pair limit…
    sending.drain_post(post.pk)
    delivery = Delivery.objects.get(subscriber=slow)
    assert delivery.status == "queued"
    assert delivery.next_attempt_at > timezone.now()
    fake_graph.configure(pair_burst=45)  # …then only the back-off holds them
    Delivery.objects.exclude(subscriber=slow).update(next_attempt_at=None)
    sending.drain_post(post.pk)
    assert len(callbacks(fake_graph)) == 2


def test_a_timeout_is_never_resent_blindly_and_the_status_settles_it(fake_graph, template):
    post = published(1)
    fake_graph.configure(timeout_rate=1.0, hang_seconds=1, fault_after_accept_rate=1.0)
    close_clients()  # fresh connections: none left half-used by an earlier test
    sending.drain_post(post.pk)
    delivery = Delivery.objects.get()
    assert delivery.status == "sending"  # maybe sent: waiting for Meta's status
    sweeper.sweep()  # within the settle time nothing is resent
    assert Delivery.objects.get().status == "sending"
    [entry] = fake_graph.outbox()
    apply_statuses([reported(entry, "delivered")])
    delivery.refresh_from_db()
    assert (delivery.status, delivery.wa_message_id) == ("delivered", entry["id"])
    assert finish_if_done(post.pk)


def test_cancel_stops_sending(fake_graph, template):
    post = published(40)
    assert fake_graph.outbox() == []
    sending.drain_post(post.pk, budget_seconds=ONE_BATCH)
    assert len(fake_graph.outbox()) == 20
    publishing.post_cancel(post=post)
    sending.drain_post(post.pk)
    assert len(fake_graph.outbox()) == 20
    assert post_counters(post)["cancelled"] == 20


def test_statuses_out_of_order_give_the_right_final_state(template):
    """`read` may come before `delivered`; a late `delivered` never downgrades `read`;
    a `failed` after `delivered` is recorded."""
    topic = make_topic()
    people = [make_subscriber(topics=[topic]) for _ in range(3)]
    post = make_post(topics=[topic])
    publishing.post_publish(post=post)
    rows = list(Delivery.objects.order_by("id"))
    for n, row in enumerate(rows):
        row.status, row.wa_message_id = "sent", f"wamid.{n}"
        row.save()
    now = timezone.now()

    def status(n, value, **extra):
        return StatusUpdate(wamid=f"wamid.{n}", status=value, timestamp=now, **extra)

    failed = status(2, "failed", errors=(MetaError(131049, "held back"),))
    apply_statuses([status(0, "read"), status(0, "delivered"), status(0, "sent")])
    apply_statuses([status(1, "delivered"), status(1, "delivered")])
    apply_statuses([status(2, "delivered"), failed])
    states = {d.subscriber_id: d for d in Delivery.objects.all()}
    assert states[people[0].id].status == "read" and states[people[0].id].read_at is not None
    assert states[people[1].id].status == "delivered"
    assert states[people[2].id].status == "delivered"
    assert states[people[2].id].failed_at is not None
    assert states[people[2].id].last_error_code == 131049


def test_failures_reported_by_webhook_are_handled_like_send_errors(template):
    """Errors also arrive asynchronously in statuses[].errors[]."""
    topic = make_topic()
    gone, held = make_subscriber(topics=[topic]), make_subscriber(topics=[topic])
    post = make_post(topics=[topic])
    publishing.post_publish(post=post)
    for n, row in enumerate(Delivery.objects.order_by("id")):
        row.status, row.wa_message_id, row.attempts = "sent", f"wamid.{n}", 1
        row.save()
    Post.objects.filter(pk=post.pk).update(status=Post.Status.SENT)
    by_person = {d.subscriber_id: d.wa_message_id for d in Delivery.objects.all()}
    now = timezone.now()
    apply_statuses(
        [
            StatusUpdate(by_person[gone.id], "failed", now, errors=(MetaError(131026),)),
            StatusUpdate(by_person[held.id], "failed", now, errors=(MetaError(131049),)),
        ]
    )
    gone.refresh_from_db()
    assert gone.status == Subscriber.Status.UNREACHABLE
    retry = Delivery.objects.get(subscriber=held)
    assert retry.status == "queued"
    assert retry.next_attempt_at > now + timedelta(hours=23)  # 131049: not before 24 h
    post.refresh_from_db()
    assert post.status == Post.Status.SENDING


def test_the_sweeper_requeues_only_rows_in_flight_longer_than_the_settle_time(template, settings):
    """A crashed sender's rows go back to the queue, but only once Meta had time to report a
    status for them (maybe sent: never resent blindly)."""
    settings.BANDITORE_SETTLE_SECONDS = 600
    post = published(2)
    stale, fresh = Delivery.objects.order_by("id")
    now = timezone.now()
    Delivery.objects.filter(pk=stale.pk).update(
        status="sending", sending_at=now - timedelta(seconds=700)
    )
    Delivery.objects.filter(pk=fresh.pk).update(status="sending", sending_at=now)
    assert sweeper.sweep()["returned"] == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, fresh.status) == ("queued", "sending")
    assert post_counters(post)["queued"] == 1


def test_the_sweeper_wakes_senders_only_for_posts_nobody_is_sending(
    template, django_capture_on_commit_callbacks, redis_conn
):
    """Celery messages are only wake-ups: a lost one is replaced by the sweeper, but a post
    whose sender is alive gets no extra sender chains."""
    post = published(3)
    with django_capture_on_commit_callbacks(execute=False) as wake_ups:
        assert sweeper.sweep()["woken"] == 1
    assert len(wake_ups) == 1
    sending.mark_sender_alive(post.pk)
    with django_capture_on_commit_callbacks(execute=False) as wake_ups:
        assert sweeper.sweep()["woken"] == 0
    assert wake_ups == []


def test_a_template_meta_rejects_fails_at_once_without_retries(fake_graph, template):
    """132000 (parameter count does not match the approved template) is our bug:
    retrying the same payload cannot help, so the delivery fails on the first attempt."""
    fake_graph.register_template("avviso_comune", "it", "utility", body_params=3)
    post = published(2)
    sending.drain_post(post.pk)
    rows = Delivery.objects.filter(post=post)
    assert {(row.status, row.attempts, row.last_error_code) for row in rows} == {
        ("failed", 1, 132000)
    }
    assert fake_graph.outbox() == []
    post.refresh_from_db()
    assert post.status == Post.Status.SENT  # finished: nothing left to send
