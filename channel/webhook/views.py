"""The WhatsApp webhook: the GET handshake, and the POST through `channel.webhook.intake`.

In production the POST never reaches this view: `deploy.wsgi` serves it in front of Django
(`channel.webhook.intake.WebhookIntake`), because status webhooks arrive at about three per
message sent. The view still answers it, through the same `channel.webhook.intake.respond`, for
any server that runs Django's handler directly (pytest-django's live server, a custom WSGI
file). `wake_processor` comes from the URLconf (`channel.urls`), as the intake's does.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from channel.webhook import intake
from channel.webhook.signatures import HEADER


@csrf_exempt
def webhook(request: HttpRequest, wake_processor: Callable[[], None]) -> HttpResponse:
    if request.method == "GET":
        return _handshake(request)
    if request.method == "POST":
        return _receive(request, wake_processor)
    return HttpResponse(status=405, headers={"Allow": "GET, POST"})


def _handshake(request: HttpRequest) -> HttpResponse:
    # Echo hub.challenge as the body when the verify token matches, else a 4xx
    # (https://developers.facebook.com/docs/graph-api/webhooks/getting-started).
    token = request.GET.get("hub.verify_token", "")
    expected = settings.WHATSAPP_VERIFY_TOKEN
    if (
        request.GET.get("hub.mode") == "subscribe"
        and expected
        and hmac.compare_digest(token.encode(), expected.encode())
    ):
        return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
    return HttpResponse("verification failed", status=403, content_type="text/plain")


def _receive(request: HttpRequest, wake_processor: Callable[[], None]) -> HttpResponse:
    reply = intake.respond(
        request.read,
        request.META.get("CONTENT_LENGTH"),
        request.headers.get(HEADER),
        wake_processor,
    )
    return HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)
