"""Audit entries for changes made in the admin: who, when, and what changed (old → new).

Used by the admin screens of templates (topics.admin) and API tokens (subscribers.admin_tokens);
publish, cancel and resend are audited by the services that do them (subscribers.publishing).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import models

from topics.models import AuditEntry


def _plain(value: Any) -> Any:
    """A value as JSON can hold it: objects by their name, lists of objects as lists."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_plain(item) for item in value]
    return str(value)


def form_changes(form, *, skip: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """{field: {"from": old, "to": new}} for each field the admin form changed."""
    skipped = set(skip)
    changes = {}
    for name in form.changed_data:
        old, new = _plain(form.initial.get(name)), _plain(form.cleaned_data.get(name))
        if name not in skipped and old != new:  # a form may flag a field it only re-rendered
            changes[name] = {"from": old, "to": new}
    return changes


def form_values(form, *, skip: Iterable[str] = ()) -> dict[str, Any]:
    """Every field of a new object, as saved."""
    skipped = set(skip)
    return {name: _plain(value) for name, value in form.cleaned_data.items() if name not in skipped}


def audit_admin(*, user, action: str, obj: object, details: dict | None = None) -> None:
    actor = user if getattr(user, "is_authenticated", False) else None
    AuditEntry.objects.create(
        actor=actor, action=action, object_repr=str(obj)[:200], details=details or {}
    )


class AuditedDeletesMixin:
    """Admin mixin: every delete, one by one or from the list, leaves `<audit_noun>_deleted`."""

    audit_noun = ""

    def delete_model(self, request, obj) -> None:
        audit_admin(user=request.user, action=f"{self.audit_noun}_deleted", obj=obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            audit_admin(user=request.user, action=f"{self.audit_noun}_deleted", obj=obj)
        super().delete_queryset(request, queryset)
