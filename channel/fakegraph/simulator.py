"""Chat simulator: a staff page that plays a citizen's phone against the real webhook.

It drives the real path end to end. The page's backend builds a Meta-shaped webhook, signs it
with the app secret exactly as Meta does (X-Hub-Signature-256) and POSTs it to our own
`/whatsapp/webhook/` over HTTP; the replies are whatever reached the fake Graph API, read from
its outbox. Before posting, it tells the fake that this number just wrote, as Meta would know,
so the fake's 24-hour window check lets the free-form replies through.

A signed webhook can consent, choose topics or erase on a person's behalf, so the page is
guarded four ways: only against the fake Graph API (with a real account there is no outbox to
read, and a simulated message must never make us write to a real person); only where
BANDITORE_SIMULATOR is on (by default only with DEBUG); only for users with the
`channel.use_simulator` permission (administrators); only for BANDITORE_SIMULATOR_NUMBERS. Each
message sent is in the audit log (channel.signals.simulator_used).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import secrets
import time

import httpx
from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from channel import signals
from channel.graph.rendering import formatted, sent_values, template_bubble
from channel.graph.template_shapes import template_shape
from channel.models import MessageTemplate
from channel.webhook.envelope import webhook_body, webhook_envelope
from channel.webhook.signatures import HEADER, sign

logger = logging.getLogger(__name__)

WA_ID = re.compile(r"^[1-9][0-9]{6,14}$")
PERMISSION = "channel.use_simulator"
_TIMEOUT = httpx.Timeout(30.0, connect=2.0)


def _fake_url(suffix: str) -> str:
    return f"{settings.WHATSAPP_GRAPH_URL}/_fake/{suffix}"


def fake_available() -> bool:
    """True when WHATSAPP_GRAPH_URL points at the project's fake server (it has /_fake/)."""
    if settings.WHATSAPP_GRAPH_URL.startswith("https://graph.facebook.com"):
        return False
    try:
        return httpx.get(_fake_url("stats"), timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def simulator_allowed(view):
    """Staff with the simulator permission, where the simulator is switched on; else 404/403."""

    @staff_member_required
    @functools.wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs):
        if not settings.BANDITORE_SIMULATOR:
            raise Http404("the chat simulator is off (BANDITORE_SIMULATOR)")
        if not request.user.has_perm(PERMISSION):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return guarded


def _number_problem(wa_id: str) -> JsonResponse | None:
    if not WA_ID.match(wa_id):
        return JsonResponse({"error": _("Numero non valido: solo cifre, con prefisso")}, status=400)
    if wa_id not in settings.BANDITORE_SIMULATOR_NUMBERS:
        return JsonResponse(
            {"error": _("Il simulatore usa solo i numeri di prova (BANDITORE_SIMULATOR_NUMBERS)")},
            status=403,
        )
    return None


def message_item(*, wa_id: str, action: dict) -> dict | None:
    """One Meta `messages[]` item for what the simulated citizen did, or None."""
    item: dict = {
        "from": wa_id,
        "id": f"wamid.SIM{secrets.token_hex(16)}",
        "timestamp": str(int(time.time())),
    }
    if isinstance(action.get("context_id"), str) and action["context_id"]:
        item["context"] = {
            "from": settings.WHATSAPP_DISPLAY_PHONE_NUMBER or settings.WHATSAPP_PHONE_NUMBER_ID,
            "id": action["context_id"][:255],
        }
    text = action.get("text")
    reply_id, title = action.get("reply_id"), str(action.get("title") or "")[:100]
    if isinstance(text, str) and text.strip():
        item |= {"type": "text", "text": {"body": text[:4096]}}
    elif action.get("kind") == "list_reply" and isinstance(reply_id, str) and reply_id:
        reply = {"id": reply_id[:200], "title": title}
        if action.get("description"):
            reply["description"] = str(action["description"])[:100]
        item |= {"type": "interactive", "interactive": {"type": "list_reply", "list_reply": reply}}
    elif action.get("kind") == "button_reply" and isinstance(reply_id, str) and reply_id:
        reply = {"id": reply_id[:256], "title": title}
        item |= {
            "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": reply},
        }
    elif action.get("kind") == "request_welcome":
        # Someone opens the chat for the first time: Meta sends this, with no text, so the
        # business can greet them (https://developers.facebook.com/docs/whatsapp/cloud-api/phone-numbers/conversational-components).
        item["type"] = "request_welcome"
    else:
        return None
    return item


def envelope(*, wa_id: str, item: dict) -> dict:
    contacts = [{"profile": {"name": "Simulatore"}, "wa_id": wa_id}]
    return webhook_envelope(
        {"contacts": contacts, "messages": [item]},
        phone_number_id=settings.WHATSAPP_PHONE_NUMBER_ID,
        display_phone_number=settings.WHATSAPP_DISPLAY_PHONE_NUMBER,
        entry_id="SIMULATOR",
    )


@simulator_allowed
@require_GET
def simulator_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "channel/simulator.html",
        {
            "numbers": settings.BANDITORE_SIMULATOR_NUMBERS,
            "fake_available": fake_available(),
            "graph_url": settings.WHATSAPP_GRAPH_URL,
            "council_name": settings.COUNCIL_NAME,
            "title": _("Simulatore chat WhatsApp"),
        },
    )


@simulator_allowed
@require_POST
def simulator_send(request: HttpRequest) -> JsonResponse:
    try:
        data = json.loads(request.body)
    except ValueError:
        return JsonResponse({"error": _("JSON non valido")}, status=400)
    if not isinstance(data, dict):
        return JsonResponse({"error": _("JSON non valido")}, status=400)
    wa_id = str(data.get("from") or "")
    if problem := _number_problem(wa_id):
        return problem
    item = message_item(wa_id=wa_id, action=data)
    if item is None:
        return JsonResponse({"error": _("Messaggio vuoto")}, status=400)
    if not fake_available():
        return JsonResponse({"error": _("Il simulatore funziona solo con l'API finta")}, status=409)
    what = (
        item.get("text", {}).get("body") or item.get("interactive", {}).get("type") or item["type"]
    )
    signals.simulator_used.send(
        sender=simulator_send, user=request.user, wa_id=wa_id, what=str(what)[:200]
    )
    # The fake plays Meta: it records that this person wrote (its 24-hour window check) and,
    # when it knows our webhook URL (the dev run), delivers the signed webhook itself.
    try:
        answer = httpx.post(
            _fake_url("inbound"), json={"from": wa_id, "message": item}, timeout=_TIMEOUT
        ).json()
    except (httpx.HTTPError, ValueError) as exc:
        return JsonResponse(
            {"error": _("API finta non raggiungibile: %(error)r") % {"error": exc}}, status=502
        )
    status = answer.get("webhook_status") if isinstance(answer, dict) else 0
    if status != 200:
        # No webhook URL configured at the fake (tests): sign and post it ourselves.
        status = _post_webhook(request, envelope(wa_id=wa_id, item=item))
    return JsonResponse({"id": item["id"], "webhook_status": status, "item": item})


def _post_webhook(request: HttpRequest, body_data: dict) -> int:
    body = webhook_body(body_data)  # Meta's bytes: \u00e8 and \/ escaped, signed as sent
    try:
        response = httpx.post(
            request.build_absolute_uri(reverse("channel:webhook")),
            content=body,
            headers={
                "Content-Type": "application/json",
                HEADER: sign(body, settings.WHATSAPP_APP_SECRET),
            },
            timeout=_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        logger.warning("simulator: webhook not reachable: %r", exc)
        return 0
    return response.status_code


@simulator_allowed
@require_GET
def simulator_outbox(request: HttpRequest) -> JsonResponse:
    wa_id = request.GET.get("to", "")
    if problem := _number_problem(wa_id):
        return problem
    if not fake_available():
        return JsonResponse({"error": _("Il simulatore funziona solo con l'API finta")}, status=409)
    try:
        after = int(request.GET.get("after", "0"))
    except ValueError:
        after = 0
    try:
        # The fake's `since` skips that many entries of its outbox; seq counts from 1.
        response = httpx.get(
            _fake_url("outbox"), params={"to": wa_id, "since": max(after, 0)}, timeout=_TIMEOUT
        )
        items = response.json()["messages"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return JsonResponse(
            {"error": _("API finta non raggiungibile: %(error)r") % {"error": exc}}, status=502
        )
    messages = [
        {
            "seq": item.get("seq"),
            "id": item.get("id"),
            "payload": item.get("payload"),
            "html": shown_html(item.get("payload")),
        }
        for item in items
        if isinstance(item, dict) and isinstance(item.get("seq"), int) and item["seq"] > after
    ]
    return JsonResponse({"messages": messages})


def shown_html(payload) -> str:
    """A text or template message as the phone shows it, by the desk preview's renderer
    (channel.graph.rendering); "" for other kinds, which the page draws itself."""
    if not isinstance(payload, dict):
        return ""
    if payload.get("type") == "text" and isinstance(payload.get("text"), dict):
        return formatted(str(payload["text"].get("body", "")))
    sent = payload.get("template")
    if payload.get("type") != "template" or not isinstance(sent, dict):
        return ""
    language = sent.get("language") if isinstance(sent.get("language"), dict) else {}
    template = MessageTemplate.objects.filter(
        name=str(sent.get("name", "")), language=str(language.get("code", ""))
    ).first()
    if template is None:
        return ""
    shape = template_shape(template)
    header, body = sent_values(shape, sent)
    return template_bubble(shape, body, header)


app_name = "simulator"
urlpatterns = [
    path("", simulator_page, name="page"),
    path("send", simulator_send, name="send"),
    path("outbox", simulator_outbox, name="outbox"),
]
