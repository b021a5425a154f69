"""One request Meta does not answer holds only its own row: the rest of its batch is written
back as it is answered, and the slow one ends "maybe sent" when its own timeout comes."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from subscribers.delivery import sending
from subscribers.models import Delivery
from tests.channel.graph.helpers import close_clients
from tests.subscribers.delivery.helpers import (
    ONE_BATCH,
    approved_template,
    callbacks,
    sending_post,
)


@pytest.fixture(autouse=True)
def fast(settings, redis_conn):
    settings.WHATSAPP_MPS = 1000
    settings.WHATSAPP_MESSAGING_TIER = "unlimited"
    settings.BANDITORE_SEND_BATCH = 10
    settings.BANDITORE_HTTP_TIMEOUT = 5
    close_clients()  # the next client reads that timeout
    yield
    close_clients()


@pytest.mark.django_db(transaction=True)
def test_the_rest_of_a_batch_is_sent_while_one_request_waits_for_its_timeout(fake_graph):
    approved_template(fake_graph)
    post = sending_post(10)
    slow = Delivery.objects.filter(post=post).order_by("id").select_related("subscriber")[3]
    fake_graph.configure(hang_to=[slow.subscriber.wa_id], hang_seconds=30)
    errors: list[Exception] = []

    def send() -> None:
        try:
            sending.drain_post(post.pk)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    sender = threading.Thread(target=send)
    sender.start()
    others = Delivery.objects.filter(post=post, status="sent").exclude(pk=slow.pk)
    seen = None
    while sender.is_alive():
        if others.count() == 9:  # all nine written back: how is the slow one then?
            seen = Delivery.objects.get(pk=slow.pk)
            break
        time.sleep(0.005)
    sender.join(60)
    assert errors == []
    assert seen is not None, "the nine were written back only with the slow one"
    assert (seen.status, seen.last_error_text) == ("sending", "")  # still waiting for Meta
    assert fake_graph.stats()["faults"]["hang"] == 1
    # Its own timeout: maybe sent, never resent blindly; it waits for Meta's status or the
    # sweeper (README, "Maybe sent").
    slow.refresh_from_db()
    assert slow.status == "sending"
    assert slow.last_error_text.startswith("no answer, waiting for status")
    assert slow.pk not in callbacks(fake_graph) and len(callbacks(fake_graph)) == 9


@pytest.mark.django_db(transaction=True)
def test_a_sender_out_of_time_leaves_its_straggler_to_the_next_one(fake_graph):
    """The budget ends with one request unanswered: the sender returns without waiting for its
    timeout, and the next sender in the process writes that row back when it ends."""
    approved_template(fake_graph)
    post = sending_post(10)
    slow = Delivery.objects.filter(post=post).order_by("id").select_related("subscriber")[7]
    fake_graph.configure(hang_to=[slow.subscriber.wa_id], hang_seconds=30)
    assert sending.drain_post(post.pk, budget_seconds=ONE_BATCH) == 0.0
    slow.refresh_from_db()
    assert (slow.status, slow.last_error_text) == ("sending", "")  # its answer is still due
    assert Delivery.objects.filter(post=post, status="sent").count() == 9
    assert sending.drain_post(post.pk) is None  # nothing queued: it waits for the straggler
    slow.refresh_from_db()
    assert slow.status == "sending"
    assert slow.last_error_text.startswith("no answer, waiting for status")
