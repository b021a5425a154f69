"""Build and post Meta-shaped webhook bodies (whatsapp-cloud-api.md §1.4, §1.5)."""

from __future__ import annotations

import itertools
import time

from django.conf import settings

from channel.signatures import HEADER, sign

URL = "/whatsapp/webhook/"
_ids = itertools.count(1)
_AUTO = object()


def wamid() -> str:
    return f"wamid.TEST{time.time_ns()}{next(_ids)}"


def text_item(wa_id: str, body: str, *, at: int | None = None) -> dict:
    return {
        "from": wa_id,
        "id": wamid(),
        "timestamp": str(at or int(time.time())),
        "type": "text",
        "text": {"body": body},
    }


def status_item(
    message_id: str, status: str, *, recipient: str = "393330000000", callback: str = ""
) -> dict:
    item = {
        "id": message_id,
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": recipient,
    }
    if callback:
        item["biz_opaque_callback_data"] = callback
    return item


def envelope(*, messages: list | None = None, statuses: list | None = None) -> dict:
    value: dict = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "390434000000", "phone_number_id": "100000000000001"},
    }
    if messages:
        value["contacts"] = [{"profile": {"name": "Test"}, "wa_id": m["from"]} for m in messages]
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA1", "changes": [{"field": "messages", "value": value}]}],
    }


def post_webhook(client, body: bytes, *, signature=_AUTO):
    headers = {}
    if signature is _AUTO:
        signature = sign(body, settings.WHATSAPP_APP_SECRET)
    if signature is not None:
        headers[HEADER] = signature
    return client.post(URL, data=body, content_type="application/json", headers=headers)
