"""A job's runs and a single run."""

from __future__ import annotations

import pytest

from runner.models import Run
from tests.factories import JobFactory, RunFactory

pytestmark = pytest.mark.django_db


def test_a_jobs_runs_come_newest_first_up_to_the_limit(api):
    job = JobFactory(id="inbox")
    runs = RunFactory.create_batch(5, job=job)
    RunFactory()  # another job's
    body = api.get("/jobs/inbox/runs?limit=3").json()
    assert [run["id"] for run in body["runs"]] == [run.pk for run in runs[::-1][:3]]


def test_runs_default_to_the_newest_fifty(api):
    RunFactory.create_batch(55, job=JobFactory(id="inbox"))
    assert len(api.get("/jobs/inbox/runs").json()["runs"]) == 50


def test_a_run_carries_its_outcome_and_output(api):
    run = RunFactory(job=JobFactory(id="inbox"), status="error", exit_code=3, stderr="boom")
    shown = api.get("/jobs/inbox/runs").json()["runs"][0]
    assert (shown["id"], shown["job_id"], shown["status"]) == (run.pk, "inbox", "error")
    assert (shown["exit_code"], shown["stderr"]) == (3, "boom")


def test_the_runs_of_an_unknown_job_are_404(api):
    assert api.get("/jobs/missing/runs").status_code == 404


@pytest.mark.parametrize("limit", ["0", "-5", "1001"])
def test_a_limit_out_of_range_is_400_naming_limit(api, limit):
    JobFactory(id="inbox")
    response = api.get(f"/jobs/inbox/runs?limit={limit}")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["limit"]


def test_a_limit_that_is_not_a_number_is_400_naming_limit(api):
    JobFactory(id="inbox")
    response = api.get("/jobs/inbox/runs?limit=ten")
    assert response.status_code == 400
    assert "valid integer" in response.json()["fields"]["limit"][0]


def test_one_run_is_shown_by_id(api):
    run = RunFactory(status="ok")
    assert api.get(f"/runs/{run.pk}").json()["run"]["status"] == "ok"


def test_an_unknown_run_is_404(api):
    assert api.get("/runs/999999").status_code == 404


def test_a_running_runs_detail_is_live_with_the_tails_so_far(api):
    run = RunFactory(status="running", stdout="fetching 3 feeds\nfeed 1 of 3\n", stderr="slow")
    body = api.get(f"/runs/{run.pk}").json()
    assert body["live"] is True
    assert (body["run"]["status"], body["run"]["stdout"], body["run"]["stderr"]) == (
        "running",
        "fetching 3 feeds\nfeed 1 of 3\n",
        "slow",
    )
    Run.objects.filter(pk=run.pk).update(status="ok", stdout="done\n")
    body = api.get(f"/runs/{run.pk}").json()
    assert (body["live"], body["run"]["stdout"]) == (False, "done\n")
