"""Meta's webhook envelope, built: what `channel.webhook.parsing` reads.

The fake Graph API, the simulator, the benchmarks and the tests all wrap their messages and
statuses in it, so they send what Meta sends
(https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components).
"""

from __future__ import annotations

import json


def webhook_envelope(
    value: dict, *, phone_number_id: str, display_phone_number: str, entry_id: str = "0"
) -> dict:
    """One entry with one `messages` change around `value` (its messages, statuses...)."""
    metadata = {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id}
    value = {"messaging_product": "whatsapp", "metadata": metadata, **value}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": entry_id, "changes": [{"field": "messages", "value": value}]}],
    }


def webhook_body(envelope: dict) -> bytes:
    """The bytes Meta POSTs for `envelope`, and signs: compact JSON with every non-ASCII
    character escaped (`\\u00e8`, surrogate pairs beyond the BMP) and every "/" as `\\/`.
    Sign these exact bytes (channel.webhook.signatures); a receiver that re-serialises the
    JSON before checking the signature fails on the first accented letter or URL.
    https://developers.facebook.com/docs/graph-api/webhooks/getting-started"""
    text = json.dumps(envelope, ensure_ascii=True, separators=(",", ":"))
    # "/" occurs only inside strings in JSON text, so escaping every one keeps it valid.
    return text.replace("/", "\\/").encode("ascii")
