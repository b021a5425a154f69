"""A post as WhatsApp messages: free-form inside the 24-hour window, a template outside it.

Used by the sender, the test send and the editors' preview, so what editors see is what is
sent. This module decides what a post says (its text, its media, the template's parameters);
channel.graph.payloads writes it in WhatsApp's wire format, within Meta's limits, and
channel.graph.window says whether a person's window is open.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils.translation import gettext as _

from channel.graph import payloads
from channel.graph.template_shapes import Shape, template_shape
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
        is_default=True, status=MessageTemplate.Status.APPROVED, gone_at__isnull=True
    )
    by_language = {t.language.split("_")[0]: t for t in templates}
    return by_language.get(language) or by_language.get("it")


def media_link(post: Post) -> str:
    if post.media_url:
        return post.media_url
    if post.media_file:
        return f"{settings.SITE_URL}{post.media_file.url}"
    return ""


def in_language(post: Post, language: str) -> Post:
    """The post as a person who chose `language` reads it: its English version, when it has
    one, for English; the Italian otherwise."""
    if language == "en" and post.title_en.strip():
        english = copy.copy(post)
        english.title, english.body = post.title_en, post.body_en or post.body
        return english
    return post


def free_form_text(post: Post) -> str:
    parts = [f"*{post.title}*", post.body.strip()]
    if post.link:
        parts.append(post.link)
    return "\n\n".join(part for part in parts if part)


def free_form_payload(post: Post, recipient: Recipient) -> dict:
    """The media with the text as its caption when the text fits one; else the text alone,
    with the media's link at its end."""
    post = in_language(post, recipient.language)
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


class TemplateMismatch(ValueError):
    """The template cannot carry this post; the message says why, for the editor."""


@dataclass(frozen=True)
class TemplateFill:
    """A post's fields on a template's parameters, component by component."""

    template: MessageTemplate
    shape: Shape
    header: dict | None  # the header's wire parameter
    header_values: dict[str, str]  # placeholder → value, for the preview
    body: dict[str, str]  # placeholder → value, in the order Meta expects
    buttons: list[tuple[int, str]]  # URL buttons: index → the link's variable part


def _link_suffix(post: Post, template: MessageTemplate, prefix: str) -> str:
    """The part of the post's link a URL button appends to its fixed prefix. Never our own
    address: a post without a link cannot use a template whose button needs one."""
    if not post.link:
        raise TemplateMismatch(
            _(
                "The template “%(name)s” has a link button, and this post has no link: add "
                "a link to the post, or mark a template without a link button for posts."
            )
            % {"name": template.name}
        )
    if not post.link.startswith(prefix) or len(post.link) == len(prefix):
        raise TemplateMismatch(
            _("The template “%(name)s” opens links starting with %(prefix)s only.")
            % {"name": template.name, "prefix": prefix}
        )
    return post.link[len(prefix) :]


def template_fill(post: Post, template: MessageTemplate) -> TemplateFill:
    """Header text parameter ← the title; body parameters ← the fields chosen on the template
    (`body_parameters`, one per placeholder); URL button ← the post's link. Raises
    TemplateMismatch when the post cannot fill the template."""
    shape = template_shape(template)
    if len(template.body_parameters) != len(shape.body_params):
        raise TemplateMismatch(
            _("The template “%(name)s” has %(n)s body parameters and %(m)s post fields chosen.")
            % {
                "name": template.name,
                "n": len(shape.body_params),
                "m": len(template.body_parameters),
            }
        )
    values = {"title": post.title, "body": post.body}
    body = {}
    for placeholder, field in zip(shape.body_params, template.body_parameters, strict=True):
        if field == "link":
            if not post.link:
                raise TemplateMismatch(
                    _("The template “%(name)s” shows the post's link, and this post has none.")
                    % {"name": template.name}
                )
            body[placeholder] = post.link
        else:
            body[placeholder] = payloads.flatten_parameter(values.get(field, ""))
    header, header_values = None, {}
    if shape.header_param is not None:
        title = payloads.flatten_parameter(post.title)[: payloads.LIMITS["header"]]
        header_values = {shape.header_param: title}
        header = payloads.text_parameter(title, shape.header_param if shape.named else "")
    elif shape.header_format in ("IMAGE", "VIDEO", "DOCUMENT", "MEDIA"):
        link, kind = media_link(post), post.media_kind or Post.MediaKind.IMAGE
        wanted = kind if shape.header_format == "MEDIA" else shape.header_format.lower()
        if not link or wanted != kind:
            raise TemplateMismatch(
                _("The template “%(name)s” shows a %(kind)s at the top: add one to the post.")
                % {"name": template.name, "kind": Post.MediaKind(wanted).label}
            )
        header = payloads.media_parameter(kind, link)
    buttons = [
        (button.index, _link_suffix(post, template, button.url_prefix))
        for button in shape.url_buttons
    ]
    return TemplateFill(template, shape, header, header_values, body, buttons)


def template_problem(post: Post, template: MessageTemplate) -> str:
    """Why this post cannot go out as this template, or "" when it can."""
    try:
        template_fill(post, template)
    except TemplateMismatch as exc:
        return str(exc)
    return ""


def template_payload(post: Post, recipient: Recipient, template: MessageTemplate) -> dict:
    filled = template_fill(in_language(post, recipient.language), template)
    body = filled.body if filled.shape.named else list(filled.body.values())
    return payloads.template(
        recipient.to,
        template.name,
        template.language,
        body,
        header=filled.header,
        url_buttons=filled.buttons,
    )
