"""The one rate limiter for the phone number, in Redis, shared by every worker and process.

Peers' limits "do not hold across workers" (peers.md) because each process counts for itself.
Here every send asks one Lua script, atomically, against Redis's own clock
(whatsapp-cloud-api.md §4.1: 80 msg/s per number by default, up to 1,000).

Replies in conversations have priority: bulk sends draw from two buckets, the number's bucket
and a bulk bucket refilled at (1 - reserve) of the rate, so bulk can never use the share kept
for replies; replies draw from the number's bucket only.
"""

from __future__ import annotations

import time
from enum import StrEnum

import redis as redis_lib
from django.conf import settings

# KEYS: bucket keys. ARGV: count, then (rate, capacity) per key.
# Returns 0 when granted, else milliseconds to wait before asking again.
_TOKEN_BUCKETS = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local count = tonumber(ARGV[1])
local wait = 0
local levels = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local capacity = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or capacity
  local ts = tonumber(state[2]) or now
  tokens = math.min(capacity, tokens + (now - ts) * rate / 1000000)
  levels[i] = tokens
  if tokens < count then
    wait = math.max(wait, math.ceil((count - tokens) * 1000 / rate))
  end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local capacity = tonumber(ARGV[2 * i + 1])
  redis.call('HSET', key, 'tokens', levels[i] - count, 'ts', now)
  redis.call('PEXPIRE', key, math.ceil(capacity * 1000 / rate) + 60000)
end
return 0
"""

# Pair rate: one message per `interval` to the same person. Returns ms to wait (0 = go).
_PAIR = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return 0 end
return ttl
"""

# Messaging-limit tier: unique people reached outside the window in a moving 24 h.
# KEYS[1] zset member=recipient score=ms. ARGV: recipient, limit, window_ms. Returns ms to wait.
_UNIQUE_WINDOW = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class Lane(StrEnum):
    REPLY = "reply"
    BULK = "bulk"


def _redis() -> redis_lib.Redis:
    return redis_lib.from_url(settings.REDIS_URL)


class SendRateLimiter:
    def __init__(
        self,
        *,
        rate: float,
        reserve: float = 0.1,
        key: str = "",
        client: redis_lib.Redis | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.bulk_rate = self.rate * (1.0 - reserve)
        # A small burst: at most 2 % above the rate in any second (1 token minimum).
        self.capacity = max(1.0, self.rate * 0.02)
        self.bulk_capacity = max(1.0, self.bulk_rate * 0.02)
        key = key or f"banditore:rate:{settings.WHATSAPP_PHONE_NUMBER_ID}"
        self.key, self.bulk_key = key, f"{key}:bulk"
        self.redis = client or _redis()
        self._script = self.redis.register_script(_TOKEN_BUCKETS)

    def acquire(self, lane: Lane = Lane.BULK, count: int = 1) -> float:
        """0.0 when granted now, else seconds to wait before asking again. Never blocks."""
        keys = [self.key]
        args: list[float] = [count, self.rate, self.capacity]
        if lane == Lane.BULK:
            keys.append(self.bulk_key)
            args += [self.bulk_rate, self.bulk_capacity]
        return int(self._script(keys=keys, args=args)) / 1000.0

    def wait(self, lane: Lane = Lane.BULK, count: int = 1, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            delay = self.acquire(lane, count)
            if delay == 0:
                return True
            if time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)


class PairRateLimiter:
    """Meta allows about one message per 6 s to the same person (§4.1, error 131056)."""

    def __init__(self, *, interval: float = 6.0, client: redis_lib.Redis | None = None) -> None:
        self.interval_ms = int(interval * 1000)
        self.redis = client or _redis()
        self._script = self.redis.register_script(_PAIR)

    def acquire(self, recipient: str) -> float:
        return (
            int(self._script(keys=[f"banditore:pair:{recipient}"], args=[self.interval_ms])) / 1000
        )


class UniqueRecipientWindow:
    """The messaging-limit tier (§4.1): unique people reached outside the window per 24 h."""

    def __init__(
        self,
        *,
        limit: int | None,
        window: float = 86400.0,
        key: str = "",
        client: redis_lib.Redis | None = None,
    ) -> None:
        self.limit = limit
        self.window_ms = int(window * 1000)
        self.key = key or f"banditore:tier:{settings.WHATSAPP_PHONE_NUMBER_ID}"
        self.redis = client or _redis() if limit is not None else None
        self._script = self.redis.register_script(_UNIQUE_WINDOW) if self.redis else None

    def admit(self, recipient: str) -> float:
        """0.0 when this person may be reached now, else seconds until a slot frees."""
        if self.limit is None:
            return 0.0
        waited = self._script(keys=[self.key], args=[recipient, self.limit, self.window_ms])
        return int(waited) / 1000.0

    def used(self) -> int:
        if self.redis is None:
            return 0
        self.redis.zremrangebyscore(self.key, "-inf", time.time() * 1000 - self.window_ms)
        return int(self.redis.zcard(self.key))


def tier_limit() -> int | None:
    tier = str(settings.WHATSAPP_MESSAGING_TIER)
    return None if tier == "unlimited" else int(tier)


def get_send_limiter() -> SendRateLimiter:
    return SendRateLimiter(
        rate=float(settings.WHATSAPP_MPS),
        reserve=float(getattr(settings, "WHATSAPP_REPLY_RESERVE", 0.1)),
    )


def get_pair_limiter() -> PairRateLimiter:
    return PairRateLimiter()


def get_tier_window() -> UniqueRecipientWindow:
    return UniqueRecipientWindow(limit=tier_limit())
