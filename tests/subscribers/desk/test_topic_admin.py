"""Topics in Django admin: each with its active subscribers, sortable by them."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from subscribers.models import Subscriber
from tests.factories import make_subscriber, make_topic

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/topics/topic/"
BY_SUBSCRIBERS = "7"  # sort key: list_display[7], "active subscribers" (0 is the checkbox)


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("admin", "a@example.it", "pw-for-tests")
    client.force_login(user)
    return client


def test_it_lists_topics_with_their_active_subscribers_sortable(admin_client):
    pharmacies = make_topic(slug="farmacie", order=1)
    traffic = make_topic(slug="traffico", order=2)
    hidden = make_topic(slug="nascosto", order=3, is_active=False)
    make_subscriber(topics=[pharmacies, traffic])
    make_subscriber(topics=[traffic])
    make_subscriber(topics=[traffic, hidden], status=Subscriber.Status.LEFT)

    response = admin_client.get(CHANGELIST, {"o": f"-{BY_SUBSCRIBERS}"})

    assert response.status_code == 200
    changelist = response.context["cl"]
    assert changelist.list_display[int(BY_SUBSCRIBERS)] == "subscriber_count"
    mine = {"farmacie", "traffico", "nascosto"}  # the migrations add the council's usual topics
    rows = [(t.slug, t.active_subscribers) for t in changelist.result_list if t.slug in mine]
    assert rows == [("traffico", 2), ("farmacie", 1), ("nascosto", 0)]
    ascending = admin_client.get(CHANGELIST, {"o": BY_SUBSCRIBERS}).context["cl"].result_list
    assert [t.slug for t in ascending if t.slug in mine] == ["nascosto", "farmacie", "traffico"]
