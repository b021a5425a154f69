"""The Redis flag that says "a drain is on its way or running", so POSTs wake at most one.

A Celery publish costs more CPU than the rest of the intake together (measured: see the README),
and statuses arrive at about three per message sent. So a POST only sets this flag (SET NX), and
whoever set it publishes the drain task (`channel.tasks.wake_inbound_processor`). The drain holds
the flag while it works and clears it only when it finds nothing left, then reads the archive
once more (`channel.webhook.drain.process_pending_inbound_events`), so nothing committed while
the flag was set can be missed.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from channel.redis_client import redis_client

logger = logging.getLogger(__name__)

WAKE_KEY = "banditore:channel:inbound-wake"
# A lost wake-up (worker killed before it cleared the flag) heals after this; beat also sweeps.
WAKE_TTL_SECONDS = 60


class _FlagConnection(threading.local):
    """Each thread's own Redis connection for the wake-up flag, with the command packed once.

    `SET NX` runs once per webhook POST. Through `Redis.set` it costs ~40 µs of CPU (pool
    checkout with a readiness poll, command packing, observability hooks), a third of the
    whole intake; on a connection of its own it costs ~13 µs (bench/webhook_intake.py).
    """

    connection: Any = None
    packed: Any = None
    owner: tuple[int, str] = (0, "")


_flag = _FlagConnection()


def set_wake_flag() -> bool:
    """SET the flag NX with its TTL; True when this call set it (and must publish the drain).

    Raises RedisError when Redis cannot be reached: the caller decides what that means.
    """
    owner = (os.getpid(), settings.REDIS_URL)
    if _flag.owner != owner:  # first use in this thread, a forked child, or another Redis
        pool = redis_client().connection_pool
        _flag.connection = pool.connection_class(**pool.connection_kwargs)
        _flag.packed = _flag.connection.pack_command(
            "SET", WAKE_KEY, 1, "NX", "EX", WAKE_TTL_SECONDS
        )
        _flag.owner = owner
    try:
        return _send_flag_command()
    except (RedisConnectionError, RedisTimeoutError):
        _flag.connection.disconnect()  # a stale socket (Redis restarted, say): once more
        return _send_flag_command()


def _send_flag_command() -> bool:
    _flag.connection.send_packed_command(_flag.packed, check_health=False)
    return _flag.connection.read_response() is not None  # "OK", or None when already set


def hold_wake_flag() -> None:
    """(Re)set the flag, whoever set it: a drain at work, so arriving POSTs wake nobody."""
    try:
        redis_client().set(WAKE_KEY, 1, ex=WAKE_TTL_SECONDS)
    except RedisError:  # the drain goes on; at worst a wake-up waits for beat's sweep
        logger.exception("could not set the webhook wake-up flag")


def clear_wake_flag() -> None:
    """Clear the flag, so the next POST publishes a drain again."""
    try:
        redis_client().delete(WAKE_KEY)
    except RedisError:  # the flag expires by itself; beat sweeps meanwhile
        logger.exception("could not clear the webhook wake-up flag")
