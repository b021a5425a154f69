"""A post as WhatsApp messages: free-form inside the 24-hour window, a template outside it.

Used by the sender, the test send and the editors' preview, so what editors see is what is
sent. This module decides what a post says (its text, its media, the template's parameters);
channel.graph.payloads writes it in WhatsApp's wire format, within Meta's limits, and
channel.graph.window says whether a person's window is open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from channel.graph import payloads
from channel.models import MessageTemplate
from topics.models import Post


@dataclass(frozen=True)
class Recipient:
    wa_id: str | None
    user_id: str | None
    language: str
    last_inbound_at: datetime | None
    marketing_opt_out: bool = False

    @property
    def to(self) -> str:
        """The phone number when we have it, else the business-scoped user id."""
        return self.wa_id or self.user_id


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


def free_form_payload(post: Post, recipient: Recipient) -> dict:
    """The media with the text as its caption when the text fits one; else the text alone,
    with the media's link at its end."""
    text = free_form_text(post)
    link = media_link(post)
    if link and len(text) <= payloads.LIMITS["caption"]:
        kind = post.media_kind or Post.MediaKind.IMAGE
        filename = ""
        if kind == Post.MediaKind.DOCUMENT:
            filename = link.rsplit("/", 1)[-1][: payloads.LIMITS["filename"]] or "documento"
        return payloads.media(recipient.to, kind, link, caption=text, filename=filename)
    if link:  # too long for a caption: the media travels as a link, the text stays whole
        text = f"{text}\n\n{link}"
    preview = bool(post.link or link)
    return payloads.text(recipient.to, text[: payloads.LIMITS["text"]], preview_url=preview)


def template_parameters(post: Post, template: MessageTemplate) -> list[str]:
    values = {"title": post.title, "body": post.body, "link": post.link or settings.SITE_URL}
    return [payloads.flatten_parameter(values.get(name, "")) for name in template.body_parameters]


def template_payload(post: Post, recipient: Recipient, template: MessageTemplate) -> dict:
    header = None
    if template.header == MessageTemplate.Header.TEXT:
        header = payloads.text_parameter(post.title[: payloads.LIMITS["header"]])
    elif template.header == MessageTemplate.Header.MEDIA and media_link(post):
        kind = post.media_kind or Post.MediaKind.IMAGE
        header = payloads.media_parameter(kind, media_link(post))
    parameters = template_parameters(post, template)
    return payloads.template(
        recipient.to, template.name, template.language, parameters, header=header
    )


def template_preview_text(post: Post, template: MessageTemplate) -> str:
    """The template's approved wording with the post's parameters filled in."""
    text = template.body_text
    for index, value in enumerate(template_parameters(post, template), start=1):
        text = text.replace("{{" + str(index) + "}}", value)
    return text
