"""Webhook POSTs with a wrong signature: counted, and only a bounded sample archived.

Anyone can POST to the webhook URL. Archiving every forged body (one row each, kept with the
archive) let a flood fill the disk: 3,000 POSTs added 53 MB in 3 seconds. So a forged POST
only increments a per-hour counter in Redis; the first BANDITORE_WEBHOOK_REJECTED_SAMPLES of
each hour are archived as samples (cut to MAX_SAMPLE_BYTES), and only the newest that many
samples are kept. Once the hour's sample is full, a forged POST costs one Redis round trip and
no database write. The counts are shown on the webhook archive's admin page.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.utils import timezone
from redis.exceptions import RedisError

from channel.models import InboundEvent
from channel.redis_client import redis_client

logger = logging.getLogger(__name__)

COUNT_KEY = "banditore:channel:forged-posts:"  # + the hour (seconds since the epoch // 3600)
# Sample rows still archived, newest first: the oldest beyond the limit are deleted by id.
SAMPLES_KEY = "banditore:channel:forged-samples"
COUNT_TTL_SECONDS = 2 * 86_400  # the admin page shows the last 24 hours
MAX_SAMPLE_BYTES = 1024  # enough to see what was sent, and by what
PROBLEM = "bad signature"


def _hour(now: float) -> int:
    return int(now) // 3600


def record_forged_post(*, body: bytes) -> bool:
    """Count a webhook POST whose signature is wrong; archive it as a sample while the hour's
    sample is not full. Returns True when it was archived. Never raises for Redis.
    """
    key = f"{COUNT_KEY}{_hour(time.time())}"
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, COUNT_TTL_SECONDS)
            seen = pipe.execute()[0]
    except RedisError:
        # Without the count there is no bound on the samples: archive nothing.
        logger.warning("forged webhook POST not counted: Redis unreachable")
        return False
    limit = settings.BANDITORE_WEBHOOK_REJECTED_SAMPLES
    if seen > limit:
        return False
    text = body[:MAX_SAMPLE_BYTES].decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    now = timezone.now()
    sample = InboundEvent.objects.create(
        body=text, signature_valid=False, problems=PROBLEM, processed_at=now
    )
    _keep_newest_samples(sample.pk, limit)
    logger.warning("forged webhook POST archived as sample #%s (%s this hour)", sample.pk, seen)
    return True


def _keep_newest_samples(sample_id: int, limit: int) -> None:
    try:
        with redis_client().pipeline(transaction=True) as pipe:
            pipe.lpush(SAMPLES_KEY, sample_id)
            pipe.lrange(SAMPLES_KEY, limit, -1)
            pipe.ltrim(SAMPLES_KEY, 0, limit - 1)
            dropped = pipe.execute()[1]
    except RedisError:  # this sample then outlives the limit, until the archive's retention
        logger.warning("forged webhook sample #%s not listed: Redis unreachable", sample_id)
        return
    if dropped:
        # Only forged rows: the list is ours, but a real webhook must never be deleted here.
        InboundEvent.objects.filter(
            pk__in=[int(i) for i in dropped], signature_valid=False
        ).delete()


def forged_post_counts(*, hours: int = 24) -> list[int]:
    """Forged POSTs counted in each of the last `hours` hours, the current hour first."""
    current = _hour(time.time())
    keys = [f"{COUNT_KEY}{current - back}" for back in range(hours)]
    return [int(value or 0) for value in redis_client().mget(keys)]
