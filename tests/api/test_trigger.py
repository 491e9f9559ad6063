"""POST /api/jobs/{id}/run: a manual run through execute_run, waited for or not."""

from __future__ import annotations

import time

import pytest

from runner.execution.background import wait_for_background_runs
from runner.models import Run
from tests.factories import JobFactory

# The run executes on its own thread and connection, so rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_thread_outlives_its_test():
    yield
    assert wait_for_background_runs(30)


def test_triggering_runs_the_job_now_and_returns_its_result(api):
    JobFactory(id="inbox", script="echo hello; echo 'JR_RESULT:{\"tokens\": 7}'")
    response = api.post("/jobs/inbox/run")
    assert response.status_code == 200
    result = response.json()["result"]
    assert (result["status"], result["exitCode"], result["tokens"]) == ("ok", 0, 7)
    assert result["stdoutTail"].startswith("hello")
    run = Run.objects.get(pk=result["runId"])
    assert (run.trigger, run.status) == ("manual", "ok")


def test_a_failing_run_returns_its_error(api):
    JobFactory(id="inbox", script="echo broken >&2; exit 3")
    result = api.post("/jobs/inbox/run").json()["result"]
    assert (result["status"], result["exitCode"]) == ("error", 3)
    assert "broken" in result["error"] and result["stderrTail"] == "broken"


def test_wait_false_answers_202_with_the_run_id_at_once(api):
    JobFactory(id="inbox", script="sleep 1; echo done")
    started = time.monotonic()
    response = api.post("/jobs/inbox/run?wait=false")
    assert time.monotonic() - started < 0.9
    assert response.status_code == 202
    run_id = response.json()["runId"]
    assert wait_for_background_runs(30)
    assert Run.objects.get(pk=run_id).status == "ok"


def test_a_run_longer_than_max_wait_answers_202_and_carries_on(api):
    JobFactory(id="inbox", script="sleep 1")
    response = api.post("/jobs/inbox/run?max_wait=0.2")
    assert response.status_code == 202
    assert response.json()["status"] in ("pending", "running")
    assert wait_for_background_runs(30)
    assert api.get(f"/runs/{response.json()['runId']}").json()["run"]["status"] == "ok"


def test_triggering_an_unknown_job_is_404(api):
    assert api.post("/jobs/missing/run").status_code == 404
    assert not Run.objects.exists()


def test_a_negative_max_wait_is_400(api):
    JobFactory(id="inbox")
    response = api.post("/jobs/inbox/run?max_wait=-1")
    assert response.status_code == 400 and "max_wait" in response.json()["fields"]
