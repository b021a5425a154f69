"""Webhooks about people who asked for erasure, as a drained batch meets them: their late
messages are dropped, their statuses find their redacted rows, their bodies are redacted once
processed (the rules themselves are channel.erasure's)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from channel.erasure import (
    erased_wamid,
    redact_body,
    redact_inbound_messages,
    redact_outbound,
    redact_words,
)
from channel.graph import callbacks
from channel.models import InboundEvent, InboundMessage, OutboundMessage
from channel.webhook.parsing import ParsedWebhook


def webhook_identities(webhook: ParsedWebhook) -> set[str]:
    """Every person a parsed webhook is about."""
    found: set[str] = set()
    for message in webhook.messages:
        found.update((message.wa_id, message.user_id))
    for status in webhook.statuses:
        found.update((status.recipient_id, status.recipient_user_id))
    for preference in webhook.preferences:
        found.update((preference.wa_id, preference.user_id))
    found.discard("")
    return found


def drop_late_messages(webhook: ParsedWebhook, erased: dict[str, datetime]) -> int:
    """Remove the messages an erased person sent before asking for erasure, or in the same
    second (Meta's times are whole seconds), delivered late or retried by Meta (their ids were
    redacted, so they are not recognised otherwise): nobody answers them and nothing of them
    is stored. Returns how many."""
    kept = []
    for message in webhook.messages:
        at = erased.get(message.wa_id) or erased.get(message.user_id)
        if at is None or message.timestamp > at:
            kept.append(message)
    dropped = len(webhook.messages) - len(kept)
    webhook.messages = kept
    return dropped


def disguise_statuses(webhook: ParsedWebhook, erased: dict[str, datetime]) -> None:
    """Statuses about erased people carry the message id as it was redacted in our logs
    (`erased_wamid`), so they still find their rows, and never write the original back."""
    webhook.statuses = [
        replace(status, wamid=erased_wamid(status.wamid))
        if status.recipient_id in erased or status.recipient_user_id in erased
        else status
        for status in webhook.statuses
    ]


def redact_arrivals(
    rows: Iterable[tuple[int, str]],
    identities: dict[int, set[str]],
    parsed: dict[int, ParsedWebhook],
    erased: dict[str, datetime],
    problems: dict[int, list[str]],
) -> int:
    """Redact a drained batch's webhooks about erased people (already processed: what the
    processing needed was read from the parsed copy). Returns the webhooks redacted."""
    touched: list[int] = []
    service_ids: list[int] = []
    for row_id, body in rows:
        ids = identities[row_id] & erased.keys()
        if not ids:
            continue
        InboundEvent.objects.filter(pk=row_id).update(body=redact_body(body, ids))
        problems[row_id] = [redact_words(line, ids) for line in problems[row_id]]
        touched.append(row_id)
        for status in parsed[row_id].statuses:
            if {status.recipient_id, status.recipient_user_id} & ids:
                service_ids.append(callbacks.service_id(status.biz_opaque_callback_data))
    if touched:
        all_erased = set(erased)
        redact_inbound_messages(InboundMessage.objects.filter(event_id__in=touched), all_erased)
        outbound = OutboundMessage.objects.filter(pk__in=[i for i in service_ids if i])
        redact_outbound(outbound, all_erased)
    return len(touched)
