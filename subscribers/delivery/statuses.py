"""Meta's status webhooks → the delivery ledger, idempotent and order-independent.

Meta guarantees neither order nor uniqueness: `read` may come without `delivered`, a late
`delivered` must not downgrade `read` (channel.graph.callbacks.RANK), duplicates are harmless,
and a `failed` after `delivered` is recorded (time and error) without hiding that it was
delivered. https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
Each status is matched by wamid, or by our callback reference when the sender crashed before
writing the wamid back; that is what settles "maybe sent" deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from channel.graph.callbacks import RANK, MessageStatus, delivery_id, rank_sql
from channel.graph.errors import RETRIABLE, Handling, handling_for, retry_delay
from channel.webhook.parsing import StatusUpdate
from subscribers.models import Delivery, Subscriber
from topics.models import Post

_RANK_SQL = rank_sql("status")
_STAMP = {
    MessageStatus.SENT: "sent_at",
    MessageStatus.DELIVERED: "delivered_at",
    MessageStatus.READ: "read_at",
}
_INT32 = 2**31


def _delivery_id(update: StatusUpdate) -> int | None:
    return delivery_id(update.biz_opaque_callback_data)


def _lock_order(update: StatusUpdate) -> tuple[int, str]:
    return (_delivery_id(update) or 0, update.wamid)


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
    if connection.vendor == "postgresql":
        return _apply_set_based(updates)
    return _apply_one_by_one(updates)  # SQLite (the one-command dev run): low volume


@dataclass
class _Merged:
    """Everything a batch says about one message, folded order-independently."""

    delivery_id: int | None
    wamid: str
    rank: int = 0
    stamps: dict[str, datetime] = field(default_factory=dict)
    failed: StatusUpdate | None = None

    def add(self, update: StatusUpdate) -> None:
        if update.status == MessageStatus.FAILED:
            self.failed = self.failed or update
            return
        rank = RANK[update.status]
        self.rank = max(self.rank, rank)
        # `delivered` or `read` imply it was sent: keep the earliest time seen for each stamp.
        for status in {update.status, MessageStatus.SENT}:
            seen = self.stamps.get(status)
            self.stamps[status] = min(seen, update.timestamp) if seen else update.timestamp

    def row(self, index: int) -> list:
        error = self.failed.errors[0] if self.failed and self.failed.errors else None
        code = error.code if error and -_INT32 <= error.code < _INT32 else None
        text = f"{error.title}: {error.details}".strip(": ") if error else "failed"
        status = next((s for s, r in RANK.items() if r == self.rank), "")
        return [
            index,
            self.delivery_id,
            self.wamid,
            self.rank,
            status,
            self.stamps.get(MessageStatus.SENT),
            self.stamps.get(MessageStatus.DELIVERED),
            self.stamps.get(MessageStatus.READ),
            self.failed is not None,
            self.failed.timestamp if self.failed else None,
            code,
            text[:2000] if self.failed else "",
        ]


# One array per column: the statement text is the same for every batch, so psycopg parses it
# once (a VALUES list with 1,200 placeholders cost more in Python than the UPDATE in SQL).
_COLUMNS = (
    "idx int[], delivery_id bigint[], wamid text[], rank int[], status text[],"
    " sent_at timestamptz[], delivered_at timestamptz[], read_at timestamptz[],"
    " failed boolean[], failed_at timestamptz[], code int[], error text[]"
)
_UNNEST = "unnest(" + ", ".join(f"%s::{column.split()[1]}" for column in _COLUMNS.split(",")) + ")"
_SET_BASED_SQL = """
    UPDATE {table} AS t SET
        status = CASE
            WHEN v.failed AND GREATEST({rank}, v.rank) < 2 THEN 'failed'
            WHEN {rank} < v.rank THEN v.status
            ELSE t.status END,
        sent_at = COALESCE(t.sent_at, v.sent_at),
        delivered_at = COALESCE(t.delivered_at, v.delivered_at),
        read_at = COALESCE(t.read_at, v.read_at),
        failed_at = CASE WHEN v.failed THEN COALESCE(t.failed_at, v.failed_at) ELSE t.failed_at END,
        last_error_code = CASE WHEN v.failed THEN v.code ELSE t.last_error_code END,
        last_error_text = CASE WHEN v.failed THEN v.error ELSE t.last_error_text END,
        wa_message_id = COALESCE(t.wa_message_id, v.wamid)
    FROM {unnest} AS v(idx, delivery_id, wamid, rank, status, sent_at, delivered_at,
                       read_at, failed, failed_at, code, error)
    WHERE {match}
    RETURNING v.idx
"""
_BY_ID = "t.id = v.delivery_id AND (t.wa_message_id IS NULL OR t.wa_message_id = v.wamid)"
_BY_WAMID = "t.wa_message_id = v.wamid"


def _apply_set_based(updates: Sequence[StatusUpdate]) -> int:
    """Fold the batch per message, lock the rows in id order (as senders do: no deadlocks),
    then one UPDATE … FROM unnest(…) per way of matching (bench/statuses.py measures it)."""
    merged: dict[tuple[int | None, str], _Merged] = {}
    for update in updates:
        if len(update.wamid) > 255 or (
            update.status not in RANK and update.status != MessageStatus.FAILED
        ):
            continue
        key = (_delivery_id(update), update.wamid)
        merged.setdefault(key, _Merged(*key)).add(update)
    if not merged:
        return 0
    groups = list(merged.values())
    table = Delivery._meta.db_table
    ids = [g.delivery_id for g in groups if g.delivery_id is not None]
    wamids = [g.wamid for g in groups if g.delivery_id is None]
    changed: list[int] = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE id = ANY(%s) OR wa_message_id = ANY(%s) "
            "ORDER BY id FOR UPDATE",
            [ids, wamids],
        )
        for match, wanted in ((_BY_ID, True), (_BY_WAMID, False)):
            part = [(i, g) for i, g in enumerate(groups) if (g.delivery_id is not None) == wanted]
            if not part:
                continue
            sql = _SET_BASED_SQL.format(
                table=table,
                rank=_RANK_SQL.replace("CASE status", "CASE t.status"),
                unnest=_UNNEST,
                match=match,
            )
            rows = [g.row(i) for i, g in part]
            cursor.execute(sql, [list(column) for column in zip(*rows, strict=True)])
            changed += [row[0] for row in cursor.fetchall()]
        failures = [(groups[i].failed, groups[i].row(i)[10]) for i in changed if groups[i].failed]
        if failures:
            _after_failures(failures)
    return len(changed)


def _apply_one_by_one(updates: Sequence[StatusUpdate]) -> int:
    table = Delivery._meta.db_table
    changed = 0
    failures: list[tuple[StatusUpdate, int | None]] = []
    with transaction.atomic(), connection.cursor() as cursor:
        # Lock rows in delivery-id order, like the senders do, so the two never deadlock.
        for update in sorted(updates, key=_lock_order):
            if len(update.wamid) > 255:
                continue
            where, params = _match(update)
            if update.status in RANK:
                stamp = _STAMP[update.status]
                # Earlier stamps are implied: `read` means it was also sent (and delivered).
                implied = [
                    f"{_STAMP[s]} = COALESCE({_STAMP[s]}, %s)"
                    for s, rank in RANK.items()
                    if rank < RANK[update.status] and s == MessageStatus.SENT
                ]
                sql = f"""
                    UPDATE {table} SET
                        status = CASE WHEN {_RANK_SQL} < %s THEN %s ELSE status END,
                        {stamp} = COALESCE({stamp}, %s),
                        {"".join(part + ", " for part in implied)}
                        wa_message_id = %s
                    WHERE {where}
                """
                values = [RANK[update.status], update.status, update.timestamp]
                values += [update.timestamp] * len(implied)
                cursor.execute(sql, [*values, update.wamid, *params])
            elif update.status == MessageStatus.FAILED:
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
                if cursor.rowcount:
                    failures.append((update, code))
            else:
                continue
            changed += cursor.rowcount
        if failures:
            _after_failures(failures)
    return changed


def _after_failures(failures: list[tuple[StatusUpdate, int | None]]) -> None:
    """A failure reported by webhook is handled like one in the send response, and waits as
    long before its retry (channel.graph.errors.retry_delay)."""
    now = timezone.now()
    max_attempts = settings.BANDITORE_MAX_ATTEMPTS
    for update, code in failures:
        rows = Delivery.objects.filter(
            Q(wa_message_id=update.wamid) | Q(id=_delivery_id(update) or 0),
            status=Delivery.Status.FAILED,
        )
        handling = handling_for(code)
        if handling == Handling.RECIPIENT_UNREACHABLE:
            Subscriber.objects.filter(deliveries__in=rows, status=Subscriber.Status.ACTIVE).update(
                status=Subscriber.Status.UNREACHABLE
            )
        elif handling == Handling.MARKETING_OPT_OUT:
            Subscriber.objects.filter(deliveries__in=rows).update(marketing_opt_out=True)
        elif handling in RETRIABLE:
            retried = rows.filter(attempts__lt=max_attempts)
            post_ids = set()
            for row_id, attempts, post_id in retried.values_list("id", "attempts", "post_id"):
                delay = timedelta(seconds=retry_delay(handling, attempts))
                Delivery.objects.filter(id=row_id).update(
                    status=Delivery.Status.QUEUED, next_attempt_at=now + delay
                )
                post_ids.add(post_id)
            # The post may have finished meanwhile: it is sending again until the retry ends.
            Post.objects.filter(pk__in=post_ids, status=Post.Status.SENT).update(
                status=Post.Status.SENDING, finished_at=None
            )
