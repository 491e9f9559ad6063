"""A run is started by exactly one delivery, and finished once, by the worker holding it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runner.execution.sessions import _take_over
from runner.models import Run, RunOutcome, RunStatus, StartResult
from tests.factories import JobFactory, RunFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_a_scheduled_fire_is_recorded_once():
    job = JobFactory()
    assert Run.create_scheduled(job, NOW) is not None
    assert Run.create_scheduled(job, NOW) is None
    assert job.runs.count() == 1


def test_the_first_delivery_starts_the_run():
    run = RunFactory()
    assert run.start("host:1", NOW) == StartResult.STARTED
    run.refresh_from_db()
    assert (run.status, run.worker, run.started_at) == (RunStatus.RUNNING, "host:1", NOW)


def test_a_second_delivery_of_the_same_run_does_nothing():
    run = RunFactory()
    run.start("host:1", NOW)
    again = Run.objects.get(pk=run.pk)
    again.status = RunStatus.PENDING  # a stale copy, as a re-delivered task would hold
    assert again.start("host:2", NOW) == StartResult.GONE
    assert Run.objects.get(pk=run.pk).worker == "host:1"


def test_a_fire_while_the_job_is_running_is_recorded_as_skipped():
    job = JobFactory(overlap_policy="skip")
    first, second = RunFactory(job=job), RunFactory(job=job, trigger="schedule")
    first.start("host:1", NOW)
    assert second.start("host:2", NOW) == StartResult.SKIPPED
    second.refresh_from_db()
    assert second.status == RunStatus.SKIPPED
    assert f"run #{first.pk}" in second.error and "overlap" in second.error


def test_a_manual_run_starts_while_the_job_is_running_and_says_so():
    job = JobFactory(overlap_policy="skip")
    first, manual = RunFactory(job=job, trigger="schedule"), RunFactory(job=job)
    first.start("host:1", NOW)
    assert manual.start("host:2", NOW) == StartResult.STARTED
    manual.refresh_from_db()
    assert manual.status == RunStatus.RUNNING
    assert f"run #{first.pk} was running" in manual.notes
    assert "overlap skip applies to scheduled fires only" in manual.notes


def test_a_manual_run_with_nothing_else_running_has_no_notes():
    run = RunFactory(job=JobFactory(overlap_policy="skip"))
    assert run.start("host:1", NOW) == StartResult.STARTED
    assert Run.objects.get(pk=run.pk).notes == ""


def test_a_fire_while_a_manual_run_is_going_is_skipped():
    job = JobFactory(overlap_policy="skip")
    manual, fire = RunFactory(job=job), RunFactory(job=job, trigger="schedule")
    manual.start("host:1", NOW)
    assert fire.start("host:2", NOW) == StartResult.SKIPPED


def test_overlap_allow_runs_concurrently():
    job = JobFactory(overlap_policy="allow")
    first, second = RunFactory(job=job), RunFactory(job=job)
    first.start("host:1", NOW)
    assert second.start("host:2", NOW) == StartResult.STARTED


def test_a_run_loads_with_its_job():
    run = RunFactory(job=JobFactory(env={"A": "b"}), scheduled_for=NOW)
    loaded = Run.load(run.pk)
    assert (loaded.pk, loaded.scheduled_for, loaded.job.env) == (run.pk, NOW, {"A": "b"})
    assert Run.load(run.pk + 1000) is None


def test_a_deleted_job_gives_gone():
    run = RunFactory()
    stale = Run.objects.get(pk=run.pk)
    run.job.delete()
    assert stale.start("host:1", NOW) == StartResult.GONE


def test_finishing_records_the_outcome_and_duration():
    run = RunFactory()
    run.start("host:1", NOW)
    outcome = RunOutcome(status="error", exit_code=3, stdout="out", error="exit code 3")
    assert run.finish(outcome, NOW + timedelta(seconds=2))
    run.refresh_from_db()
    assert (run.status, run.exit_code, run.duration_ms, run.stdout) == ("error", 3, 2000, "out")


def test_a_run_finished_by_the_liveness_check_keeps_that_verdict():
    run = RunFactory()
    run.start("host:1", NOW)
    Run.objects.get(pk=run.pk).abandon("worker host:1 stopped sending heartbeats", NOW)
    assert not run.finish(RunOutcome(status="ok"), NOW)
    assert Run.objects.get(pk=run.pk).error == "worker host:1 stopped sending heartbeats"


def test_a_worker_that_lost_its_run_to_a_takeover_cannot_finish_it():
    run = RunFactory(job=JobFactory(type="session"))
    run.start("host:1", NOW)
    assert _take_over(Run.objects.get(pk=run.pk), "host:2")
    assert not run.finish(RunOutcome(status="error", error="stale verdict"), NOW)
    held = Run.objects.get(pk=run.pk)
    assert (held.status, held.worker, held.error) == ("running", "host:2", "")


def test_a_pending_outcome_is_not_a_way_to_finish():
    run = RunFactory()
    run.start("host:1", NOW)
    with pytest.raises(ValueError, match="not a final run status"):
        run.finish(RunOutcome(status="pending"), NOW)


def test_a_heartbeat_is_recorded_only_for_the_holding_worker():
    run = RunFactory()
    run.start("host:1", NOW)
    assert run.beat(NOW + timedelta(seconds=5))
    assert Run.objects.get(pk=run.pk).heartbeat_at == NOW + timedelta(seconds=5)
    run.worker = "host:2"
    assert not run.beat(NOW + timedelta(seconds=10))


def test_lag_is_start_minus_scheduled_instant():
    run = RunFactory(scheduled_for=NOW, started_at=NOW + timedelta(milliseconds=40))
    assert run.lag_ms == 40


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_of_one_skip_job_start_only_one_run():
    job = JobFactory(overlap_policy="skip")
    runs = [RunFactory(job=job, trigger="schedule") for _ in range(6)]
    barrier = threading.Barrier(len(runs))
    results: list[str] = []

    def start(run: Run) -> None:
        barrier.wait()
        try:
            results.append(run.start(f"worker:{run.pk}", NOW))
        finally:
            connection.close()

    threads = [threading.Thread(target=start, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results.count(StartResult.STARTED) == 1
    assert results.count(StartResult.SKIPPED) == 5
    assert job.runs.filter(status="running").count() == 1


def test_runs_due_together_start_in_one_statement():
    runs = [RunFactory(job=JobFactory(), trigger="schedule") for _ in range(5)]
    with CaptureQueriesContext(connection) as queries:
        results = Run.start_many(runs, "host:1", NOW)
    statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    assert len([sql for sql in statements if sql.startswith("UPDATE")]) == 1
    assert len(statements) == (1 if connection.vendor == "sqlite" else 2)  # + the jobs' lock
    assert results == {run.pk: StartResult.STARTED for run in runs}
    assert set(Run.objects.values_list("status", "worker", "started_at")) == {
        (RunStatus.RUNNING, "host:1", NOW)
    }
    assert all(run.status == RunStatus.RUNNING and run.worker == "host:1" for run in runs)


def test_a_batch_start_keeps_every_rule_of_a_single_start():
    """Overlap skip, a manual run's note, a run another delivery won, a deleted job, and
    two runs of one job in the same batch: each ends as ``start`` alone would end it."""
    busy = JobFactory(overlap_policy="skip")
    running = RunFactory(job=busy, trigger="schedule")
    running.start("host:0", NOW)
    skipped = RunFactory(job=busy, trigger="schedule")
    manual_job = JobFactory(overlap_policy="skip")
    RunFactory(job=manual_job, trigger="schedule").start("host:0", NOW)
    manual = RunFactory(job=manual_job, trigger="manual")
    won = RunFactory(job=JobFactory())
    stale = Run.objects.get(pk=won.pk)
    won.start("host:0", NOW)
    doomed = RunFactory(job=JobFactory())
    doomed_copy = Run.objects.get(pk=doomed.pk)
    doomed.job.delete()
    pair_job = JobFactory(overlap_policy="skip")
    pair = [RunFactory(job=pair_job, trigger="schedule") for _ in range(2)]
    free = RunFactory(job=JobFactory(), trigger="schedule")

    results = Run.start_many([skipped, manual, stale, doomed_copy, *pair, free], "host:1", NOW)

    assert results[skipped.pk] == StartResult.SKIPPED
    assert f"run #{running.pk}" in Run.objects.get(pk=skipped.pk).error
    assert results[manual.pk] == StartResult.STARTED
    assert "overlap skip applies to scheduled fires only" in Run.objects.get(pk=manual.pk).notes
    assert results[stale.pk] == StartResult.GONE
    assert Run.objects.get(pk=won.pk).worker == "host:0"
    assert results[doomed.pk] == StartResult.GONE
    assert sorted(results[run.pk] for run in pair) == [StartResult.SKIPPED, StartResult.STARTED]
    assert results[free.pk] == StartResult.STARTED


def _start_work(start) -> int:
    """The database's work for ``start()``: SQLite's virtual-machine steps, or the
    buffers PostgreSQL touches for its reads and its last write, each run again under
    EXPLAIN ANALYZE inside a savepoint rolled back after."""
    if connection.vendor == "sqlite":
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        connection.ensure_connection()
        connection.connection.set_progress_handler(count, 1)
        try:
            start()
        finally:
            connection.connection.set_progress_handler(None, 1)
        return steps
    with CaptureQueriesContext(connection) as queries:
        start()
    statements = [query["sql"] for query in queries.captured_queries]
    reads = [sql for sql in statements if sql[:6] == "SELECT"]
    last_write = [sql for sql in statements if sql[:6] == "UPDATE"][-1]
    with connection.cursor() as cursor:
        cursor.execute("SAVEPOINT work")
        work = sum(_explained_buffers(cursor, sql) for sql in reads)
        # The start's UPDATE again, from where it began: its runs pending once more.
        cursor.execute("UPDATE runs SET status = 'pending', worker = '' WHERE status = 'running'")
        work += _explained_buffers(cursor, last_write)
        cursor.execute("ROLLBACK TO SAVEPOINT work")
    return work


def _explained_buffers(cursor, sql: str) -> int:
    """The buffers PostgreSQL touches running ``sql`` (EXPLAIN ANALYZE runs it)."""
    cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")
    plan = cursor.fetchone()[0]
    return _buffers(plan[0]["Plan"] if isinstance(plan, list) else plan)


def _buffers(node: dict) -> int:
    return node.get("Shared Hit Blocks", 0) + node.get("Shared Read Blocks", 0)


@pytest.mark.parametrize("trigger", ["schedule", "manual"])
@pytest.mark.parametrize("together", [False, True])
def test_starting_a_run_costs_no_more_for_a_job_with_a_long_history(trigger, together):
    """The start's overlap check and its manual-run note look only at the job's running
    runs: a job that fires every second keeps 86,400 runs a day, and a start that
    walked them (SQLite took MIN(id) in id order) grew with every one (issue 12)."""
    fresh, busy = JobFactory(), JobFactory()
    Run.objects.bulk_create(
        Run(job=busy, trigger="manual", status=RunStatus.OK, started_at=NOW, finished_at=NOW)
        for _ in range(3000)
    )

    def work(job) -> int:
        runs = [RunFactory(job=job, trigger=trigger, scheduled_for=None) for _ in range(2)]
        if together:
            runs.append(RunFactory(job=JobFactory(), trigger=trigger, scheduled_for=None))
            return _start_work(lambda: Run.start_many([runs[0], runs[2]], "host:1", NOW))
        return _start_work(lambda: runs[0].start("host:1", NOW))

    assert work(busy) < 2 * work(fresh) + 50


def test_skipping_an_overlapping_fire_costs_no_more_for_a_job_with_a_long_history():
    """The overlap skip (``_start_or_skip``) finds the running sibling without reading
    the job's finished runs either."""
    fresh, busy = JobFactory(), JobFactory()
    Run.objects.bulk_create(
        Run(job=busy, trigger="manual", status=RunStatus.OK, started_at=NOW, finished_at=NOW)
        for _ in range(3000)
    )

    def work(job) -> int:
        RunFactory(job=job, trigger="manual", scheduled_for=None).start("host:1", NOW)
        fire = RunFactory(job=job, trigger="schedule", scheduled_for=NOW)
        steps = _start_work(lambda: fire.start("host:1", NOW))
        fire.refresh_from_db()
        assert fire.status == RunStatus.SKIPPED
        return steps

    assert work(busy) < 2 * work(fresh) + 50


def test_runs_are_read_with_their_jobs_in_one_statement_and_missing_ones_left_out():
    first, second = RunFactory(), RunFactory(job=JobFactory(name="second job"))
    with CaptureQueriesContext(connection) as queries:
        loaded = Run.load_many([second.pk, 10**9, first.pk])
    assert len(queries) == 1
    assert sorted(loaded) == sorted([first.pk, second.pk])
    assert loaded[second.pk].job.name == "second job"
    assert Run.load(10**9) is None and Run.load(first.pk).job_id == first.job_id
    assert Run.load(str(first.pk)).pk == first.pk  # an id as text, as JSON may carry it


def test_a_start_that_fails_for_one_run_of_a_batch_still_reports_the_others(monkeypatch):
    """The batch's one statement commits; a run that then starts alone (its job has
    another run in the batch) meets an error in its own transaction: it is left out of
    the answer (not started, still pending), and the runs that did start are reported,
    so the worker executes them instead of leaving them "running" (probe 3)."""
    job = JobFactory(overlap_policy="allow")
    first, second = RunFactory(job=job), RunFactory(job=job)
    others = [RunFactory(), RunFactory()]
    real_start = Run.start

    def flaky(self, worker, now):
        if self.pk == second.pk:
            raise RuntimeError("database is locked")
        return real_start(self, worker, now)

    monkeypatch.setattr(Run, "start", flaky)
    results = Run.start_many([first, second, *others], "host:1", NOW)
    assert results == {run.pk: StartResult.STARTED for run in (first, *others)}
    statuses = dict(Run.objects.values_list("pk", "status"))
    assert statuses[second.pk] == RunStatus.PENDING
    assert {statuses[run.pk] for run in (first, *others)} == {RunStatus.RUNNING}
