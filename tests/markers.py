"""Markers shared by several test modules."""

from __future__ import annotations

import pytest
from django.conf import settings

# SQLite serialises writers and has no row locks: concurrency tests need a database server.
needs_postgresql = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="needs PostgreSQL (set DATABASE_URL): SQLite serialises concurrent writers",
)
