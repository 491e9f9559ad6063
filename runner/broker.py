"""django-q2's ORM broker, claiming a batch of tasks in one statement.

The stock ORM broker reads up to ``bulk`` tasks, claims each with its own
conditional UPDATE, and deletes each after it ran (the acknowledgement): three
writes a task, which at a hundred fires a second kept SQLite's single writer busier
than the runs themselves. Here a claim takes up to ``bulk`` tasks with one
``DELETE ... RETURNING`` of tasks whose ``lock`` has passed, and acknowledging is a
no-op. Several hosts still take disjoint tasks: on PostgreSQL the pick skips rows
another claimer has locked; on SQLite a write statement holds the write lock from
its start.

What the delete gives up is django-q2's redelivery of a task whose worker died
before acknowledging it, which with our ``retry`` (above any job timeout, so a long
run is never delivered twice) would come after a month anyway. A run is what must not
be lost, and the ``runs`` table keeps it: a run still ``pending`` after
``pendingRedispatchMs`` is dispatched again by the liveness check.
"""

from __future__ import annotations

from functools import lru_cache
from time import sleep

from django.db import close_old_connections, connections, transaction
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ


class RunnerORM(ORM):
    """The ORM broker with a one-statement batch claim (see the module docstring)."""

    def acknowledge(self, task_id: int) -> None:
        """Nothing left to do: the claim removed the task."""

    def fail(self, task_id: int) -> None:
        """Nothing left to do: the claim removed the task."""

    def dequeue(self) -> list[tuple[int, str]] | None:
        """Claim (remove) up to ``bulk`` due tasks; sleep ``poll`` s and return None if none."""
        connection = connections[Conf.ORM]
        if transaction.get_autocommit(using=Conf.ORM):
            close_old_connections()
        now = timezone.now()
        adapt = connection.ops.adapt_datetimefield_value
        with connection.cursor() as cursor:
            cursor.execute(
                _claim_sql(connection.vendor),
                [self.list_key, adapt(now), Conf.BULK, adapt(now)],
            )
            rows = cursor.fetchall()
        if rows:
            return sorted(rows)
        sleep(Conf.POLL)
        return None


@lru_cache(maxsize=4)
def _claim_sql(vendor: str) -> str:
    table = OrmQ._meta.db_table
    postgres = vendor == "postgresql"
    materialized, lock = ("MATERIALIZED ", " FOR UPDATE SKIP LOCKED") if postgres else ("", "")
    return (
        f"WITH picked AS {materialized}(SELECT id FROM {table} WHERE key = %s AND lock < %s "
        f"ORDER BY id LIMIT %s{lock}) "
        f"DELETE FROM {table} WHERE id IN (SELECT id FROM picked) AND lock < %s "
        "RETURNING id, payload"
    )
