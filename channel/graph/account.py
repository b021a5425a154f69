"""Whether the whole WhatsApp account may send: Meta's account-level errors pause everything.

Errors such as an expired token (190) or a restricted number (131048) fail every message until a
person fixes them (channel.graph.errors, Handling.ACCOUNT_PAUSE), so we stop instead of burning
the audience.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from channel.graph.errors import Handling, handling_for
from channel.models import SendingState


def pause_state() -> SendingState | None:
    """The sending state while sending is paused (reason, code, since when), else None."""
    return SendingState.objects.filter(id=1, paused=True).first()


def is_paused() -> bool:
    return SendingState.objects.filter(id=1, paused=True).exists()


def pause_sending(*, code: int | None, reason: str) -> bool:
    """Pause all sending; True when this call paused it (the first error wins the reason)."""
    with transaction.atomic():
        SendingState.objects.get_or_create(id=1)
        return bool(
            SendingState.objects.filter(id=1, paused=False).update(
                paused=True, error_code=code, reason=reason[:2000], since=timezone.now()
            )
        )


def pause_for_account_errors(errors: Iterable, *, source: str) -> bool:
    """Pause all sending if any of Meta's `errors` (objects with code, title, details) is an
    account-level one, as when a send's answer carries it (channel.graph.errors): Meta often
    accepts a send and reports 131048, 368, 131031… later, in a status webhook
    (`statuses[].errors[]`) or a webhook's own `errors[]`, whatever message it is about.
    https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components"""
    for error in errors:
        if handling_for(error.code) is Handling.ACCOUNT_PAUSE:
            said = ": ".join(part for part in (error.title, error.details) if part)
            return pause_sending(code=error.code, reason=f"{source}: error {error.code} {said}")
    return False


def resume_sending(*, user=None) -> bool:
    """Resume after an administrator fixed the cause; True when it was paused.

    ``user`` is accepted for symmetry with the callers that audit it (topics.AuditEntry).
    """
    return bool(
        SendingState.objects.filter(id=1, paused=True).update(
            paused=False, error_code=None, reason="", since=timezone.now()
        )
    )
