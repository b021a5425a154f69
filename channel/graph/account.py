"""Whether the whole WhatsApp account may send: Meta's account-level errors pause everything.

Errors such as an expired token (190) or a restricted number (131048) fail every message until a
person fixes them (channel.graph.errors, Handling.ACCOUNT_PAUSE), so we stop instead of burning
the audience.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

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


def resume_sending(*, user=None) -> bool:
    """Resume after an administrator fixed the cause; True when it was paused.

    ``user`` is accepted for symmetry with the callers that audit it (topics.AuditEntry).
    """
    return bool(
        SendingState.objects.filter(id=1, paused=True).update(
            paused=False, error_code=None, reason="", since=timezone.now()
        )
    )
