"""Fixtures shared by the editors' desk tests."""

from __future__ import annotations

import pytest

from tests.factories import make_post, make_subscriber, make_template, make_topic


@pytest.fixture
def post():
    """A draft on one topic with three subscribers and an approved default template."""
    topic = make_topic()
    for _ in range(3):
        make_subscriber(topics=[topic])
    make_template()
    return make_post(topics=[topic])
