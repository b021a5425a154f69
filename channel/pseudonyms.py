"""Keyed hashes of people's numbers and user ids: for where a person must be recognised, not kept.

A plain hash of a phone number protects nothing: Italian mobile numbers are a few billion at
most, which one laptop hashes in minutes. An HMAC keyed with SECRET_KEY cannot be computed,
nor reversed, without the key. Rotating SECRET_KEY makes the digests already stored
unrecognisable (the erasure memory and the auto-reply guard start afresh).
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from django.conf import settings

# A key of its own, derived from SECRET_KEY: these digests never match any other use of it.
_PURPOSE = b"banditore.pseudonyms.identity"


@lru_cache(maxsize=4)
def _keyed(secret: str) -> hmac.HMAC:
    # Keyed once; each digest copies it (about 1.6 µs, against 2.5 µs keying every time).
    return hmac.new(hashlib.sha256(_PURPOSE + secret.encode()).digest(), digestmod=hashlib.sha256)


def identity_digest(identity: str) -> str:
    """HMAC-SHA256 of a number or user id, as 64 hex digits."""
    return _digest(settings.SECRET_KEY, identity)


# Meta reports each message up to three times (sent, delivered, read), usually within minutes:
# the drain asks for the same people's digests again and again.
@lru_cache(maxsize=16_384)
def _digest(secret: str, identity: str) -> str:
    mac = _keyed(secret).copy()
    mac.update(identity.encode())
    return mac.hexdigest()
