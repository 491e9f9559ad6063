"""django-q2's ORM broker, claiming a batch of tasks in one statement.

The stock ORM broker reads up to ``bulk`` tasks, then claims each with its own
conditional UPDATE (and one more SELECT): two statements a task, which at a hundred
fires a second kept the cluster's pusher busier than the runs themselves. Here the
pick and the claim are one ``UPDATE ... RETURNING``, with the same claim rule (a task
whose ``lock`` has passed gets a new lock ``retry`` seconds ahead), so several hosts
still take disjoint tasks: on PostgreSQL the pick skips rows another claimer has
locked; on SQLite a write statement holds the write lock from its start.
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

    def dequeue(self) -> list[tuple[int, str]] | None:
        """Claim up to ``bulk`` tasks; sleep ``poll`` seconds and return None if none."""
        connection = connections[Conf.ORM]
        if transaction.get_autocommit(using=Conf.ORM):
            close_old_connections()
        now = timezone.now()
        adapt = connection.ops.adapt_datetimefield_value
        with connection.cursor() as cursor:
            cursor.execute(
                _claim_sql(connection.vendor),
                [self.list_key, adapt(now), Conf.BULK, adapt(self.timeout(None)), adapt(now)],
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
        f"UPDATE {table} SET lock = %s WHERE id IN (SELECT id FROM picked) AND lock < %s "
        "RETURNING id, payload"
    )
