"""A post as WhatsApp messages: free-form inside the 24-hour window, a template outside it.

Used by the sender and by the editors' preview, so what editors see is what is sent.
Rules from whatsapp-cloud-api.md §2.1 (text ≤4,096, captions ≤1,024), §2.5 (window),
§3 (template parameters: no newlines, tabs or more than four spaces in a row).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from channel.models import MessageTemplate
from topics.models import Post

# A little short of 24 h: the window is measured by Meta's clock when the message arrives.
WINDOW = timedelta(hours=24) - timedelta(minutes=5)
MAX_CAPTION = 1024
MAX_PARAMETER = 1024
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Recipient:
    wa_id: str | None
    user_id: str | None
    language: str
    last_inbound_at: datetime | None
    marketing_opt_out: bool = False


def in_window(last_inbound_at: datetime | None, now: datetime | None = None) -> bool:
    return last_inbound_at is not None and last_inbound_at > (now or timezone.now()) - WINDOW


def window_cutoff(now: datetime | None = None) -> datetime:
    """People whose last message is after this are inside the window."""
    return (now or timezone.now()) - WINDOW


def default_template(language: str) -> MessageTemplate | None:
    """The approved template for posts in this language, else the Italian one."""
    templates = MessageTemplate.objects.filter(
        is_default=True, status=MessageTemplate.Status.APPROVED
    )
    by_language = {t.language.split("_")[0]: t for t in templates}
    return by_language.get(language) or by_language.get("it")


def media_link(post: Post) -> str:
    if post.media_url:
        return post.media_url
    if post.media_file:
        return f"{settings.SITE_URL}{post.media_file.url}"
    return ""


def free_form_text(post: Post) -> str:
    parts = [f"*{post.title}*", post.body.strip()]
    if post.link:
        parts.append(post.link)
    return "\n\n".join(part for part in parts if part)


def flatten_parameter(value: str) -> str:
    """Meta rejects template parameters with newlines, tabs or 5+ spaces (error 132018)."""
    flat = _SPACES.sub(" ", value).strip() or "-"
    return flat if len(flat) <= MAX_PARAMETER else flat[: MAX_PARAMETER - 1] + "…"


def _address(recipient: Recipient) -> dict:
    if recipient.wa_id:
        return {"to": recipient.wa_id}
    # Username-only people are addressed by their business-scoped user id (doc §1.7).
    return {"recipient": recipient.user_id}


def free_form_payload(post: Post, recipient: Recipient) -> dict:
    payload = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    payload |= _address(recipient)
    text = free_form_text(post)
    link = media_link(post)
    if link and len(text) <= MAX_CAPTION:
        kind = post.media_kind or Post.MediaKind.IMAGE
        media = {"link": link, "caption": text}
        if kind == Post.MediaKind.DOCUMENT:
            media["filename"] = link.rsplit("/", 1)[-1][:200] or "documento"
        return payload | {"type": kind, kind: media}
    if link:  # too long for a caption: the media travels as a link, the text stays whole
        text = f"{text}\n\n{link}"
    preview = bool(post.link or link)
    return payload | {"type": "text", "text": {"body": text[:4096], "preview_url": preview}}


def template_parameters(post: Post, template: MessageTemplate) -> list[str]:
    values = {"title": post.title, "body": post.body, "link": post.link or settings.SITE_URL}
    return [flatten_parameter(values.get(name, "")) for name in template.body_parameters]


def template_payload(post: Post, recipient: Recipient, template: MessageTemplate) -> dict:
    components = []
    if template.header == MessageTemplate.Header.TEXT:
        components.append(
            {"type": "header", "parameters": [{"type": "text", "text": post.title[:60]}]}
        )
    elif template.header == MessageTemplate.Header.MEDIA and media_link(post):
        kind = post.media_kind or Post.MediaKind.IMAGE
        components.append(
            {"type": "header", "parameters": [{"type": kind, kind: {"link": media_link(post)}}]}
        )
    parameters = template_parameters(post, template)
    if parameters:
        components.append(
            {"type": "body", "parameters": [{"type": "text", "text": p} for p in parameters]}
        )
    body = {"name": template.name, "language": {"code": template.language}}
    if components:
        body["components"] = components
    payload = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    return payload | _address(recipient) | {"type": "template", "template": body}


def template_preview_text(post: Post, template: MessageTemplate) -> str:
    """The template's approved wording with the post's parameters filled in."""
    text = template.body_text
    for index, value in enumerate(template_parameters(post, template), start=1):
        text = text.replace("{{" + str(index) + "}}", value)
    return text
