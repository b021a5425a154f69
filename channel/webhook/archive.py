"""The webhook archive: every POST's raw body, stored before anything reads it.

Meta cannot resend a webhook once it got a 200, so the body is kept exactly as received and
processed later (`channel.webhook.drain`). This runs inside the request, once per webhook POST,
on the hottest path of the web process (`channel.webhook.intake`): one INSERT, no ORM.
"""

from __future__ import annotations

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from channel.models import InboundEvent


def _as_text(body: bytes) -> str:
    # PostgreSQL text cannot hold NUL; undecodable bytes are kept visibly rather than dropped.
    return body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


_ARCHIVE_SQL = (
    f"INSERT INTO {InboundEvent._meta.db_table}"
    " (received_at, body, signature_valid, problems, processed_at)"
)
# PostgreSQL: constant statements with one parameter each; clock_timestamp(), not now(), so
# rows archived inside one transaction (tests) still get distinct, ordered times.
_ARCHIVE_PG = _ARCHIVE_SQL + " VALUES (clock_timestamp(), %s, true, '', NULL)"
_ARCHIVE_REJECTED_PG = _ARCHIVE_SQL + " VALUES (clock_timestamp(), %s, %s, %s, clock_timestamp())"
_ARCHIVE_OTHER = _ARCHIVE_SQL + " VALUES (%s, %s, %s, %s, %s)"


def record_inbound_event(*, body: bytes, signature_valid: bool, problems: str = "") -> None:
    """Archive a webhook POST exactly as received.

    Rows that are rejected (malformed JSON) are archived already processed, so no drain picks
    them up. POSTs with a bad signature come here no more: `channel.webhook.forgeries` counts
    them and archives only a bounded sample. One INSERT on Django's own connection (its
    transaction, its error bookkeeping), without the ORM: this runs once per status webhook.
    """
    text = _as_text(body)
    rejected = not signature_valid or bool(problems)
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor == "postgresql":
        db.ensure_connection()
        sql, params = (
            (_ARCHIVE_REJECTED_PG, [text, signature_valid, problems])
            if rejected
            else (_ARCHIVE_PG, [text])
        )
        # A plain psycopg cursor binds server-side: ~35 µs against ~60 µs for Django's
        # client-side cursor and ~150 µs for the ORM (bench/webhook_intake.py).
        with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
            cursor.execute(sql, params)
        return
    now = db.ops.adapt_datetimefield_value(timezone.now())
    with db.cursor() as cursor:
        cursor.execute(
            _ARCHIVE_OTHER, [now, text, signature_valid, problems, now if rejected else None]
        )
