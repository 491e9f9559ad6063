"""Liveness: silent and dead-worker runs are finished with a reason; lost deliveries redone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from django.conf import settings
from django.utils import timezone

from jeeves_site.database import database_url
from runner.clocks import database_now
from runner.liveness import Liveness
from runner.models import Run, RunStatus
from tests.factories import JobFactory, RunFactory
from tests.fakes.clocks import FakeClocks
from tests.fakes.dispatch import Dispatched

pytestmark = pytest.mark.django_db

HOST = socket.gethostname()
NOW = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def resumed() -> Dispatched:
    return Dispatched()


@pytest.fixture
def clocks() -> FakeClocks:
    """The scheduler's clocks; the database's clock reads the same wall time."""
    return FakeClocks(NOW)


@pytest.fixture
def liveness(dispatched, resumed, clocks) -> Liveness:
    return Liveness(
        dispatcher=dispatched,
        resumer=resumed,
        monotonic=clocks.monotonic,
        database_clock=clocks.wall,
    )


def running(
    worker: str,
    started: datetime,
    heartbeat: datetime | None = None,
    meta: dict | None = None,
    **job: object,
) -> Run:
    run = RunFactory(job=JobFactory(**job))
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        worker=worker,
        started_at=started,
        heartbeat_at=heartbeat or started,
        result_meta=meta,
    )
    return Run.objects.get(pk=run.pk)


def session_running(worker: str, started: datetime, key: str | None, **fields) -> Run:
    meta = {"sessionKey": key, "runId": "run-1"} if key else None
    return running(worker, started, meta=meta, type="session", script="Summarise", **fields)


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_run_whose_worker_went_silent_is_finished_with_the_reason(liveness, clocks):
    silent = running("far-host:77", NOW - timedelta(minutes=5), NOW - timedelta(seconds=1))
    assert not liveness.reap_silent(NOW)
    later = clocks.advance(30)
    assert liveness.reap_silent(later)
    silent.refresh_from_db()
    assert (silent.status, silent.finished_at) == ("error", later)
    assert silent.error == (
        "worker far-host:77 stopped sending heartbeats at 2026-03-02T08:59:59.000Z "
        "(none for 30 s); the run was declared dead"
    )
    assert silent.duration_ms == 5 * 60 * 1000 + 30 * 1000


def test_a_heartbeat_old_when_first_seen_is_watched_for_the_timeout_first(liveness, clocks):
    silent = running("far-host:77", NOW - timedelta(hours=1), NOW - timedelta(minutes=50))
    assert not liveness.reap_silent(NOW)
    assert not liveness.reap_silent(clocks.advance(29))
    assert liveness.reap_silent(clocks.advance(1))
    assert Run.objects.get(pk=silent.pk).status == "error"


def test_a_forward_step_of_the_wall_clock_does_not_kill_a_healthy_run(liveness, clocks):
    healthy = running("far-host:77", NOW - timedelta(seconds=1))
    for _ in range(8):  # a 40 s run beating every 5 s; the scheduler's clock jumps 1 h
        clocks.advance(5)
        Run.objects.filter(pk=healthy.pk).update(heartbeat_at=clocks.wall())
        assert not liveness.reap_silent(clocks.wall() + timedelta(hours=1))
    assert Run.objects.get(pk=healthy.pk).status == "running"


def test_a_run_beating_on_the_database_clock_survives_a_jump_of_the_schedulers(dispatched):
    """The real database clock (SQLite's, PostgreSQL's); the scheduler is an hour ahead."""
    watcher = Liveness(dispatcher=dispatched, monotonic=FakeClocks(NOW).monotonic)
    healthy = running("far-host:77", database_now() - timedelta(seconds=40))
    Run.objects.filter(pk=healthy.pk).update(heartbeat_at=database_now())
    assert not watcher.reap_silent(timezone.now() + timedelta(hours=1))
    assert Run.objects.get(pk=healthy.pk).status == "running"


def test_a_heartbeat_stale_on_the_database_clock_and_watched_still_is_dead(dispatched):
    clocks = FakeClocks(NOW)
    watcher = Liveness(dispatcher=dispatched, monotonic=clocks.monotonic)
    silent = running("far-host:77", database_now() - timedelta(minutes=2))
    watcher.reap_silent(timezone.now())
    clocks.advance(30)
    assert watcher.reap_silent(timezone.now())
    assert Run.objects.get(pk=silent.pk).status == "error"


def test_a_heartbeat_still_for_the_timeout_but_fresh_on_the_database_clock_lives(liveness, clocks):
    """The worker's clock runs ahead of the database's: still, it is not silent yet."""
    ahead = running("far-host:77", NOW - timedelta(minutes=1), NOW + timedelta(seconds=20))
    liveness.reap_silent(NOW)
    assert not liveness.reap_silent(clocks.advance(30))
    assert Run.objects.get(pk=ahead.pk).status == "running"


def test_a_run_with_a_recent_heartbeat_is_left_alone(liveness):
    alive = running("far-host:77", NOW - timedelta(minutes=5), NOW - timedelta(seconds=29))
    assert not liveness.reap_silent(NOW)
    alive.refresh_from_db()
    assert alive.status == "running"


def test_a_run_whose_worker_process_on_this_host_is_gone_is_finished_at_once(liveness):
    now = timezone.now()
    pid = dead_pid()
    orphan = running(f"{HOST}:{pid}", now)
    assert liveness.reap_dead_local(now)
    orphan.refresh_from_db()
    assert orphan.status == "error"
    assert (
        orphan.error == f"worker {HOST}:{pid} died (process {pid} is gone) while the run was going"
    )


def test_a_live_worker_on_this_host_and_workers_elsewhere_are_left_alone(liveness):
    now = timezone.now()
    mine = running(f"{HOST}:{os.getpid()}", now)
    elsewhere = running(f"other-host:{dead_pid()}", now)
    assert not liveness.reap_dead_local(now)
    assert {Run.objects.get(pk=run.pk).status for run in (mine, elsewhere)} == {"running"}


def test_a_reused_pid_does_not_pass_for_the_dead_worker(liveness):
    long_ago = timezone.now() - timedelta(hours=1)  # this process started after the run did
    reused = running(f"{HOST}:{os.getpid()}", long_ago)
    assert liveness.reap_dead_local(timezone.now())
    reused.refresh_from_db()
    assert reused.status == "error"


def test_what_a_dead_workers_script_left_running_is_ended(liveness):
    now = timezone.now()
    pid = dead_pid()
    orphan = running(f"{HOST}:{pid}", now)
    env = dict(
        os.environ,
        JR_RUN_ID=str(orphan.pk),
        DATABASE_URL=database_url(settings.DATABASES["default"]),
    )
    stranger_env = dict(env, DATABASE_URL="sqlite:////elsewhere.sqlite3")
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    stranger = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env=stranger_env
    )
    try:
        psutil.Process(leftover.pid).environ()  # wait until its environment is readable
        liveness.reap_dead_local(now)
        leftover.wait(timeout=10)  # (its status may be reaped by the killer's wait)
        assert stranger.poll() is None
        orphan.refresh_from_db()
        assert f"its leftover processes {leftover.pid} were ended" in orphan.error
    finally:
        for process in (leftover, stranger):
            process.kill()
            process.wait()


def test_a_silent_worker_of_this_host_has_its_script_ended_with_the_run(liveness, clocks):
    """A worker frozen (SIGSTOP, swapped out, hung) stops beating while its script runs
    on: declared dead, the run's script is ended too, or the job's next run, started by
    another worker, would overlap it (newcomer probe, high). A stranger's is left."""
    beat = NOW - timedelta(seconds=1)
    frozen = running(f"{HOST}:{os.getpid()}", NOW - timedelta(minutes=1), beat)
    far = running("far-host:77", NOW - timedelta(minutes=1), beat)
    env = dict(
        os.environ,
        JR_RUN_ID=str(frozen.pk),
        DATABASE_URL=database_url(settings.DATABASES["default"]),
    )
    far_env = dict(env, JR_RUN_ID=str(far.pk))  # as if it ran here: not this host's run
    script = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=far_env)
    try:
        psutil.Process(script.pid).environ()  # wait until their environments are readable
        psutil.Process(other.pid).environ()
        assert not liveness.reap_silent(NOW)
        assert liveness.reap_silent(clocks.advance(30))
        script.wait(timeout=10)
        assert other.poll() is None
        frozen.refresh_from_db()
        assert frozen.status == "error"
        assert frozen.error.endswith(
            f"the run was declared dead; its processes {script.pid} were ended"
        )
        assert Run.objects.get(pk=far.pk).error.endswith("the run was declared dead")
    finally:
        for process in (script, other):
            process.kill()
            process.wait()


def test_a_run_pending_past_the_bound_is_dispatched_again_with_backoff(
    liveness, dispatched, clocks
):
    lost = RunFactory(job=JobFactory())
    Run.objects.filter(pk=lost.pk).update(created_at=NOW - timedelta(seconds=31))
    assert liveness.redispatch_pending(NOW)
    assert not liveness.redispatch_pending(clocks.advance(5))
    assert liveness.redispatch_pending(clocks.advance(55))
    assert dispatched == [lost.pk, lost.pk]


def test_the_redispatch_backoff_runs_on_the_monotonic_clock(liveness, dispatched, clocks):
    lost = RunFactory(job=JobFactory())
    Run.objects.filter(pk=lost.pk).update(created_at=NOW - timedelta(seconds=31))
    assert liveness.redispatch_pending(NOW)
    clocks.step_wall(timedelta(hours=1))  # no time passed: still within the backoff
    assert not liveness.redispatch_pending(clocks.wall())
    assert dispatched == [lost.pk]


def test_a_fresh_or_future_pending_run_is_not_dispatched_again(liveness, dispatched):
    fresh = RunFactory(job=JobFactory())
    ahead = RunFactory(job=JobFactory(), scheduled_for=NOW + timedelta(seconds=1))
    Run.objects.filter(pk=fresh.pk).update(created_at=NOW - timedelta(seconds=29))
    Run.objects.filter(pk=ahead.pk).update(created_at=NOW - timedelta(minutes=1))
    assert not liveness.redispatch_pending(NOW)
    assert dispatched == []


def test_a_dead_session_run_with_a_key_is_resumed_not_finished(liveness, resumed):
    now = timezone.now()
    worker = f"{HOST}:{dead_pid()}"
    run = session_running(worker, now, "agent:main:subagent:k")

    assert liveness.reap_dead_local(now)

    assert resumed == [(run.pk, worker)]
    assert Run.objects.get(pk=run.pk).status == "running"


def test_a_silent_session_run_with_a_key_is_resumed_with_backoff(liveness, resumed, clocks):
    started = NOW - timedelta(minutes=5)
    run = session_running("far-host:77", started, "agent:main:subagent:k")
    Run.objects.filter(pk=run.pk).update(heartbeat_at=NOW - timedelta(seconds=31))

    assert not liveness.reap_silent(NOW)
    assert liveness.reap_silent(clocks.advance(30))
    assert not liveness.reap_silent(clocks.advance(5))
    assert liveness.reap_silent(clocks.advance(56))

    assert resumed == [(run.pk, "far-host:77")] * 2
    assert Run.objects.get(pk=run.pk).status == "running"


def test_a_resume_taken_by_a_worker_is_forgotten_and_its_death_resumed_again(liveness, resumed):
    now = timezone.now()
    first, second = f"{HOST}:{dead_pid()}", f"{HOST}:{dead_pid()}"
    run = session_running(first, now, "agent:main:subagent:k")
    liveness.check(now)
    Run.objects.filter(pk=run.pk).update(worker=second)  # taken over; that worker died too

    liveness.check(now)

    assert resumed == [(run.pk, first), (run.pk, second)]


def test_a_dead_session_run_without_a_key_is_finished(liveness, resumed):
    now = timezone.now()
    pid = dead_pid()
    run = session_running(f"{HOST}:{pid}", now, None)

    assert liveness.reap_dead_local(now)

    run.refresh_from_db()
    assert run.status == "error" and f"process {pid} is gone" in run.error
    assert resumed == []
