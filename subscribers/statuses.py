"""Meta's status webhooks → the delivery ledger, idempotent and order-independent.

Meta does not guarantee order or uniqueness (whatsapp-cloud-api.md §1.3, §1.5): `read` may come
without `delivered`, a late `delivered` must not downgrade `read`, duplicates are harmless, and a
`failed` after `delivered` is recorded (time and error) without hiding that it was delivered.
Each status is matched by wamid, or by our callback reference when the sender crashed before
writing the wamid back; that is what settles "maybe sent" deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, transaction

from channel.inbound import StatusUpdate
from subscribers.models import Delivery

CALLBACK_PREFIX = "d:"
_RANK_SQL = "CASE status WHEN 'read' THEN 3 WHEN 'delivered' THEN 2 WHEN 'sent' THEN 1 ELSE 0 END"
_RANKS = {"sent": 1, "delivered": 2, "read": 3}
_STAMP = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at"}
_INT32 = 2**31


def delivery_reference(delivery_id: int) -> str:
    return f"{CALLBACK_PREFIX}{delivery_id}"


def _delivery_id(update: StatusUpdate) -> int | None:
    data = update.biz_opaque_callback_data or ""
    tail = data[len(CALLBACK_PREFIX) :] if data.startswith(CALLBACK_PREFIX) else ""
    return int(tail) if tail.isdigit() and len(tail) < 19 else None


def _match(update: StatusUpdate) -> tuple[str, list]:
    delivery_id = _delivery_id(update)
    if delivery_id is not None:
        return "id = %s AND (wa_message_id IS NULL OR wa_message_id = %s)", [
            delivery_id,
            update.wamid,
        ]
    return "wa_message_id = %s", [update.wamid]


def apply_statuses(updates: Sequence[StatusUpdate]) -> int:
    """Apply a webhook's statuses; returns how many delivery rows changed."""
    table = Delivery._meta.db_table
    changed = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for update in updates:
            if len(update.wamid) > 255:
                continue
            where, params = _match(update)
            if update.status in _RANKS:
                stamp = _STAMP[update.status]
                # Earlier stamps are implied: `read` means it was also sent (and delivered).
                implied = [
                    f"{_STAMP[s]} = COALESCE({_STAMP[s]}, %s)"
                    for s, rank in _RANKS.items()
                    if rank < _RANKS[update.status] and s == "sent"
                ]
                sql = f"""
                    UPDATE {table} SET
                        status = CASE WHEN {_RANK_SQL} < %s THEN %s ELSE status END,
                        {stamp} = COALESCE({stamp}, %s),
                        {"".join(part + ", " for part in implied)}
                        wa_message_id = %s
                    WHERE {where}
                """
                values = [_RANKS[update.status], update.status, update.timestamp]
                values += [update.timestamp] * len(implied)
                cursor.execute(sql, [*values, update.wamid, *params])
            elif update.status == "failed":
                error = update.errors[0] if update.errors else None
                code = error.code if error and -_INT32 <= error.code < _INT32 else None
                text = f"{error.title}: {error.details}".strip(": ") if error else "failed"
                sql = f"""
                    UPDATE {table} SET
                        status = CASE WHEN {_RANK_SQL} < 2 THEN 'failed' ELSE status END,
                        failed_at = COALESCE(failed_at, %s),
                        last_error_code = %s,
                        last_error_text = %s,
                        wa_message_id = %s
                    WHERE {where}
                """
                cursor.execute(sql, [update.timestamp, code, text[:2000], update.wamid, *params])
            else:
                continue
            changed += cursor.rowcount
    return changed
