"""A sender killed with kill -9 in the middle of a weekly digest: every person still gets
their digest exactly once (counted at the fake Graph API), as for any post."""

from __future__ import annotations

import pytest
from django.db import connection

from subscribers.delivery import digest, publishing
from subscribers.models import Delivery
from tests.factories import make_post, make_subscriber, make_topic
from tests.markers import needs_postgresql
from tests.subscribers.delivery.test_crash_safety import (  # noqa: F401  (world: a fixture)
    assert_exactly_once,
    kill_after,
    recover_and_finish,
    worker_process,
    world,
)
from topics.models import Post, Topic

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@needs_postgresql
def test_kill_9_mid_digest_gives_everyone_their_digest_exactly_once(world, settings):  # noqa: F811
    settings.BANDITORE_DIGEST_DEFAULT = "weekly"
    settings.BANDITORE_SENDERS_PER_POST = 0  # no in-process sender: the killed worker sends
    news, roads = (make_topic(delivery=Topic.Delivery.DIGEST) for _ in range(2))
    for n in range(300):
        make_subscriber(topics=[news] if n % 3 else [news, roads])
    for topic in (news, roads):
        publishing.post_publish(post=make_post(topics=[topic]))
    made = digest.digest_publish().digest
    assert made.deliveries.count() == 300
    kill_after(worker_process(made), world, 80)
    kill_after(worker_process(made), world, 160)
    connection.close()
    assert Delivery.objects.filter(post=made, status="queued").exists()  # it was mid-send
    recover_and_finish(world, made, settings)
    assert_exactly_once(world, made, 300)
    assert Post.objects.get(pk=made.pk).status == Post.Status.SENT
