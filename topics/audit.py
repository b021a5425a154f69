"""The audit log: who (a staff user or an API token), when, what, and what changed.

`record_audit` is the one way entries are written: by the services that publish, cancel and
resend (subscribers.delivery.publishing), the API, the import, and the admin screens of
templates and API keys, whose changed fields (old → new) `form_changes` works out.
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


def record_audit(
    *, action: str, obj: object, user=None, token=None, details: dict | None = None
) -> None:
    """The one way to write the audit log: who (a staff user or an API token), what, on what."""
    actor = user if getattr(user, "is_authenticated", False) else None
    AuditEntry.objects.create(
        actor=actor,
        actor_token=token,
        action=action,
        object_repr=str(obj)[:200],
        details=details or {},
    )


class AuditedDeletesMixin:
    """Admin mixin: every delete, one by one or from the list, leaves `<audit_noun>_deleted`."""

    audit_noun = ""

    def delete_model(self, request, obj) -> None:
        record_audit(user=request.user, action=f"{self.audit_noun}_deleted", obj=obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            record_audit(user=request.user, action=f"{self.audit_noun}_deleted", obj=obj)
        super().delete_queryset(request, queryset)
