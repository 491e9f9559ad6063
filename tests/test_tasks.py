"""run_task on a worker: waits for the instant, claims only pending runs, hands back on stop."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from runner import dispatch, worker_state
from runner.models import Run
from runner.tasks import run_task
from tests.factories import JobFactory, RunFactory

pytestmark = pytest.mark.django_db(transaction=True)


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


def scheduled_run(**job_fields) -> Run:
    return RunFactory(
        job=JobFactory(**job_fields), trigger="schedule", scheduled_for=timezone.now()
    )


def test_a_pending_run_is_executed():
    run = scheduled_run(script="echo hi")
    assert run_task(run.pk) == "ok"
    assert Run.objects.get(pk=run.pk).stdout == "hi"


def test_the_run_starts_no_earlier_than_its_instant():
    run = RunFactory(
        job=JobFactory(), trigger="schedule", scheduled_for=timezone.now() + timedelta(seconds=0.2)
    )
    run_task(run.pk)
    run.refresh_from_db()
    assert run.started_at >= run.scheduled_for


def test_a_run_already_taken_is_left_alone():
    run = scheduled_run()
    run_task(run.pk)
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
    assert run_task(run.pk) == "ok"


def test_a_failure_inside_the_task_is_caught(monkeypatch):
    run = scheduled_run()

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("runner.tasks.execute_run", broken)
    assert run_task(run.pk) == "failed"
