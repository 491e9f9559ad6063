"""Steps of the wall clock: intervals keep their pace, fires stay exactly once, skipped
slots follow the missed-fire policy (issue 11, item 8). Injected (wall, monotonic) clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from runner.daemon import Daemon
from runner.models import Job, Run, RunStatus, SchedulerHeartbeat
from runner.scheduler import Scheduler
from tests.factories import JobFactory
from tests.fakes.clocks import FakeClocks

# The loop calls close_old_connections(): these tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def clocks() -> FakeClocks:
    return FakeClocks(NOW)


@pytest.fixture
def daemon(clocks, dispatched, runner_config) -> Daemon:
    runner_config(reconcile_interval_ms=1000, heartbeat_interval_ms=5000)
    daemon = Daemon(workers=False, clocks=clocks)
    daemon.scheduler._dispatch = dispatched
    daemon.liveness._dispatch = dispatched
    daemon.liveness._database_clock = clocks.wall
    daemon.start()
    return daemon


def job(job_id: str = "tick", schedule: str = "* * * * * *", **fields) -> Job:
    made = JobFactory(id=job_id, schedule=schedule, **fields)
    Job.objects.filter(pk=made.pk).update(created_at=NOW, schedule_effective_at=NOW, updated_at=NOW)
    return made


def run_for(daemon: Daemon, clocks: FakeClocks, seconds: int) -> None:
    """Let the loop run ``seconds`` of monotonic time, one cycle a second."""
    for _ in range(seconds):
        clocks.advance(1)
        daemon.cycle()


def fires(job_id: str = "tick") -> list[datetime]:
    return list(
        Run.objects.filter(job_id=job_id)
        .order_by("scheduled_for")
        .values_list("scheduled_for", flat=True)
    )


def test_after_a_step_back_an_edit_is_still_picked_up(daemon, clocks):
    made = job()
    job("yearly", "0 0 1 1 *")  # its updated_at stays the newest after the step
    daemon.start()
    run_for(daemon, clocks, 3)
    clocks.step_wall(-HOUR)
    run_for(daemon, clocks, 2)
    with time_machine.travel(clocks.wall(), tick=False):  # the edit is stamped on wall time
        made.enabled = False
        made.save()
    run_for(daemon, clocks, 2)
    assert "tick" not in daemon.scheduler.planned()
    clocks.step_wall(HOUR)
    run_for(daemon, clocks, 5)
    assert fires() == [NOW + timedelta(seconds=s) for s in (1, 2, 3)]


def test_after_a_step_back_a_new_job_is_planned_and_fires_at_its_wall_instant(daemon, clocks):
    clocks.step_wall(-HOUR)
    job("new")
    run_for(daemon, clocks, 3)
    assert fires("new") == [NOW - HOUR + timedelta(seconds=s) for s in (2, 3)]


def test_after_a_step_back_the_heartbeat_liveness_and_maintenance_go_on(
    daemon, clocks, monkeypatch, dispatched
):
    maintained = []
    monkeypatch.setattr("runner.daemon.run_maintenance", lambda now, budget: maintained.append(now))
    daemon.cycle()
    clocks.step_wall(-HOUR)
    lost = Run.objects.create(job=job("lost", "0 0 1 1 *"), trigger="manual")
    Run.objects.filter(pk=lost.pk).update(created_at=NOW - 2 * HOUR)
    run_for(daemon, clocks, 60)
    seen = SchedulerHeartbeat.objects.get(pk=daemon.identity).seen_at
    assert seen == NOW - HOUR + timedelta(seconds=60)  # beats every 5 s, on wall time
    assert lost.pk in dispatched  # liveness dispatched the lost run again
    assert len(maintained) >= 2


def test_fires_recorded_before_a_step_back_are_not_recorded_again(clocks, dispatched):
    job()
    first = Scheduler(dispatcher=dispatched, monotonic=clocks.monotonic)
    first.start(NOW)
    for _ in range(5):
        first.fire_due(clocks.advance(1))
    recorded = list(dispatched)
    clocks.step_wall(-timedelta(seconds=4))  # back to NOW + 1 s; a restart follows
    restarted = Scheduler(dispatcher=dispatched, monotonic=clocks.monotonic)
    restarted.start(clocks.wall())
    for _ in range(5):
        restarted.fire_due(clocks.advance(1))
    assert fires() == [NOW + timedelta(seconds=s) for s in range(1, 7)]
    assert dispatched == [*recorded, Run.objects.get(scheduled_for=NOW + timedelta(seconds=6)).pk]


def test_a_replanned_job_after_a_step_back_does_not_record_its_fires_twice(clocks, dispatched):
    made = job()
    scheduler = Scheduler(dispatcher=dispatched, monotonic=clocks.monotonic)
    scheduler.start(NOW)
    for _ in range(3):
        scheduler.fire_due(clocks.advance(1))
    back = clocks.step_wall(-timedelta(seconds=3))
    made.schedule = "*/1 * * * * *"  # the same instants, planned anew from the stepped-back now
    made.save()
    scheduler.reconcile(back)
    for _ in range(3):
        scheduler.fire_due(clocks.advance(1))
    assert fires() == [NOW + timedelta(seconds=s) for s in range(1, 4)]
    assert len(dispatched) == 3


@pytest.mark.parametrize(
    "policy,statuses",
    [("skip", ["skipped"]), ("latest", ["pending"]), ("all", ["pending"] * 60)],
)
def test_slots_skipped_by_a_forward_step_follow_the_missed_fire_policy(
    daemon, clocks, policy, statuses
):
    job("minutely", "* * * * *", missed_fire_policy=policy)
    daemon.start()
    clocks.step_wall(HOUR)
    run_for(daemon, clocks, 1)
    caught_up = Run.objects.filter(job_id="minutely").order_by("scheduled_for")
    assert [run.status for run in caught_up] == statuses
    assert caught_up.last().scheduled_for == NOW + HOUR
    assert daemon.scheduler.planned() == {"minutely": NOW + HOUR + timedelta(minutes=1)}


def test_a_forward_step_does_not_kill_a_healthy_forty_second_run(daemon, clocks):
    run = Run.objects.create(job=job("long", "0 0 1 1 *"), status=RunStatus.RUNNING)
    Run.objects.filter(pk=run.pk).update(worker="far-host:7", started_at=NOW, heartbeat_at=NOW)
    database = FakeClocks(NOW)
    daemon.liveness._database_clock = database.wall
    clocks.step_wall(HOUR)  # the scheduler's host clock jumps; the database's does not
    for second in range(1, 41):
        clocks.advance(1)
        database.advance(1)
        if second % 5 == 0:  # the worker beats on the database's clock
            Run.objects.filter(pk=run.pk).update(heartbeat_at=NOW + timedelta(seconds=second))
        daemon.cycle()
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING


def test_the_sleep_is_bounded_after_a_step_back(daemon, clocks):
    job()
    daemon.cycle()
    clocks.step_wall(-HOUR)
    assert 0 <= daemon.sleep_for() <= 1.0


def test_the_loop_does_not_rush_after_a_step_forward(daemon, clocks, runner_config):
    runner_config(heartbeat_interval_ms=5000)
    daemon.cycle()
    beats = SchedulerHeartbeat.objects.get(pk=daemon.identity).seen_at
    clocks.step_wall(HOUR)
    daemon.cycle()  # no monotonic time passed: the heartbeat is not due
    assert SchedulerHeartbeat.objects.get(pk=daemon.identity).seen_at == beats
    assert daemon.sleep_for() > 0
