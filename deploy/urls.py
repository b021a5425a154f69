from __future__ import annotations

import re

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

from channel.tasks import enqueue_inbound_processing
from deploy.health import healthz, readyz
from deploy.metrics import metrics_view
from deploy.ops import ops_status_view
from subscribers.conversation.privacy import privacy_notice
from subscribers.delivery.digest_page import digest_page

# Editors should see whose desk this is, not "Django administration".
admin.site.site_header = f"Banditore · {settings.COUNCIL_NAME}"
admin.site.site_title = "Banditore"

urlpatterns = [
    path("admin/", admin.site.urls),
    # HealthCheckMiddleware answers these first; the routes keep them reversible.
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    # Operators: the status as JSON (staff or a token) and Prometheus' metrics (README, Operating).
    path("ops/status", ops_status_view, name="ops-status"),
    path("metrics", metrics_view, name="metrics"),  # answered by HealthCheckMiddleware first
    path("api/", include("subscribers.api.urls")),
    # The council's privacy notice for the channel; the chat's short notice links here.
    path("privacy/", privacy_notice, name="privacy_notice"),
    # One person's weekly digest in full, linked from the message when it does not all fit.
    path("digest/<str:token>/", digest_page, name="digest_page"),
    # The webhook room sits below channel.tasks, so the wiring hands its view the processor's
    # wake-up (deploy.wsgi hands the same to the lean intake in front of Django).
    path(
        "whatsapp/webhook/",
        include("channel.urls"),
        {"wake_processor": enqueue_inbound_processing},
    ),
    path("simulator/", include("channel.fakegraph.simulator")),
]
if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
elif settings.BANDITORE_SERVE_MEDIA:
    # `static()` adds nothing with DEBUG off, so the same view by hand (no proxy in front).
    urlpatterns += [
        re_path(
            rf"^{re.escape(settings.MEDIA_URL.lstrip('/'))}(?P<path>.*)$",
            serve,
            {"document_root": settings.MEDIA_ROOT},
        )
    ]
