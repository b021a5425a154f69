"""Fixtures shared by the delivery-engine tests."""

from __future__ import annotations

import pytest

from tests.subscribers.delivery.helpers import approved_template


@pytest.fixture
def template(fake_graph):
    return approved_template(fake_graph)
