"""Meta's documented rules for a send request (https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages,
business-phone-numbers/media and the template pages).

Self-contained on purpose: the fake stands in for Meta, so it does not share the product's
payload builders or limits; a bug there must show up as a rejection here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from channel.fakegraph.openapi import spec_problems


@dataclass(frozen=True)
class Rejection:
    code: int
    details: str


@dataclass(frozen=True)
class Template:
    """A template in the fake's registry. With `components` (Meta's shape, as listed by
    GET /{waba-id}/message_templates) the parameters a send must fill come from them; without,
    from `body_params` and `header`."""

    name: str
    language: str
    category: str = "utility"
    body_params: int = 0
    header: str = ""  # "", "text", "image", "video", "document"
    status: str = "approved"
    components: list = field(default_factory=list, hash=False)
    parameter_format: str = "POSITIONAL"  # or NAMED: {{name}} placeholders
    quality_score: str = "GREEN"
    previous_category: str = ""
    id: str = ""

    @property
    def named(self) -> bool:
        return self.parameter_format.upper() == "NAMED"

    def parts(self) -> dict:
        """Meta's components: as registered, or built from body_params and header."""
        if self.components:
            return {str(c.get("type", "")).upper(): c for c in self.components}
        parts = {
            "BODY": {
                "type": "BODY",
                "text": " ".join(f"{{{{{n}}}}}" for n in range(1, self.body_params + 1)) or "-",
            }
        }
        if self.header == "text":
            parts["HEADER"] = {"type": "HEADER", "format": "TEXT", "text": "{{1}}"}
        elif self.header:
            parts["HEADER"] = {"type": "HEADER", "format": self.header.upper()}
        return parts

    def body_names(self) -> list[str]:
        """The body's placeholders, distinct, in the order a send gives them."""
        found = list(
            dict.fromkeys(_PLACEHOLDER.findall(self.parts().get("BODY", {}).get("text") or ""))
        )
        return found if self.named else sorted(found, key=lambda p: int(p) if p.isdigit() else 0)

    def header_kind(self) -> str:
        """What the header's one parameter must be: "", "text", "image", "video", "document"."""
        header = self.parts().get("HEADER")
        if not header:
            return ""
        kind = str(header.get("format", "TEXT")).lower()
        if kind == "text":
            return "text" if _PLACEHOLDER.search(header.get("text") or "") else ""
        return kind if kind in ("image", "video", "document") else ""

    def url_variables(self) -> set[int]:
        """Indexes of the URL buttons whose address ends in a variable."""
        buttons = self.parts().get("BUTTONS", {}).get("buttons") or []
        return {
            i
            for i, b in enumerate(buttons)
            if isinstance(b, dict)
            and str(b.get("type", "")).upper() == "URL"
            and _PLACEHOLDER.search(b.get("url") or "")
        }


MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
_PARAM_BAD = re.compile(r"[\n\t]| {5,}")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def _too_long(value, limit: int) -> bool:
    return not isinstance(value, str) or len(value) > limit


def validate_message(  # noqa: C901  (one rule a branch, in Meta's order)
    payload, templates: dict[tuple[str, str], Template]
) -> Rejection | None:
    """None when Meta would accept the payload, else the error Meta answers with."""
    if not isinstance(payload, dict):
        return Rejection(100, "The request body must be a JSON object.")
    if payload.get("messaging_product") != "whatsapp":
        return Rejection(100, "Param messaging_product must be 'whatsapp'.")
    # Meta's own OpenAPI description first (channel.fakegraph.openapi), then the rules of its
    # pages that the description does not carry (lengths, counts, templates…), below.
    problems = spec_problems(payload)
    if problems:
        return Rejection(100, f"Invalid parameter: {problems[0][:300]}")
    to, recipient = payload.get("to"), payload.get("recipient")
    if not (isinstance(to, str) and to.strip("+").isdigit()) and not (
        isinstance(recipient, str) and recipient
    ):
        return Rejection(131008, "Required parameter 'to' is missing or not a phone number.")
    kind = payload.get("type", "text")
    if "biz_opaque_callback_data" in payload and _too_long(
        payload["biz_opaque_callback_data"], 512
    ):
        return Rejection(100, "biz_opaque_callback_data must be a string of at most 512 chars.")
    body = payload.get(kind)
    if not isinstance(body, dict):
        return Rejection(131008, f"Required parameter '{kind}' is missing.")
    if kind == "text":
        text = body.get("body")
        if not isinstance(text, str) or not text:
            return Rejection(131008, "Required parameter text.body is missing.")
        if len(text) > 4096:
            return Rejection(100, "Param text.body must be at most 4096 characters long.")
        return None
    if kind in MEDIA_TYPES:
        has_id, has_link = isinstance(body.get("id"), str), isinstance(body.get("link"), str)
        if has_id == has_link:
            return Rejection(131008, f"{kind} needs exactly one of 'id' or 'link'.")
        if has_link and not body["link"].startswith(("http://", "https://")):
            return Rejection(131009, f"{kind}.link must be an http(s) URL.")
        if "caption" in body and (kind in ("audio", "sticker") or _too_long(body["caption"], 1024)):
            return Rejection(100, f"{kind}.caption is not allowed or longer than 1024.")
        return None
    if kind == "interactive":
        return _validate_interactive(body)
    if kind == "template":
        return _validate_template(body, templates)
    return Rejection(131009, f"Unsupported message type '{kind}'.")


def _validate_interactive(body: dict) -> Rejection | None:
    kind = body.get("type")
    action = body.get("action")
    if not isinstance(action, dict):
        return Rejection(131008, "interactive.action is required.")
    footer = body.get("footer")
    if footer is not None and (not isinstance(footer, dict) or _too_long(footer.get("text"), 60)):
        return Rejection(100, "interactive.footer.text must be at most 60 characters.")
    header = body.get("header")
    if header is not None and not isinstance(header, dict):
        return Rejection(100, "interactive.header must be an object.")
    text = (body.get("body") or {}).get("text") if isinstance(body.get("body"), dict) else None
    if kind == "list":
        return _validate_list(header, text, action)
    if kind == "button":
        return _validate_buttons(text, action)
    if kind == "flow":
        return _validate_flow(text, action)
    return Rejection(131009, f"Unsupported interactive type '{kind}'.")


def _validate_list(header, text, action: dict) -> Rejection | None:  # noqa: C901  (one rule a branch)
    if not isinstance(text, str) or not text or len(text) > 4096:
        return Rejection(100, "interactive.body.text is required, at most 4096 characters.")
    if header is not None and (header.get("type") != "text" or _too_long(header.get("text"), 60)):
        return Rejection(100, "A list header must be text of at most 60 characters.")
    if _too_long(action.get("button"), 20) or not action.get("button"):
        return Rejection(100, "action.button is required, at most 20 characters.")
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        return Rejection(100, "action.sections must have 1 to 10 sections.")
    rows_total, ids = 0, set()
    for section in sections:
        if not isinstance(section, dict) or not isinstance(section.get("rows"), list):
            return Rejection(100, "Each section needs rows.")
        # Meta's list page marks sections[].title required, at most 24 characters.
        if _too_long(section.get("title"), 24) or not section.get("title"):
            return Rejection(100, "Each section needs a title of at most 24 characters.")
        for row in section["rows"]:
            rows_total += 1
            if not isinstance(row, dict) or _too_long(row.get("id"), 200) or not row.get("id"):
                return Rejection(100, "Row id is required, at most 200 characters.")
            if row["id"] in ids:
                return Rejection(100, "Row ids must be unique.")
            ids.add(row["id"])
            if _too_long(row.get("title"), 24) or not row.get("title"):
                return Rejection(100, "Row title is required, at most 24 characters.")
            if "description" in row and _too_long(row["description"], 72):
                return Rejection(100, "Row description must be at most 72 characters.")
    if not 1 <= rows_total <= 10:
        return Rejection(100, "A list has 1 to 10 rows in total across all sections.")
    return None


def _validate_buttons(text, action: dict) -> Rejection | None:  # noqa: C901  (one rule a branch)
    if not isinstance(text, str) or not text or len(text) > 1024:
        return Rejection(100, "interactive.body.text is required, at most 1024 characters.")
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        return Rejection(100, "Reply buttons: 1 to 3 buttons.")
    titles, ids = set(), set()
    for button in buttons:
        reply = button.get("reply") if isinstance(button, dict) else None
        if button.get("type") != "reply" or not isinstance(reply, dict):
            return Rejection(100, "Each button must be of type 'reply'.")
        if _too_long(reply.get("title"), 20) or not reply.get("title"):
            return Rejection(100, "Button title is required, at most 20 characters.")
        if _too_long(reply.get("id"), 256) or not reply.get("id"):
            return Rejection(100, "Button id is required, at most 256 characters.")
        if reply["title"] in titles or reply["id"] in ids:
            return Rejection(100, "Button titles and ids must be unique.")
        titles.add(reply["title"])
        ids.add(reply["id"])
    return None


def _validate_flow(text, action: dict) -> Rejection | None:
    params = action.get("parameters")
    if action.get("name") != "flow" or not isinstance(params, dict):
        return Rejection(100, "A flow needs action.name 'flow' and parameters.")
    if not (params.get("flow_id") or params.get("flow_name")):
        return Rejection(131008, "flow_id or flow_name is required.")
    if _too_long(params.get("flow_cta"), 30) or not params.get("flow_cta"):
        return Rejection(100, "flow_cta is required, at most 30 characters.")
    if not isinstance(text, str) or not text:
        return Rejection(100, "interactive.body.text is required.")
    action_payload = params.get("flow_action_payload") or {}
    data = action_payload.get("data") if isinstance(action_payload, dict) else None
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                rejection = _validate_flow_items(key, value)
                if rejection is not None:
                    return rejection
    return None


# A selection's data-source in a Flow (CheckboxGroup, RadioButtonsGroup): at most 20 items,
# unique ids, titles of 30 characters, descriptions of 300
# (https://developers.facebook.com/docs/whatsapp/flows/reference/components).
FLOW_ITEMS, FLOW_ITEM_TITLE, FLOW_ITEM_DESCRIPTION = 20, 30, 300


def _validate_flow_items(key: str, items: list[dict]) -> Rejection | None:
    if len(items) > FLOW_ITEMS:
        return Rejection(100, f"data.{key}: at most {FLOW_ITEMS} items, got {len(items)}.")
    ids = set()
    for item in items:
        if _too_long(item.get("id"), 256) or not item.get("id") or item["id"] in ids:
            return Rejection(100, f"data.{key}: each item needs a unique id.")
        ids.add(item["id"])
        if _too_long(item.get("title"), FLOW_ITEM_TITLE) or not item.get("title"):
            return Rejection(100, f"data.{key}: titles are required, at most {FLOW_ITEM_TITLE}.")
        if "description" in item and _too_long(item["description"], FLOW_ITEM_DESCRIPTION):
            return Rejection(100, f"data.{key}: descriptions at most {FLOW_ITEM_DESCRIPTION}.")
    return None


def _validate_template(  # noqa: C901  (one rule a branch)
    body: dict, templates: dict[tuple[str, str], Template]
) -> Rejection | None:
    language = body.get("language")
    code = language.get("code") if isinstance(language, dict) else None
    template = templates.get((body.get("name"), code))
    if template is None or template.status != "approved":
        return Rejection(132001, "Template name does not exist in the translation.")
    components = body.get("components") or []
    if not isinstance(components, list):
        return Rejection(100, "template.components must be a list.")
    params: list = []
    header_params: list = []
    button_params: dict[int, list] = {}
    for component in components:
        if not isinstance(component, dict):
            return Rejection(100, "Each component must be an object.")
        if component.get("type") == "body":
            params = component.get("parameters") or []
        elif component.get("type") == "header":
            header_params = component.get("parameters") or []
        elif component.get("type") == "button" and component.get("sub_type") == "url":
            index = component.get("index")
            if not (isinstance(index, str | int) and str(index).isdigit()):
                return Rejection(100, "A button component needs its index.")
            button_params[int(index)] = component.get("parameters") or []
    names = template.body_names()
    if len(params) != len(names):
        return Rejection(132000, f"Expected {len(names)} body parameters, got {len(params)}.")
    for param in params:
        if not isinstance(param, dict) or param.get("type") != "text":
            return Rejection(132012, "Body parameters must be of type text.")
        value = param.get("text")
        if not isinstance(value, str) or not value:
            return Rejection(131008, "A text parameter is empty.")
        if _PARAM_BAD.search(value):
            return Rejection(132018, "Param text cannot have new-line/tab or more than 4 spaces.")
        if len(value) > 1024:
            return Rejection(132005, "Translated text too long.")
    # Named templates: every parameter says which {{name}} it fills
    # (https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-message-templates).
    if template.named and sorted(str(p.get("parameter_name")) for p in params) != sorted(names):
        return Rejection(132000, f"Body parameters must be named {', '.join(names)}.")
    header = template.header_kind()
    if header:
        if len(header_params) != 1 or header_params[0].get("type") != header:
            return Rejection(132012, f"The header needs one {header} parameter.")
    elif header_params:
        return Rejection(132000, "This template has no header parameters.")
    variables = template.url_variables()
    if set(button_params) != variables:
        return Rejection(132000, f"URL buttons with a variable: {sorted(variables) or 'none'}.")
    for values in button_params.values():
        if len(values) != 1 or not isinstance(values[0], dict) or not values[0].get("text"):
            return Rejection(132000, "A URL button takes one text parameter.")
    return None
