"""Media uploaded to Meta once, then sent by its id to every recipient.

Sent by link, Meta fetches the file from our server for each message; uploaded, it fetches
nothing and the send is a few bytes. Meta keeps an upload 30 days (MEDIA_ID_DAYS), so an id is
used until a day before then and the file is uploaded again; Meta saying the id is gone
(131053, channel.graph.errors: Handling.MEDIA_GONE) makes `media_forget` drop it, and the next
send uploads again.
https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media

Two senders of the same file never upload it twice: the row's `claimed_at` is a
compare-and-set (one UPDATE that only succeeds while nobody holds it and the file still needs
uploading), the loser waits for the winner's id. Works the same on PostgreSQL and SQLite, and
no database transaction stays open while the file travels.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import ip_address
from urllib.parse import urljoin, urlsplit

import httpx
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from channel.graph.errors import Handling, handling_for
from channel.graph.payloads import MEDIA_ID_DAYS, media_upload_form, media_upload_problem
from channel.graph.rest import graph_request, graph_url
from channel.models import MediaUpload

# An id this close to Meta's expiry is not used: a broadcast that starts with it must not see
# it vanish half-way.
RENEW_BEFORE = timedelta(days=1)
# An upload claimed longer ago than this was abandoned (its process died): another may claim.
CLAIM_STALE = timedelta(minutes=10)
UPLOAD_TIMEOUT = 300.0  # seconds: 100 MB over a slow office line
WAIT_POLL = 0.2


class MediaUploadError(Exception):
    """The file could not be uploaded; `handling` says whether trying later can help."""

    def __init__(self, text: str, *, code: int | None = None, handling: Handling) -> None:
        super().__init__(text)
        self.text, self.code, self.handling = text, code, handling


class MediaFetchError(MediaUploadError):
    """The file behind a link could not be fetched (the link itself may still work for Meta)."""

    def __init__(self, text: str) -> None:
        super().__init__(text, handling=Handling.TRANSIENT)


@dataclass(frozen=True)
class MediaFile:
    """A file to upload: `key` names it for good (a new file needs a new key). `mime_type` ""
    and `size` 0: not known before reading (a link); the file's first bytes say the type."""

    key: str
    kind: str  # image, video, document, audio, sticker
    mime_type: str
    filename: str
    size: int
    read: Callable[[], bytes]


_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"%PDF", "application/pdf"),
    (b"OggS", "audio/ogg"),
    (b"ID3", "audio/mpeg"),
    (b"#!AMR", "audio/amr"),
)


def sniff_mime(content: bytes) -> str:
    """The MIME type a file's first bytes say, for the types Meta takes ("" when unsure)."""
    for magic, mime in _MAGIC:
        if content.startswith(magic):
            return mime
    if content[4:8] == b"ftyp":
        return "video/3gpp" if content[8:11] == b"3gp" else "video/mp4"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return ""


def _refuse_private(host: str, port: int) -> None:
    """Never fetch from inside the council's network (a link could name an internal
    service): every address the name resolves to must be a public one."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port)}
    except OSError as exc:
        raise MediaFetchError(f"cannot resolve {host}: {exc}") from None
    if not addresses or not all(ip_address(a.split("%")[0]).is_global for a in addresses):
        raise MediaFetchError(f"{host} is not a public address")


def fetch_file(url: str, max_bytes: int, *, trusted_host: str = "") -> bytes:
    """The file behind a link, to upload it: http(s) only, at most `max_bytes`, each redirect
    checked like the link; only `trusted_host` (the council's own site) may be private."""
    for _hop in range(4):  # the link and up to 3 redirects
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MediaFetchError("not an http(s) link")
        if parts.hostname != trusted_host:
            _refuse_private(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        try:
            with httpx.stream("GET", url, timeout=30.0, follow_redirects=False) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                if response.status_code != 200:
                    raise MediaFetchError(f"the link answered HTTP {response.status_code}")
                if int(response.headers.get("content-length") or 0) > max_bytes:
                    raise MediaFetchError(f"the file is over {max_bytes:,} bytes")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaFetchError(f"the file is over {max_bytes:,} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise MediaFetchError(f"the link did not answer: {type(exc).__name__}") from None
    raise MediaFetchError("too many redirects")


def _needs_upload(now) -> Q:
    return Q(media_id="") | Q(expires_at__isnull=True) | Q(expires_at__lte=now + RENEW_BEFORE)


def media_id_for(media: MediaFile, *, wait: float = UPLOAD_TIMEOUT + 30) -> str:
    """The file's media id at Meta, uploading it first when there is none valid. Raises
    MediaUploadError (a bad file, Meta refused it, or another process's upload outlasted
    `wait` seconds)."""
    if media.mime_type and media.size:  # known before reading: refuse before anything else
        problem = media_upload_problem(media.kind, media.mime_type, media.size)
        if problem:
            raise MediaUploadError(problem, handling=Handling.INVALID)
    row, _ = MediaUpload.objects.get_or_create(
        key=media.key,
        defaults={"kind": media.kind, "mime_type": media.mime_type, "size": media.size},
    )
    rows = MediaUpload.objects.filter(pk=row.pk)
    deadline = time.monotonic() + wait
    while True:
        now = timezone.now()
        current = rows.exclude(_needs_upload(now)).values_list("media_id", flat=True).first()
        if current:
            return current
        free = Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_STALE)
        if rows.filter(free).filter(_needs_upload(now)).update(claimed_at=now):
            return _upload(rows, media, now)
        if time.monotonic() > deadline:
            raise MediaUploadError(
                "another process is still uploading this file", handling=Handling.TRANSIENT
            )
        time.sleep(WAIT_POLL)


def _upload(rows, media: MediaFile, now) -> str:
    """Upload while holding the claim; always release it."""
    media_id = ""
    error: MediaUploadError | None = None
    try:
        content = media.read()
        mime = media.mime_type or sniff_mime(content)
        problem = media_upload_problem(media.kind, mime, len(content))
        if problem:
            raise MediaUploadError(problem, handling=Handling.INVALID)
        answer = graph_request(
            "POST",
            graph_url(settings.WHATSAPP_PHONE_NUMBER_ID, "media"),
            data=media_upload_form(media.kind, mime, len(content)),
            files={"file": (media.filename, content, mime)},
            timeout=UPLOAD_TIMEOUT,
        )
        media_id = answer.body.get("id") if answer.ok else ""
        if not isinstance(media_id, str) or not media_id:
            media_id = ""
            text = answer.error_text or f"HTTP {answer.status}: no media id in the answer"
            handling = handling_for(answer.error_code, answer.status)
            error = MediaUploadError(text, code=answer.error_code, handling=handling)
    except MediaUploadError as exc:  # refused before upload, or a link that did not give it
        error = exc
    except OSError as exc:  # the file is gone from storage
        error = MediaUploadError(f"cannot read the file: {exc}", handling=Handling.INVALID)
    finally:
        if media_id:
            rows.update(
                media_id=media_id,
                uploaded_at=now,
                expires_at=now + timedelta(days=MEDIA_ID_DAYS),
                claimed_at=None,
                uploads=F("uploads") + 1,
                last_error="",
            )
        else:
            rows.update(claimed_at=None, last_error=str(error or "upload interrupted")[:2000])
    if error is not None:
        raise error
    return media_id


def media_forget(media_ids: Iterable[str]) -> int:
    """Meta said these ids are gone: the next send uploads the file again. By id, so a file
    already uploaded again meanwhile (a new id) is kept."""
    ids = [i for i in set(media_ids) if i]
    if not ids:
        return 0
    return MediaUpload.objects.filter(media_id__in=ids).update(media_id="", expires_at=None)
