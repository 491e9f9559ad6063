"""Row locks that only PostgreSQL can show missing: a second claimer meets the first one's
open transaction.

On SQLite every write transaction holds the database's write lock, so the second
claimer simply waits its turn and the outcome is the same whenever the first commits.
On PostgreSQL the first commits only once the second is waiting on a lock or done,
so a missing ``FOR UPDATE`` (the second would not wait, and decide from a snapshot
without the first's change) fails these tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django_q.conf import Conf
from django_q.models import OrmQ

from queues.operations import dequeue, enqueue
from runner import dispatch
from runner.broker import RunnerORM
from runner.models import Run, StartResult
from tests.factories import JobFactory, RunFactory
from tests.moments import NOW

pytestmark = pytest.mark.django_db(transaction=True)

# Ceiling for the second claimer to reach its lock; normally milliseconds.
REACH_LOCK_S = 20.0


class Second(threading.Thread):
    """Runs ``work`` on its own connection and keeps what it returned."""

    def __init__(self, work: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.result: object = None

    def run(self) -> None:
        try:
            self.result = self.work()
        finally:
            connections.close_all()


def wait_until_waiting_on_a_lock_or_done(second: Second) -> None:
    """PostgreSQL: return once ``second`` waits on a row lock, or has finished."""
    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + REACH_LOCK_S
    with connections["default"].cursor() as cursor:
        while second.is_alive() and time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
            second.join(0.01)


def test_a_start_waits_for_a_running_start_of_the_same_skip_job_and_is_skipped():
    job = JobFactory(overlap_policy="skip")
    first, other = RunFactory(job=job), RunFactory(job=job, trigger="schedule")
    second = Second(lambda: other.start("host:2", NOW))
    with transaction.atomic():
        assert first.start("host:1", NOW) == StartResult.STARTED
        second.start()
        wait_until_waiting_on_a_lock_or_done(second)
    second.join(REACH_LOCK_S)
    assert second.result == StartResult.SKIPPED


def test_a_claim_beside_an_open_claim_takes_the_next_item():
    ids = [enqueue("work", {"n": n}) for n in range(2)]
    second = Second(lambda: [item.id for item in dequeue("work", count=1)])
    with transaction.atomic():
        assert [item.id for item in dequeue("work", count=1)] == ids[:1]
        second.start()
        wait_until_waiting_on_a_lock_or_done(second)
    second.join(REACH_LOCK_S)
    assert second.result == ids[1:]


def test_a_task_claim_beside_an_open_task_claim_takes_the_next_task(monkeypatch):
    monkeypatch.setattr(Conf, "BULK", 1)
    dispatch.dispatch([11, 12])
    broker = RunnerORM(list_key=dispatch.broker().list_key)
    first_ids = sorted(OrmQ.objects.values_list("id", flat=True))
    second = Second(lambda: [task_id for task_id, _payload in broker.dequeue() or []])
    with transaction.atomic():
        assert [task_id for task_id, _payload in broker.dequeue()] == first_ids[:1]
        second.start()
        wait_until_waiting_on_a_lock_or_done(second)
    second.join(REACH_LOCK_S)
    assert second.result == first_ids[1:]


def test_a_batch_start_waits_for_a_running_start_of_the_same_skip_job():
    """``Run.start_many`` locks the jobs' rows as ``start`` does: a fire of a skip job whose
    other run is starting in an open transaction is skipped, its neighbour still starts."""
    job = JobFactory(overlap_policy="skip")
    first, other = RunFactory(job=job), RunFactory(job=job, trigger="schedule")
    neighbour = RunFactory(job=JobFactory(overlap_policy="skip"), trigger="schedule")
    second = Second(lambda: Run.start_many([other, neighbour], "host:2", NOW))
    with transaction.atomic():
        assert first.start("host:1", NOW) == StartResult.STARTED
        second.start()
        wait_until_waiting_on_a_lock_or_done(second)
    second.join(REACH_LOCK_S)
    assert second.result == {other.pk: StartResult.SKIPPED, neighbour.pk: StartResult.STARTED}


def test_a_start_does_not_wait_for_a_fire_being_recorded_for_the_same_job():
    """The scheduler's INSERT of a run takes a key-share lock on its job's row for its
    foreign-key check (at commit, or at once as here) and holds it until it commits. A
    start must not wait for it: with ``FOR UPDATE`` it would, and a batch of starts
    locking several jobs could deadlock with a batch of fires locking them in another
    order (probe finding). Starts of one job still wait for each other (the test above)."""
    job, other_job = JobFactory(overlap_policy="skip"), JobFactory()
    runs = [RunFactory(job=job, trigger="schedule"), RunFactory(job=other_job, trigger="schedule")]
    second = Second(lambda: Run.start_many(runs, "host:2", NOW))
    with transaction.atomic():
        if connection.vendor == "postgresql":  # the check (and its lock) now, not at commit
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        RunFactory(job=job, trigger="schedule", scheduled_for=NOW + timedelta(seconds=1))
        second.start()
        if connection.vendor == "postgresql":  # on SQLite the INSERT holds the write lock
            second.join(REACH_LOCK_S)
            assert not second.is_alive(), "the start waited for the INSERT's transaction"
    second.join(REACH_LOCK_S)
    assert second.result == {run.pk: StartResult.STARTED for run in runs}
