from __future__ import annotations

import pytest
import redis as redis_lib
from django.conf import settings
from django.db import connection, connections
from django.db.models.signals import post_migrate

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


def _no_count_left_by_a_flush(sender, using="default", **kwargs) -> None:
    """Transactional tests end with a flush, which post_migrate follows. On SQLite the flush
    deletes table by table in name order: subscribers_activecount first, then the subscribers,
    whose delete trigger writes their departure into the count just emptied. (PostgreSQL's
    TRUNCATE fires no row trigger, and a trigger of its own empties the count.)"""
    if sender.label != "subscribers" or connections[using].vendor != "sqlite":
        return
    with connections[using].cursor() as cursor:
        cursor.execute(
            "DELETE FROM subscribers_activecount"
            " WHERE NOT EXISTS (SELECT 1 FROM subscribers_subscriber)"
        )


post_migrate.connect(_no_count_left_by_a_flush, dispatch_uid="tests.no_count_left_by_a_flush")
