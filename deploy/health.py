"""Liveness (/healthz) and readiness (/readyz) for the container runtime and load balancers.

Both (and /metrics) are answered by `HealthCheckMiddleware`, first in MIDDLEWARE: health checks
come from inside over plain HTTP with whatever Host the prober sends (127.0.0.1, a container's
address), so they must answer before Django validates the Host against ALLOWED_HOSTS, redirects
to HTTPS or touches the session. Nothing they return is secret: which dependency failed, never why.
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse

from deploy.metrics import metrics_view

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers HTTP. Touches nothing else, so a slow database never gets
    a healthy web container restarted."""
    return JsonResponse({"ok": True})


def database_ready() -> str | None:
    """None when the database answers and every migration is applied, else what failed."""
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        logger.warning("readiness: the database does not answer", exc_info=True)
        return "database"
    if plan:
        logger.warning("readiness: %d migrations are not applied", len(plan))
        return "migrations"
    return None


def redis_ready() -> str | None:
    """None when Redis (broker, limiter, wake-up flags) answers a PING, else "redis"."""
    # A fresh client with short timeouts, not the process's shared one: a check must not wait
    # behind (or leave broken connections in) the pool the senders use.
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError):
        logger.warning("readiness: Redis does not answer", exc_info=True)
        return "redis"
    finally:
        client.close()
    return None


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database (migrated) and Redis answer, else 503 naming them."""
    failed = [name for name in (database_ready(), redis_ready()) if name]
    if failed:
        return JsonResponse({"ok": False, "failed": failed}, status=503)
    return JsonResponse({"ok": True, "failed": []})


# Prometheus scrapes from inside too (web:8000): /metrics is answered here whatever the Host,
# guarded by its own token or address list.
PROBES = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics_view}


class HealthCheckMiddleware:
    """Answers the two probes before any other middleware (Host validation, HTTPS redirect)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info.rstrip("/") or "/")
        if probe is not None and request.method in {"GET", "HEAD"}:
            return probe(request)
        return self.get_response(request)
