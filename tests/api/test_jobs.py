"""The jobs endpoints: list, detail, create, update, delete, enable, disable, script."""

from __future__ import annotations

import pytest

from tests.factories import JobFactory, RunFactory

pytestmark = pytest.mark.django_db


def test_the_job_list_shows_each_jobs_last_status_and_last_run(api):
    inbox = JobFactory(id="inbox")
    RunFactory(job=inbox, status="error")
    newest = RunFactory(job=inbox, status="ok")
    JobFactory(id="calendar")
    jobs = {job["id"]: job for job in api.get("/jobs").json()["jobs"]}
    assert jobs["inbox"]["last_status"] == "ok"
    assert jobs["inbox"]["last_run"].startswith(newest.created_at.isoformat()[:19])
    assert (jobs["calendar"]["last_status"], jobs["calendar"]["last_run"]) == (None, None)


def test_the_job_list_costs_the_same_queries_for_one_job_or_fifty(api, django_assert_num_queries):
    api.get("/status")  # the token's last_used_at is written on first use only
    RunFactory(job=JobFactory())
    with django_assert_num_queries(2):  # the token, then the jobs with their last runs
        api.get("/jobs")
    for job in JobFactory.create_batch(49):
        RunFactory(job=job)
    with django_assert_num_queries(2):
        assert len(api.get("/jobs").json()["jobs"]) == 50


def test_a_job_is_shown_with_every_field(api):
    JobFactory(id="inbox", env={"A": "1"}, args=["-v"], timeout_ms=5000)
    job = api.get("/jobs/inbox").json()["job"]
    assert (job["id"], job["env"], job["args"], job["timeout_ms"]) == (
        "inbox", {"A": "1"}, ["-v"], 5000,
    )  # fmt: skip
    assert job["schedule"] == "*/5 * * * *" and job["enabled"] is True


def test_an_unknown_job_is_404(api):
    response = api.get("/jobs/missing")
    assert response.status_code == 404
    assert response.json() == {"error": "job 'missing' not found"}
