"""The two clocks of the scheduler, and the database's clock.

* The **wall clock** (``timezone.now``) says which cron instant it is; it can step
  (NTP, an operator, a suspended VM).
* The **monotonic clock** (``time.monotonic``) measures intervals: how long until
  the next reconcile, liveness check, heartbeat or maintenance, how long to sleep,
  how long a run's heartbeat has stood still. It never steps.
* The **database's clock** stamps run heartbeats and judges them stale, so a step
  of the scheduler's own clock cannot make a worker look dead.

Code takes a ``Clocks`` pair so tests can move the two apart (``tests.fakes.clocks``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection
from django.utils import timezone


@dataclass(frozen=True)
class Clocks:
    """A wall clock (aware UTC datetimes) and a monotonic clock (seconds, float)."""

    wall: Callable[[], datetime] = field(default=timezone.now)
    monotonic: Callable[[], float] = field(default=time.monotonic)


SYSTEM = Clocks()


def database_now() -> datetime:
    """The database server's current time (aware UTC), read with one query.

    PostgreSQL's ``clock_timestamp()`` (not ``now()``, which is frozen for the
    transaction); SQLite's ``'now'``, which is the clock of the host holding the file.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT clock_timestamp()")
            return cursor.fetchone()[0].astimezone(UTC)
        cursor.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")
        return datetime.fromisoformat(cursor.fetchone()[0]).replace(tzinfo=UTC)
