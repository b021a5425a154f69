"""Writing outcomes back: only to the attempt they belong to, never a person's raw wamid after
their erasure, one rule for a failure whether the send's answer or a webhook reports it, and a
post finished only when nothing of it can be queued again behind its back.
"""

from __future__ import annotations

import pytest

from channel.erasure import erased_wamid
from channel.graph.client import SendResult
from channel.graph.errors import Handling
from subscribers.delivery import sending
from subscribers.delivery.settling import Outcome, settle
from subscribers.erasure import subscriber_erase
from subscribers.models import Delivery
from tests.subscribers.delivery.helpers import (
    fast_sending,
    sending_post,
)
from topics.models import Post


@pytest.fixture(autouse=True)
def fast(settings, redis_conn):
    fast_sending(settings, batch=10)


def claimed_again(post: Post):
    """The sweeper queued the post's rows again and another sender claimed them: a new attempt."""
    Delivery.objects.filter(post=post).update(status=Delivery.Status.QUEUED)
    return sending.claim_batch(post.pk, 10)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "result",
    [
        SendResult(error_code=131000, http_status=500, handling=Handling.TRANSIENT),
        SendResult(error_code=100, http_status=400, handling=Handling.INVALID),
        SendResult(error_code=None, error_text="read timeout", maybe_sent=True),
        SendResult(not_sent=True),
    ],
    ids=["retry", "failed", "maybe-sent", "not-sent"],
)
def test_a_stale_outcome_leaves_the_live_attempt_alone(result):
    """A batch carried over to a later sender answers for attempt 1 of a row that attempt 2
    now holds: neither queued again (it would be sent twice) nor failed nor annotated."""
    post = sending_post(1)
    [stale] = sending.claim_batch(post.pk, 10)
    [live] = claimed_again(post)
    assert live.seq == stale.seq + 1
    settle([Outcome(stale, result=result)])
    row = Delivery.objects.get(pk=live.id)
    assert (row.status, row.attempt_seq, row.attempts) == ("sending", live.seq, live.attempts)
    assert row.last_error_code is None and row.last_error_text == ""
    settle([Outcome(live, result=SendResult(wamid="wamid.live"))])
    row.refresh_from_db()
    assert (row.status, row.wa_message_id) == ("sent", "wamid.live")


@pytest.mark.django_db
def test_an_outcome_for_a_person_erased_in_flight_stores_only_the_redacted_wamid():
    """Meta's wamid encodes the phone number: erased while the send was in flight, the person's
    row gets the redacted form, as the erasure gave their other rows; others keep theirs."""
    post = sending_post(2)
    gone, kept = sending.claim_batch(post.pk, 10)
    subscriber_erase(Delivery.objects.get(pk=gone.id).subscriber)
    settle(
        [
            Outcome(gone, result=SendResult(wamid="wamid.HBgMMzkzMzMwMDAwMDAx")),
            Outcome(kept, result=SendResult(wamid="wamid.kept")),
        ]
    )
    rows = {row.pk: row for row in Delivery.objects.filter(post=post)}
    assert rows[gone.id].status == rows[kept.id].status == "sent"
    assert rows[gone.id].wa_message_id == erased_wamid("wamid.HBgMMzkzMzMwMDAwMDAx")
    assert rows[kept.id].wa_message_id == "wamid.kept"
