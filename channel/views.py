"""The WhatsApp webhook: verify, archive, enqueue, answer 200 (style guide point 9).

Kept lean on purpose: status webhooks arrive at about three per message sent (doc §1.3), so
this view does no session, auth or DRF work and leaves all parsing to the Celery task.
"""

from __future__ import annotations

import hmac
import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from channel import services
from channel.signatures import HEADER, verify


@csrf_exempt
def webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _handshake(request)
    if request.method == "POST":
        return _receive(request)
    return HttpResponse(status=405, headers={"Allow": "GET, POST"})


def _handshake(request: HttpRequest) -> HttpResponse:
    # doc §1.1: echo hub.challenge as the body when the verify token matches, else a 4xx.
    token = request.GET.get("hub.verify_token", "")
    expected = settings.WHATSAPP_VERIFY_TOKEN
    if (
        request.GET.get("hub.mode") == "subscribe"
        and expected
        and hmac.compare_digest(token.encode(), expected.encode())
    ):
        return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
    return HttpResponse("verification failed", status=403, content_type="text/plain")


def _receive(request: HttpRequest) -> HttpResponse:
    limit = settings.WHATSAPP_WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return HttpResponse(status=400)
    if declared > limit:
        return HttpResponse(status=413)
    # request.read(), not request.body: the body cap is ours (DATA_UPLOAD_MAX_MEMORY_SIZE is
    # 2.5 MB and a full batch of 1,000 updates may exceed it).
    body = request.read(limit + 1)
    if len(body) > limit:
        return HttpResponse(status=413)

    signature = request.headers.get(HEADER)
    if not signature:
        return HttpResponse(status=401)
    # doc §1.2: the HMAC covers the raw bytes, so verify before parsing anything.
    if not verify(body, signature, settings.WHATSAPP_APP_SECRET):
        services.record_inbound_event(body=body, signature_valid=False, problems="bad signature")
        return HttpResponse(status=403)
    try:
        json.loads(body)
    except ValueError:  # also covers bytes that are not UTF-8
        services.record_inbound_event(body=body, signature_valid=True, problems="malformed JSON")
        return HttpResponse("malformed JSON", status=400, content_type="text/plain")
    services.record_inbound_event(body=body, signature_valid=True)
    services.enqueue_inbound_processing()
    return HttpResponse(status=200)
