"""One hand-written statement on Django's connection, the short way on SQLite.

The state and queue calls scripts make most are single statements written by
hand (``statestore.sql``, ``queues.sql``). Through Django's cursor wrapper each
one also pays for a new cursor, two wrappers, a regular expression turning
``%s`` into ``?`` and the datetime adapter's settings look-ups: about 60 us of
Python on SQLite, more than the statement itself (benchmark P4). So on SQLite a
statement runs on the connection's own ``sqlite3`` handle, with its ``?`` form
made once, still inside ``wrap_database_errors`` (the same exceptions as
everywhere) and refused in a broken transaction as Django refuses it.

The wrapper is kept whenever it does more than cost: on PostgreSQL, before the
thread's connection is open (it opens it), and while queries are logged
(``DEBUG``, or a test counting queries), so every statement is still seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

from django.db.backends.base.base import BaseDatabaseWrapper

T = TypeVar("T")
_FORMAT = re.compile(r"(?<!%)%s")  # Django's own, sqlite3/base.py FORMAT_QMARK_REGEX


def run(conn: BaseDatabaseWrapper, sql: str, params: Sequence[Any], read: Callable[[Any], T]) -> T:
    """Execute ``sql`` (``%s`` placeholders) on ``conn``; return ``read(cursor)``."""
    if conn.vendor != "sqlite" or conn.connection is None or conn.queries_logged:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return read(cursor)
    conn.validate_no_broken_transaction()
    with conn.wrap_database_errors:
        cursor = conn.connection.execute(_qmark(sql), params)
        try:
            return read(cursor)
        finally:
            cursor.close()


def adapt_datetime(moment: datetime | None, conn: BaseDatabaseWrapper) -> Any:
    """``moment`` as ``conn``'s back-end stores it (Django's ``adapt_datetimefield_value``).

    An aware moment on SQLite, in the UTC connection zone USE_TZ gives it, is turned
    into the same text without that adapter's settings look-ups.
    """
    if moment is None:
        return None
    if conn.vendor != "sqlite" or moment.tzinfo is None or conn.timezone is not UTC:
        return conn.ops.adapt_datetimefield_value(moment)
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return str(moment.replace(tzinfo=None))


@lru_cache(maxsize=64)
def _qmark(sql: str) -> str:
    return _FORMAT.sub("?", sql).replace("%%", "%")
