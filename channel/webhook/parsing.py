"""Meta's webhook envelope → plain dataclasses.

Every level of the envelope is a list: we walk every entry, every change and every
message/status/error, because Meta batches up to 1,000 updates per POST
(https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components). Nothing here
raises on odd shapes or values: what cannot be read is reported in ``problems``, and every
string that comes out is one PostgreSQL can store (`storable_text`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from channel.graph.templates import TemplateEvent
from channel.identity import is_user_id, is_wa_id

MEDIA_KINDS = {"image", "video", "audio", "document", "sticker"}
# Error codes are stored in integer columns; a code outside their range is not one of Meta's.
_MAX_ERROR_CODE = 2**31 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


def storable_text(text: str) -> str:
    """`text` as PostgreSQL text can hold it: NUL removed, lone surrogates replaced by U+FFFD.

    JSON may carry both ("\\u0000", "\\ud800"); PostgreSQL refuses NUL in text and UTF-8
    cannot encode a surrogate, so either would make every write of the string fail.
    """
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            text = _SURROGATE.sub("\ufffd", text)
    return text


@dataclass(frozen=True)
class MetaError:
    code: int
    title: str = ""
    message: str = ""
    details: str = ""


@dataclass(frozen=True)
class InboundMsg:
    """One message a person sent. ``kind`` is the message type, or the interactive sub-type."""

    wamid: str
    wa_id: str
    user_id: str
    kind: str
    timestamp: datetime
    text: str = ""
    reply_id: str = ""
    reply_title: str = ""
    flow_response: dict[str, Any] = field(default_factory=dict)
    profile_name: str = ""
    context_wamid: str = ""
    errors: tuple[MetaError, ...] = ()
    group_id: str = ""  # sent in a group chat, not to us alone
    # A `system` message: its type (user_changed_number…) and the person's new identities.
    system_type: str = ""
    new_wa_id: str = ""
    new_user_id: str = ""


@dataclass(frozen=True)
class StatusUpdate:
    wamid: str
    status: str
    timestamp: datetime
    recipient_id: str = ""
    recipient_user_id: str = ""
    biz_opaque_callback_data: str = ""
    errors: tuple[MetaError, ...] = ()
    # Meta's `pricing` object, on `sent` and on one of `delivered`/`read`; None/"" without it.
    # https://developers.facebook.com/docs/whatsapp/pricing
    pricing_category: str = ""
    pricing_billable: bool | None = None
    pricing_model: str = ""
    pricing_type: str = ""


@dataclass(frozen=True)
class PreferenceUpdate:
    """``user_preferences``: a person stopped or resumed marketing messages."""

    wa_id: str
    user_id: str
    value: str
    category: str
    timestamp: datetime


@dataclass
class ParsedWebhook:
    messages: list[InboundMsg] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    preferences: list[PreferenceUpdate] = field(default_factory=list)
    errors: list[MetaError] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    template_events: list[TemplateEvent] = field(default_factory=list)


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, bool):
        return ""
    if isinstance(value, int):
        return str(value)  # never through float: a 4,000-digit number overflows it
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)  # inf, nan: as text
    return ""


def _timestamp(value: Any) -> datetime:
    try:
        seconds = int(_str(value) or "x")
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.now(tz=UTC)


def _pricing(pricing: dict) -> dict[str, Any]:
    """Meta's `pricing` object, each field checked for its type (a wrong one is dropped)."""
    billable = pricing.get("billable")
    return {
        "pricing_category": _str(pricing.get("category"))[:32],
        "pricing_billable": billable if isinstance(billable, bool) else None,
        "pricing_model": _str(pricing.get("pricing_model"))[:8],
        "pricing_type": _str(pricing.get("type"))[:32],
    }


def _errors(value: Any) -> tuple[MetaError, ...]:
    found = []
    for item in _list(value):
        item = _dict(item)
        try:
            code = int(item.get("code"))
        except (TypeError, ValueError, OverflowError):  # OverflowError: int(Infinity)
            continue
        if not 0 <= code <= _MAX_ERROR_CODE:
            continue
        found.append(
            MetaError(
                code=code,
                title=_str(item.get("title")),
                message=_str(item.get("message")),
                details=_str(_dict(item.get("error_data")).get("details")),
            )
        )
    return tuple(found)


def parse_webhook(body: Any) -> ParsedWebhook:
    parsed = ParsedWebhook()
    if not isinstance(body, dict):
        parsed.problems.append("body is not a JSON object")
        return parsed
    if body.get("object") not in (None, "whatsapp_business_account"):
        parsed.problems.append(f"unexpected object {str(body.get('object'))[:40]!r}")
    for entry in _list(body.get("entry")):
        for change in _list(_dict(entry).get("changes")):
            _parse_change(_dict(change), parsed)
    return parsed


# Meta's template webhooks (subscribed fields of the same name).
TEMPLATE_FIELDS = (
    "message_template_status_update",
    "template_category_update",
    "message_template_quality_update",
)


def _template_event(field_name: str, value: dict) -> TemplateEvent | None:
    name = _str(value.get("message_template_name"))
    meta_id = _str(value.get("message_template_id"))
    if not (name or meta_id):
        return None
    return TemplateEvent(
        meta_id=meta_id[:64],
        name=name[:512],
        language=_str(value.get("message_template_language"))[:15],
        status=_str(value.get("event")).lower() if field_name == TEMPLATE_FIELDS[0] else "",
        category=_str(value.get("new_category")).lower(),
        quality=_str(value.get("new_quality_score")).lower(),
        reason=_str(value.get("reason")),
    )


def _parse_change(change: dict, parsed: ParsedWebhook) -> None:
    value = _dict(change.get("value"))
    if change.get("field") in TEMPLATE_FIELDS:
        event = _template_event(str(change["field"]), value)
        if event is None:
            parsed.problems.append("a template update without a template was skipped")
        else:
            parsed.template_events.append(event)
        return
    contacts = [_dict(c) for c in _list(value.get("contacts"))]
    user_ids = {_str(c.get("wa_id")): _str(c.get("user_id")) for c in contacts}
    names = {_str(c.get("wa_id")): _str(_dict(c.get("profile")).get("name")) for c in contacts}
    for item in _list(value.get("messages")):
        message = _parse_message(_dict(item), user_ids, names, contacts, parsed.problems)
        if message is None:
            parsed.problems.append("a message without id or sender was skipped")
        else:
            parsed.messages.append(message)
    for item in _list(value.get("statuses")):
        item = _dict(item)
        wamid, status = _str(item.get("id")), _str(item.get("status"))
        if not wamid or not status:
            parsed.problems.append("a status without id or status was skipped")
            continue
        parsed.statuses.append(
            StatusUpdate(
                wamid=wamid,
                status=status,
                timestamp=_timestamp(item.get("timestamp")),
                recipient_id=_str(item.get("recipient_id")),
                recipient_user_id=_str(item.get("recipient_user_id")),
                biz_opaque_callback_data=_str(item.get("biz_opaque_callback_data")),
                errors=_errors(item.get("errors")),
                **_pricing(_dict(item.get("pricing"))),
            )
        )
    for item in _list(value.get("user_preferences")):
        item = _dict(item)
        if _str(item.get("value")) not in ("stop", "resume"):
            parsed.problems.append("a user preference with an unknown value was skipped")
            continue
        parsed.preferences.append(
            PreferenceUpdate(
                wa_id=_str(item.get("wa_id")),
                user_id=_str(item.get("user_id")),
                value=_str(item.get("value")),
                category=_str(item.get("category")),
                timestamp=_timestamp(item.get("timestamp")),
            )
        )
    parsed.errors.extend(_errors(value.get("errors")))


def _identity(value: str, valid, what: str, problems: list[str]) -> str:
    """`value` when it is a well-formed id (channel.identity), else "" and a problem line: a
    malformed or over-long id would otherwise reach a database column or a reply's address."""
    if value and not valid(value):
        problems.append(f"a malformed {what} was ignored ({len(value)} characters)")
        return ""
    return value


def _parse_message(  # noqa: C901  (one branch per message type)
    item: dict,
    user_ids: dict[str, str],
    names: dict[str, str],
    contacts: list[dict],
    problems: list[str],
) -> InboundMsg | None:
    wamid, raw_wa_id = _str(item.get("id")), _str(item.get("from"))
    # Business-scoped user ids: `from_user_id` on the message, `user_id` on its contact.
    raw_user_id = _str(item.get("from_user_id")) or user_ids.get(raw_wa_id, "")
    if not raw_wa_id and not raw_user_id and len(contacts) == 1:
        raw_user_id = _str(contacts[0].get("user_id"))
    if not wamid or not (raw_wa_id or raw_user_id):
        return None
    # Kept (stored once by wamid) without an identity we could answer: never handled.
    wa_id = _identity(raw_wa_id, is_wa_id, "sender number", problems)
    user_id = _identity(raw_user_id, is_user_id, "sender user id", problems)
    kind = _str(item.get("type")) or "unknown"
    text = reply_id = reply_title = ""
    flow_response: dict[str, Any] = {}
    if kind == "text":
        text = _str(_dict(item.get("text")).get("body"))
    elif kind == "interactive":
        interactive = _dict(item.get("interactive"))
        kind = _str(interactive.get("type")) or "interactive"
        reply = _dict(interactive.get(kind))
        reply_id, reply_title = _str(reply.get("id")), _str(reply.get("title"))
        if kind == "nfm_reply":
            try:
                flow_response = _dict(json.loads(_str(reply.get("response_json")) or "{}"))
            except (ValueError, RecursionError):  # RecursionError: nested too deep
                flow_response = {}
    elif kind == "button":
        button = _dict(item.get("button"))
        reply_id, reply_title = _str(button.get("payload")), _str(button.get("text"))
    elif kind in MEDIA_KINDS:
        text = _str(_dict(item.get(kind)).get("caption"))
    system = _dict(item.get("system")) if kind == "system" else {}
    return InboundMsg(
        wamid=wamid,
        wa_id=wa_id,
        user_id=user_id,
        kind=kind,
        timestamp=_timestamp(item.get("timestamp")),
        text=text,
        reply_id=reply_id,
        reply_title=reply_title,
        flow_response=flow_response,
        profile_name=names.get(wa_id, ""),
        context_wamid=_str(_dict(item.get("context")).get("id")),
        errors=_errors(item.get("errors")),
        group_id=_str(item.get("group_id"))[:64],
        system_type=_str(system.get("type"))[:64],
        new_wa_id=_identity(_str(system.get("wa_id")), is_wa_id, "new number", problems),
        new_user_id=_identity(_str(system.get("user_id")), is_user_id, "new user id", problems),
    )
