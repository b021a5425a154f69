from __future__ import annotations

import pytest
import redis as redis_lib
from django.conf import settings
from django.db import connection

pytest_plugins = ["tests.fakegraph_plugin"]


def pytest_report_header(config) -> list[str]:
    database = settings.DATABASES["default"]
    vendor = database["ENGINE"].rsplit(".", 1)[-1]
    where = f"{database['HOST']}:{database['PORT']}" if vendor == "postgresql" else ""
    return [
        f"database vendor: {vendor} {where} (name {database['NAME']})",
        f"redis: {settings.REDIS_URL}",
    ]


@pytest.fixture
def redis_conn():
    """The project's real Redis, emptied before and after the test."""
    client = redis_lib.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def on_postgresql() -> bool:
    return connection.vendor == "postgresql"
