"""Catch-up after downtime (missed-fire policy ``all``) of an overlap-``skip`` job: a run
for every missed slot, one after another, oldest first, never two at once; live fires
meanwhile follow the overlap rule; waiting holds no slot and survives a restart."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from runner import catchup, dispatch, notify, retries
from runner.liveness import Liveness
from runner.models import Job, Run, RunStatus, StartResult
from runner.scheduler import Scheduler
from tests.factories import JobFactory, RunFactory
from tests.fakes.clocks import FakeClocks

# The inline workers commit for real; so do these tests (on SQLite and PostgreSQL).
pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


def all_job(job_id: str = "catch", script: str = "sleep 0.2", **fields) -> Job:
    """An every-minute ``all`` job (overlap ``skip`` unless told) that existed for a day."""
    day_ago = timezone.now() - timedelta(days=1)
    job = JobFactory(
        id=job_id, schedule="* * * * *", missed_fire_policy="all", script=script, **fields
    )
    Job.objects.filter(pk=job.pk).update(created_at=day_ago, schedule_effective_at=day_ago)
    return Job.objects.get(pk=job.pk)


def down_since(job: Job, last_fire: datetime) -> None:
    """The job last fired at ``last_fire``; no scheduler ran since."""
    Run.objects.create(job=job, trigger="schedule", scheduled_for=last_fire, status="ok")


def catch_up_run(job: Job, at: datetime, **fields) -> Run:
    """A catch-up run of ``job`` for its missed slot ``at``, as the scheduler records it."""
    fields.setdefault("created_at", NOW)
    run = RunFactory(job=job, trigger="schedule", scheduled_for=at, catch_up=True)
    Run.objects.filter(pk=run.pk).update(**fields)
    run.refresh_from_db()
    return run


def fire(job: Job, at: datetime) -> Run:
    return RunFactory(job=job, trigger="schedule", scheduled_for=at)


def drained(workers) -> None:
    """Wait until the workers hold nothing and no run they ended dispatched another."""
    while True:
        seen = len(workers.dispatched)
        assert workers.settle()
        if len(workers.dispatched) == seen:
            return


def status(run: Run) -> tuple[str, str]:
    run.refresh_from_db()
    return run.status, run.error


# -- end to end: the scheduler, real workers, real scripts -----------------------------


def test_every_missed_slot_runs_once_one_after_another_oldest_first(workers):
    now = timezone.now().replace(second=30, microsecond=0)
    job = all_job()
    down_since(job, now - 4 * MINUTE - 30 * SECOND)
    Scheduler(dispatcher=workers).start(now)
    drained(workers)
    runs = list(Run.objects.filter(job=job, scheduled_for__gt=now - 4 * MINUTE))
    runs.sort(key=lambda run: run.scheduled_for)
    assert [(run.status, run.error) for run in runs] == [("ok", "")] * 4
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at <= later.started_at
    assert sorted(runs, key=lambda run: run.started_at) == runs
    assert not Run.objects.filter(status=RunStatus.SKIPPED).exists()


def test_past_the_maximum_the_left_out_slots_are_one_skipped_run_and_the_rest_run(
    workers, runner_config
):
    runner_config(missed_fire_max=3)
    now = timezone.now().replace(second=30, microsecond=0)
    job = all_job(script="true")
    down_since(job, now - 10 * MINUTE - 30 * SECOND)
    Scheduler(dispatcher=workers).start(now)
    drained(workers)
    missed = Run.objects.filter(job=job, scheduled_for__gt=now - 10 * MINUTE)
    outcomes = [(run.status, run.catch_up) for run in missed.order_by("scheduled_for")]
    assert outcomes == [("skipped", False), ("ok", True), ("ok", True), ("ok", True)]
    assert "7 fires missed up to this one were not run" in missed.get(status="skipped").error


def test_a_job_disabled_during_its_catch_up_skips_the_rest_saying_why(workers):
    job = all_job(enabled=False)
    runs = [catch_up_run(job, NOW + n * MINUTE) for n in range(3)]
    dispatch.dispatch([runs[0].pk])
    drained(workers)
    assert [status(run) for run in runs] == [
        ("skipped", "skipped: the job was disabled before this run started")
    ] * 3


# -- the start rule, decided in the database -------------------------------------------


def test_a_catch_up_run_behind_a_running_run_waits_pending_instead_of_being_skipped():
    job = all_job()
    first, second = catch_up_run(job, NOW), catch_up_run(job, NOW + MINUTE)
    assert first.start("host:1", NOW) == StartResult.STARTED
    assert second.start("host:2", NOW) == StartResult.WAITING
    assert status(second) == ("pending", "")


def test_catch_up_runs_start_oldest_first_whichever_is_delivered_first():
    job = all_job()
    older, newer = catch_up_run(job, NOW), catch_up_run(job, NOW + MINUTE)
    assert newer.start("host:1", NOW) == StartResult.WAITING
    assert Run.start_many([newer, older], "host:1", NOW) == {
        newer.pk: StartResult.WAITING,
        older.pk: StartResult.STARTED,
    }


def test_a_live_fire_during_the_catch_up_is_skipped_naming_the_run_it_gave_way_to():
    job = all_job()
    running, waiting = catch_up_run(job, NOW), catch_up_run(job, NOW + MINUTE)
    running.start("host:1", NOW)
    live = fire(job, NOW + 2 * MINUTE)
    assert live.start("host:1", NOW) == StartResult.SKIPPED
    still_running = f"skipped: run #{running.pk} of this job is still running (overlap skip)"
    assert status(live) == ("skipped", still_running)
    Run.objects.filter(pk=running.pk).update(status="ok")
    between = fire(job, NOW + 3 * MINUTE)  # the previous ended, the next not yet started
    assert Run.start_many([between], "host:1", NOW) == {between.pk: StartResult.SKIPPED}
    gave_way = (
        f"skipped: run #{waiting.pk} of this job, catching up on its missed fire at "
        "2026-03-02T09:01:30Z, waits to run first (overlap skip)"
    )
    assert status(between) == ("skipped", gave_way)


def test_a_manual_run_starts_during_the_catch_up_and_the_catch_up_waits_for_it():
    job = all_job()
    waiting = catch_up_run(job, NOW)
    manual = RunFactory(job=job)
    assert manual.start("host:1", NOW) == StartResult.STARTED
    assert waiting.start("host:1", NOW) == StartResult.WAITING


def test_catch_up_runs_of_an_allow_job_start_together():
    job = all_job(overlap_policy="allow")
    runs = [catch_up_run(job, NOW + n * MINUTE) for n in range(3)]
    assert {run.start("host:1", NOW) for run in runs} == {StartResult.STARTED}


def test_a_catch_up_run_waiting_its_turn_holds_no_slot(workers, runner_config):
    runner_config(max_concurrency=1)
    job = all_job()
    catch_up_run(job, NOW - MINUTE).start("elsewhere:1", NOW)  # running on another host
    waiting = catch_up_run(job, NOW)
    other = RunFactory(job=JobFactory(script="echo other"))
    dispatch.dispatch([waiting.pk, other.pk])
    drained(workers)  # the one slot was free for the other job's run
    assert (status(waiting), status(other)) == (("pending", ""), ("ok", ""))


# -- whose turn it is next -------------------------------------------------------------


@pytest.fixture
def dispatched_now(monkeypatch) -> list[int]:
    ids: list[int] = []
    monkeypatch.setattr(dispatch, "dispatch", lambda run_ids: ids.extend(run_ids) or len(ids))
    return ids


def test_a_catch_up_runs_end_dispatches_the_next_one_at_once(dispatched_now):
    job = all_job()
    first, second, _third = (catch_up_run(job, NOW + n * MINUTE) for n in range(3))
    first.start("host:1", NOW)
    Run.objects.filter(pk=first.pk).update(status="error", finished_at=NOW)
    first.refresh_from_db()
    notify.run_finished(first)
    assert dispatched_now == [second.pk]


def test_nothing_is_dispatched_while_another_run_of_the_job_is_running(dispatched_now):
    job = all_job()
    ended = catch_up_run(job, NOW - 2 * MINUTE, status="ok")
    waiting = catch_up_run(job, NOW - MINUTE)
    manual = RunFactory(job=job)
    manual.start("host:1", NOW)
    assert catchup.wake_next(ended, NOW) is None
    Run.objects.filter(pk=manual.pk).update(status="ok")
    assert catchup.wake_next(manual, NOW) == waiting.pk
    assert dispatched_now == [waiting.pk]


def test_a_job_without_catch_up_costs_no_query_at_its_runs_end(django_assert_num_queries):
    run = Run.objects.select_related("job").get(pk=fire(JobFactory(), NOW).pk)
    with django_assert_num_queries(0):
        assert catchup.wake_next(run, NOW) is None


def test_a_failed_catch_up_run_is_retried_after_the_slots_still_waiting(dispatched_now):
    job = all_job(retries=1, retry_backoff_s=5)
    failed, waiting = catch_up_run(job, NOW), catch_up_run(job, NOW + MINUTE)
    Run.objects.filter(pk=failed.pk).update(status="error", finished_at=NOW + 2 * MINUTE)
    failed.refresh_from_db()
    assert retries.schedule_retry(failed)
    retry = Run.objects.get(retry_of=failed)
    assert (retry.catch_up, retry.scheduled_for) == (True, NOW + 2 * MINUTE + 5 * SECOND)
    assert retry.start("host:1", retry.scheduled_for) == StartResult.WAITING  # slot 09:01 first
    assert waiting.start("host:1", NOW) == StartResult.STARTED
    Run.objects.filter(pk=waiting.pk).update(status="ok")
    assert catchup.next_in_turn(job.pk, NOW) is None  # the retry's backoff is not over
    assert catchup.next_in_turn(job.pk, retry.scheduled_for) == retry.pk


# -- liveness and restarts -------------------------------------------------------------


@pytest.fixture
def clocks() -> FakeClocks:
    return FakeClocks(NOW)


@pytest.fixture
def liveness(dispatched, clocks) -> Liveness:
    return Liveness(dispatcher=dispatched, monotonic=clocks.monotonic, database_clock=clocks.wall)


def test_runs_waiting_their_turn_are_not_dispatched_again_as_lost(liveness, dispatched):
    job = all_job()
    old = {"created_at": NOW - 10 * MINUTE}
    running = catch_up_run(job, NOW - 5 * MINUTE, **old)
    running.start("host:1", NOW - MINUTE)
    for n in range(3):
        catch_up_run(job, NOW - (4 - n) * MINUTE, **old)
    assert not liveness.redispatch_pending(NOW)
    assert dispatched == []


def test_after_a_restart_the_next_catch_up_run_is_picked_up_again(liveness, dispatched):
    """The previous life ended a catch-up run but did not dispatch the next (killed in
    between): the chain's head is a lost delivery, and only it is dispatched again."""
    job = all_job()
    old = {"created_at": NOW - 10 * MINUTE}
    catch_up_run(job, NOW - 5 * MINUTE, status="ok", **old)
    head, *rest = (catch_up_run(job, NOW - (4 - n) * MINUTE, **old) for n in range(3))
    assert liveness.redispatch_pending(NOW)
    assert dispatched == [head.pk]
    assert [status(run) for run in rest] == [("pending", "")] * 2


# -- where a reader sees it ------------------------------------------------------------


def test_the_api_and_the_run_list_say_which_runs_are_catch_up_runs(admin_client):
    run = catch_up_run(all_job(), NOW)
    assert admin_client.get(f"/api/runs/{run.pk}").json()["run"]["catch_up"] is True
    listing = admin_client.get(reverse("admin:runner_run_changelist")).content.decode()
    assert "schedule (catch-up)" in listing
