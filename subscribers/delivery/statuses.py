"""Meta's status webhooks → the delivery ledger, idempotent and order-independent.

Meta guarantees neither order nor uniqueness: `read` may come without `delivered`, a late
`delivered` must not downgrade `read` (channel.graph.callbacks.RANK), duplicates are harmless,
and a `failed` after `delivered` is recorded (time and error) without hiding that it was
delivered. https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
Each status is matched by wamid, or by our callback reference when the sender crashed before
writing the wamid back; that is what settles "maybe sent" deliveries.

A status belongs to one attempt: the reference names it (channel.graph.callbacks) and each claim
clears the wamid, so an earlier attempt's status, repeated by Meta after a retry or a resend,
matches nothing. A row waiting in the queue for a retry takes only a `delivered` or `read` of the
attempt before (the person got it after all: no retry); a resend numbers a new attempt at once,
so nothing from before it applies.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from channel.graph.account import pause_sending
from channel.graph.callbacks import RANK, MessageStatus, delivery_attempt, rank_sql
from channel.graph.errors import Handling, handling_for
from channel.webhook.parsing import StatusUpdate
from subscribers.delivery.decisions import failure_decision
from subscribers.delivery.media import post_media_forget
from subscribers.delivery.signals import senders_needed
from subscribers.models import Delivery, Subscriber
from topics.models import Post

_RANK_SQL = rank_sql("status")
_STAMP = {
    MessageStatus.SENT: "sent_at",
    MessageStatus.DELIVERED: "delivered_at",
    MessageStatus.READ: "read_at",
}
_INT32 = 2**31
# A failure may queue a row again only while its post goes on; a row of a post that stopped
# (cancelled, expired) is cancelled instead, so nothing of it is left in the queue.
_GOING = (Post.Status.SENDING, Post.Status.SENT)


def _reference(update: StatusUpdate) -> tuple[int | None, int | None]:
    """(delivery id, attempt) from our callback reference; (None, None) without one."""
    return delivery_attempt(update.biz_opaque_callback_data) or (None, None)


def _error(update: StatusUpdate) -> tuple[int | None, str]:
    error = update.errors[0] if update.errors else None
    code = error.code if error and -_INT32 <= error.code < _INT32 else None
    text = f"{error.title}: {error.details}".strip(": ") if error else "failed"
    return code, text[:2000]


@dataclass(frozen=True)
class _Failed:
    """A row a `failed` status just marked failed."""

    id: int
    attempts: int
    post_id: int
    subscriber_id: int
    code: int | None
    template: bool


def apply_statuses(updates: Sequence[StatusUpdate]) -> int:
    """Apply a webhook's statuses; returns how many delivery rows they matched."""
    if connection.vendor == "postgresql":
        return _apply_set_based(updates)
    return _apply_one_by_one(updates)  # SQLite (the one-command dev run): low volume


@dataclass
class _Merged:
    """Everything a batch says about one message, folded order-independently."""

    delivery_id: int | None
    attempt: int | None
    wamid: str
    rank: int = 0
    stamps: dict[str, datetime] = field(default_factory=dict)
    failed: StatusUpdate | None = None
    priced: StatusUpdate | None = None  # the first status carrying Meta's `pricing`

    def add(self, update: StatusUpdate) -> None:
        if self.priced is None and update.pricing_category:
            self.priced = update
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
        code, text = _error(self.failed) if self.failed else (None, "")
        status = next((s for s, r in RANK.items() if r == self.rank), "")
        return [
            index,
            self.delivery_id,
            self.attempt,
            self.wamid,
            self.rank,
            status,
            self.stamps.get(MessageStatus.SENT),
            self.stamps.get(MessageStatus.DELIVERED),
            self.stamps.get(MessageStatus.READ),
            self.failed is not None,
            self.failed.timestamp if self.failed else None,
            code,
            text,
            *_pricing(self.priced),
        ]


def _pricing(update: StatusUpdate | None) -> tuple:
    """(billable, pricing_model, pricing_type, pricing_category) as Meta said, NULLs without."""
    if update is None:
        return None, None, None, None
    return (
        update.pricing_billable,
        update.pricing_model or None,
        update.pricing_type or None,
        update.pricing_category,
    )


# One array per column: the statement text is the same for every batch, so psycopg parses it
# once (a VALUES list with 1,200 placeholders cost more in Python than the UPDATE in SQL).
_COLUMNS = (
    "idx int[], delivery_id bigint[], attempt int[], wamid text[], rank int[], status text[],"
    " sent_at timestamptz[], delivered_at timestamptz[], read_at timestamptz[],"
    " failed boolean[], failed_at timestamptz[], code int[], error text[],"
    " billable boolean[], pricing_model text[], pricing_type text[], pricing_category text[]"
)
_UNNEST = "unnest(" + ", ".join(f"%s::{column.split()[1]}" for column in _COLUMNS.split(",")) + ")"
# A failed or cancelled row moves up only when the person got the message (`delivered` or
# `read`): a `sent` does not undo Meta's `failed`, nor our cancel.
_SET_BASED_SQL = """
    UPDATE {table} AS t SET
        status = CASE
            WHEN t.status IN ('failed', 'cancelled') AND v.rank < 2 THEN t.status
            WHEN v.failed AND GREATEST({rank}, v.rank) < 2 THEN 'failed'
            WHEN {rank} < v.rank THEN v.status
            ELSE t.status END,
        sent_at = COALESCE(t.sent_at, v.sent_at),
        delivered_at = COALESCE(t.delivered_at, v.delivered_at),
        read_at = COALESCE(t.read_at, v.read_at),
        failed_at = CASE WHEN v.failed THEN COALESCE(t.failed_at, v.failed_at) ELSE t.failed_at END,
        last_error_code = CASE WHEN v.failed THEN v.code ELSE t.last_error_code END,
        last_error_text = CASE WHEN v.failed THEN v.error ELSE t.last_error_text END,
        wa_message_id = COALESCE(t.wa_message_id, v.wamid),
        billable = COALESCE(v.billable, t.billable),
        pricing_model = COALESCE(v.pricing_model, t.pricing_model),
        pricing_type = COALESCE(v.pricing_type, t.pricing_type),
        pricing_category = COALESCE(v.pricing_category, t.pricing_category)
    FROM {unnest} AS v(idx, delivery_id, attempt, wamid, rank, status, sent_at, delivered_at,
                       read_at, failed, failed_at, code, error, billable, pricing_model,
                       pricing_type, pricing_category)
    WHERE {match} AND (t.status <> 'queued' OR v.rank >= 2)
    RETURNING v.idx, t.id, t.status, t.attempts, t.post_id, t.subscriber_id, t.used_template
"""
# By our reference: this row, this attempt, and no other message's wamid.
_BY_ID = (
    "t.id = v.delivery_id AND t.attempt_seq = v.attempt"
    " AND (t.wa_message_id IS NULL OR t.wa_message_id = v.wamid)"
)
_BY_WAMID = "t.wa_message_id = v.wamid"


def _apply_set_based(updates: Sequence[StatusUpdate]) -> int:
    """Fold the batch per message, lock the rows in id order (as senders do: no deadlocks),
    then one UPDATE … FROM unnest(…) per way of matching (bench/statuses.py measures it)."""
    merged: dict[tuple[int | None, int | None, str], _Merged] = {}
    for update in updates:
        if len(update.wamid) > 255 or (
            update.status not in RANK and update.status != MessageStatus.FAILED
        ):
            continue
        key = (*_reference(update), update.wamid)
        merged.setdefault(key, _Merged(*key)).add(update)
    if not merged:
        return 0
    groups = list(merged.values())
    table = Delivery._meta.db_table
    ids = [g.delivery_id for g in groups if g.delivery_id is not None]
    wamids = [g.wamid for g in groups if g.delivery_id is None]
    matched: list[tuple] = []
    with transaction.atomic(), connection.cursor() as cursor:
        going = _lock_posts(cursor, groups)
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
            matched += cursor.fetchall()
        failed = [
            _Failed(*row[1:2], *row[3:6], _error(groups[row[0]].failed)[0], row[6])
            for row in matched
            if groups[row[0]].failed and row[2] == Delivery.Status.FAILED
        ]
        if failed:
            _after_failures(failed, going)
    return len(matched)


def _lock_posts(cursor, groups: list[_Merged]) -> dict[int, str]:
    """With `failed` statuses in the batch: lock their rows' posts first, as a cancel and a
    sender writing back a batch do (subscribers.delivery.settling), and return their status.
    A failure then never queues a row again under a cancel that is being committed."""
    failing = [g for g in groups if g.failed]
    if not failing:
        return {}
    cursor.execute(
        f"SELECT id, status FROM {Post._meta.db_table} WHERE id IN ("
        f"SELECT post_id FROM {Delivery._meta.db_table} "
        "WHERE id = ANY(%s) OR wa_message_id = ANY(%s)) ORDER BY id FOR NO KEY UPDATE",
        [
            [g.delivery_id for g in failing if g.delivery_id is not None],
            [g.wamid for g in failing if g.delivery_id is None],
        ],
    )
    return dict(cursor.fetchall())


def _apply_one_by_one(updates: Sequence[StatusUpdate]) -> int:
    """The same rules, one statement per status (SQLite has no unnest; its writers are
    serialised, so no locks are taken)."""
    table = Delivery._meta.db_table
    matched = 0
    failed: list[_Failed] = []
    returning = "RETURNING id, status, attempts, post_id, subscriber_id, used_template"
    with transaction.atomic(), connection.cursor() as cursor:
        for update in sorted(updates, key=_lock_order):
            if len(update.wamid) > 255:
                continue
            where, params = _match(update)
            if update.status in RANK:
                # `delivered` and `read` imply it was sent.
                stamps = {_STAMP[update.status], _STAMP[MessageStatus.SENT]}
                rank = RANK[update.status]
                sql = f"""
                    UPDATE {table} SET
                        status = CASE
                            WHEN status IN ('failed', 'cancelled') AND %s < 2 THEN status
                            WHEN {_RANK_SQL} < %s THEN %s
                            ELSE status END,
                        {"".join(f"{stamp} = COALESCE({stamp}, %s), " for stamp in stamps)}
                        {_PRICING_ONE}
                        wa_message_id = COALESCE(wa_message_id, %s)
                    WHERE {where} {returning}
                """
                values = [rank, rank, update.status, *[update.timestamp] * len(stamps)]
                values += _pricing(update if update.pricing_category else None)
                cursor.execute(sql, [*values, update.wamid, *params])
                matched += len(cursor.fetchall())
            elif update.status == MessageStatus.FAILED:
                code, text = _error(update)
                sql = f"""
                    UPDATE {table} SET
                        status = CASE
                            WHEN status IN ('failed', 'cancelled') THEN status
                            WHEN {_RANK_SQL} < 2 THEN 'failed'
                            ELSE status END,
                        failed_at = COALESCE(failed_at, %s),
                        last_error_code = %s,
                        last_error_text = %s,
                        wa_message_id = COALESCE(wa_message_id, %s)
                    WHERE {where} {returning}
                """
                cursor.execute(sql, [update.timestamp, code, text, update.wamid, *params])
                rows = cursor.fetchall()
                matched += len(rows)
                failed += [
                    _Failed(r[0], r[2], r[3], r[4], code, r[5]) for r in rows if r[1] == "failed"
                ]
        if failed:
            posts = Post.objects.filter(pk__in={row.post_id for row in failed})
            _after_failures(failed, dict(posts.values_list("pk", "status")))
    return matched


_PRICING_ONE = "".join(
    f"{column} = COALESCE(%s, {column}), "
    for column in ("billable", "pricing_model", "pricing_type", "pricing_category")
)


def _lock_order(update: StatusUpdate) -> tuple[int, str]:
    return (_reference(update)[0] or 0, update.wamid)


def _match(update: StatusUpdate) -> tuple[str, list]:
    """As _BY_ID or _BY_WAMID, and the rule for rows waiting in the queue, for one status."""
    delivery_id, attempt = _reference(update)
    if delivery_id is not None:
        where = "id = %s AND attempt_seq = %s AND (wa_message_id IS NULL OR wa_message_id = %s)"
        params = [delivery_id, attempt, update.wamid]
    else:
        where, params = "wa_message_id = %s", [update.wamid]
    if RANK.get(update.status, 0) < 2:
        where += " AND status <> 'queued'"
    return where, params


def _after_failures(failed: list[_Failed], posts: dict[int, str]) -> None:
    """A failure reported by webhook goes by the same rule as one in the send response
    (subscribers.delivery.decisions): Meta often accepts a send, then reports its failure
    here. One statement per kind of decision, whatever the number of rows."""
    unreachable: list[int] = []
    opted_out: list[int] = []
    stopped: list[int] = []
    # (delay, give_back, template) → ids
    retries: dict[tuple[float, int, bool | None], list[int]] = defaultdict(list)
    retried_posts: set[int] = set()
    pause: tuple[int | None, str] | None = None
    for row in failed:
        decision = failure_decision(
            handling_for(row.code),
            attempts=row.attempts,
            template=row.template,
            going=posts.get(row.post_id) in _GOING,
        )
        if decision.pause and pause is None:
            pause = (row.code, f"status webhook: error {row.code}")
        if decision.status == Delivery.Status.QUEUED:
            retries[(decision.delay, decision.give_back, decision.template)].append(row.id)
            retried_posts.add(row.post_id)
        elif decision.status == Delivery.Status.CANCELLED:
            stopped.append(row.id)
        if decision.unreachable:
            unreachable.append(row.subscriber_id)
        if decision.opted_out:
            opted_out.append(row.subscriber_id)
    if unreachable:
        Subscriber.objects.filter(id__in=unreachable, status=Subscriber.Status.ACTIVE).update(
            status=Subscriber.Status.UNREACHABLE
        )
    if opted_out:
        Subscriber.objects.filter(id__in=opted_out).update(marketing_opt_out=True)
    if stopped:
        Delivery.objects.filter(id__in=stopped).update(status=Delivery.Status.CANCELLED)
    gone = {row.post_id for row in failed if handling_for(row.code) is Handling.MEDIA_GONE}
    if gone:  # Meta lost the posts' uploaded files: their retries upload them again
        transaction.on_commit(lambda: post_media_forget(gone))
    if pause is not None:
        # Once ours commits, in its own transaction, and before the senders woken below run.
        transaction.on_commit(lambda: pause_sending(code=pause[0], reason=pause[1]))
    _retry(retries, [pk for pk in retried_posts if posts.get(pk) == Post.Status.SENT])


def _retry(retries: dict[tuple[float, int, bool | None], list[int]], finished: list[int]) -> None:
    """Queue the rows again; `finished`: their posts that were sent (their lock, taken first,
    says so for certain), sending again until the retry ends, with their senders woken."""
    now = timezone.now()
    for (delay, give_back, template), ids in retries.items():
        extra = {} if template is None else {"used_template": template}
        Delivery.objects.filter(id__in=ids).update(
            status=Delivery.Status.QUEUED,
            next_attempt_at=now + timedelta(seconds=delay),
            attempts=F("attempts") - give_back,
            **extra,
        )
    Post.objects.filter(pk__in=finished, status=Post.Status.SENT).update(
        status=Post.Status.SENDING, finished_at=None
    )
    for post_id in finished:
        senders_needed.send(sender=Post, post_id=post_id)
