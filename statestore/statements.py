"""One hand-written statement on Django's connection, the short way on SQLite.

The state and queue calls scripts make most are single statements written by
hand (``statestore.sql``, ``queues.sql``). Through Django's cursor wrapper each
one also pays for a new cursor, two wrappers, a regular expression turning
``%s`` into ``?`` and the datetime adapter's settings look-ups: about 60 us of
Python on SQLite, more than the statement itself (benchmark P4). So on SQLite a
statement runs on the connection's own ``sqlite3`` handle, with its ``?`` form
made once, its errors turned into Django's by ``wrap_database_errors`` (the
same exceptions as everywhere), refused in a broken transaction as Django
refuses it.

The wrapper is kept whenever it does more than cost: on PostgreSQL, before the
thread's connection is open (it opens it), and while queries are logged
(``DEBUG``, or a test counting queries), so every statement is still seen.
``DEBUG`` is read once, not per statement (``statestore.runtime``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

from django.db.backends.base.base import BaseDatabaseWrapper

from statestore.runtime import cached_setting

T = TypeVar("T")
_FORMAT = re.compile(r"(?<!%)%s")  # Django's own, sqlite3/base.py FORMAT_QMARK_REGEX


def run(conn: BaseDatabaseWrapper, sql: str, params: Sequence[Any], read: Callable[[Any], T]) -> T:
    """Execute ``sql`` (``%s`` placeholders) on ``conn``; return ``read(cursor)``."""
    handle = conn.connection
    logged = conn.force_debug_cursor or cached_setting("DEBUG")  # Django's queries_logged
    if conn.vendor != "sqlite" or handle is None or logged:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return read(cursor)
    if conn.needs_rollback:
        conn.validate_no_broken_transaction()
    try:
        cursor = handle.execute(_qmark(sql), params)
        try:
            return read(cursor)
        finally:
            cursor.close()
    except Exception:
        # Entered only on an error, where it turns the driver's into Django's.
        with conn.wrap_database_errors:
            raise


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
    return moment.isoformat(" ")[:-6]  # str() of the naive moment: "+00:00" cut off


@lru_cache(maxsize=64)
def _qmark(sql: str) -> str:
    return _FORMAT.sub("?", sql).replace("%%", "%")
