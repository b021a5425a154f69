"""A post's media file, uploaded to Meta once and sent by id (channel.graph.media).

An uploaded file (Post.media_file) is sent by its media id: Meta never fetches it from the
council's server, which needs no public URL for it. A link typed by the editor or given through
the API (Post.media_url) points at someone else's server and stays a link: Meta fetches it
(https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types).
"""

from __future__ import annotations

import mimetypes
from datetime import timedelta

from django.utils import timezone

from channel.graph.account import pause_sending
from channel.graph.errors import RETRIABLE, Handling
from channel.graph.media import MediaFile, MediaUploadError, media_id_for
from channel.models import MediaUpload
from topics.models import Post

# Types the name alone does not always give (mimetypes' table varies between systems).
_BY_EXTENSION = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "mp4": "video/mp4",
    "3gp": "video/3gpp",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "doc": "application/msword",
    "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}


def _key(post: Post) -> str:
    # A replaced file gets a new name in storage, so a new key: the old id is never sent for it.
    return f"post:{post.pk}:{post.media_file.name}"[:255]


def post_media_file(post: Post) -> MediaFile | None:
    """The post's uploaded file as something to send by id; None without one."""
    if not post.media_file:
        return None
    name = post.media_file.name
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    mime = _BY_EXTENSION.get(extension) or mimetypes.guess_type(name)[0] or ""

    def read() -> bytes:
        with post.media_file.open("rb") as file:
            return file.read()

    try:
        size = post.media_file.size
    except OSError:
        size = 0
    return MediaFile(
        key=_key(post),
        kind=post.media_kind or Post.MediaKind.DOCUMENT,
        mime_type=mime,
        filename=name.rsplit("/", 1)[-1],
        size=size,
        read=read,
    )


def post_media_id(post: Post) -> str:
    """The media id to send the post's file by ("" when it has no file: no media, or a link).
    Uploads it once (the first sender; the others wait for its id). Raises MediaUploadError."""
    media = post_media_file(post)
    return media_id_for(media) if media is not None else ""


def media_hold(error: MediaUploadError) -> tuple:
    """What the batch's deliveries become when the file cannot be uploaded (settling's `held`):
    failed when the file itself is refused, else queued again a minute later."""
    text = f"media upload failed: {error.text}"[:2000]
    if error.handling is Handling.ACCOUNT_PAUSE:
        pause_sending(code=error.code, reason=text)
    elif error.handling not in RETRIABLE or error.handling is Handling.MEDIA_GONE:
        return ("failed", 0, error.code, text)
    return ("queued", 60.0, error.code, text)


# A failure reported by a status webhook comes after the send: an upload younger than this is
# the new one, made since, and is kept.
_FRESH = timedelta(minutes=1)


def post_media_forget(post_ids) -> int:
    """Meta reported (by status webhook) that these posts' media are gone: upload again."""
    keys = [f"post:{pk}:" for pk in set(post_ids)]
    if not keys:
        return 0
    stale = MediaUpload.objects.filter(uploaded_at__lt=timezone.now() - _FRESH).exclude(media_id="")
    forgotten = 0
    for prefix in keys:
        forgotten += stale.filter(key__startswith=prefix).update(media_id="", expires_at=None)
    return forgotten
