"""X-Hub-Signature-256: HMAC-SHA256 of the raw webhook body, keyed with the app secret.

Hash the bytes exactly as received, never re-serialised JSON (the escaping of non-ASCII text
would differ), and compare in constant time
(https://developers.facebook.com/docs/graph-api/webhooks/getting-started).
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Hub-Signature-256"
PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    """The header value Meta would send for `body`: "sha256=<hex digest>"."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header_value: str | None, secret: str) -> bool:
    if not header_value or not secret or not header_value.startswith(PREFIX):
        return False
    if not header_value.isascii():  # compare_digest refuses non-ASCII str: a forgery anyway
        return False
    return hmac.compare_digest(sign(body, secret), header_value.strip())
