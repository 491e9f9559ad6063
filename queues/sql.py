"""The three statements of a consumer's loop, written by hand.

Each mirrors a rule of ``QueueItemQuerySet`` (named below), which the rest of
the code uses. Building them with the ORM cost several times more than running
them, and on SQLite the claim holds the write lock while it runs (benchmark P3);
the ORM also has no ``UPDATE ... RETURNING``. The same SQL runs on SQLite and
PostgreSQL through Django's connection (on SQLite the short way,
``statestore.statements``), with the back-end's own adapters.

The claim is one statement, so no window exists between choosing items and
taking them: on PostgreSQL the pick locks its rows ``FOR UPDATE SKIP LOCKED``
(concurrent claimers take disjoint items without waiting on each other); on
SQLite a write statement holds the write lock from its start, so claimers take
turns.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from queues.models import ItemStatus, QueueItem
from statestore.statements import adapt_datetime, run


def has_expired_claims(queue_id: str, now: datetime) -> bool:
    """Whether ``lease_expired(now)`` holds any item of the queue (a read: no lock)."""
    conn = connections[DEFAULT_DB_ALIAS]
    return run(conn, _EXPIRED_SQL, [queue_id, adapt_datetime(now, conn)], _found)


def complete_held(item_id: int, token: str, now: datetime) -> bool:
    """Mark the item completed if ``held(item_id, token)``; whether it was."""
    conn = connections[DEFAULT_DB_ALIAS]
    return run(conn, _COMPLETE_SQL, [adapt_datetime(now, conn), item_id, token], _one_changed)


def claim_items(
    queue_id: str, count: int, token: str, now: datetime, lease_expires_at: datetime
) -> list[tuple[int, Any, int, int]]:
    """Claim up to ``count`` of ``claimable(queue_id)`` for ``token``.

    Returns ``(id, payload, attempts, max_attempts)`` per item in claim order;
    ``attempts`` already counts this claim.
    """
    conn = connections[DEFAULT_DB_ALIAS]
    params = [
        queue_id,
        count,
        token,
        adapt_datetime(now, conn),
        adapt_datetime(lease_expires_at, conn),
    ]
    rows = run(conn, _claim_sql(conn.vendor), params, _fetchall)
    payload = QueueItem._meta.get_field("payload")
    rows.sort(key=lambda row: (-row[4], row[0]))
    return [
        (item_id, payload.from_db_value(raw, None, conn), attempts, max_attempts)
        for item_id, raw, attempts, max_attempts, _priority in rows
    ]


def _found(cursor: Any) -> bool:
    return cursor.fetchone() is not None


def _one_changed(cursor: Any) -> bool:
    return cursor.rowcount == 1


def _fetchall(cursor: Any) -> list:
    return cursor.fetchall()


_PENDING, _CLAIMED = ItemStatus.PENDING.value, ItemStatus.CLAIMED.value
_EXPIRED_SQL = (
    f"SELECT 1 FROM queue_items WHERE status = '{_CLAIMED}' AND queue_id = %s "
    "AND lease_expires_at <= %s LIMIT 1"
)
_COMPLETE_SQL = (
    f"UPDATE queue_items SET status = '{ItemStatus.COMPLETED.value}', completed_at = %s, "
    f"claim_token = NULL, lease_expires_at = NULL "
    f"WHERE id = %s AND status = '{_CLAIMED}' AND claim_token = %s"
)


@lru_cache(maxsize=4)
def _claim_sql(vendor: str) -> str:
    # MATERIALIZED keeps PostgreSQL from folding the locked pick into the UPDATE.
    postgres = vendor == "postgresql"
    materialized, lock = ("MATERIALIZED ", " FOR UPDATE SKIP LOCKED") if postgres else ("", "")
    return (
        f"WITH picked AS {materialized}("
        f"SELECT id FROM queue_items WHERE queue_id = %s AND status = '{_PENDING}' "
        f"ORDER BY priority DESC, id LIMIT %s{lock}) "
        f"UPDATE queue_items SET status = '{_CLAIMED}', claim_token = %s, "
        "claimed_at = %s, lease_expires_at = %s, attempts = attempts + 1 "
        f"WHERE id IN (SELECT id FROM picked) AND status = '{_PENDING}' "
        "RETURNING id, payload, attempts, max_attempts, priority"
    )
