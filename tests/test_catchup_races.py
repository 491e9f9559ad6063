"""Catch-up starts are decided in the database: raced from real threads with their own
connections (on PostgreSQL under the job's row lock), only the oldest catch-up run starts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from runner.models import Job, Run, RunStatus
from tests.factories import JobFactory, RunFactory

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _race(*calls):
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def go(index, call):
        try:
            barrier.wait(10)
            results[index] = call()
        finally:
            connection.close()

    threads = [threading.Thread(target=go, args=(n, c)) for n, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    return results


@pytest.mark.parametrize("round_", range(15))
def test_racing_starts_never_run_two_scheduled_runs_or_break_the_order(round_):
    job = JobFactory(id=f"catch{round_}", schedule="* * * * *", missed_fire_policy="all")
    older = RunFactory(job=job, trigger="schedule", scheduled_for=NOW, catch_up=True)
    newer = RunFactory(job=job, trigger="schedule", scheduled_for=NOW + MINUTE, catch_up=True)
    live = RunFactory(job=job, trigger="schedule", scheduled_for=NOW + 5 * MINUTE)
    retry_like = RunFactory(job=job, trigger="retry", scheduled_for=NOW + 4 * MINUTE)
    runs = [newer, live, older, retry_like]
    fresh = [Run.objects.select_related("job").get(pk=r.pk) for r in runs]
    _race(*[lambda r=r, n=n: r.start(f"host:{n}", NOW + 6 * MINUTE) for n, r in enumerate(fresh)])
    running = set(
        Run.objects.filter(job=job, status=RunStatus.RUNNING).values_list("pk", flat=True)
    )
    assert running == {older.pk}
    assert Run.objects.get(pk=newer.pk).status == RunStatus.PENDING
    assert Job.objects.filter(pk=job.pk).exists()
