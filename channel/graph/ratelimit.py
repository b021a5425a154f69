"""The one rate limiter for the phone number, in Redis, shared by every worker and process.

A limit each process counts for itself does not hold across workers. Here every send asks one
Lua script, atomically, against Redis's own clock. Meta allows 80 messages per second per
phone number by default, up to 1,000 (what Meta reports, capped by WHATSAPP_MPS):
https://developers.facebook.com/docs/whatsapp/cloud-api/overview#throughput

Replies in conversations have priority: bulk sends draw from two buckets, the number's bucket
and a bulk bucket refilled at (1 - reserve) of the rate, so bulk can never use the share kept
for replies; replies draw from the number's bucket only, and take the next free slot even
behind the few that bulk senders hold ahead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import redis as redis_lib
from django.conf import settings

from channel.pseudonyms import identity_digest
from channel.redis_client import redis_client

# Token buckets that can lend: a caller reserves `count` tokens, even ones that only exist in
# the future, and gets back when its first and last token are due; it sends each message at
# its own slot. So a process can take a chunk of slots with one call, yet the sends stay
# spaced at the rate (taking a chunk "now" would make bursts: measured, Meta's per-second
# count refused about 5 % of sends at 50 tokens a call). Nobody may reserve further ahead
# than `max_ahead`, which keeps the queue short for replies. Works on Redis's clock, so every
# process and machine agrees.
# KEYS: bucket keys. ARGV: count, max_ahead (µs), then (rate, capacity) per key.
# Returns {count, first µs, last µs} when granted, else {0, µs to wait before asking again}.
_TOKEN_BUCKETS = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local count = tonumber(ARGV[1])
local max_ahead = tonumber(ARGV[2])
local levels, first, last = {}, 0, 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i + 1])
  local capacity = tonumber(ARGV[2 * i + 2])
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or capacity
  local ts = tonumber(state[2]) or now
  tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate / 1000000)
  levels[i] = tokens
  -- the j-th token from now is due when the level reaches j
  first = math.max(first, (1 - tokens) * 1000000 / rate)
  last = math.max(last, (count - tokens) * 1000000 / rate)
end
if first > max_ahead then return {0, math.ceil(first - max_ahead)} end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i + 1])
  local capacity = tonumber(ARGV[2 * i + 2])
  -- formatted by hand: Lua's default %.14g would round a µs timestamp to 100 µs
  redis.call('HSET', key, 'tokens', string.format('%.17g', levels[i] - count),
    'ts', string.format('%.0f', now))
  redis.call('PEXPIRE', key, math.ceil((capacity - levels[i] + count) * 1000 / rate) + 60000)
end
return {count, math.max(0, math.floor(first)), math.max(0, math.floor(last))}
"""

# Messaging-limit tier: unique people reached outside the window in a moving 24 h.
# KEYS[1] zset member=recipient (keyed hash) score=ms. ARGV: recipient, limit, window_ms. Returns
# ms to wait.
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


@dataclass(frozen=True)
class Grant:
    """`count` slots, the first due in `first` s and the last in `last` s (evenly spaced in
    between, which is never earlier than the buckets allow); count 0: ask again in `first` s."""

    count: int
    first: float
    last: float = 0.0

    def slot(self, n: int) -> float:
        """Seconds from the grant until the n-th (0-based) slot is due."""
        if self.count <= 1:
            return self.first
        return self.first + (self.last - self.first) * n / (self.count - 1)


class SendRateLimiter:
    # How far ahead bulk senders may hold slots, and how much a chunk holds: a reply waits at
    # most about this long behind bulk's reserved slots.
    MAX_AHEAD = 0.1
    CHUNK_SECONDS = 0.05

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
        # No burst beyond one token: sends are spaced by the rate, so no 1-second window at
        # Meta sees more than the rate (+1), whatever the number of processes.
        self.capacity = 1.0
        self.bulk_capacity = 1.0
        key = key or f"banditore:rate:{settings.WHATSAPP_PHONE_NUMBER_ID}"
        self.key, self.bulk_key = key, f"{key}:bulk"
        self.redis = client or redis_client()
        self._script = self.redis.register_script(_TOKEN_BUCKETS)

    def chunk(self, lane: Lane = Lane.BULK) -> int:
        """How many slots one reservation takes (about CHUNK_SECONDS of sending)."""
        rate = self.bulk_rate if lane == Lane.BULK else self.rate
        return max(1, int(rate * self.CHUNK_SECONDS))

    def reserve(self, lane: Lane = Lane.BULK, count: int = 1, max_ahead: float = 0.0) -> Grant:
        """Reserve `count` send slots if the first is due within `max_ahead` s. Never blocks."""
        keys = [self.key]
        args: list[float] = [count, int(max_ahead * 1_000_000), self.rate, self.capacity]
        if lane == Lane.BULK:
            keys.append(self.bulk_key)
            args += [self.bulk_rate, self.bulk_capacity]
        answer = self._script(keys=keys, args=args)
        if not int(answer[0]):
            return Grant(0, int(answer[1]) / 1_000_000)
        return Grant(int(answer[0]), int(answer[1]) / 1_000_000, int(answer[2]) / 1_000_000)

    def acquire(self, lane: Lane = Lane.BULK, count: int = 1) -> float:
        """0.0 once `count` tokens are ours, else seconds to wait before asking again.

        A reply takes the next free slot even behind bulk's reserved ones (waiting for it
        here, at most about MAX_AHEAD + CHUNK_SECONDS): bulk can never hold slots further
        ahead, so replies cannot be starved. Bulk only takes a slot that is due now."""
        max_ahead = self.MAX_AHEAD + 2 * self.CHUNK_SECONDS if lane == Lane.REPLY else 0.0
        grant = self.reserve(lane, count, max_ahead)
        if not grant.count:
            return max(grant.first, 0.001)
        if grant.last > 0:
            time.sleep(grant.last)
        return 0.0


class UniqueRecipientWindow:
    """The messaging-limit tier: unique people reached outside the 24-hour window in a moving
    24 h (WHATSAPP_MESSAGING_TIER).
    https://developers.facebook.com/docs/whatsapp/messaging-limits"""

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
        self.redis = client or redis_client() if limit is not None else None
        self._script = self.redis.register_script(_UNIQUE_WINDOW) if self.redis else None

    def admit(self, recipient: str) -> float:
        """0.0 when this person may be reached now, else seconds until a slot frees."""
        if self.limit is None:
            return 0.0
        # Members are keyed hashes: the set must tell people apart, not keep their numbers.
        member = identity_digest(recipient)
        waited = self._script(keys=[self.key], args=[member, self.limit, self.window_ms])
        return int(waited) / 1000.0

    def used(self) -> int:
        if self.redis is None:
            return 0
        self.redis.zremrangebyscore(self.key, "-inf", time.time() * 1000 - self.window_ms)
        return int(self.redis.zcard(self.key))


def tier_limit() -> int | None:
    """Meta's messaging limit for the number, capped by WHATSAPP_MESSAGING_TIER (channel.graph.
    phone); None: unlimited."""
    from channel.graph.phone import effective_tier  # the database: only when asked (below)

    return effective_tier()


def get_send_limiter() -> SendRateLimiter:
    """At Meta's throughput for the number, capped by WHATSAPP_MPS (channel.graph.phone,
    imported here: the limiter itself must load without Django's models, in bare processes)."""
    from channel.graph.phone import effective_mps

    return SendRateLimiter(
        rate=float(effective_mps()),
        reserve=float(settings.BANDITORE_REPLY_RESERVE),
    )


def get_tier_window() -> UniqueRecipientWindow:
    return UniqueRecipientWindow(limit=tier_limit())
