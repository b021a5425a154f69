"""A post's deliveries counted by status without reading the post's rows.

`PostCount` holds signed deltas per (post, status, error code): database triggers on the
delivery table (migration 0013_post_counters) add, in the same transaction as the change and
whatever statement makes it (fan-out, claim, write-back, status webhooks, sweeper, cancel,
resend, the admin), the net difference per status. On PostgreSQL one statement-level trigger
per statement (its transition tables, grouped: one INSERT of a few rows however many rows the
statement changed); on SQLite a row-level trigger (one writer, development volume).

Deltas are inserted, never updated in place: two drains, a sender and a cancel changing one
post at once never wait for each other or deadlock on a counter row, and each transaction's
deltas become visible with its commit, so a reader always sees a committed state, exactly.
Reading sums the post's rows; `post_counts_fold` folds them into one row per key when they
pile up (on read past FOLD_AFTER rows, and from the sweeper). `post_counts_recount` rebuilds
them from the deliveries (`manage.py recount_posts`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db import connection, transaction

from subscribers.models import ActiveCount, Delivery, PostCount, Subscriber

STATUSES = list(Delivery.Status.values)
# Past this many delta rows a reader folds them first: a post sending at Meta's 1,000 msg/s
# with one status per webhook adds ≈ 1,500 a second.
FOLD_AFTER = 500
# pg_advisory_xact_lock(FOLD_LOCK, post id): one fold or recount of a post at a time.
FOLD_LOCK = 0x5C0

_TABLE = PostCount._meta.db_table
_ACTIVE = ActiveCount._meta.db_table
ACTIVE_LOCK = -2  # the fold lock of the active subscribers' count (post ids are positive)


def _sums(post_ids: list[int]) -> tuple[dict[int, dict[tuple[str, int | None], int]], set[int]]:
    """{post: {(status, code): n}} and the posts with more than FOLD_AFTER delta rows."""
    placeholders = ", ".join(["%s"] * len(post_ids))
    sql = (
        f"SELECT post_id, status, error_code, SUM(n), COUNT(*) FROM {_TABLE} "
        f"WHERE post_id IN ({placeholders}) GROUP BY post_id, status, error_code"
    )
    sums: dict[int, dict[tuple[str, int | None], int]] = defaultdict(dict)
    rows: dict[int, int] = defaultdict(int)
    with connection.cursor() as cursor:
        cursor.execute(sql, post_ids)
        for post_id, status, code, n, count in cursor.fetchall():
            if n:
                sums[post_id][(status, code)] = int(n)
            rows[post_id] += count
    return sums, {post_id for post_id, count in rows.items() if count > FOLD_AFTER}


def post_count_details(post_ids: Iterable[int]) -> dict[int, dict[tuple[str, int | None], int]]:
    """{post: {(status, error code or None): deliveries}}; the code only for `failed`."""
    ids = sorted(set(post_ids))
    if not ids:
        return {}
    sums, crowded = _sums(ids)
    for post_id in crowded:
        post_counts_fold(post_id)
    return {post_id: sums.get(post_id, {}) for post_id in ids}


def totals(details: dict[tuple[str, int | None], int]) -> dict[str, int]:
    """Every status (0 when none) and `reach`, their sum."""
    counters = dict.fromkeys(STATUSES, 0)
    for (status, _code), n in details.items():
        counters[status] = counters.get(status, 0) + n
    counters["reach"] = sum(counters[s] for s in STATUSES)
    return counters


def post_counts(post_id: int) -> dict[str, int]:
    return totals(post_count_details([post_id])[post_id])


def failed_by_code(post_id: int, details: dict | None = None) -> dict[int | None, int]:
    """{Meta's error code: failed deliveries}; `details`: the post's, if already read."""
    details = post_count_details([post_id])[post_id] if details is None else details
    return {code: n for (status, code), n in details.items() if status == "failed"}


# --- folding and recounting ----------------------------------------------------------------


def _lock(post_id: int, *, wait: bool) -> bool:
    """PostgreSQL: the post's fold lock until the transaction ends, and the "all posts" one
    (-1) shared by every fold and held alone by a recount of all posts. SQLite: one writer."""
    if connection.vendor != "postgresql":
        return True
    how = "" if wait else "try_"
    with connection.cursor() as cursor:
        if post_id == -1:
            cursor.execute(f"SELECT pg_{how}advisory_xact_lock(%s, -1)", [FOLD_LOCK])
        else:
            both = " AND " if how else ", "
            cursor.execute(
                f"SELECT pg_{how}advisory_xact_lock_shared(%s, -1){both}"
                f"pg_{how}advisory_xact_lock(%s, %s)",
                [FOLD_LOCK, FOLD_LOCK, post_id],
            )
        return wait or bool(cursor.fetchone()[0])


def post_counts_fold(post_id: int) -> bool:
    """Replace the post's delta rows by one row per (status, code). The DELETE returns exactly
    the rows it removed, so deltas committed meanwhile stay as they are. Skipped (False) when
    another fold of the post is running."""
    with transaction.atomic(), connection.cursor() as cursor:
        if not _lock(post_id, wait=False):
            return False
        cursor.execute(
            f"DELETE FROM {_TABLE} WHERE post_id = %s RETURNING status, error_code, n", [post_id]
        )
        folded: dict[tuple[str, int | None], int] = defaultdict(int)
        for status, code, n in cursor.fetchall():
            folded[(status, code)] += n
        _insert(cursor, [(post_id, s, c, n) for (s, c), n in sorted(folded.items(), key=str)])
    return True


def _insert(cursor, rows: list[tuple[int, str, int | None, int]]) -> None:
    rows = [row for row in rows if row[3]]
    if rows:
        cursor.executemany(
            f"INSERT INTO {_TABLE} (post_id, status, error_code, n) VALUES (%s, %s, %s, %s)",
            rows,
        )


def posts_fold_crowded() -> int:
    """Fold every post with more delta rows than keys (the sweeper's minute). Returns how many."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT post_id FROM {_TABLE} GROUP BY post_id "
            "HAVING COUNT(*) > COUNT(DISTINCT status || ':' || COALESCE(error_code, 0))"
        )
        crowded = [row[0] for row in cursor.fetchall()]
    return sum(post_counts_fold(post_id) for post_id in crowded)


def post_counts_recount(post_ids: Iterable[int] | None = None) -> int:
    """Rebuild the counters of these posts (all when None) from their deliveries; returns the
    number of deliveries counted. After the posts' fold locks (no fold runs meanwhile), on
    PostgreSQL one statement deletes the old rows and inserts the recount, both from one
    snapshot: deltas committed after it are neither removed nor counted, so they stay, exact.
    SQLite has one writer: two statements in one transaction are as good."""
    ids = None if post_ids is None else sorted(set(post_ids))
    where, params = "", []
    if ids is not None:
        if not ids:
            return 0
        where = "WHERE post_id IN (" + ", ".join(["%s"] * len(ids)) + ")"
        params = ids
    code = "CASE WHEN status = 'failed' THEN last_error_code END"
    recount = f"""INSERT INTO {_TABLE} (post_id, status, error_code, n)
        SELECT post_id, status, {code}, COUNT(*) FROM {Delivery._meta.db_table} {where}
        GROUP BY post_id, status, {code}"""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for post_id in ids if ids is not None else [-1]:  # -1: "all posts"
                _lock(post_id, wait=True)
            cursor.execute(f"WITH gone AS (DELETE FROM {_TABLE} {where}) {recount}", params * 2)
        else:
            cursor.execute(f"DELETE FROM {_TABLE} {where}", params)
            cursor.execute(recount, params)
        cursor.execute(f"SELECT COALESCE(SUM(n), 0) FROM {_TABLE} {where}", params)
        return int(cursor.fetchone()[0])


# --- active subscribers ------------------------------------------------------------------------


def active_subscribers() -> int:
    """Active subscribers now, exactly: the deltas the subscriber table's triggers insert with
    every change of status (migration 0016_active_count), summed; folded past FOLD_AFTER."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(SUM(n), 0), COUNT(*) FROM {_ACTIVE}")
        total, rows = cursor.fetchone()
    if rows > FOLD_AFTER:
        active_count_fold()
    return int(total)


def active_count_fold() -> bool:
    """One row for all the deltas, as post_counts_fold does for a post's."""
    with transaction.atomic(), connection.cursor() as cursor:
        if not _lock(ACTIVE_LOCK, wait=False):
            return False
        cursor.execute(f"DELETE FROM {_ACTIVE} RETURNING n")
        total = sum(row[0] for row in cursor.fetchall())
        if total:
            cursor.execute(f"INSERT INTO {_ACTIVE} (n) VALUES (%s)", [total])
    return True


def active_count_recount() -> int:
    """Rebuild the count from the subscribers, as post_counts_recount does for posts."""
    recount = (
        f"INSERT INTO {_ACTIVE} (n) SELECT COUNT(*) FROM {Subscriber._meta.db_table} "
        "WHERE status = 'active'"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            _lock(ACTIVE_LOCK, wait=True)
            cursor.execute(f"WITH gone AS (DELETE FROM {_ACTIVE}) {recount}")
        else:
            cursor.execute(f"DELETE FROM {_ACTIVE}")
            cursor.execute(recount)
        cursor.execute(f"SELECT COALESCE(SUM(n), 0) FROM {_ACTIVE}")
        return int(cursor.fetchone()[0])
