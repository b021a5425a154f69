"""A message template's shape: which parameters it takes, in which component (the sync, in
channel.graph.templates, stores what Meta lists; this reads it).

Meta lists each template's components (header, body, footer, buttons) with `{{1}}`-style
placeholders, or `{{name}}`-style ones when its `parameter_format` is NAMED
(https://developers.facebook.com/docs/whatsapp/business-management-api/message-templates).
A send must fill exactly those: the header's one text parameter, every body parameter, and
the variable suffix of each URL button
(https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-message-templates).
Rows typed by hand before the sync (no components) get the shape their old fields described.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from channel.models import MessageTemplate

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")

# Post fields a template parameter can show. A parameter named like a key is filled with that
# field when the sync first sees it (the editor may change the choice in the admin).
POST_FIELDS = ("title", "body", "link")
FIELD_FOR_NAME = {
    "title": "title",
    "titolo": "title",
    "headline": "title",
    "subject": "title",
    "oggetto": "title",
    "body": "body",
    "text": "body",
    "testo": "body",
    "summary": "body",
    "sommario": "body",
    "message": "body",
    "messaggio": "body",
    "content": "body",
    "contenuto": "body",
    "link": "link",
    "url": "link",
    "collegamento": "link",
}


@dataclass(frozen=True)
class Button:
    kind: str  # Meta's type: QUICK_REPLY, URL, PHONE_NUMBER, COPY_CODE, FLOW…
    text: str
    url: str = ""
    index: int = 0

    @property
    def url_prefix(self) -> str | None:
        """A URL button with a variable: the fixed part the post's link must start with (Meta
        appends the parameter to it). None for a fixed URL or another kind of button."""
        if self.kind != "URL" or not _PLACEHOLDER.search(self.url):
            return None
        return self.url[: _PLACEHOLDER.search(self.url).start()]


@dataclass(frozen=True)
class Shape:
    named: bool
    header_format: str  # "", TEXT, IMAGE, VIDEO, DOCUMENT, LOCATION; MEDIA: typed by hand, any
    header_text: str
    header_param: str | None  # the header text's placeholder, if it has one
    body_text: str
    body_params: tuple[str, ...]  # "1", "2"… or names, in the order Meta expects them
    footer: str
    buttons: tuple[Button, ...]

    @property
    def url_buttons(self) -> tuple[Button, ...]:
        return tuple(b for b in self.buttons if b.url_prefix is not None)


def placeholders(text: str, named: bool) -> tuple[str, ...]:
    """Distinct placeholders of a text: by number when positional, else in order of use."""
    seen = list(dict.fromkeys(_PLACEHOLDER.findall(text or "")))
    if named:
        return tuple(seen)
    return tuple(sorted(seen, key=lambda p: int(p) if p.isdigit() else 0))


def fill(text: str, values: dict[str, str]) -> str:
    """The text with each placeholder replaced by its value (unknown ones stay as they are)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text or "")


def shape_from_components(components: list, named: bool) -> Shape:
    parts = {"header_format": "", "header_text": "", "body_text": "", "footer": ""}
    buttons: list[Button] = []
    for component in components if isinstance(components, list) else []:
        if not isinstance(component, dict):
            continue
        kind = str(component.get("type", "")).upper()
        if kind == "HEADER":
            parts["header_format"] = str(component.get("format", "TEXT")).upper()
            parts["header_text"] = str(component.get("text") or "")
        elif kind == "BODY":
            parts["body_text"] = str(component.get("text") or "")
        elif kind == "FOOTER":
            parts["footer"] = str(component.get("text") or "")
        elif kind == "BUTTONS":
            for index, button in enumerate(component.get("buttons") or []):
                if isinstance(button, dict):
                    buttons.append(
                        Button(
                            kind=str(button.get("type", "")).upper(),
                            text=str(button.get("text") or ""),
                            url=str(button.get("url") or ""),
                            index=index,
                        )
                    )
    header_params = placeholders(parts["header_text"], named)
    return Shape(
        named=named,
        header_param=header_params[0] if header_params else None,
        body_params=placeholders(parts["body_text"], named),
        buttons=tuple(buttons),
        **parts,
    )


def template_shape(template: MessageTemplate) -> Shape:
    named = template.parameter_format == MessageTemplate.ParameterFormat.NAMED
    if template.components:
        return shape_from_components(template.components, named)
    # Typed by hand: a text header was the post's title, a media header the post's media.
    header = {"text": ("TEXT", "{{1}}", "1"), "media": ("MEDIA", "", None)}.get(
        template.header, ("", "", None)
    )
    return Shape(
        named=named,
        header_format=header[0],
        header_text=header[1],
        header_param=header[2],
        body_text=template.body_text,
        body_params=placeholders(template.body_text, named),
        footer="",
        buttons=(),
    )


def suggested_fields(shape: Shape) -> list[str]:
    """Which post field fills each body parameter, when nobody chose yet: by name when the
    template names them, else title then body (a single parameter: the body), then the link."""
    if shape.named:
        return [FIELD_FOR_NAME.get(name.lower(), "body") for name in shape.body_params]
    count = len(shape.body_params)
    if count == 1:
        return ["body"]
    return (["title", "body", "link"] + ["body"] * count)[:count]
