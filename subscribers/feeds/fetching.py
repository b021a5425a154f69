"""Fetching a feed over HTTP: conditional GET, a time limit, a size limit, proxies honoured."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.utils.translation import gettext as _


class FeedError(Exception):
    """What went wrong with a feed, in words for the editor (shown on the feed's row)."""


@dataclass(frozen=True)
class Fetched:
    body: bytes | None  # None: unchanged since the last poll (304)
    etag: str = ""
    last_modified: str = ""


def feed_fetch(url: str, *, etag: str = "", last_modified: str = "") -> Fetched:
    """GET the feed, sending back its validators; FeedError for anything but a usable answer.

    httpx reads HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment (trust_env). The size
    limit counts decompressed bytes, so a small gzip bomb is refused like a large file, and the
    time limit is for the whole answer, so a server that dribbles cannot hold a worker.
    """
    limit = settings.BANDITORE_FEED_MAX_BYTES
    seconds = settings.BANDITORE_FEED_TIMEOUT_SECONDS
    headers = {
        "User-Agent": f"Banditore feed reader (+{settings.SITE_URL})",
        "Accept": "application/rss+xml, application/atom+xml, application/cap+xml, "
        "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5",
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    deadline = time.monotonic() + seconds
    try:
        with httpx.Client(timeout=seconds, follow_redirects=True, max_redirects=5) as client:
            with client.stream("GET", url, headers=headers) as response:
                if response.status_code == 304:
                    return Fetched(body=None, etag=etag, last_modified=last_modified)
                if response.status_code >= 400:
                    raise FeedError(
                        _("The feed answered HTTP %(status)s.") % {"status": response.status_code}
                    )
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise FeedError(_too_large(limit))
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise FeedError(_too_large(limit))
                    if time.monotonic() > deadline:
                        raise FeedError(_too_slow(seconds))
                return Fetched(
                    body=bytes(body),
                    etag=response.headers.get("etag", "")[:300],
                    last_modified=response.headers.get("last-modified", "")[:100],
                )
    except httpx.TimeoutException:
        raise FeedError(_too_slow(seconds)) from None
    except httpx.HTTPError as error:
        raise FeedError(
            _("The feed could not be reached (%(error)s).") % {"error": type(error).__name__}
        ) from None


def _too_large(limit: int) -> str:
    return _("The feed is larger than %(mb)s MB: not read.") % {"mb": f"{limit / 1_000_000:g}"}


def _too_slow(seconds: float) -> str:
    return _("The feed did not answer within %(seconds)s seconds.") % {"seconds": f"{seconds:g}"}
