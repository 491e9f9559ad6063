"""POST /api/jobs/{id}/run: a manual run recorded here, executed by the workers, waited on."""

from __future__ import annotations

import threading
import time

import pytest
from django.utils import timezone

from runner import dispatch, manual
from runner.models import Run, SchedulerHeartbeat
from tests.factories import JobFactory
from tests.fakes.dispatch import Dispatched

# The run executes on the workers' threads and connections, so rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


def test_triggering_runs_the_job_on_the_workers_and_returns_its_result(api, workers):
    JobFactory(id="inbox", script="echo hello; echo 'JR_RESULT:{\"tokens\": 7}'")
    response = api.post("/jobs/inbox/run")
    assert response.status_code == 200
    result = response.json()["result"]
    assert (result["status"], result["exitCode"], result["tokens"]) == ("ok", 0, 7)
    assert result["stdoutTail"].startswith("hello")
    run = Run.objects.get(pk=result["runId"])
    assert (run.trigger, run.status) == ("manual", "ok")
    assert workers.dispatched == [run.pk]


def test_a_failing_run_returns_its_error(api, workers):
    JobFactory(id="inbox", script="echo broken >&2; exit 3")
    result = api.post("/jobs/inbox/run").json()["result"]
    assert (result["status"], result["exitCode"]) == ("error", 3)
    assert "broken" in result["error"] and result["stderrTail"] == "broken"


def test_wait_false_answers_202_with_the_run_id_at_once(api, workers):
    JobFactory(id="inbox", script="sleep 1; echo done")
    started = time.monotonic()
    response = api.post("/jobs/inbox/run?wait=false")
    assert time.monotonic() - started < 0.9
    assert response.status_code == 202
    run_id = response.json()["runId"]
    assert workers.settle()
    assert Run.objects.get(pk=run_id).status == "ok"


def test_a_run_longer_than_max_wait_answers_202_and_carries_on(api, workers):
    JobFactory(id="inbox", script="sleep 1")
    response = api.post("/jobs/inbox/run?max_wait=0.2")
    assert response.status_code == 202
    assert response.json()["status"] in ("pending", "running")
    assert workers.settle()
    assert api.get(f"/runs/{response.json()['runId']}").json()["run"]["status"] == "ok"


def test_a_manual_run_waits_for_a_free_slot_like_any_run(api, workers, runner_config, tmp_path):
    runner_config(max_concurrency=1)
    flag = tmp_path / "go"
    JobFactory(id="holder", script=f"until [ -e {flag} ]; do sleep 0.01; done")
    JobFactory(id="inbox", script="echo second")
    holder = api.post("/jobs/holder/run?wait=false").json()["runId"]
    _wait_until_running(holder)
    response = api.post("/jobs/inbox/run?max_wait=0.3")
    assert (response.status_code, response.json()["status"]) == (202, "pending")
    flag.touch()
    assert workers.settle()
    assert Run.objects.get(pk=response.json()["runId"]).status == "ok"


def test_with_no_worker_the_answer_says_the_run_stays_pending(api, monkeypatch):
    monkeypatch.setattr(dispatch, "dispatch", Dispatched())
    JobFactory(id="inbox")
    threads = threading.active_count()
    response = api.post("/jobs/inbox/run?max_wait=0")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    assert "stays pending until a worker runs it" in body["message"]
    assert threading.active_count() == threads  # the web process runs nothing itself
    assert Run.objects.get(pk=body["runId"]).status == "pending"


def test_with_a_scheduler_reporting_the_answer_says_no_worker_started_it_yet(api, monkeypatch):
    monkeypatch.setattr(dispatch, "dispatch", Dispatched())
    SchedulerHeartbeat.beat("host:1", timezone.now(), timezone.now())
    JobFactory(id="inbox")
    body = api.post("/jobs/inbox/run?max_wait=0").json()
    assert "no worker has started the run yet" in body["message"]


def test_the_wait_is_capped_below_the_web_servers_timeout():
    run = _FakeRun()
    now = [0.0]
    manual.wait_for(run, 3600, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert now[0] == pytest.approx(manual.WEB_WAIT_LIMIT_S)
    assert manual.WEB_WAIT_LIMIT_S < 30  # gunicorn's default worker timeout


def test_triggering_an_unknown_job_is_404(api):
    assert api.post("/jobs/missing/run").status_code == 404
    assert not Run.objects.exists()


def test_a_negative_max_wait_is_400(api):
    JobFactory(id="inbox")
    response = api.post("/jobs/inbox/run?max_wait=-1")
    assert response.status_code == 400 and "max_wait" in response.json()["fields"]
    assert not Run.objects.exists()


class _FakeRun:
    status = "pending"

    def refresh_from_db(self) -> None:
        pass


def _wait_until_running(run_id: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while Run.objects.get(pk=run_id).status != "running":
        assert time.monotonic() < deadline, "the holder run never started"
        threading.Event().wait(0.01)
