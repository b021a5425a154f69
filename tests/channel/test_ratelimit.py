"""The one rate limiter holds across processes (whatsapp-cloud-api.md §4.1: 80 msg/s per
number by default); replies keep their share; pair rate and the messaging tier."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter

import pytest
import redis as redis_lib
from django.conf import settings

from channel.ratelimit import Lane, PairRateLimiter, SendRateLimiter, UniqueRecipientWindow


def _hammer(url: str, key: str, rate: float, seconds: float, queue) -> None:
    client = redis_lib.from_url(url)
    limiter = SendRateLimiter(rate=rate, reserve=0.0, key=key, client=client)
    granted = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        wait = limiter.acquire(Lane.REPLY)
        if wait == 0:
            seconds_, micros = client.time()  # Redis's clock, the one the bucket uses
            granted.append(seconds_ + micros / 1e6)
        else:
            time.sleep(min(wait, 0.005))
    queue.put(granted)


@pytest.mark.slow
def test_four_processes_together_never_exceed_the_rate(redis_conn):
    rate, seconds = 200.0, 3.0
    queue = multiprocessing.get_context("spawn").Queue()
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_hammer, args=(settings.REDIS_URL, "t:rate", rate, seconds, queue))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    grants = sorted(t for _ in workers for t in queue.get(timeout=60))
    for worker in workers:
        worker.join()
    # Highest count in any sliding 1-second window: at most the rate plus the small burst.
    peak = max(
        sum(1 for t in grants[i : i + int(rate * 2)] if t < start + 1.0)
        for i, start in enumerate(grants)
    )
    assert peak <= rate * 1.02 + 1
    # And the processes together used the rate, not a quarter of it each.
    assert len(grants) >= rate * seconds * 0.9


def test_bulk_sends_leave_the_reserved_share_to_replies(redis_conn):
    limiter = SendRateLimiter(rate=100, reserve=0.5, key="t:lanes", client=redis_conn)
    counts: Counter = Counter()
    deadline = time.time() + 1.0
    while time.time() < deadline:
        for lane in (Lane.BULK, Lane.REPLY):
            if limiter.acquire(lane) == 0:
                counts[lane] += 1
        time.sleep(0.001)
    assert counts[Lane.BULK] <= 55  # bulk can use at most half of the rate
    assert counts[Lane.REPLY] >= 35  # while replies still get through


def test_a_throttled_caller_is_told_how_long_to_wait(redis_conn):
    limiter = SendRateLimiter(rate=10, reserve=0, key="t:wait", client=redis_conn)
    assert limiter.acquire() == 0
    wait = limiter.acquire()
    assert 0 < wait <= 0.11


def test_pair_rate_spaces_messages_to_one_person(redis_conn):
    pair = PairRateLimiter(interval=6, client=redis_conn)
    assert pair.acquire("39333") == 0
    assert 5 < pair.acquire("39333") <= 6
    assert pair.acquire("39444") == 0  # other people are not held back


def test_the_tier_counts_unique_people_in_a_rolling_day(redis_conn):
    """§4.1: the messaging limit counts unique users outside the window per moving 24 h."""
    tier = UniqueRecipientWindow(limit=2, key="t:tier", client=redis_conn)
    assert [tier.admit(p) for p in ("a", "b", "a")] == [0, 0, 0]
    wait = tier.admit("c")
    assert 86000 < wait <= 86400  # the next slot frees when "a" leaves the window
    assert tier.used() == 2
    assert UniqueRecipientWindow(limit=None).admit("anyone") == 0
