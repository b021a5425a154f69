"""Helpers for the REST API tests (plain functions, so no fixture imports are needed)."""

from __future__ import annotations

from rest_framework.test import APIClient

from topics.tokens import api_token_create


def client_for(key: str | None) -> APIClient:
    """An APIClient that sends 'Authorization: Bearer <key>'."""
    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def token_with_key(*, topics=(), can_publish: bool = True, can_read_stats: bool = True, name="x"):
    return api_token_create(
        name=name, topics=topics, can_publish=can_publish, can_read_stats=can_read_stats
    )
