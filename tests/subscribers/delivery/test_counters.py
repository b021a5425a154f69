"""Per-post counters kept by the delivery table's triggers equal a recount of the rows: after
fan-out, sends, statuses (out of order, twice), write-backs, the sweeper, resend and cancel,
and with senders and status drains changing one post at once."""

from __future__ import annotations

import io
import random
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from channel.graph.callbacks import delivery_reference
from channel.graph.client import SendResult
from channel.graph.errors import Handling
from channel.webhook.parsing import MetaError, StatusUpdate
from subscribers.dashboard.queries import recent_posts
from subscribers.delivery import counters, publishing
from subscribers.delivery.progress import post_counters
from subscribers.delivery.sending import claim_batch
from subscribers.delivery.settling import Outcome, settle
from subscribers.delivery.statuses import apply_statuses
from subscribers.delivery.sweeper import sweep
from subscribers.models import ActiveCount, Delivery, PostCount, Subscriber
from tests.factories import make_subscriber
from tests.markers import needs_postgresql
from tests.subscribers.delivery.helpers import fast_sending, sending_post
from topics.models import Post

STATUSES = list(Delivery.Status.values)


@pytest.fixture(autouse=True)
def fast(settings, redis_conn):
    fast_sending(settings, batch=10)


def recount(post: Post) -> dict[str, int]:
    """The truth: the post's rows counted by status."""
    rows = Delivery.objects.filter(post=post).values_list("status").annotate(n=Count("id"))
    found = dict.fromkeys(STATUSES, 0) | dict(rows.order_by())
    return found | {"reach": sum(found[s] for s in STATUSES)}


def failed_recount(post: Post) -> dict[int | None, int]:
    rows = Delivery.objects.filter(post=post, status="failed").values_list("last_error_code")
    return dict(rows.annotate(n=Count("id")).order_by())


def assert_exact(post: Post) -> None:
    assert post_counters(post) == recount(post)
    assert counters.failed_by_code(post.pk) == failed_recount(post)


def status(row: Delivery, value: str, *, reference: bool = True, code: int = 131000):
    return StatusUpdate(
        wamid=row.wa_message_id or f"wamid.unknown{row.pk}",
        status=value,
        timestamp=timezone.now(),
        biz_opaque_callback_data=delivery_reference(row.pk, row.attempt_seq) if reference else "",
        errors=(MetaError(code, "Meta says no"),) if value == "failed" else (),
    )


RESULTS = [
    lambda claim: SendResult(wamid=f"wamid.{claim.id}.{claim.seq}"),
    lambda claim: SendResult(wamid=f"wamid.{claim.id}.{claim.seq}"),
    lambda claim: SendResult(error_code=131000, http_status=500, handling=Handling.TRANSIENT),
    lambda claim: SendResult(error_code=100, http_status=400, handling=Handling.INVALID),
    lambda claim: SendResult(
        error_code=131026, http_status=400, handling=Handling.RECIPIENT_UNREACHABLE
    ),
    lambda claim: SendResult(error_text="read timeout", maybe_sent=True),
    lambda claim: SendResult(not_sent=True),
]


def send_some(post: Post, rng: random.Random) -> None:
    """A sender claims a batch and writes back a mix of Meta's answers."""
    claimed = claim_batch(post.pk, rng.randint(1, 8))
    settle([Outcome(claim, result=rng.choice(RESULTS)(claim)) for claim in claimed])


def statuses_for_some(rng: random.Random) -> None:
    """A webhook with statuses of random messages: out of order, some twice, some by wamid
    only, some failures, some of an attempt that is over."""
    rows = list(Delivery.objects.exclude(status="queued").order_by("?")[: rng.randint(1, 6)])
    updates = [
        status(
            row,
            rng.choice(["sent", "delivered", "read", "read", "failed"]),
            reference=rng.random() < 0.7,
            code=rng.choice([131000, 131026, 131049, 470]),
        )
        for row in rows
    ]
    updates += rng.sample(updates, len(updates) // 2)  # Meta repeats itself
    rng.shuffle(updates)
    apply_statuses(updates)


OPERATIONS = {
    "send": send_some,
    "statuses": lambda post, rng: statuses_for_some(rng),
    "sweep": lambda post, rng: sweep(timezone.now() + timedelta(hours=1)),
    "resend": lambda post, rng: publishing.resend_failed(post=Post.objects.get(pk=post.pk)),
    "fold": lambda post, rng: counters.post_counts_fold(post.pk),
}


@pytest.mark.django_db
def test_counters_count_the_fan_out():
    post = sending_post(12)
    assert (
        post_counters(post)
        == recount(post)
        == {**dict.fromkeys(STATUSES, 0)}
        | {
            "queued": 12,
            "reach": 12,
        }
    )


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counters_equal_a_recount_after_a_random_sequence_of_operations(settings, seed):
    settings.BANDITORE_SETTLE_SECONDS = 0
    rng = random.Random(seed)
    post = sending_post(40)
    names = list(OPERATIONS)
    for step in range(60):
        name = rng.choices(names, weights=[6, 6, 1, 1, 1])[0]
        try:
            OPERATIONS[name](post, rng)
        except publishing.PublishError:
            pass  # resend of a post that is not sent yet
        assert_exact(post), (step, name)
    publishing.post_cancel(post=Post.objects.get(pk=post.pk))
    assert_exact(post)
    statuses_for_some(rng)  # late statuses of a cancelled post
    assert_exact(post)


@pytest.mark.django_db
def test_out_of_order_and_repeated_statuses_move_each_row_once():
    post = sending_post(5)
    claimed = claim_batch(post.pk, 5)
    settle([Outcome(c, result=SendResult(wamid=f"wamid.{c.id}")) for c in claimed])
    rows = list(Delivery.objects.filter(post=post).order_by("id"))
    apply_statuses([status(rows[0], "read"), status(rows[0], "delivered")])
    apply_statuses([status(rows[1], "delivered")] * 3 + [status(rows[1], "sent")])
    apply_statuses([status(rows[2], "failed"), status(rows[2], "failed", code=470)])
    apply_statuses([status(rows[3], "delivered"), status(rows[3], "failed")])
    assert post_counters(post) == recount(post)
    counts = post_counters(post)
    assert (counts["read"], counts["delivered"], counts["sent"]) == (1, 2, 1)
    assert counts["failed"] + counts["queued"] == 1  # 131000 is retried


@pytest.mark.django_db
def test_cancel_and_resend_keep_the_counters_exact():
    post = sending_post(10)
    claimed = claim_batch(post.pk, 6)
    invalid = SendResult(error_code=100, http_status=400, handling=Handling.INVALID)
    settle([Outcome(c, result=invalid) for c in claimed])
    assert post_counters(post)["failed"] == 6
    assert counters.failed_by_code(post.pk) == {100: 6}
    publishing.post_cancel(post=post)
    assert_exact(post)
    assert post_counters(post)["cancelled"] == 4
    Post.objects.filter(pk=post.pk).update(status=Post.Status.SENT)
    Delivery.objects.filter(post=post, status="failed").update(last_error_code=131000)
    publishing.resend_failed(post=Post.objects.get(pk=post.pk))
    assert_exact(post)
    assert post_counters(post)["queued"] == 6


@pytest.mark.django_db
def test_folding_and_recounting_keep_the_numbers():
    post = sending_post(30)
    rng = random.Random(9)
    for _ in range(20):
        send_some(post, rng)
        statuses_for_some(rng)
    rows_before = PostCount.objects.filter(post=post).count()
    expected = recount(post)
    assert counters.post_counts_fold(post.pk)
    assert PostCount.objects.filter(post=post).count() < rows_before
    assert post_counters(post) == expected
    PostCount.objects.filter(post=post).delete()  # lost, or a bug
    assert post_counters(post)["reach"] == 0
    assert counters.post_counts_recount([post.pk]) == 30
    assert post_counters(post) == expected
    PostCount.objects.all().update(n=7)
    counters.post_counts_recount()
    assert post_counters(post) == expected


@pytest.mark.django_db
def test_a_reader_folds_a_post_with_many_deltas(monkeypatch):
    monkeypatch.setattr(counters, "FOLD_AFTER", 3)
    post = sending_post(8)
    for _ in range(4):
        claimed = claim_batch(post.pk, 2)
        settle([Outcome(c, result=SendResult(wamid=f"wamid.{c.id}")) for c in claimed])
    assert PostCount.objects.filter(post=post).count() > 3
    assert post_counters(post) == recount(post)
    assert PostCount.objects.filter(post=post).count() == 1  # all sent, folded into one row


@pytest.mark.django_db
def test_the_progress_panel_and_the_dashboard_show_the_recount(admin_client):
    post = sending_post(20)
    rng = random.Random(4)
    for _ in range(10):
        send_some(post, rng)
        statuses_for_some(rng)
    truth = recount(post)
    url = reverse("admin:topics_post_progress", args=[post.pk])
    panel = admin_client.get(url).json()
    assert panel["counters"] == truth
    assert Counter({f["code"]: f["count"] for f in panel["failures"]}) == Counter(
        failed_recount(post)
    )
    [row] = [r for r in recent_posts() if r.post.pk == post.pk]
    assert row.reach == truth["reach"]
    assert row.delivered == truth["delivered"] + truth["read"]
    assert (row.read, row.failed) == (truth["read"], truth["failed"])


@pytest.mark.django_db(transaction=True)
@needs_postgresql
def test_senders_and_status_drains_at_once_keep_the_counters_exact(settings):
    """Two senders and two status drains on one post, each in its own connection and
    transaction, at the same time: the deltas add up to the recount."""
    settings.BANDITORE_SETTLE_SECONDS = 0
    post = sending_post(300)
    errors: list[BaseException] = []

    def work(kind: str, seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(25):
                if kind == "send":
                    send_some(post, rng)
                else:
                    statuses_for_some(rng)
        except BaseException as error:  # noqa: BLE001  (reported by the test)
            errors.append(error)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=work, args=(kind, seed))
        for seed, kind in enumerate(["send", "send", "statuses", "statuses", "send"])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert connection.vendor == "postgresql"
    assert_exact(post)
    assert recount(post)["queued"] < 300  # they did work


@pytest.mark.django_db
def test_the_minute_sweep_folds_and_the_command_recounts():
    post = sending_post(6)
    for _ in range(3):
        claimed = claim_batch(post.pk, 2)
        settle([Outcome(c, result=SendResult(wamid=f"wamid.{c.id}")) for c in claimed])
    assert counters.posts_fold_crowded() == 1
    assert PostCount.objects.filter(post=post).count() == 1
    PostCount.objects.filter(post=post).update(n=1)
    out = io.StringIO()
    call_command("recount_posts", str(post.pk), stdout=out)
    assert "Recounted 6 deliveries" in out.getvalue()
    assert post_counters(post) == recount(post)


@pytest.mark.django_db
def test_the_count_of_active_subscribers_follows_every_change_of_status():
    def truth() -> int:
        return Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).count()

    people = [make_subscriber() for _ in range(5)]
    make_subscriber(status=Subscriber.Status.PENDING)
    assert counters.active_subscribers() == truth() >= 5
    Subscriber.objects.filter(pk__in=[p.pk for p in people[:2]]).update(status="left")
    people[2].status = Subscriber.Status.UNREACHABLE
    people[2].save()
    Subscriber.objects.filter(pk=people[0].pk).update(status="active")
    Subscriber.objects.filter(pk=people[3].pk).update(language="en")  # not a change of status
    assert counters.active_subscribers() == truth()
    assert counters.active_count_fold()
    assert ActiveCount.objects.count() == 1
    assert counters.active_subscribers() == truth()
    ActiveCount.objects.all().delete()
    assert counters.active_count_recount() == truth()
    assert counters.active_subscribers() == truth()
