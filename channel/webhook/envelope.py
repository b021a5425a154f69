"""Meta's webhook envelope, built: what `channel.webhook.parsing` reads.

The fake Graph API, the simulator, the benchmarks and the tests all wrap their messages and
statuses in it, so they send what Meta sends
(https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components).
"""

from __future__ import annotations


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
