"""Fixtures of the feed tests: a feed server, a civil-protection topic, the council's area."""

from __future__ import annotations

import pytest

from tests.subscribers.feeds.helpers import FeedServer

PORDENONE = "ISTAT=093033"


@pytest.fixture(scope="session")
def _feed_server():
    server = FeedServer().start()
    yield server
    server.shutdown()


@pytest.fixture
def feed_server(_feed_server):
    _feed_server.answers.clear()
    _feed_server.requests.clear()
    _feed_server.conditional.clear()
    return _feed_server


@pytest.fixture
def council_area(settings):
    settings.BANDITORE_CAP_AREA_CODES = [PORDENONE]
    settings.BANDITORE_CAP_AREA_POLYGON = ""


@pytest.fixture
def template(fake_graph):
    """An approved template at "Meta" and in our registry: alerts reach people outside the
    24-hour window too."""
    from tests.subscribers.delivery.helpers import approved_template

    return approved_template(fake_graph)
