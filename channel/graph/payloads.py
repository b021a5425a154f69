"""Builders for the send payloads of the Cloud API (whatsapp-cloud-api.md §2.1).

Each raises ValueError naming the limit when a payload would be refused by Meta, so a bug shows
up in our tests, not as error 100 in front of a citizen.
"""

from __future__ import annotations

LIMITS = {
    "text": 4096,
    "list_body": 4096,
    "list_button": 20,
    "list_rows": 10,
    "row_id": 200,
    "row_title": 24,
    "row_description": 72,
    "section_title": 24,
    "header": 60,
    "footer": 60,
    "buttons": 3,
    "button_title": 20,
    "button_id": 256,
    "buttons_body": 1024,
    "caption": 1024,
    "flow_cta": 30,
}


def _check(value: str, limit: str, what: str) -> str:
    if not value:
        raise ValueError(f"{what} is empty")
    if len(value) > LIMITS[limit]:
        raise ValueError(f"{what} is {len(value)} characters; WhatsApp allows {LIMITS[limit]}")
    return value


def _base(to: str) -> dict:
    # Digits are a phone number (wa_id); anything else is a business-scoped user id (§1.7).
    address = {"to": to} if to.isdigit() else {"recipient": to}
    return {"messaging_product": "whatsapp", "recipient_type": "individual", **address}


def text(to: str, body: str, preview_url: bool = False) -> dict:
    _check(body, "text", "text")
    return _base(to) | {"type": "text", "text": {"body": body, "preview_url": preview_url}}


def media(to: str, kind: str, link: str, caption: str = "") -> dict:
    if kind not in ("image", "video", "document", "audio", "sticker"):
        raise ValueError(f"unknown media kind {kind!r}")
    body = {"link": link}
    if caption:
        body["caption"] = _check(caption, "caption", "caption")
    return _base(to) | {"type": kind, kind: body}


def template(
    to: str, name: str, language: str, body_params: list[str], header: dict | None = None
) -> dict:
    components = []
    if header:
        components.append({"type": "header", "parameters": [header]})
    if body_params:
        parameters = [{"type": "text", "text": value} for value in body_params]
        components.append({"type": "body", "parameters": parameters})
    body = {"name": name, "language": {"code": language}}
    if components:
        body["components"] = components
    return _base(to) | {"type": "template", "template": body}


def interactive_list(
    to: str,
    *,
    body: str,
    button: str,
    sections: list[tuple[str, list[tuple[str, str, str]]]],
    header: str = "",
    footer: str = "",
) -> dict:
    """sections: [(title, [(row id, row title, description), …])]; ≤10 rows in total."""
    rows_total = sum(len(rows) for _title, rows in sections)
    if not 1 <= rows_total <= LIMITS["list_rows"]:
        raise ValueError(f"a list has {rows_total} rows; WhatsApp allows 1 to 10 in total")
    built = []
    for title, rows in sections:
        section = {
            "rows": [
                {
                    "id": _check(row_id, "row_id", "row id"),
                    "title": _check(row_title, "row_title", f"row title {row_title!r}"),
                    **(
                        {"description": _check(desc, "row_description", "row description")}
                        if desc
                        else {}
                    ),
                }
                for row_id, row_title, desc in rows
            ]
        }
        if title:
            section["title"] = _check(title, "section_title", "section title")
        built.append(section)
    interactive = {
        "type": "list",
        "body": {"text": _check(body, "list_body", "list body")},
        "action": {"button": _check(button, "list_button", "list button"), "sections": built},
    }
    if header:
        interactive["header"] = {"type": "text", "text": _check(header, "header", "header")}
    if footer:
        interactive["footer"] = {"text": _check(footer, "footer", "footer")}
    return _base(to) | {"type": "interactive", "interactive": interactive}


def reply_buttons(to: str, *, body: str, buttons: list[tuple[str, str]], footer: str = "") -> dict:
    """buttons: [(id, title)], at most 3 with unique titles."""
    if not 1 <= len(buttons) <= LIMITS["buttons"]:
        raise ValueError("reply buttons: 1 to 3 buttons")
    if len({title for _id, title in buttons}) != len(buttons):
        raise ValueError("reply button titles must be unique")
    interactive = {
        "type": "button",
        "body": {"text": _check(body, "buttons_body", "button message body")},
        "action": {
            "buttons": [
                {
                    "type": "reply",
                    "reply": {
                        "id": _check(button_id, "button_id", "button id"),
                        "title": _check(title, "button_title", f"button title {title!r}"),
                    },
                }
                for button_id, title in buttons
            ]
        },
    }
    if footer:
        interactive["footer"] = {"text": _check(footer, "footer", "footer")}
    return _base(to) | {"type": "interactive", "interactive": interactive}


def flow(
    to: str, *, body: str, flow_id: str, cta: str, token: str, screen: str, data: dict
) -> dict:
    """A WhatsApp Flow (§6), opened on `screen` with `data`."""
    parameters = {
        "flow_message_version": "3",
        "flow_id": flow_id,
        "flow_cta": _check(cta, "flow_cta", "flow button"),
        "flow_token": token,
        "flow_action": "navigate",
        "mode": "published",
        "flow_action_payload": {"screen": screen, "data": data},
    }
    interactive = {
        "type": "flow",
        "body": {"text": _check(body, "text", "flow body")},
        "action": {"name": "flow", "parameters": parameters},
    }
    return _base(to) | {"type": "interactive", "interactive": interactive}


def with_callback(payload: dict, data: str) -> dict:
    """Meta echoes biz_opaque_callback_data in every status of the message (§1.5)."""
    return payload | {"biz_opaque_callback_data": data}
