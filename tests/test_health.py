"""The health summary of /api/status and runner_status."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils.timezone import now as timezone_now

from runner import coalesce, retries
from runner.health import BACKLOG_MAX_AGE_S, BACKLOG_MAX_PENDING, health_summary
from runner.models import Job, Run, RunStatus, SchedulerHeartbeat, StartResult
from runner.scheduler import Scheduler
from runner.tasks import _screen
from tests.factories import JobFactory, RunFactory
from tests.fakes.clocks import FakeClocks

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _finished(status: str, ago: timedelta) -> None:
    RunFactory(status=status, finished_at=NOW - ago)


@time_machine.travel(NOW, tick=False)
def test_it_counts_jobs_running_runs_and_the_last_hours_outcomes():
    JobFactory.create_batch(3)
    RunFactory(status="running")
    _finished("ok", timedelta(minutes=5))
    _finished("ok", timedelta(minutes=59))
    _finished("ok", timedelta(minutes=61))
    _finished("error", timedelta(minutes=1))
    _finished("timeout", timedelta(minutes=2))
    _finished("skipped", timedelta(minutes=3))
    health = health_summary()
    assert (health.total_jobs, health.running) == (3 + 7, 1)
    assert (health.ok_last_hour, health.errors_last_hour) == (2, 2)


def test_an_enabled_job_whose_schedule_cannot_load_is_a_failed_registration():
    JobFactory(id="fine")
    JobFactory(id="broken")
    JobFactory(id="asleep", enabled=False)
    # Written around the validation layer, as an older version might have stored them.
    Job.objects.filter(pk__in=["broken", "asleep"]).update(schedule="61 * * * *")
    JobFactory(id="lost", timezone="Europe/Berlin")
    Job.objects.filter(pk="lost").update(timezone="Mars/Olympus")
    assert sorted(health_summary().failed_registrations) == ["broken", "lost"]


@time_machine.travel(NOW, tick=False)
def test_uptime_is_that_of_the_longest_running_live_scheduler():
    SchedulerHeartbeat.beat("a:1", NOW - timedelta(hours=2), NOW - timedelta(seconds=2))
    SchedulerHeartbeat.beat("b:2", NOW - timedelta(minutes=5), NOW)
    health = health_summary()
    assert (health.uptime_s, health.schedulers, health.status) == (7200.0, 2, "ok")


@time_machine.travel(NOW, tick=False)
def test_a_scheduler_silent_past_the_liveness_timeout_is_not_counted():
    SchedulerHeartbeat.beat("a:1", NOW - timedelta(hours=2), NOW - timedelta(minutes=5))
    health = health_summary()
    assert (health.uptime_s, health.schedulers, health.status) == (None, 0, "degraded")


def test_a_scheduler_that_stopped_cleanly_is_forgotten():
    SchedulerHeartbeat.beat("a:1", NOW, NOW)
    SchedulerHeartbeat.stopped("a:1")
    assert not SchedulerHeartbeat.objects.exists()


@time_machine.travel(NOW, tick=False)
def test_failed_registrations_make_the_status_degraded():
    SchedulerHeartbeat.beat("a:1", NOW, NOW)
    JobFactory(id="broken")
    Job.objects.filter(pk="broken").update(schedule="not cron")
    assert health_summary().status == "degraded"


@time_machine.travel(NOW, tick=False)
def test_runner_status_prints_the_summary_for_a_person():
    JobFactory(id="broken")
    Job.objects.filter(pk="broken").update(schedule="not cron")
    out = io.StringIO()
    call_command("runner_status", stdout=out)
    text = out.getvalue()
    assert "degraded" in text and "no scheduler running" in text
    assert "failed registrations: 1 (broken)" in text


@time_machine.travel(NOW, tick=False)
def test_runner_status_exit_status_tells_a_monitor_degraded_from_ok():
    """Without ``--exit-status`` the status is 0 whatever the health (scripts that only
    print it keep working); with it, degraded is 1 and ok is 0 (newcomer probe)."""
    call_command("runner_status", stdout=io.StringIO())  # degraded: no scheduler
    with pytest.raises(SystemExit) as exited:
        call_command("runner_status", "--exit-status", stdout=io.StringIO())
    assert exited.value.code == 1
    SchedulerHeartbeat.beat("host:1", NOW, NOW, "UTC")
    call_command("runner_status", "--exit-status", "--json", stdout=io.StringIO())  # ok: 0


def test_runs_skipped_while_no_worker_starts_any_make_the_status_degraded():
    """Every-second jobs, a live scheduler with its sweep and no worker: coalescing keeps
    the backlog small and young, yet the status must not say ok while nothing starts."""
    for n in range(5):
        JobFactory(id=f"j{n}", schedule="* * * * * *")  # overlap skip, missed-fire skip
    Job.objects.update(created_at=NOW, schedule_effective_at=NOW, updated_at=NOW)
    clocks = FakeClocks(NOW)
    with time_machine.travel(NOW, tick=False) as traveller:  # Run.created_at follows
        scheduler = Scheduler(dispatcher=lambda ids: 0, monotonic=clocks.monotonic)
        scheduler.start(NOW)
        seen = []
        for _ in range(40):
            now = clocks.advance(1)
            traveller.move_to(now)
            SchedulerHeartbeat.beat("host:1", NOW, now)
            scheduler.fire_due(now)
            coalesce.sweep(now)
            health = health_summary(now)
            seen.append(health.status)
            # within the bounds that used to be the only test of a backlog
            assert health.backlog.pending <= BACKLOG_MAX_PENDING
            assert health.backlog.oldest_pending_s is None or health.backlog.oldest_pending_s <= 12
    # ok until the first run has waited 10 s and been skipped, then degraded for good
    assert seen[:10] == ["ok"] * 10
    assert set(seen[12:]) == {"degraded"}
    assert health.backlog.skipped_waiting > 0
    assert health.as_json()["health"]["backlog"]["skippedWaiting"] == health.backlog.skipped_waiting


@time_machine.travel(NOW, tick=False)
def test_runs_skipped_unstarted_count_for_the_backlog_window_only():
    SchedulerHeartbeat.beat("host:1", NOW, NOW)
    job = JobFactory(id="busy", schedule="* * * * * *")
    with time_machine.travel(NOW - timedelta(seconds=100), tick=False):
        waited = Run.objects.create(job=job, trigger="schedule", scheduled_for=timezone_now())
    window = timedelta(seconds=BACKLOG_MAX_AGE_S)
    Run.objects.filter(pk=waited.pk).update(
        status=RunStatus.SKIPPED, finished_at=NOW - window + timedelta(seconds=1)
    )
    assert (health_summary().backlog.skipped_waiting, health_summary().status) == (1, "degraded")
    Run.objects.filter(pk=waited.pk).update(finished_at=NOW - window - timedelta(seconds=1))
    assert (health_summary().backlog.skipped_waiting, health_summary().status) == (0, "ok")


@time_machine.travel(NOW, tick=False)
def test_skips_decided_at_once_do_not_degrade_the_status():
    """An overlap skip at dispatch, a missed-fire summary at start-up and a run that
    started and was then stopped are recorded and finished without waiting for a worker."""
    SchedulerHeartbeat.beat("host:1", NOW, NOW)
    job = JobFactory(id="busy", schedule="* * * * *")
    RunFactory(job=job, trigger="schedule", scheduled_for=NOW, status="skipped", finished_at=NOW)
    RunFactory(
        job=job,
        trigger="schedule",
        scheduled_for=NOW - timedelta(hours=3),
        status="skipped",
        finished_at=NOW,
    )
    with time_machine.travel(NOW - timedelta(seconds=30), tick=False):
        ran = RunFactory(job=job, trigger="schedule", scheduled_for=timezone_now())
    Run.objects.filter(pk=ran.pk).update(
        status=RunStatus.SKIPPED, started_at=NOW - timedelta(seconds=29), finished_at=NOW
    )
    health = health_summary()
    assert (health.backlog.skipped_waiting, health.status) == (0, "ok")


@time_machine.travel(NOW, tick=False)
def test_runner_status_says_how_many_runs_were_skipped_unstarted():
    SchedulerHeartbeat.beat("host:1", NOW, NOW)
    job = JobFactory(id="busy", schedule="* * * * * *")
    with time_machine.travel(NOW - timedelta(seconds=12), tick=False):
        waited = RunFactory(job=job, trigger="schedule", scheduled_for=timezone_now())
    coalesce.sweep(NOW)
    assert Run.objects.get(pk=waited.pk).status == "skipped"
    out = io.StringIO()
    call_command("runner_status", stdout=out)
    assert (
        "backlog: 0 pending; 1 skipped unstarted after waiting for a worker in the last 60 s "
        "(over its bounds)"
    ) in out.getvalue()


@time_machine.travel(NOW, tick=False)
def test_catch_up_runs_waiting_their_turn_count_as_pending_but_do_not_age_the_backlog():
    """After a long downtime an ``all`` job's catch-up runs, instants hours old, run one
    after another: the runner is doing its work, not stuck."""
    SchedulerHeartbeat.beat("host:1", NOW, NOW)
    job = JobFactory(id="catch", missed_fire_policy="all")
    RunFactory(job=job, trigger="schedule", scheduled_for=NOW - timedelta(hours=3),
               status="running", started_at=NOW, catch_up=True)  # fmt: skip
    for hours in (2, 1):
        RunFactory(job=job, trigger="schedule", scheduled_for=NOW - timedelta(hours=hours),
                   catch_up=True)  # fmt: skip
    RunFactory(job=job, trigger="schedule", scheduled_for=NOW - timedelta(seconds=5))
    health = health_summary()
    assert (health.backlog.pending, health.backlog.oldest_pending_s, health.status) == (
        3,
        5.0,
        "ok",
    )


SECOND = timedelta(seconds=1)


def _failed_scheduled_run(job: Job) -> Run:
    """The job's 12:00 fire, started at once and failed a second later."""
    run = RunFactory(job=job, trigger="schedule", scheduled_for=NOW)
    assert run.start("host:1", NOW) == StartResult.STARTED
    Run.objects.filter(pk=run.pk).update(status=RunStatus.ERROR, finished_at=NOW + SECOND)
    return Run.objects.select_related("job").get(pk=run.pk)


def test_a_retry_skipped_at_its_start_by_overlap_does_not_degrade_the_status():
    """A retry meets a manual run the operator started meanwhile: overlap skip decides
    at the retry's start, which never waited for a worker. It was recorded at the
    failure, its backoff (30 s) before its instant: that is not a wait for a worker."""
    job = JobFactory(id="hourly", schedule="0 * * * *", retries=1, retry_backoff_s=30)
    with time_machine.travel(NOW + SECOND, tick=False):
        failed = _failed_scheduled_run(job)
        assert retries.schedule_retry(failed)
    retry = Run.objects.get(retry_of=failed)
    at = retry.scheduled_for  # 12:00:31
    with time_machine.travel(at, tick=False):
        SchedulerHeartbeat.beat("host:1", at, at)
        manual = RunFactory(job=job, trigger="manual")
        assert manual.start("host:1", at - SECOND) == StartResult.STARTED
        assert retry.start("host:2", at) == StartResult.SKIPPED  # decided at dispatch
        health = health_summary(at)
    assert (health.backlog.skipped_waiting, health.status) == (0, "ok")


def test_a_retry_skipped_because_its_job_was_disabled_does_not_degrade_the_status():
    """The operator disables a failing job: its pending retry is skipped when delivered,
    at its instant, without waiting for any worker."""
    job = JobFactory(id="hourly", schedule="0 * * * *", retries=1, retry_backoff_s=30)
    with time_machine.travel(NOW + SECOND, tick=False):
        failed = _failed_scheduled_run(job)
        assert retries.schedule_retry(failed)
    Job.objects.filter(pk=job.pk).update(enabled=False)
    retry = Run.objects.select_related("job").get(retry_of=failed)
    at = retry.scheduled_for
    with time_machine.travel(at, tick=False):
        SchedulerHeartbeat.beat("host:1", at, at)
        assert _screen(retry) == "skipped"  # the worker's screen at delivery
        health = health_summary(at)
    assert Run.objects.get(pk=retry.pk).status == "skipped"
    assert (health.backlog.skipped_waiting, health.status) == (0, "ok")


def test_catch_up_runs_skipped_after_their_job_was_disabled_do_not_degrade_the_status():
    """A catch-up recorded at start-up, its job disabled 20 s into it: the remaining
    catch-up runs are skipped as they come up ("the job was disabled"), none waited for a
    worker (they waited their turn, by design)."""
    job = JobFactory(id="catch", schedule="* * * * *", missed_fire_policy="all")
    start_up = NOW
    with time_machine.travel(start_up, tick=False):
        waiting = [
            RunFactory(
                job=job,
                trigger="schedule",
                catch_up=True,
                scheduled_for=NOW - timedelta(minutes=10 - n),
            )
            for n in range(3)
        ]
    Job.objects.filter(pk=job.pk).update(enabled=False)
    later = start_up + 20 * SECOND
    with time_machine.travel(later, tick=False):
        SchedulerHeartbeat.beat("host:1", later, later)
        for run in waiting:
            assert _screen(Run.objects.select_related("job").get(pk=run.pk)) == "skipped"
        health = health_summary(later)
    assert (health.backlog.skipped_waiting, health.status) == (0, "ok")
