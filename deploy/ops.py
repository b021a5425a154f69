"""The operator's status: is every part of Banditore doing its job right now?

`ops_status()` gathers it with cheap queries (indexed, or over the few posts in flight), for the
JSON page /ops/status, the admin home of administrators, the alert check (deploy.alerts) and
the Prometheus metrics (deploy.metrics). Worker heartbeats are Redis keys that a tiny periodic
task refreshes on each queue (banditore.deploy.heartbeat in deploy/celery.py): their age says
that beat publishes, the broker delivers and that queue's pool runs tasks.
"""

from __future__ import annotations

import hmac
import time
from datetime import datetime
from ipaddress import ip_address

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from channel.graph.account import pause_state
from channel.graph.phone import effective_mps, effective_tier
from channel.models import InboundEvent, PhoneNumberFacts
from channel.redis_client import redis_client
from topics.models import Post

QUEUES = ("replies", "sends", "housekeeping")
HEARTBEAT_KEY = "banditore:heartbeat:{queue}"
# A heartbeat older than this is gone: the key expires, and the status shows null.
HEARTBEAT_TTL_SECONDS = 3600


def heartbeat_record(queue: str) -> None:
    redis_client().set(HEARTBEAT_KEY.format(queue=queue), time.time(), ex=HEARTBEAT_TTL_SECONDS)


def heartbeat_ages() -> dict[str, float | None]:
    """Seconds since each queue's pool last ran its heartbeat task (None: not in the last hour)."""
    values = redis_client().mget([HEARTBEAT_KEY.format(queue=queue) for queue in QUEUES])
    now = time.time()
    return {
        queue: None if value is None else round(max(0.0, now - float(value)), 1)
        for queue, value in zip(QUEUES, values, strict=True)
    }


def _age(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else round((now - moment).total_seconds(), 1)


def webhook_status(now: datetime) -> dict:
    """Backlog of signed webhooks not yet processed (partial index), and the last one received."""
    pending = InboundEvent.objects.filter(processed_at__isnull=True, signature_valid=True)
    oldest = pending.order_by("id").values_list("received_at", flat=True).first()
    last = (
        InboundEvent.objects.filter(signature_valid=True)
        .order_by("-received_at")
        .values_list("received_at", flat=True)
        .first()
    )
    return {
        "backlog": pending.count(),
        "oldest_age_seconds": _age(oldest, now),
        "last_received_at": last,
        "last_received_age_seconds": _age(last, now),
    }


def phone_number_status() -> dict:
    """What Meta last said about the number (null until it answered) and the rate and daily
    limit Banditore sends at because of it (channel.graph.phone)."""
    facts = PhoneNumberFacts.objects.filter(id=1).first()
    return {
        "throughput": facts.throughput_level if facts else "",
        "messaging_limit": facts.messaging_limit if facts else "",
        "quality_rating": facts.quality_rating if facts else "",
        "name_status": facts.name_status if facts else "",
        "checked_at": facts.checked_at if facts else None,
        "check_error": facts.check_error if facts else "",
        "drop_notice": facts.drop_notice if facts else "",
        "messages_per_second": effective_mps(facts if facts and facts.checked_at else None),
        "daily_limit": effective_tier(facts if facts and facts.checked_at else None),
    }


def ops_status() -> dict:
    now = timezone.now()
    paused = pause_state()
    return {
        "time": now,
        "workers": {"heartbeat_age_seconds": heartbeat_ages()},
        "periodic_tasks": [
            {"name": name, "task": task, "enabled": enabled, "last_run_at": last_run_at}
            for name, task, enabled, last_run_at in PeriodicTask.objects.order_by("name")
            .exclude(task="celery.backend_cleanup")
            .values_list("name", "task", "enabled", "last_run_at")
        ],
        "webhooks": webhook_status(now),
        "posts_sending": [
            {"id": pk, "title": title, "published_at": published_at}
            for pk, title, published_at in Post.objects.filter(status=Post.Status.SENDING)
            .order_by("id")
            .values_list("id", "title", "published_at")
        ],
        "phone_number": phone_number_status(),
        "sending_paused": None
        if paused is None
        else {"since": paused.since, "error_code": paused.error_code, "reason": paused.reason},
        # Meta does not say when a system user's token expires in any answer we receive; null
        # until a council records it (https://developers.facebook.com/docs/facebook-login/guides/access-tokens/debugging).
        "access_token_expires_at": None,
    }


def _bearer(request: HttpRequest) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def allowed_by_address(request: HttpRequest) -> bool:
    """The direct peer is in BANDITORE_METRICS_ALLOW. A request that came through the reverse
    proxy (X-Forwarded-For set) never is: behind it every client shares the proxy's address."""
    if not settings.BANDITORE_METRICS_ALLOW or "HTTP_X_FORWARDED_FOR" in request.META:
        return False
    try:
        peer = ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in network for network in settings.BANDITORE_METRICS_ALLOW)


def allowed_by_metrics_token(request: HttpRequest) -> bool:
    expected = settings.BANDITORE_METRICS_TOKEN
    return bool(expected) and hmac.compare_digest(_bearer(request).encode(), expected.encode())


def may_read_status(request: HttpRequest) -> bool:
    """Staff, or the metrics token or address: the status names every post being sent, which an
    integration's API key (limited to its own posts) must not see."""
    if request.user.is_authenticated and request.user.is_staff:
        return True
    return allowed_by_metrics_token(request) or allowed_by_address(request)


def ops_status_view(request: HttpRequest) -> JsonResponse:
    if not may_read_status(request):
        return JsonResponse({"detail": "staff log-in or a bearer token required"}, status=403)
    return JsonResponse(ops_status())
