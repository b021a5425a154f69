"""Receivers for channel's signals that belong in the audit log (connected in TopicsConfig)."""

from __future__ import annotations

from topics.audit import record_audit


def on_simulator_used(sender, user, wa_id: str, what: str, **kwargs) -> None:
    record_audit(action="simulator", obj=f"+{wa_id}", user=user, details={"message": what})


def on_templates_synced(sender, user, result, **kwargs) -> None:
    """A sync that changed something is audited; each category Meta changed gets its own line
    (the editors see it on the template list and on posts' plans too)."""
    if not result.changed:
        return
    details = {
        "created": result.created,
        "status_changed": result.status_changed,
        "category_changed": result.category_changed,
        "gone": result.gone,
    }
    record_audit(action="templates_synced", obj="message templates", user=user, details=details)
    for line in result.category_changed:
        record_audit(action="template_category_changed", obj=line, user=user)
