"""Checks on a post before it is saved: text length, and media WhatsApp will accept.

Meta's limits: a text holds 4,096 characters, a caption 1,024; images are JPEG/PNG up to
5 MB, videos MP4 (H.264 video, AAC audio) up to 16 MB, documents up to 100 MB
(https://developers.facebook.com/docs/whatsapp/cloud-api/messages/text-messages and
https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types).
Sizes are checked in decimal megabytes, the stricter reading, so a file we accept is never one
Meta refuses for its size. The type is read from the file's first bytes, not from its name or
the browser's say-so (a mismatched type fails at Meta with 131053).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from channel.graph.payloads import LIMITS as WHATSAPP_LIMITS
from channel.graph.payloads import MEDIA_UPLOADS
from topics.models import POST_BODY_MAX, Post

Kind = Post.MediaKind
MB = 1000 * 1000


@dataclass(frozen=True)
class MediaRule:
    max_bytes: int
    extensions: tuple[str, ...]
    described: object  # what an editor should upload, shown in errors and help texts


RULES: dict[str, MediaRule] = {
    # Meta's sizes, one place (channel.graph.payloads.MEDIA_UPLOADS, also checked at upload).
    Kind.IMAGE: MediaRule(
        MEDIA_UPLOADS["image"][1], ("jpg", "jpeg", "png"), gettext_lazy("JPEG or PNG, up to 5 MB")
    ),
    Kind.VIDEO: MediaRule(
        MEDIA_UPLOADS["video"][1],
        ("mp4",),
        gettext_lazy("MP4 (H.264 video, AAC audio), up to 16 MB"),
    ),
    Kind.DOCUMENT: MediaRule(
        MEDIA_UPLOADS["document"][1],
        ("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt"),
        gettext_lazy("PDF, Word, Excel, PowerPoint or text, up to 100 MB"),
    ),
}

# Shown next to the text box and used by the live counter (static/subscribers/post_compose.js).
LIMITS = {
    "body": POST_BODY_MAX,
    "caption": WHATSAPP_LIMITS["caption"],
    "template_parameter": WHATSAPP_LIMITS["parameter"],
}


def normalise_body(text: str) -> str:
    """Browsers send line breaks as CR LF; WhatsApp and the counter see one character each."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _sniff(head: bytes, extension: str) -> str | None:
    """The media kind a file's first bytes say it is, or None when it is none we may send."""
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")):
        return Kind.IMAGE
    if head[4:8] == b"ftyp":  # ISO base media: MP4 (and 3GPP, which we do not offer)
        return Kind.VIDEO if extension == "mp4" else None
    if head.startswith(b"%PDF"):
        return Kind.DOCUMENT
    if head.startswith(b"\xd0\xcf\x11\xe0") and extension in ("doc", "xls", "ppt"):
        return Kind.DOCUMENT  # the old Office formats
    if head.startswith(b"PK\x03\x04") and extension in ("docx", "xlsx", "pptx"):
        return Kind.DOCUMENT  # Office Open XML is a zip
    if extension == "txt" and b"\x00" not in head:
        return Kind.DOCUMENT
    return None


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def media_file_kind(file, declared: str) -> str:
    """Check an uploaded file against Meta's limits; return its kind (the declared one, or the
    one read from the file when the editor left it empty). Raises ValidationError for the
    editor, naming what is wrong and what would be accepted."""
    extension = _extension(file.name or "")
    position = file.tell() if hasattr(file, "tell") else 0
    file.seek(0)
    head = file.read(16)
    file.seek(position)
    kind = _sniff(head, extension)
    if kind is None:
        raise ValidationError(
            _(
                "WhatsApp cannot send this file. Accepted: images %(image)s; videos %(video)s; "
                "documents %(document)s."
            )
            % {k: RULES[k].described for k in ("image", "video", "document")},
            code="media_type",
        )
    if extension not in RULES[kind].extensions:
        # The file is served by its name's type: a mismatch fails at Meta (131053).
        raise ValidationError(
            _("The file's name ends in “.%(ext)s” but it is a %(actual)s: rename or convert it.")
            % {"ext": extension, "actual": Kind(kind).label},
            code="media_extension",
        )
    if declared and declared != kind:
        raise ValidationError(
            _("This file is a %(actual)s, but “media type” says %(declared)s.")
            % {"actual": Kind(kind).label, "declared": Kind(declared).label},
            code="media_kind_mismatch",
        )
    rule = RULES[kind]
    if file.size > rule.max_bytes:
        raise ValidationError(
            _("The file is %(size)s MB: WhatsApp accepts a %(kind)s of at most %(max)s MB.")
            % {
                "size": f"{file.size / MB:.1f}".replace(".", ","),
                "kind": Kind(kind).label,
                "max": rule.max_bytes // MB,
            },
            code="media_size",
        )
    return kind


def media_url_kind(url: str, declared: str, *, saved_file: bool = False) -> str:
    """The kind of a media link, from its file name when it has one. The file behind a link is
    not fetched here: Meta fetches it when sending, and refuses it if it breaks the limits."""
    extension = _extension(urlsplit(url).path)
    by_extension = next(
        (kind for kind, rule in RULES.items() if extension in rule.extensions), None
    )
    if declared and by_extension and declared != by_extension:
        message = (
            _("The saved file is a %(actual)s (.%(ext)s), but “media type” says %(declared)s.")
            if saved_file
            else _(
                "The link points to a %(actual)s (.%(ext)s), but “media type” says %(declared)s."
            )
        )
        raise ValidationError(
            message
            % {
                "actual": Kind(by_extension).label,
                "ext": extension,
                "declared": Kind(declared).label,
            },
            code="media_kind_mismatch",
        )
    kind = declared or by_extension
    if not kind:
        raise ValidationError(
            _("Say whether the link is an image, a video or a document (“media type”)."),
            code="media_kind_missing",
        )
    return kind
