"""Overload coalescing: a pending run its job's schedule overtook is skipped, not run late
(issue 11, item 10). One rule, used by the scheduler's sweep and by the worker."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from runner import coalesce, pool, worker_state
from runner.daemon import Daemon
from runner.health import backlog_at
from runner.models import Job, Run, RunStatus
from runner.scheduler import Scheduler
from runner.tasks import run_task
from tests.factories import JobFactory
from tests.fakes.clocks import FakeClocks

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def pending(job: Job, at: datetime, trigger: str = "schedule") -> Run:
    return Run.objects.create(job=job, trigger=trigger, scheduled_for=at)


def statuses(job_id: str) -> list[tuple[datetime, str]]:
    runs = Run.objects.filter(job_id=job_id).order_by("scheduled_for")
    return list(runs.values_list("scheduled_for", "status"))


def reason_for(job: Job, at: datetime, now: datetime, trigger: str = "schedule") -> str | None:
    run = Run.objects.filter(pk=pending(job, at, trigger).pk).values(*coalesce.RUN_FIELDS).get()
    return coalesce.stale_reason(run, now)


# -- the rule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overlap,policy,coalesced",
    [
        ("skip", "skip", True),
        ("skip", "latest", True),
        ("skip", "all", False),
        ("allow", "skip", False),
        ("allow", "latest", False),
        ("allow", "all", False),
    ],
)
def test_a_run_whose_job_fired_again_is_skipped_under_the_missed_fire_policies(
    overlap, policy, coalesced
):
    job = JobFactory(schedule="* * * * *", overlap_policy=overlap, missed_fire_policy=policy)
    reason = reason_for(job, NOW, NOW + timedelta(minutes=1))
    assert (reason is not None) == coalesced
    if coalesced:
        assert reason == (
            "skipped: the job fired again and this run was still waiting to start 10 s "
            f"after its instant (overload coalescing: overlap skip, missed-fire policy {policy})"
        )


def test_a_run_overtaken_but_at_most_ten_seconds_late_still_starts():
    job = JobFactory(schedule="* * * * * *")
    assert reason_for(job, NOW, NOW + 10 * SECOND) is None
    assert reason_for(job, NOW - SECOND, NOW + 10 * SECOND) is not None


def test_a_late_run_whose_job_has_not_fired_again_is_kept():
    job = JobFactory(schedule="0 * * * *")
    assert reason_for(job, NOW, NOW + timedelta(minutes=59)) is None


def test_a_run_pending_past_the_missed_fire_window_is_skipped(runner_config):
    runner_config(missed_fire_window_ms=3_600_000)
    job = JobFactory(schedule="0 9 * * *", missed_fire_policy="latest")
    reason = reason_for(job, NOW, NOW + timedelta(hours=1, seconds=1))
    assert reason == (
        "skipped: still pending past the missed-fire window (3600 s) after its instant "
        "(overlap skip, missed-fire policy latest)"
    )


def test_a_manual_run_is_never_coalesced():
    job = JobFactory(schedule="* * * * * *")
    assert reason_for(job, NOW, NOW + timedelta(days=2), trigger="manual") is None


# -- the sweep ---------------------------------------------------------------------------


def test_the_sweep_skips_overloaded_jobs_runs_more_than_ten_seconds_late():
    jobs = [JobFactory(id=f"busy-{n}", schedule="* * * * * *") for n in range(20)]
    kept = JobFactory(id="every-slot", schedule="* * * * * *", missed_fire_policy="all")
    for second in range(10):
        for job in [*jobs, kept]:
            pending(job, NOW + second * SECOND)
    assert coalesce.sweep(NOW + 19 * SECOND) == 20 * 9  # the newest is 10 s late: kept
    for job in jobs:
        assert statuses(job.id) == [
            (NOW + s * SECOND, "skipped" if s < 9 else "pending") for s in range(10)
        ]
    assert {status for _, status in statuses("every-slot")} == {"pending"}


def test_the_sweep_records_the_reason_and_the_time():
    job = JobFactory(id="busy", schedule="* * * * * *")
    stale = pending(job, NOW)
    coalesce.sweep(NOW + 11 * SECOND)
    stale.refresh_from_db()
    assert (stale.status, stale.finished_at) == ("skipped", NOW + 11 * SECOND)
    assert "overload coalescing" in stale.error


def test_the_backlog_stays_bounded_while_no_worker_starts_anything():
    """A scheduler with its sweep, 25 every-second jobs and no worker, for 25 s."""
    for n in range(25):
        JobFactory(id=f"j{n:03}", schedule="* * * * * *")
    Job.objects.update(created_at=NOW, schedule_effective_at=NOW, updated_at=NOW)
    clocks = FakeClocks(NOW)
    scheduler = Scheduler(dispatcher=lambda ids: 0, monotonic=clocks.monotonic)
    scheduler.start(NOW)
    most = 0
    for _ in range(25):
        now = clocks.advance(1)
        scheduler.fire_due(now)
        coalesce.sweep(now)
        most = max(most, Run.objects.filter(status=RunStatus.PENDING).count())
    # each job: the runs of the last 10 s, the one due now and the one dispatched ahead
    assert most <= 12 * 25
    assert Run.objects.filter(status=RunStatus.SKIPPED).exists()


@pytest.mark.django_db(transaction=True)
def test_a_restart_skips_the_stale_runs_a_previous_life_left_pending():
    clocks = FakeClocks(NOW + 5 * timedelta(minutes=1))
    skip = JobFactory(id="skip", schedule="* * * * *")
    latest = JobFactory(id="latest", schedule="* * * * *", missed_fire_policy="latest")
    every = JobFactory(id="all", schedule="* * * * *", missed_fire_policy="all")
    Job.objects.update(created_at=NOW, schedule_effective_at=NOW, updated_at=NOW)
    for job in (skip, latest, every):
        pending(job, NOW)
    daemon = Daemon(workers=False, clocks=clocks)
    daemon.scheduler._dispatch = lambda ids: len(list(ids))
    daemon.liveness._dispatch = lambda ids: len(list(ids))
    daemon.start()
    assert statuses("skip")[0] == (NOW, "skipped")
    assert statuses("latest") == [(NOW, "skipped"), (NOW + timedelta(minutes=5), "pending")]
    assert statuses("all")[:2] == [(NOW, "pending"), (NOW + timedelta(minutes=1), "pending")]
    # Left by a runner that stopped, not skipped for want of a worker (helper probe: a
    # restart read as an overload, /api/status "degraded" for a minute).
    assert Run.objects.get(job_id="skip", scheduled_for=NOW).error == (
        "skipped: found pending when the scheduler started, overtaken by its job's "
        "schedule (missed-fire policy skip)"
    )
    assert backlog_at(clocks.wall()).skipped_waiting == 0


@pytest.mark.django_db(transaction=True)
def test_a_run_handed_back_seconds_before_a_restart_is_not_an_overload_when_skipped_later():
    """A stop hands a run back; the scheduler starts again 6 s later, when the run is not
    yet overtaken. Skipped by a sweep a few seconds on, it still waited for a runner,
    not for a worker: /api/status must not read an overload (newcomer probe: "degraded"
    for a minute after three restarts out of five)."""
    clocks = FakeClocks(NOW + 6 * SECOND)
    job = JobFactory(id="tick", schedule="* * * * * *")
    Job.objects.update(created_at=NOW, schedule_effective_at=NOW, updated_at=NOW)
    handed_back = pending(job, NOW)
    daemon = Daemon(workers=False, clocks=clocks)
    daemon.scheduler._dispatch = lambda ids: len(list(ids))
    daemon.liveness._dispatch = lambda ids: len(list(ids))
    daemon.start()
    assert Run.objects.get(pk=handed_back.pk).status == "pending"  # 6 s late: kept
    clocks.advance(5)
    daemon._next_sweep = clocks.monotonic()
    daemon.cycle()
    skipped = Run.objects.get(pk=handed_back.pk)
    assert skipped.status == "skipped" and skipped.error.startswith(coalesce.AT_START)
    assert backlog_at(clocks.wall()).skipped_waiting == 0
    # A run of this scheduler's own time that waits that long is an overload.
    clocks.advance(20)
    late = pending(job, clocks.wall() - 15 * SECOND)
    daemon._next_sweep = clocks.monotonic()
    daemon.cycle()
    assert "overload coalescing" in Run.objects.get(pk=late.pk).error


# -- the worker --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_worker_picking_an_overtaken_run_skips_it_with_the_reason():
    job = JobFactory(schedule="* * * * * *", script="echo hi")
    stale = pending(job, timezone.now() - 15 * SECOND)
    assert run_task(stale.pk) == "skipped"
    stale.refresh_from_db()
    assert stale.status == "skipped" and "overload coalescing" in stale.error


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_a_late_run_whose_policy_keeps_every_slot():
    job = JobFactory(schedule="* * * * * *", script="echo hi", missed_fire_policy="all")
    late = pending(job, timezone.now() - 15 * SECOND)
    assert run_task(late.pk) == "accepted"
    assert pool.current(lambda: None).wait_idle(30)
    pool.close_current(30)
    pool._pool = None
    worker_state.STOPPING.clear()
    assert Run.objects.get(pk=late.pk).status == "ok"


def test_a_sweep_with_nothing_late_costs_one_small_query(django_assert_num_queries):
    job = JobFactory(overlap_policy="skip", missed_fire_policy="skip")
    Run.objects.create(job=job, scheduled_for=NOW - 5 * SECOND)  # pending, not yet late
    with django_assert_num_queries(1):
        assert coalesce.sweep(NOW) == 0


# -- the daemon's log ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_backlog_is_said_cleared_only_once_no_run_waits_and_none_was_skipped_lately(caplog):
    """A minutely job and a frozen worker: one sweep a minute skips, the 59 between do not;
    the overload goes on, so "cleared" waits until the worker wakes and a minute passes."""
    caplog.set_level(logging.INFO, logger="runner.daemon")
    JobFactory(id="minutely", schedule="* * * * *")
    Job.objects.update(created_at=NOW, schedule_effective_at=NOW, updated_at=NOW)
    clocks = FakeClocks(NOW)
    daemon = Daemon(workers=False, clocks=clocks)
    daemon.scheduler._dispatch = lambda ids: len(list(ids))  # dispatched; no worker starts it
    daemon.liveness._dispatch = lambda ids: len(list(ids))
    daemon.start()

    def run_for(seconds: int, worker_awake: bool = False) -> list[str]:
        caplog.clear()
        for _ in range(seconds):
            clocks.advance(1)
            daemon.cycle()
            if worker_awake:
                Run.objects.filter(status=RunStatus.PENDING).update(
                    status=RunStatus.OK, started_at=clocks.wall(), finished_at=clocks.wall()
                )
        return [r.getMessage()[:40] for r in caplog.records if r.name == "runner.daemon"]

    # three runs overtaken and skipped meanwhile; the overload is said once
    assert run_for(4 * 60) == ["runs are due faster than workers start t"]
    assert Run.objects.filter(job_id="minutely", status=RunStatus.SKIPPED).count() == 3
    assert run_for(2 * 60, worker_awake=True) == ["the backlog is cleared; 3 overtaken run("]
