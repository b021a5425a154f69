"""Right to erasure: a person's number, user id, profile name and words leave every log, and
stay out of them.

On request (`redact_person`, called by the conversation) the person's own parts of the raw
webhook archive, the inbound-message log and the service-message log are redacted. What still
arrives about them afterwards (the statuses of the message confirming the erasure, Meta's
retries, a message sent before the erasure but delivered after it) is redacted as it arrives:
the drain checks each batch against `ErasedIdentity` (channel.webhook.arrivals), where the
person is remembered only as a keyed hash (channel.pseudonyms) and only for
ERASURE_MEMORY_DAYS. A service message to them
keeps the number until it is sent, then loses it (`redact_if_erased`); the nightly
`sweep_erasures` catches what is left.

Redaction is by exact identity in the parsed fields of the JSON bodies, never by substring:
erasing 39333123456 leaves 393331234567 byte for byte as it was.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Min, Q
from django.utils import timezone

from channel.models import ErasedIdentity, InboundEvent, InboundMessage, OutboundMessage
from channel.models import OutboundStatus as Status
from channel.pseudonyms import identity_digest

REDACTED = "[erased]"
# How long webhooks about an erased person can still arrive: WhatsApp keeps trying to deliver a
# message for up to 30 days (its `delivered` and `read` statuses may come that late), and Meta
# retries an undelivered webhook for up to 7 days
# (https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/create-webhook-endpoint).
ERASURE_MEMORY_DAYS = 40
# A service message still queued this long after it was written will never be sent: the
# 24-hour window of the message it answers has closed.
UNSENDABLE_AFTER = timedelta(hours=25)
# What is kept of a redacted message: that a message of this type came, when, and its id (the
# consent ledger cites message ids as proof).
_KEPT_MESSAGE_FIELDS = ("id", "timestamp", "type")
_KEPT_PAYLOAD_FIELDS = ("messaging_product", "recipient_type", "type")
_IN_FLIGHT = [Status.QUEUED, Status.SENDING]
# Up to this many remembered erasures are read whole rather than probed (`erased_among`).
_READ_WHOLE = 100


def _identities(values: Iterable[Any]) -> set[str]:
    return {str(v) for v in values if v}


def digests_of(identities: Iterable[str]) -> dict[str, str]:
    """digest → identity."""
    return {identity_digest(identity): identity for identity in _identities(identities)}


def erased_among(identities: Iterable[str]) -> dict[str, datetime]:
    """Which of these identities were erased, and when: one query unless one of them was.

    Erasures are rare and remembered for ERASURE_MEMORY_DAYS only, so the table holds a few
    rows: reading its digests whole costs less than probing it with a batch's 200 digests
    (~0.3 ms against ~1.9 ms), and when it is empty no digest is computed at all. Beyond
    _READ_WHOLE rows it is probed instead.
    """
    wanted = _identities(identities)
    if not wanted:
        return {}
    remembered = set(ErasedIdentity.objects.values_list("digest", flat=True)[: _READ_WHOLE + 1])
    if not remembered:
        return {}
    digests = digests_of(wanted)
    if len(remembered) <= _READ_WHOLE:
        digests = {d: identity for d, identity in digests.items() if d in remembered}
        if not digests:
            return {}
    rows = ErasedIdentity.objects.filter(digest__in=list(digests))
    return {digests[d]: at for d, at in rows.values_list("digest", "erased_at")}


def forget_erasure(*identities: str | None) -> None:
    """The person asked to join again: what they send from now on is theirs to give."""
    digests = list(digests_of(identities))
    if digests:
        ErasedIdentity.objects.filter(digest__in=digests).delete()


# --- On request ---------------------------------------------------------------------------


def redact_person(*identities: str | None, asked_at: datetime | None = None) -> int:
    """Erase a person (any of their numbers and user ids) from the channel's logs; returns the
    rows changed. `asked_at`: when they sent the request (default now); their messages sent
    before it that arrive later are ignored (`drop_late_messages`). Service messages still
    queued or in flight keep their recipient until they are settled (`redact_if_erased`).
    Erasure is rare, so the unindexed scans are acceptable."""
    ids = _identities(identities)
    if not ids:
        return 0
    asked_at = min(asked_at or timezone.now(), timezone.now())  # a clock ahead must not hide
    ErasedIdentity.objects.bulk_create(
        [ErasedIdentity(digest=digest, erased_at=asked_at) for digest in digests_of(ids)],
        update_conflicts=True,
        unique_fields=["digest"],
        update_fields=["erased_at"],
    )
    mentions = Q()
    for identity in ids:  # a cheap pre-filter: the redaction itself matches parsed fields
        mentions |= Q(body__contains=identity) | Q(problems__contains=identity)
    changed = 0
    for row_id, body, problems in InboundEvent.objects.filter(mentions).values_list(
        "id", "body", "problems"
    ):
        new_body, new_problems = redact_body(body, ids), redact_words(problems, ids)
        if (new_body, new_problems) != (body, problems):
            InboundEvent.objects.filter(pk=row_id).update(body=new_body, problems=new_problems)
            changed += 1
    changed += redact_inbound_messages(InboundMessage.objects.all(), ids)
    changed += redact_outbound(OutboundMessage.objects.filter(_to_any(ids)), ids)
    return changed


def _to_any(ids: set[str]) -> Q:
    return Q(to_wa_id__in=ids) | Q(to_user_id__in=ids)


def erased_wamid(wamid: Any) -> str:
    """What replaces a message id (wamid) of an erased person: Meta derives the id from the
    phone number, which can be read back from it. A keyed hash keeps it unique, and still
    matchable by whoever holds the original id (the consent ledger cites it as proof)."""
    wamid = str(wamid or "")
    if not wamid or wamid.startswith(REDACTED):
        return wamid
    return f"{REDACTED}{identity_digest(wamid)[:40]}"


def redact_inbound_messages(rows, ids: set[str]) -> int:
    changed = 0
    theirs = rows.filter(Q(wa_id__in=ids) | Q(user_id__in=ids))
    for row_id, wamid, wa_id, user_id in theirs.values_list("id", "wamid", "wa_id", "user_id"):
        new = erased_wamid(wamid)
        if new != wamid and InboundMessage.objects.filter(wamid=new).exists():
            # Meta's retry of a message already redacted: the first copy is the record.
            InboundMessage.objects.filter(pk=row_id).delete()
        else:
            InboundMessage.objects.filter(pk=row_id).update(
                wamid=new,
                wa_id="" if wa_id in ids else wa_id,
                user_id="" if user_id in ids else user_id,
            )
        changed += 1
    return changed


def redact_outbound(rows, ids: set[str], *, settled_only: bool = True) -> int:
    """Service messages to the person keep neither their recipient nor their content (replies
    can list the person's topics): only the type stays. Queued and in-flight ones are skipped
    unless `settled_only` is False: sending needs the number."""
    if settled_only:
        rows = rows.exclude(status__in=_IN_FLIGHT)
    changed = 0
    for outbound in rows.filter(_to_any(ids)).only(
        "id", "payload", "to_wa_id", "to_user_id", "last_error_text", "wa_message_id"
    ):
        payload = outbound.payload if isinstance(outbound.payload, dict) else {}
        stub = {key: payload[key] for key in _KEPT_PAYLOAD_FIELDS if key in payload}
        OutboundMessage.objects.filter(pk=outbound.pk).update(
            payload=stub | {"to": REDACTED},
            # The row must keep some recipient (check constraint): the placeholder.
            to_wa_id=REDACTED if outbound.to_wa_id in ids else outbound.to_wa_id,
            to_user_id=REDACTED if outbound.to_user_id in ids else outbound.to_user_id,
            last_error_text=redact_words(outbound.last_error_text, ids),
            wa_message_id=erased_wamid(outbound.wa_message_id) or None,
        )
        changed += 1
    return changed


def redact_if_erased(outbound: OutboundMessage) -> int:
    """Once a service message is settled (sent or failed), redact it if its person was erased
    meanwhile: the message confirming an erasure carries the number only until it is sent."""
    erased = erased_among([outbound.to_wa_id, outbound.to_user_id])
    if not erased:
        return 0
    return redact_outbound(OutboundMessage.objects.filter(pk=outbound.pk), set(erased))


# --- Bodies -------------------------------------------------------------------------------


def redact_words(text: str, ids: set[str]) -> str:
    """Each identity as a whole word replaced (393331234567 is not 39333123456 followed by 7)."""
    for identity in ids:
        if identity in text:
            text = re.sub(rf"(?<!\w){re.escape(identity)}(?!\w)", REDACTED, text)
    return text


def redact_body(body: str, ids: set[str]) -> str:
    """A webhook body without the person: their messages keep only id, type and time, their
    contact card goes (profile name included), and every field holding exactly one of their
    identities (recipient_id, wa_id, user_id…) holds REDACTED. Other people's parts are left
    as they were; the body is unchanged when nothing of the person is in it. A body that is not
    JSON (archived for audit after a failed check) loses the identities as whole words."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return redact_words(body, ids)
    redacted, changed = _redact_value(data, ids)
    # ASCII: a lone surrogate of the original stays escaped, as PostgreSQL text needs.
    return json.dumps(redacted, separators=(",", ":")) if changed else body


def _is_theirs(value: Any, ids: set[str]) -> bool:
    return not isinstance(value, bool) and isinstance(value, str | int) and str(value) in ids


def _redact_value(value: Any, ids: set[str]) -> tuple[Any, bool]:
    if isinstance(value, list):
        items = [_redact_value(item, ids) for item in value]
        return [item for item, _ in items], any(changed for _, changed in items)
    if not isinstance(value, dict):
        return (REDACTED, True) if _is_theirs(value, ids) else (value, False)
    if any(_is_theirs(value.get(k), ids) for k in ("from", "from_user_id")):
        stub = _message_stub(value)  # a message of theirs
        return stub | {k: REDACTED for k in ("from", "from_user_id") if k in value}, True
    if "profile" in value and any(_is_theirs(value.get(k), ids) for k in ("wa_id", "user_id")):
        return {k: REDACTED for k in ("wa_id", "user_id") if k in value}, True  # their card
    rewritten = False
    if any(_is_theirs(value.get(k), ids) for k in ("recipient_id", "recipient_user_id")):
        if "id" in value:  # a status of a message to them
            value, rewritten = value | {"id": erased_wamid(value["id"])}, True
    if _lone_contact_is_theirs(value, ids):
        # The parser credits messages without a sender to the webhook's only contact.
        messages = []
        for message in value["messages"]:
            if isinstance(message, dict) and not (
                message.get("from") or message.get("from_user_id")
            ):
                message, rewritten = _message_stub(message) | {"from": REDACTED}, True
            messages.append(message)
        value = value | {"messages": messages}
    items = {key: _redact_value(item, ids) for key, item in value.items()}
    changed = rewritten or any(changed for _, changed in items.values())
    return {key: item for key, (item, _) in items.items()}, changed


def _message_stub(message: dict) -> dict:
    stub = {k: message[k] for k in _KEPT_MESSAGE_FIELDS if k in message}
    return stub | ({"id": erased_wamid(stub["id"])} if "id" in stub else {})


def _lone_contact_is_theirs(value: dict, ids: set[str]) -> bool:
    contacts, messages = value.get("contacts"), value.get("messages")
    return (
        isinstance(contacts, list)
        and len(contacts) == 1
        and isinstance(contacts[0], dict)
        and _is_theirs(contacts[0].get("user_id") or contacts[0].get("wa_id"), ids)
        and isinstance(messages, list)
    )


# --- Nightly ------------------------------------------------------------------------------


def sweep_erasures(*, now: datetime | None = None) -> int:
    """Forget erasures older than ERASURE_MEMORY_DAYS, and redact what escaped redaction since
    the oldest one remembered: service messages settled (or never to be sent) and logged
    messages still holding an erased identity. Returns the rows redacted."""
    now = now or timezone.now()
    memory = timedelta(days=ERASURE_MEMORY_DAYS)
    ErasedIdentity.objects.filter(erased_at__lt=now - memory).delete()
    oldest = ErasedIdentity.objects.aggregate(oldest=Min("erased_at"))["oldest"]
    if oldest is None:
        return 0
    since = oldest - UNSENDABLE_AFTER
    outbound = OutboundMessage.objects.filter(created_at__gte=since)
    inbound = InboundMessage.objects.filter(sent_at__gte=since)
    people = set(outbound.values_list("to_wa_id", flat=True).distinct())
    people |= set(outbound.values_list("to_user_id", flat=True).distinct())
    people |= set(inbound.values_list("wa_id", flat=True).distinct())
    people |= set(inbound.values_list("user_id", flat=True).distinct())
    erased = set(erased_among(people - {REDACTED}))
    if not erased:
        return 0
    settled = ~Q(status__in=_IN_FLIGHT) | Q(created_at__lt=now - UNSENDABLE_AFTER)
    changed = redact_outbound(outbound.filter(settled), erased, settled_only=False)
    return changed + redact_inbound_messages(inbound, erased)
