"""A message as WhatsApp shows it, in HTML: the one renderer of the desk's preview and the chat
simulator.

WhatsApp's formatting (https://faq.whatsapp.com/539178204879377): *bold*, _italic_, ~strike~
and ```monospace```. The text is HTML-escaped first and only then formatted, so nothing a post,
a citizen or a template says can become markup.
"""

from __future__ import annotations

import re

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from channel.graph.template_shapes import Shape, fill

_MONO = re.compile(r"```(.+?)```", re.DOTALL)
# A marker pair around text that starts and ends with a non-space, not inside a word
# (snake_case and 2*3*4 stay as they are), on one line.
_STYLES = [
    (re.compile(rf"(?<![\w{m}]){m}(?=\S)([^\n]*?\S){m}(?![\w{m}])"), tag)
    for m, tag in ((r"\*", "strong"), ("_", "em"), ("~", "s"))
]


def _styled(escaped: str) -> str:
    for pattern, tag in _STYLES:
        escaped = pattern.sub(rf"<{tag}>\1</{tag}>", escaped)
    return escaped


def formatted(text: str) -> SafeString:
    """The text as WhatsApp formats it, as safe HTML (newlines kept: show it pre-wrap)."""
    out, last = [], 0
    for match in _MONO.finditer(text or ""):
        out.append(_styled(escape(text[last : match.start()])))
        out.append(f"<code>{escape(match.group(1))}</code>")
        last = match.end()
    out.append(_styled(escape((text or "")[last:])))
    return mark_safe("".join(out))  # noqa: S308  (every piece escaped above)


def template_bubble(
    shape: Shape,
    body_values: dict[str, str],
    header_values: dict[str, str] | None = None,
    media: str = "",
) -> SafeString:
    """A template message: header (its text with the title, or the media), body, footer and
    buttons, each placeholder filled with its value."""
    parts = []
    if shape.header_format == "TEXT":
        header = fill(shape.header_text, header_values or {})
        parts.append(format_html('<div class="wa-header">{}</div>', formatted(header)))
    elif shape.header_format:
        kind = shape.header_format.lower()
        parts.append(format_html('<div class="wa-media">[{}] {}</div>', kind, media))
    parts.append(
        format_html('<div class="wa-body">{}</div>', formatted(fill(shape.body_text, body_values)))
    )
    if shape.footer:
        parts.append(format_html('<div class="wa-footer">{}</div>', shape.footer))
    if shape.buttons:
        icons = {"URL": "↗", "PHONE_NUMBER": "✆", "QUICK_REPLY": "↩", "COPY_CODE": "⧉"}
        parts.append(
            format_html(
                '<div class="wa-buttons">{}</div>',
                format_html_join(
                    "",
                    '<div class="wa-button" data-kind="{}">{} {}</div>',
                    ((b.kind, icons.get(b.kind, "•"), b.text) for b in shape.buttons),
                ),
            )
        )
    return mark_safe("".join(parts))  # noqa: S308  (each part built by format_html)


def sent_values(shape: Shape, template: dict) -> tuple[dict[str, str], dict[str, str]]:
    """From a template message as sent (its `components`): the header's and the body's values
    by placeholder, positional or named."""
    header, body = {}, {}
    for component in template.get("components") or []:
        if not isinstance(component, dict):
            continue
        params = [p for p in component.get("parameters") or [] if isinstance(p, dict)]
        if component.get("type") == "body":
            names = shape.body_params
            for n, param in enumerate(params):
                key = param.get("parameter_name") or (names[n] if n < len(names) else str(n + 1))
                body[str(key)] = str(param.get("text", ""))
        elif component.get("type") == "header" and shape.header_param and params:
            header[shape.header_param] = str(params[0].get("text", ""))
    return header, body
