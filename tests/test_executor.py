"""execute_run: one delivery runs the job and records the outcome on the run."""

from __future__ import annotations

import pytest

from runner.execution.executor import execute_run
from runner.models import Run
from tests.factories import JobFactory, RunFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_inline_script_that_exits_zero_ends_ok_with_its_output():
    run = RunFactory(job=JobFactory(script="echo hello; echo oops >&2"))
    finished = execute_run(run.pk, worker="test:1")
    assert (finished.status, finished.exit_code) == ("ok", 0)
    assert (finished.stdout, finished.stderr) == ("hello", "oops")
    assert finished.stdout_bytes == 6 and finished.duration_ms >= 0


def test_a_non_zero_exit_ends_in_error_naming_the_code_and_stderr():
    run = RunFactory(job=JobFactory(script="echo broken >&2; exit 3"))
    finished = execute_run(run.pk, worker="test:1")
    assert (finished.status, finished.exit_code) == ("error", 3)
    assert finished.error == "exit code 3:\nbroken"


def test_a_second_delivery_of_a_finished_run_does_nothing():
    run = RunFactory(job=JobFactory(script="echo once"))
    execute_run(run.pk, worker="test:1")
    assert execute_run(run.pk, worker="test:2") is None
    assert Run.objects.get(pk=run.pk).worker == "test:1"


def test_a_script_sees_the_runner_variables_and_its_env_and_args(script_file):
    path = script_file("show.sh", 'echo "$JR_JOB_ID $JR_RUN_ID $GREETING $1"')
    job = JobFactory(
        id="show", source_type="path", script=str(path), env={"GREETING": "hi"}, args=["x"]
    )
    run = RunFactory(job=job)
    finished = execute_run(run.pk, worker="test:1")
    assert finished.stdout == f"show {run.pk} hi x"


def test_a_job_env_cannot_override_the_runner_variables():
    job = JobFactory(script='echo "$JR_RUN_ID"', env={"JR_RUN_ID": "forged"})
    run = RunFactory(job=job)
    assert execute_run(run.pk, worker="test:1").stdout == str(run.pk)


def test_a_timed_out_script_ends_as_timeout():
    run = RunFactory(job=JobFactory(script="sleep 30", timeout_ms=200))
    finished = execute_run(run.pk, worker="test:1")
    assert finished.status == "timeout" and "timed out after 200 ms" in finished.error


def test_an_outcome_the_database_refuses_still_ends_the_run_as_an_error(monkeypatch, caplog):
    # A value past BIGINT, as an unbounded JR_RESULT "tokens" once was (probe finding A11):
    # the run must not stay "running" until the liveness check calls its worker dead.
    from dataclasses import replace

    from runner.models import RunOutcome

    storable = RunOutcome.storable
    monkeypatch.setattr(
        RunOutcome,
        "storable",
        lambda self: replace(storable(self), tokens=10**23 if self.status == "ok" else None),
    )
    run = RunFactory(job=JobFactory(script="echo hello"))

    finished = execute_run(run.pk, worker="test:1")

    stored = Run.objects.get(pk=run.pk)
    assert (stored.status, stored.exit_code, stored.tokens) == ("error", 0, None)
    assert stored.error.startswith("runner error: the run's outcome could not be recorded")
    assert finished.status == "error" and stored.finished_at is not None
