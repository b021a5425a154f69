"""The WhatsApp wire format: every message we send is built here, within Meta's limits.
https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages

Each builder raises ValueError naming the limit when Meta would refuse the payload, so a bug
shows up in our tests, not as error 100 in front of a citizen. Callers choose what to say
(subscribers.delivery.payloads for posts, the conversation for replies); how it travels is
decided here only.
"""

from __future__ import annotations

import re

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
    # A Flow's CheckboxGroup: at most 20 items in its data-source, item titles of 30 characters
    # and descriptions of 300 (https://developers.facebook.com/docs/whatsapp/flows/reference/components).
    "flow_items": 20,
    "flow_item_title": 30,
    "flow_item_description": 300,
    "parameter": 1024,
    "filename": 200,
}
MEDIA_KINDS = ("image", "video", "document", "audio", "sticker")
MB = 1000 * 1000  # decimal megabytes, the stricter reading: what we accept, Meta accepts
# What POST /{phone-number-id}/media accepts, by kind: MIME types and the largest file
# (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types).
MEDIA_UPLOADS: dict[str, tuple[frozenset[str], int]] = {
    "image": (frozenset({"image/jpeg", "image/png"}), 5 * MB),
    "video": (frozenset({"video/mp4", "video/3gpp"}), 16 * MB),
    "audio": (
        frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
        16 * MB,
    ),
    "document": (
        frozenset(
            {
                "text/plain",
                "application/pdf",
                "application/msword",
                "application/vnd.ms-excel",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            }
        ),
        100 * MB,
    ),
    "sticker": (frozenset({"image/webp"}), 500 * 1000),  # animated; a static one 100 KB
}
# Meta keeps an uploaded file this long; its id is then gone (error 131053 when sent).
MEDIA_ID_DAYS = 30
_SPACES = re.compile(r"\s+")


def _check(value: str, limit: str, what: str) -> str:
    if not value:
        raise ValueError(f"{what} is empty")
    if len(value) > LIMITS[limit]:
        raise ValueError(f"{what} is {len(value)} characters; WhatsApp allows {LIMITS[limit]}")
    return value


def address(to: str) -> dict:
    """Who a message goes to. Digits are a phone number (wa_id, field "to"); anything else is
    a business-scoped user id (such as "US.13491208655302741918", field "recipient"), all a
    person who hides their number behind a username gives us."""
    who = {"to": to} if to.isdigit() else {"recipient": to}
    return {"messaging_product": "whatsapp", "recipient_type": "individual", **who}


def add_callback(payload: dict, reference: str) -> dict:
    """Meta echoes biz_opaque_callback_data in every status of the message (channel.graph.
    callbacks builds the reference). Set in place: the sender adds one to every payload."""
    payload["biz_opaque_callback_data"] = reference
    return payload


def text(to: str, body: str, preview_url: bool = False) -> dict:
    _check(body, "text", "text")
    return address(to) | {"type": "text", "text": {"body": body, "preview_url": preview_url}}


def media_upload_problem(kind: str, mime_type: str, size: int) -> str:
    """Why Meta would refuse this file on upload ("" when it would take it)."""
    if kind not in MEDIA_UPLOADS:
        return f"unknown media kind {kind!r}"
    types, largest = MEDIA_UPLOADS[kind]
    if mime_type not in types:
        return f"a {kind} must be one of {', '.join(sorted(types))}, not {mime_type or '?'}"
    if size > largest:
        return f"the file is {size:,} bytes; WhatsApp takes a {kind} of at most {largest:,}"
    if size <= 0:
        return "the file is empty"
    return ""


def media_upload_form(kind: str, mime_type: str, size: int) -> dict:
    """The form fields of an upload (the file goes alongside as `file`).
    https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#upload-media"""
    problem = media_upload_problem(kind, mime_type, size)
    if problem:
        raise ValueError(problem)
    return {"messaging_product": "whatsapp", "type": mime_type}


def _media_object(link: str, media_id: str) -> dict:
    if bool(link) == bool(media_id):
        raise ValueError("media needs exactly one of a link or an uploaded media id")
    return {"id": media_id} if media_id else {"link": link}


def media(
    to: str, kind: str, link: str = "", caption: str = "", filename: str = "", media_id: str = ""
) -> dict:
    """An image, video, document… by uploaded media id (what posts use: Meta fetches nothing
    per message) or by link; a document may carry the name shown for it."""
    if kind not in MEDIA_KINDS:
        raise ValueError(f"unknown media kind {kind!r}")
    body = _media_object(link, media_id)
    if caption:
        body["caption"] = _check(caption, "caption", "caption")
    if filename and kind == "document":
        body["filename"] = _check(filename, "filename", "file name")
    return address(to) | {"type": kind, kind: body}


def _media_objects(payload: dict) -> list[dict]:
    """The media objects of a message: its media, or its template's media header."""
    kind = payload.get("type")
    if kind in MEDIA_KINDS:
        return [payload[kind]]
    found = []
    if kind == "template":
        for component in payload.get("template", {}).get("components", []):
            for parameter in component.get("parameters", []):
                if parameter.get("type") in MEDIA_KINDS:
                    found.append(parameter[parameter["type"]])
    return found


def by_media_id(payload: dict, media_id: str) -> dict:
    """The same message with its media sent by the uploaded `media_id` instead of a link (set
    in place; a message without media is left as it is)."""
    for media_object in _media_objects(payload):
        media_object.pop("link", None)
        media_object["id"] = media_id
    return payload


def media_id_in(payload: dict) -> str:
    """The uploaded media id a message carries ("" when none)."""
    return next((str(m["id"]) for m in _media_objects(payload) if m.get("id")), "")


def flatten_parameter(value: str) -> str:
    """Meta rejects template parameters with newlines, tabs or 5+ spaces (error 132018):
    whitespace runs become one space; an empty value becomes "-"; a long one is shortened."""
    flat = _SPACES.sub(" ", value).strip() or "-"
    limit = LIMITS["parameter"]
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def text_parameter(value: str, name: str = "") -> dict:
    """A text parameter; `name` for a template whose parameter_format is NAMED
    (https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-message-templates)."""
    return {"type": "text", "text": value} | ({"parameter_name": name} if name else {})


def media_parameter(kind: str, link: str = "", media_id: str = "") -> dict:
    """A template's media header: the image, video or document to show (by id or link)."""
    return {"type": kind, kind: _media_object(link, media_id)}


def template(
    to: str,
    name: str,
    language: str,
    body_params: list[str] | dict[str, str],
    header: dict | None = None,
    url_buttons: list[tuple[int, str]] = (),
) -> dict:
    """An approved template: `body_params` fill {{1}}, {{2}}… in order, or, as a dict,
    {{name}}-style parameters by name; `header` is a text_parameter or media_parameter when the
    template's header takes one; `url_buttons` give the variable suffix of each URL button
    with one, by the button's index."""
    components = []
    if header:
        components.append({"type": "header", "parameters": [header]})
    if isinstance(body_params, dict):
        parameters = [text_parameter(value, key) for key, value in body_params.items()]
    else:
        parameters = [text_parameter(value) for value in body_params]
    if parameters:
        components.append({"type": "body", "parameters": parameters})
    for index, suffix in url_buttons:
        components.append(
            {
                "type": "button",
                "sub_type": "url",
                "index": str(index),
                "parameters": [text_parameter(_check(suffix, "parameter", "button URL"))],
            }
        )
    body = {"name": name, "language": {"code": language}}
    if components:
        body["components"] = components
    return address(to) | {"type": "template", "template": body}


def interactive_list(
    to: str,
    *,
    body: str,
    button: str,
    sections: list[tuple[str, list[tuple[str, str, str]]]],
    header: str = "",
    footer: str = "",
) -> dict:
    """sections: [(title, [(row id, row title, description), …])]; ≤10 rows in total. Every
    section has a title: Meta's list page marks `sections[].title` required
    (https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-list-messages)."""
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
        if not title:
            raise ValueError("every list section needs a title (WhatsApp requires one)")
        section = {"title": _check(title, "section_title", "section title"), **section}
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
    return address(to) | {"type": "interactive", "interactive": interactive}


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
    return address(to) | {"type": "interactive", "interactive": interactive}


def flow(
    to: str, *, body: str, flow_id: str, cta: str, token: str, screen: str, data: dict
) -> dict:
    """A WhatsApp Flow, opened on `screen` with `data`.
    https://developers.facebook.com/docs/whatsapp/flows/guides/sendingaflow"""
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
    return address(to) | {"type": "interactive", "interactive": interactive}


def flow_checkbox_data(name: str, items: list[tuple[str, str, str]], chosen: list[str]) -> dict:
    """Flow data for checkboxes over `items` (id, title, description), however many.

    A CheckboxGroup lists at most LIMITS["flow_items"], so the items are split into groups in
    order: `<name>` and `chosen` for the first, `<name>_2` and `chosen_2` for the second, and so
    on (the Flow's screen has one CheckboxGroup per group, each answering under its own name).
    """
    size, data = LIMITS["flow_items"], {}
    for start in range(0, len(items), size):
        group = items[start : start + size]
        suffix = f"_{start // size + 1}" if start else ""
        source = []
        for item_id, title, description in group:
            item = {"id": item_id, "title": _check(title, "flow_item_title", "flow item title")}
            if description:
                item["description"] = _check(
                    description, "flow_item_description", "flow item description"
                )
            source.append(item)
        data[f"{name}{suffix}"] = source
        ids = {item_id for item_id, _, _ in group}
        data[f"chosen{suffix}"] = [c for c in chosen if c in ids]
    return data
