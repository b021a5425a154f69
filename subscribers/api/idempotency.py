"""Idempotent POSTs: the first answer to a key is stored and replayed for repeats.

A key is per token: the `Idempotency-Key` header or, failing that, the body's `external_id`.
Same key + same body → the stored status and JSON, nothing created. Same key + different body →
IdempotencyConflict (409). The body's `external_id` is also unique per token in the database, so a
retry with the same external_id under another Idempotency-Key replays (or conflicts) too.
Records are kept for BANDITORE_API_IDEMPOTENCY_DAYS (≥ 7), then pruned.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from topics.models import ApiToken, IdempotencyRecord, Post

KEY_MAX = 255
# Placeholder status of a record whose request is still running inside its transaction.
IN_PROGRESS = 0


class IdempotencyConflict(Exception):
    pass


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict
    replayed: bool


def idempotency_key(*, header: str | None, data: Any) -> str | None:
    """The key for this request, or None when the client sent neither header nor external_id."""
    if header is not None and header.strip():
        return header.strip()
    if isinstance(data, dict) and isinstance(data.get("external_id"), str):
        return data["external_id"].strip() or None
    return None


def idempotency_key_problem(key: str) -> str | None:
    if len(key) > KEY_MAX:
        return f"The idempotency key is longer than {KEY_MAX} characters."
    if not key.isprintable():
        return "The idempotency key must contain printable characters only."
    return None


def request_fingerprint(data: Any) -> str:
    """Hash of the parsed JSON body, so key order and whitespace do not matter."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _replay(record: IdempotencyRecord, fingerprint: str) -> Outcome:
    if record.request_hash != fingerprint:
        raise IdempotencyConflict(
            "This idempotency key was already used with a different request body "
            f"(on {record.created_at:%Y-%m-%d %H:%M} UTC). Use a new key for a new post, "
            "or resend exactly the same body to get the original answer."
        )
    return Outcome(status=record.response_status, body=record.response_body, replayed=True)


def idempotency_lookup(*, token: ApiToken, key: str, fingerprint: str) -> Outcome | None:
    """The stored answer for a finished request with this key, if any (no locks taken)."""
    record = (
        IdempotencyRecord.objects.filter(token=token, key=key)
        .exclude(response_status=IN_PROGRESS)
        .first()
    )
    return None if record is None else _replay(record, fingerprint)


def external_id_replay(*, token: ApiToken, external_id: str, fingerprint: str) -> Outcome | None:
    """The answer already given for this key's post with this external_id, if there is one.

    A retry that carries a fresh Idempotency-Key lands here: the same body gets the first answer
    again, another body a conflict. The database allows one post per (key, external_id), so a
    concurrent twin that lost the race also ends here, once the winner has committed.
    """
    post = Post.objects.filter(created_by_token=token, external_id=external_id).first()
    if post is None:
        return None
    record = (
        IdempotencyRecord.objects.filter(token=token, post=post)
        .exclude(response_status=IN_PROGRESS)
        .first()
    )
    if record is None or record.request_hash != fingerprint:
        raise IdempotencyConflict(
            f"Post {post.pk} was already created with this external_id and a different "
            "request body. Use a new external_id for a new post."
        )
    return Outcome(status=record.response_status, body=record.response_body, replayed=True)


def idempotent_create(
    *,
    token: ApiToken,
    key: str | None,
    fingerprint: str,
    create: Callable[[], tuple[int, dict, Post | None]],
) -> Outcome:
    """Run `create` at most once per (token, key), even for concurrent requests.

    Insert-first: the record is inserted (ON CONFLICT DO NOTHING) in the same transaction as the
    post. A concurrent request with the same key blocks on that uncommitted row inside its own
    INSERT, then finds the committed record and replays it. If `create` raises, the record rolls
    back with the post, so the key can be used again.
    """
    if key is None:
        status, body, _post = create()
        return Outcome(status=status, body=body, replayed=False)
    with transaction.atomic():
        placeholder = IdempotencyRecord(
            token=token,
            key=key,
            request_hash=fingerprint,
            response_status=IN_PROGRESS,
            response_body={},
        )
        IdempotencyRecord.objects.bulk_create([placeholder], ignore_conflicts=True)
        record = IdempotencyRecord.objects.select_for_update().get(token=token, key=key)
        if record.response_status != IN_PROGRESS:
            return _replay(record, fingerprint)
        status, body, post = create()
        record.response_status, record.response_body, record.post = status, body, post
        record.save(update_fields=["response_status", "response_body", "post"])
    return Outcome(status=status, body=body, replayed=False)


def idempotency_prune(*, now=None) -> int:
    """Forget keys older than BANDITORE_API_IDEMPOTENCY_DAYS; returns how many records went."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.BANDITORE_API_IDEMPOTENCY_DAYS)
    deleted, _by_model = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
