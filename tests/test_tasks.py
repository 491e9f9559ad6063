"""run_task on a worker: hands the run to the pool, which waits for the instant without
holding a slot, claims only pending runs, and hands back on stop."""

from __future__ import annotations

import resource
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runner import coalesce, dispatch, pool, tasks, worker_state
from runner.models import Run
from runner.tasks import run_task, run_tasks
from tests.factories import JobFactory, RunFactory

pytestmark = pytest.mark.django_db(transaction=True)

# Ceiling for a pool to finish its runs; normally a fraction of a second.
SETTLE_S = 30


@pytest.fixture(autouse=True)
def fresh_pool():
    """Each test gets its own pool; closing it joins its threads and their connections."""
    yield
    pool.close_current(SETTLE_S)
    pool._pool = None
    worker_state.STOPPING.clear()


@pytest.fixture
def handed_back(monkeypatch) -> list[int]:
    ids: list[int] = []
    monkeypatch.setattr(dispatch, "dispatch", lambda run_ids: ids.extend(run_ids) or len(ids))
    return ids


@pytest.fixture
def stopping():
    worker_state.STOPPING.set()
    yield
    worker_state.STOPPING.clear()


def scheduled_run(at: timedelta = timedelta(0), **job_fields) -> Run:
    return RunFactory(
        job=JobFactory(**job_fields), trigger="schedule", scheduled_for=timezone.now() + at
    )


def settled(run: Run) -> Run:
    assert pool.current(lambda: None).wait_idle(SETTLE_S)
    return Run.objects.get(pk=run.pk)


def test_a_pending_run_is_accepted_and_executed():
    run = scheduled_run(script="echo hi")
    assert run_task(run.pk) == "accepted"
    done = settled(run)
    assert (done.status, done.stdout) == ("ok", "hi")


def test_the_run_starts_no_earlier_than_its_instant():
    run = scheduled_run(at=timedelta(seconds=0.2))
    run_task(run.pk)
    done = settled(run)
    assert done.started_at >= done.scheduled_for


def test_a_run_waiting_for_its_instant_holds_no_slot(runner_config, handed_back):
    runner_config(max_concurrency=1, dispatch_lead_ms=60_000)
    later = scheduled_run(at=timedelta(seconds=60))
    now = scheduled_run(script="echo now")
    assert run_task(later.pk) == "accepted"
    assert run_task(now.pk) == "accepted"
    executor = pool.current(lambda: None)
    with executor._lock:
        assert executor._emptied.wait_for(lambda: worker_state.accepted() == 1, SETTLE_S)
    assert Run.objects.get(pk=now.pk).status == "ok"
    assert Run.objects.get(pk=later.pk).status == "pending"
    pool.close_current(SETTLE_S)
    assert handed_back == [later.pk]


def test_a_run_already_taken_is_left_alone():
    run = scheduled_run()
    run_task(run.pk)
    settled(run)
    assert run_task(run.pk) == "gone"


def test_a_stopping_worker_claims_nothing_and_hands_the_run_back(stopping, handed_back):
    run = scheduled_run()
    assert run_task(run.pk) == "handed back"
    assert Run.objects.get(pk=run.pk).status == "pending"
    assert handed_back == [run.pk]


def test_a_scheduled_run_of_a_job_disabled_meanwhile_is_skipped():
    run = scheduled_run(enabled=False)
    assert run_task(run.pk) == "skipped"
    run.refresh_from_db()
    assert run.status == "skipped" and "disabled" in run.error


def test_a_manual_run_of_a_disabled_job_runs():
    run = RunFactory(job=JobFactory(enabled=False, script="echo manual"))
    run_task(run.pk)
    assert settled(run).status == "ok"


def test_a_failure_inside_the_task_is_caught(monkeypatch):
    run = scheduled_run()

    def broken(run_id):
        raise RuntimeError("database went away")

    monkeypatch.setattr("runner.tasks.Run.load_many", broken)
    assert run_task(run.pk) == "failed"
    monkeypatch.undo()


def test_a_failure_inside_the_pool_leaves_the_pool_working(monkeypatch):
    first, second = scheduled_run(), scheduled_run(script="echo fine")

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("runner.tasks.execute_run_steps", broken)
    run_task(first.pk)
    settled(first)
    monkeypatch.undo()
    run_task(second.pk)
    assert settled(second).status == "ok"


def test_a_task_of_several_runs_takes_each_as_its_own_task_would():
    """``run_tasks``, the task ``dispatch`` queues for up to eight runs: each run is
    accepted, left alone or skipped exactly as ``run_task`` alone would do it."""
    done = scheduled_run()
    run_task(done.pk)
    settled(done)
    fresh, disabled = scheduled_run(script="echo fresh"), scheduled_run(enabled=False)
    assert run_tasks([fresh.pk, done.pk, disabled.pk]) == "accepted, gone, skipped"
    assert (settled(fresh).status, settled(fresh).stdout) == ("ok", "fresh")
    assert Run.objects.get(pk=disabled.pk).status == "skipped"


def test_a_task_reads_its_runs_in_one_statement_and_starts_those_due_together(monkeypatch):
    """A task that arrives after its runs' instant (a burst the broker delivered late)
    reads them with their jobs in one statement and starts them in one (``_start``),
    not one read and one start a run."""
    runs = [scheduled_run(script=f"echo {n}") for n in range(3)]
    starts: list[list[int]] = []
    real_start = tasks._start

    def start(batch):
        starts.append(sorted(run.pk for run in batch))
        return real_start(batch)

    monkeypatch.setattr(tasks, "_start", start)
    with CaptureQueriesContext(connection) as queries:
        assert run_tasks([run.pk for run in runs]) == "accepted, accepted, accepted"
    reads = [q for q in queries.captured_queries if 'FROM "runs" JOIN' in q["sql"]]
    assert len(reads) == 1
    assert [settled(run).stdout for run in runs] == ["0", "1", "2"]
    assert starts == [sorted(run.pk for run in runs)]


def test_a_runs_failure_before_the_pool_fails_that_run_only(monkeypatch):
    """One run of a task meets a database error while it is screened ("database is
    locked"): the task says so for that run, and its other runs still execute; a run
    skipped before the error stays reported as skipped (probe 3)."""
    disabled = scheduled_run(enabled=False)
    runs = [scheduled_run(script=f"echo {n}") for n in range(3)]
    real = coalesce.skip_if_stale

    def flaky(run_id, *args, **kwargs):
        if run_id == runs[1].pk:
            raise RuntimeError("database is locked")
        return real(run_id, *args, **kwargs)

    monkeypatch.setattr(coalesce, "skip_if_stale", flaky)
    outcome = run_tasks([disabled.pk, *(run.pk for run in runs)])
    assert outcome == "skipped, accepted, failed, accepted"
    assert [settled(run).stdout for run in (runs[0], runs[2])] == ["0", "2"]
    assert Run.objects.get(pk=runs[1].pk).status == "pending"  # liveness re-dispatches it


def test_a_stopping_worker_hands_back_every_run_of_a_task(stopping, handed_back):
    runs = [scheduled_run() for _ in range(3)]
    assert run_tasks([run.pk for run in runs]) == ", ".join(["handed back"] * 3)
    assert handed_back == [run.pk for run in runs]
    assert set(Run.objects.values_list("status", flat=True)) == {"pending"}


@pytest.mark.parametrize(("max_concurrency", "held"), [(128, 170), (16, 256), (300, 0)])
def test_a_worker_holds_no_more_children_than_its_descriptors_allow(
    runner_config, max_concurrency, held
):
    """A held child keeps three of the worker's descriptors until its instant, a running
    run three: at a soft limit of 1,024 (systemd's default) and 128 slots (the default),
    holding more would leave running runs unable to start or to scan for their scripts'
    processes (helper probe: 'Too many open files', and a running script killed)."""
    runner_config(max_concurrency=max_concurrency)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        assert tasks.held_limit() == held
        assert held == 0 or held * 3 + 3 * max_concurrency + tasks.RESERVED_FDS <= 1024
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
