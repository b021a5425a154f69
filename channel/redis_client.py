"""One Redis client (and connection pool) per process for everything but Celery's broker:
webhook wake-up flags, the rate limiter, sender heartbeats, the auto-reply guard."""

from __future__ import annotations

import redis
from django.conf import settings

_clients: dict[str, redis.Redis] = {}


def redis_client() -> redis.Redis:
    url = settings.REDIS_URL
    if url not in _clients:
        # Timeouts: senders call Redis from their event loop, which a hung Redis would freeze.
        _clients[url] = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    return _clients[url]
