"""Meta's rules for media uploads (POST /{phone-number-id}/media) and media ids in sends, as the
fake applies them; self-contained like validation.py, for the same reason."""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass

from channel.fakegraph.validation import MEDIA_TYPES, Rejection

# POST /{phone-number-id}/media: what Meta takes, by MIME type → (kind, largest file in bytes)
# (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types).
_MB = 1000 * 1000
UPLOAD_TYPES: dict[str, tuple[str, int]] = {
    "image/jpeg": ("image", 5 * _MB),
    "image/png": ("image", 5 * _MB),
    "video/mp4": ("video", 16 * _MB),
    "video/3gpp": ("video", 16 * _MB),
    "audio/aac": ("audio", 16 * _MB),
    "audio/amr": ("audio", 16 * _MB),
    "audio/mpeg": ("audio", 16 * _MB),
    "audio/mp4": ("audio", 16 * _MB),
    "audio/ogg": ("audio", 16 * _MB),
    "image/webp": ("sticker", 500 * 1000),
    "text/plain": ("document", 100 * _MB),
    "application/pdf": ("document", 100 * _MB),
    "application/msword": ("document", 100 * _MB),
    "application/vnd.ms-excel": ("document", 100 * _MB),
    "application/vnd.ms-powerpoint": ("document", 100 * _MB),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (
        "document",
        100 * _MB,
    ),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ("document", 100 * _MB),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": (
        "document",
        100 * _MB,
    ),
}


@dataclass(frozen=True)
class Upload:
    mime_type: str
    kind: str
    size: int
    filename: str


def validate_upload(content_type: str, body: bytes) -> Upload | Rejection:  # noqa: C901
    """A multipart/form-data upload as Meta checks it: messaging_product, a file, its type
    among the supported ones and within that type's size."""
    if not content_type.lower().startswith("multipart/form-data"):
        return Rejection(100, "The upload must be multipart/form-data.")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body
    )
    if not message.is_multipart():
        return Rejection(100, "The upload must be multipart/form-data.")
    fields: dict[str, str] = {}
    file = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name == "file":
            file = part
        elif name:
            fields[name] = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    if fields.get("messaging_product") != "whatsapp":
        return Rejection(100, "The parameter messaging_product is required.")
    if file is None:
        return Rejection(100, "The parameter file is required.")
    content = file.get_payload(decode=True) or b""
    mime = fields.get("type") or file.get_content_type()
    if mime not in UPLOAD_TYPES:
        return Rejection(
            100,
            f"Param file must be a file with one of the following types: "
            f"{', '.join(sorted(UPLOAD_TYPES))}. Received file of type '{mime}'.",
        )
    kind, largest = UPLOAD_TYPES[mime]
    if not content:
        return Rejection(131053, "Media upload error: the file is empty.")
    if len(content) > largest:
        return Rejection(
            131053,
            f"Media upload error: {kind} files can be at most {largest} bytes, "
            f"this one is {len(content)}.",
        )
    return Upload(mime, kind, len(content), file.get_filename() or "")


def media_ids(payload) -> list[tuple[str, str]]:
    """(kind, media id) of every uploaded media a send refers to (a media message, or a
    template's media header)."""
    if not isinstance(payload, dict):
        return []
    kind = payload.get("type")
    found = []
    if kind in MEDIA_TYPES and isinstance(payload.get(kind), dict):
        found.append((kind, payload[kind].get("id")))
    if kind == "template" and isinstance(payload.get("template"), dict):
        for component in payload["template"].get("components") or []:
            for param in (component or {}).get("parameters") or []:
                if isinstance(param, dict) and param.get("type") in MEDIA_TYPES:
                    body = param.get(param["type"])
                    found.append(
                        (param["type"], body.get("id") if isinstance(body, dict) else None)
                    )
    return [(k, i) for k, i in found if isinstance(i, str)]
