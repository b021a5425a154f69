"""Our reference on every message we send, and the statuses Meta reports back about it.

Meta echoes `biz_opaque_callback_data` in every status webhook of the message
(https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages), so a status
finds its row even before the message id (wamid) was written back, and tells a post's delivery
("d:<delivery id>:<attempt>") from a service message ("svc:<outbound id>") without a database
lookup. A delivery's reference names the attempt too: Meta may repeat an old attempt's statuses
after the row was sent again, and those must not touch the new attempt. The references are
built and read here only.
"""

from __future__ import annotations

from enum import StrEnum

DELIVERY_PREFIX = "d:"
SERVICE_PREFIX = "svc:"
_MAX_DIGITS = 18  # fits a bigint: a longer tail is not one of ours
_MAX_ATTEMPT_DIGITS = 9  # fits an int


def delivery_reference(delivery_id: int, attempt: int = 0) -> str:
    """`d:<id>:<attempt>`; attempt 0 is `d:<id>`, as every message was written before
    attempts were numbered (a row never claimed since still has attempt 0)."""
    if attempt:
        return f"{DELIVERY_PREFIX}{delivery_id}:{attempt}"
    return f"{DELIVERY_PREFIX}{delivery_id}"


def service_reference(outbound_id: int) -> str:
    return f"{SERVICE_PREFIX}{outbound_id}"


def _id_after(prefix: str, data: str | None) -> int | None:
    if not data or not data.startswith(prefix):
        return None
    tail = data[len(prefix) :]
    if not (tail.isascii() and tail.isdigit()) or len(tail) > _MAX_DIGITS:
        return None
    return int(tail)


def delivery_attempt(data: str | None) -> tuple[int, int] | None:
    """(delivery id, attempt) a post's status is about; None when `data` is not a delivery
    reference."""
    if not data or not data.startswith(DELIVERY_PREFIX):
        return None
    head, colon, attempt = data.partition(":")[2].partition(":")
    delivery = _id_after("", head)
    if delivery is None:
        return None
    if not colon:
        return delivery, 0
    if not (attempt.isascii() and attempt.isdigit()) or len(attempt) > _MAX_ATTEMPT_DIGITS:
        return None
    return delivery, int(attempt)


def service_id(data: str | None) -> int | None:
    """The service message a status is about; None when `data` is not a service reference."""
    return _id_after(SERVICE_PREFIX, data)


def is_service(data: str | None) -> bool:
    return bool(data) and data.startswith(SERVICE_PREFIX)


class MessageStatus(StrEnum):
    """What a status webhook says happened to a message."""

    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


# Meta guarantees neither order nor uniqueness: a status only moves a message up this ladder,
# and `read` implies `delivered` even when that status never came. `failed` is not on it.
RANK: dict[str, int] = {MessageStatus.SENT: 1, MessageStatus.DELIVERED: 2, MessageStatus.READ: 3}


def rank_sql(column: str) -> str:
    """The same ladder as a SQL expression over a status column (0 for anything else)."""
    whens = " ".join(f"WHEN '{status}' THEN {rank}" for status, rank in RANK.items())
    return f"CASE {column} {whens} ELSE 0 END"
