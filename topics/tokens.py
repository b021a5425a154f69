"""API tokens: created for one integration, shown once, stored as a SHA-256 hash, revocable."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from topics.audit import record_audit
from topics.models import ApiToken, Topic, hash_token_key

# Recognisable in logs and secret scanners; the rest is 256 random bits.
KEY_PREFIX = "bnd_"
# last_used_at is informational: one UPDATE a minute per token is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def new_token_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def api_token_assign_key(*, token: ApiToken) -> str:
    """Give an unsaved or existing token a fresh key; return the key, which is never stored."""
    key = new_token_key()
    token.key_hash = hash_token_key(key)
    token.key_prefix = key[: len(KEY_PREFIX) + 6]
    return key


@transaction.atomic
def api_token_create(
    *,
    name: str,
    topics: Iterable[Topic] = (),
    can_publish: bool = False,
    can_read_stats: bool = True,
    created_by=None,
) -> tuple[ApiToken, str]:
    token = ApiToken(
        name=name, can_publish=can_publish, can_read_stats=can_read_stats, created_by=created_by
    )
    key = api_token_assign_key(token=token)
    token.save()
    token.topics.set(topics)
    record_audit(user=created_by, action="token_created", obj=token)
    return token, key


@transaction.atomic
def api_token_regenerate_key(*, token: ApiToken, user=None) -> str:
    """Replace the token's key: the old one stops working at once. Returns the new key, which
    (like the first) is shown once and never stored."""
    key = api_token_assign_key(token=token)
    token.save(update_fields=["key_hash", "key_prefix"])
    record_audit(user=user, action="token_key_regenerated", obj=token)
    return key


def api_token_for_key(key: str) -> ApiToken | None:
    """The active token with this key, or None (unknown and revoked keys look the same)."""
    if not key or len(key) > 200:
        return None
    return (
        ApiToken.objects.filter(key_hash=hash_token_key(key), revoked_at__isnull=True)
        .prefetch_related("topics")
        .first()
    )


def api_token_touch(*, token: ApiToken) -> None:
    """Record use at most once a minute, so reads stay reads under load."""
    now = timezone.now()
    if token.last_used_at and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    token.last_used_at = now


def api_token_revoke(*, tokens, user=None) -> int:
    """Revoke every active token in the queryset; revoked keys answer 401 from now on."""
    revoked = 0
    for token in tokens.filter(revoked_at__isnull=True):
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record_audit(user=user, action="token_revoked", obj=token)
        revoked += 1
    return revoked
