from __future__ import annotations

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


# Editors should see whose desk this is, not "Django administration".
admin.site.site_header = f"Banditore · {settings.COUNCIL_NAME}"
admin.site.site_title = "Banditore"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("api/", include("subscribers.api.urls")),
    path("whatsapp/webhook/", include("channel.urls")),
    path("simulator/", include("channel.fakegraph.simulator")),
]
if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
