"""Small pieces of the editors' desk shared by the admin screens."""

from __future__ import annotations

from django.http import HttpRequest

from channel.models import SendingState


def can_publish(user) -> bool:
    return user.has_perm("topics.publish_post")


def sending_state(request: HttpRequest) -> dict:
    """Every admin page shows when Meta stopped the whole account (issue: alerts on top)."""
    user = getattr(request, "user", None)
    if not (request.path.startswith("/admin/") and user and user.is_staff):
        return {}
    state = SendingState.objects.filter(id=1, paused=True).first()
    return {"sending_paused": state, "can_resume_sending": bool(state and can_publish(user))}
