"""A post's media, uploaded to Meta once and sent by id (channel.graph.media).

An uploaded file (Post.media_file) is sent by its media id: Meta never fetches it from the
council's server, which needs no public URL for it. A link typed by the editor or given through
the API (Post.media_url) is fetched once by the first sender and uploaded the same way; when it
cannot be fetched from here (down, private, too big) it stays a link and Meta fetches it
(https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types).
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from channel.graph.account import pause_sending
from channel.graph.errors import RETRIABLE, Handling
from channel.graph.media import (
    MediaFetchError,
    MediaFile,
    MediaUploadError,
    fetch_file,
    media_id_for,
)
from channel.graph.payloads import MEDIA_UPLOADS
from channel.models import MediaUpload
from channel.redis_client import redis_client
from topics.models import Post

logger = logging.getLogger(__name__)
# A link that could not be fetched is not tried again for this long: its post goes by link.
LINK_RETRY_SECONDS = 600

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


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _link_file(post: Post) -> MediaFile:
    url = post.media_url
    kind = post.media_kind or Post.MediaKind.IMAGE
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    largest = MEDIA_UPLOADS.get(kind, (None, 0))[1]
    # The council's own site may be on its private network; any other host must be public.
    trusted = urlsplit(settings.SITE_URL).hostname or ""
    return MediaFile(
        key=f"post:{post.pk}:link:{hashlib.sha256(url.encode()).hexdigest()[:40]}",
        kind=kind,
        mime_type=_BY_EXTENSION.get(_extension(name), ""),  # "": from the file's first bytes
        filename=name or "file",
        size=0,
        read=lambda: fetch_file(url, largest, trusted_host=trusted),
    )


def post_media_file(post: Post) -> MediaFile | None:
    """The post's file or link as something to send by id; None without media."""
    if not post.media_file:
        return _link_file(post) if post.media_url else None
    name = post.media_file.name
    mime = _BY_EXTENSION.get(_extension(name)) or mimetypes.guess_type(name)[0] or ""

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
    """The media id to send the post's media by ("" without media, or for a link that could
    not be fetched: it goes as a link). Uploads it once (the first sender; the others wait for
    its id). Raises MediaUploadError when Meta refuses the file."""
    media = post_media_file(post)
    if media is None:
        return ""
    if post.media_file:
        return media_id_for(media)
    failed = f"banditore:media:link-failed:{media.key}"
    if redis_client().exists(failed):
        return ""
    try:
        return media_id_for(media)
    except MediaUploadError as error:
        if error.code is not None and not isinstance(error, MediaFetchError):
            raise  # Meta refused the file: it would refuse the link too
        # Not fetched from here, or not a type we can tell: Meta may still fetch the link.
        logger.warning("post %s: media link not uploaded, sent as a link: %s", post.pk, error)
        redis_client().set(failed, error.text[:200], ex=LINK_RETRY_SECONDS)
        return ""


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
