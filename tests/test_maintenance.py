"""Maintenance prunes what is past its time, in batches, and leaves everything else."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from queues.models import QueueItem
from runner.maintenance import maintenance_tasks, run_maintenance
from runner.models import Run, RunStatus
from statestore.models import StateEntry, StateItem
from tests.factories import (
    JobFactory,
    QueueFactory,
    QueueItemFactory,
    RunFactory,
    StateEntryFactory,
    StateItemFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=400)


@pytest.fixture(autouse=True)
def thirty_day_retention(settings):
    settings.RUNNER = dataclasses.replace(settings.RUNNER, run_retention_days=30)


def finished_runs(count: int, finished_at: datetime, status: str = RunStatus.OK) -> None:
    job = JobFactory()
    Run.objects.bulk_create(
        Run(job=job, status=status, finished_at=finished_at) for _ in range(count)
    )


def test_finished_runs_older_than_the_retention_are_pruned():
    for status in (RunStatus.OK, RunStatus.ERROR, RunStatus.TIMEOUT, RunStatus.SKIPPED):
        finished_runs(2, NOW - timedelta(days=31), status)
    report = run_maintenance(NOW, budget_s=1)
    assert (report.changed["runs"], Run.objects.count()) == (8, 0)


def test_runs_finished_within_the_retention_are_kept():
    finished_runs(3, NOW - timedelta(days=29))
    run_maintenance(NOW, budget_s=1)
    assert Run.objects.count() == 3


def test_pending_and_running_runs_are_never_pruned_however_old():
    pending = RunFactory(status=RunStatus.PENDING)
    running = RunFactory(status=RunStatus.RUNNING)
    Run.objects.update(created_at=LONG_AGO, started_at=LONG_AGO, finished_at=LONG_AGO)
    run_maintenance(NOW, budget_s=1)
    assert set(Run.objects.values_list("pk", flat=True)) == {pending.pk, running.pk}


def test_the_retention_setting_is_read_when_maintenance_runs(settings):
    finished_runs(1, NOW - timedelta(days=3))
    settings.RUNNER = dataclasses.replace(settings.RUNNER, run_retention_days=2)
    run_maintenance(NOW, budget_s=1)
    assert Run.objects.count() == 0


def test_a_spent_budget_stops_after_one_batch_and_says_more_is_left():
    finished_runs(25, LONG_AGO)
    report = run_maintenance(NOW, budget_s=0, batch_size=10)
    assert (report.changed["runs"], report.more, Run.objects.count()) == (10, True, 15)


def test_a_backlog_larger_than_the_budget_is_cleared_over_several_calls():
    finished_runs(25, LONG_AGO)
    calls = [run_maintenance(NOW, budget_s=0, batch_size=10) for _ in range(4)]
    assert [call.changed["runs"] for call in calls] == [10, 10, 5, 0]
    assert (calls[-2].more, calls[-1].more, Run.objects.count()) == (True, False, 0)


def test_which_task_goes_first_moves_on_with_each_second():
    seconds = [NOW + timedelta(seconds=n) for n in range(len(maintenance_tasks()))]
    first = {next(iter(run_maintenance(at, budget_s=0).changed)) for at in seconds}
    assert first == set(maintenance_tasks())


def test_a_call_with_budget_to_spare_clears_the_whole_backlog():
    finished_runs(25, LONG_AGO)
    report = run_maintenance(NOW, budget_s=5, batch_size=10)
    assert (report.changed["runs"], report.more, Run.objects.count()) == (25, False, 0)


def test_the_oldest_runs_are_pruned_first():
    finished_runs(1, NOW - timedelta(days=40))
    finished_runs(1, NOW - timedelta(days=50))
    run_maintenance(NOW, budget_s=0, batch_size=1)
    assert Run.objects.get().finished_at == NOW - timedelta(days=40)


def test_maintenance_twice_is_the_same_as_once():
    finished_runs(5, LONG_AGO)
    finished_runs(2, NOW)
    run_maintenance(NOW, budget_s=1)
    again = run_maintenance(NOW, budget_s=1)
    assert (again.total, again.more, Run.objects.count()) == (0, False, 2)


def test_expired_state_values_and_items_are_deleted():
    StateEntryFactory(key="gone", expires_at=NOW - timedelta(seconds=1))
    StateEntryFactory(key="kept", expires_at=NOW + timedelta(hours=1))
    StateEntryFactory(key="forever", expires_at=None)
    StateItemFactory(item_key="gone", expires_at=NOW - timedelta(seconds=1))
    StateItemFactory(item_key="kept", expires_at=None)
    run_maintenance(NOW, budget_s=1)
    assert sorted(StateEntry.objects.values_list("key", flat=True)) == ["forever", "kept"]
    assert list(StateItem.objects.values_list("item_key", flat=True)) == ["kept"]


def test_finished_queue_items_past_their_queue_retention_are_pruned():
    queue = QueueFactory(retention={"completed": "7d", "failed": "30d"})
    old_done = QueueItemFactory(queue=queue, status="completed", completed_at=NOW - timedelta(8))
    QueueItemFactory(queue=queue, status="completed", completed_at=NOW - timedelta(6))
    QueueItemFactory(queue=queue, status="failed", completed_at=NOW - timedelta(8))
    QueueItemFactory(queue=queue, status="pending")
    run_maintenance(NOW, budget_s=1)
    assert QueueItem.objects.count() == 3
    assert not QueueItem.objects.filter(pk=old_done.pk).exists()
