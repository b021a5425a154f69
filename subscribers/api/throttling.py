"""Per-token request limit, counted in the Django cache (Redis), answered with 429 + Retry-After.

When Redis cannot be reached the limit is not enforced: the request goes through and a warning
is logged (at most once a minute per process), rather than every API call failing with a 500.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

from topics.models import ApiToken

logger = logging.getLogger(__name__)
# While Redis is down every request would log the same line: one a minute says it all.
LOG_EVERY_SECONDS = 60.0
_last_logged_at: float | None = None


class ApiTokenRateThrottle(SimpleRateThrottle):
    scope = "api_token"

    def get_rate(self) -> str:
        # Read at request time, so the setting can change without a code change (and in tests).
        return settings.BANDITORE_API_THROTTLE_RATE

    def get_cache_key(self, request, view) -> str | None:
        if not isinstance(request.auth, ApiToken):
            return None  # unauthenticated requests are refused before they cost anything
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except RedisError as error:
            _log_unavailable(error)
            return True


def _log_unavailable(error: RedisError) -> None:
    global _last_logged_at
    now = time.monotonic()
    if _last_logged_at is not None and now - _last_logged_at < LOG_EVERY_SECONDS:
        return
    _last_logged_at = now
    logger.warning("API rate limit not enforced: the cache (Redis) is unreachable: %s", error)
