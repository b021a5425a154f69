"""Receivers for channel's signals that belong in the audit log (connected in TopicsConfig)."""

from __future__ import annotations

from topics.audit import record_audit


def on_simulator_used(sender, user, wa_id: str, what: str, **kwargs) -> None:
    record_audit(action="simulator", obj=f"+{wa_id}", user=user, details={"message": what})
