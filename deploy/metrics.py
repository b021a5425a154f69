"""/metrics: Prometheus gauges computed at scrape time from the database and Redis.

Every number is read from the shared stores when Prometheus asks, never counted inside one
process: web, the worker pools and beat are many processes, and a count kept in one of them
(prometheus-client's default) would show only that process's share. Each query is cheap: the
two in-flight delivery states are counted on their partial indexes, the per-post breakdown
only over the posts now sending (and cached for CACHE_SECONDS, so a fast scraper cannot make
a big post's GROUP BY run every few seconds).
"""

from __future__ import annotations

from django.core.cache import cache
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

from deploy.ops import (
    allowed_by_address,
    allowed_by_metrics_token,
    heartbeat_ages,
    ops_status,
)
from subscribers.models import Delivery
from topics.models import Post

CACHE_SECONDS = 30


def _per_post_counts() -> list[tuple[int, str, int | None, int]]:
    """(post, delivery state, Meta's error code, count) for the posts now sending."""
    sending = Post.objects.filter(status=Post.Status.SENDING).values("id")
    return [
        tuple(row)
        for row in Delivery.objects.filter(post__in=sending)
        .values_list("post_id", "status", "last_error_code")
        .annotate(n=Count("id"))
        .order_by()
    ]


def _gauge(name: str, documentation: str, value: float | None, **labels) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, documentation, labels=list(labels))
    if value is not None:
        gauge.add_metric(list(labels.values()), value)
    return gauge


def _in_flight_counts() -> list[tuple[str, int]]:
    """Queued and in-flight deliveries: walks a partial index as long as the audience, so it is
    counted at most once per CACHE_SECONDS whoever scrapes."""
    return [
        (state, Delivery.objects.filter(status=state).count())
        for state in (Delivery.Status.QUEUED, Delivery.Status.SENDING)
    ]


class BanditoreCollector:
    def collect(self):
        now = timezone.now()
        status = ops_status()
        queued = GaugeMetricFamily(
            "banditore_deliveries", "Deliveries waiting or in flight, all posts", labels=["state"]
        )
        for state, count in cache.get_or_set(
            "banditore:metrics:in-flight", _in_flight_counts, CACHE_SECONDS
        ):
            queued.add_metric([state], count)
        yield queued

        per_post = GaugeMetricFamily(
            "banditore_post_deliveries",
            "Deliveries of each post now sending, by state and Meta's error code",
            labels=["post", "state", "error_code"],
        )
        for post, state, code, count in cache.get_or_set(
            "banditore:metrics:per-post", _per_post_counts, CACHE_SECONDS
        ):
            per_post.add_metric([str(post), state, "" if code is None else str(code)], count)
        yield per_post

        webhooks = status["webhooks"]
        yield _gauge(
            "banditore_webhook_backlog", "Signed webhooks not processed", webhooks["backlog"]
        )
        yield _gauge(
            "banditore_webhook_lag_seconds",
            "Age of the oldest unprocessed webhook (0 when none waits)",
            webhooks["oldest_age_seconds"] or 0,
        )
        yield _gauge(
            "banditore_webhook_last_received_age_seconds",
            "Seconds since the last signed webhook arrived",
            webhooks["last_received_age_seconds"],
        )
        yield _gauge("banditore_posts_sending", "Posts sending now", len(status["posts_sending"]))
        yield _gauge(
            "banditore_sending_paused",
            "1 while Meta's account-level error has paused all sending",
            int(status["sending_paused"] is not None),
        )
        heartbeats = GaugeMetricFamily(
            "banditore_worker_heartbeat_age_seconds",
            "Seconds since each queue's worker pool ran its heartbeat task",
            labels=["queue"],
        )
        for queue, age in heartbeat_ages().items():
            if age is not None:
                heartbeats.add_metric([queue], age)
        yield heartbeats
        periodic = GaugeMetricFamily(
            "banditore_periodic_task_last_run_age_seconds",
            "Seconds since beat last ran each periodic task",
            labels=["name"],
        )
        for entry in status["periodic_tasks"]:
            if entry["last_run_at"] is not None:
                age = (now - entry["last_run_at"]).total_seconds()
                periodic.add_metric([entry["name"]], age)
        yield periodic


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not (allowed_by_metrics_token(request) or allowed_by_address(request)):
        return HttpResponse("BANDITORE_METRICS_TOKEN or BANDITORE_METRICS_ALLOW\n", status=403)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BanditoreCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
