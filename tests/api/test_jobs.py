"""The jobs endpoints: list, detail, create, update, delete, enable, disable, script."""

from __future__ import annotations

import json

import pytest

from runner.models import Job, Run
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


def test_the_job_lists_last_status_is_not_the_pending_next_run(api):
    tick = JobFactory(id="tick", schedule="* * * * * *")
    ran = RunFactory(job=tick, status="ok")
    RunFactory(job=tick, status="pending")
    [job] = api.get("/jobs").json()["jobs"]
    assert job["last_status"] == "ok"
    assert job["last_run"].startswith(ran.created_at.isoformat()[:19])


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


NEW_JOB = {"id": "inbox", "name": "Poll inbox", "schedule": "*/5 * * * *", "script": "echo hi"}
INLINE = {**NEW_JOB, "source_type": "inline"}


def test_creating_a_job_answers_201_with_the_job(api):
    response = api.post("/jobs", INLINE)
    assert response.status_code == 201
    body = response.json()
    assert (body["ok"], body["id"], body["job"]["name"]) == (True, "inbox", "Poll inbox")
    assert Job.objects.get(pk="inbox").source_type == "inline"


def test_a_new_job_may_give_the_original_runners_timeout_seconds(api):
    api.post("/jobs", {**INLINE, "timeout_seconds": 90, "description": None})
    job = Job.objects.get(pk="inbox")
    assert (job.timeout_ms, job.description) == (90_000, "")


def test_creating_a_job_whose_id_exists_is_409_and_changes_nothing(api):
    JobFactory(id="inbox", name="Original")
    response = api.post("/jobs", {**INLINE, "name": "Intruder"})
    assert response.status_code == 409
    assert "already exists" in response.json()["error"]
    assert Job.objects.get(pk="inbox").name == "Original"


BAD_FIELDS = [
    ("schedule", {"schedule": "61 * * * *"}, "not a valid cron"),
    ("schedule", {"schedule": "0 0 30 2 *"}, "never fires"),
    ("schedule", {"schedule": "R * * * *"}, "drawn again each time"),
    ("schedule", {"schedule": "0 0 * * 5-1"}, "write '5-6,0-1'"),
    ("timezone", {"timezone": "Mars/Olympus"}, "not a known IANA time zone"),
    ("env", {"env": ["A=1"]}, "must be a JSON object"),
    ("env", {"env": {"A": 1}}, "must be a string"),
    ("env", {"env": {"JR_RUN_ID": "x"}}, "set by the runner"),
    ("args", {"args": "-v"}, "list of strings"),
    ("type", {"type": "cronjob"}, "one of: script, session"),
    ("overlap_policy", {"overlap_policy": "queue"}, "one of: skip, allow"),
    ("timeout_ms", {"timeout_ms": -5}, ""),
    ("timeout_seconds", {"timeout_seconds": -1}, "positive number"),
    ("timeout_seconds", {"timeout_seconds": 0.0004}, "at least 0.001 seconds (1 ms)"),
    ("enabled", {"enabled": "yes"}, "true or false"),
    ("name", {"name": None}, ""),
    ("colour", {"colour": "blue"}, "unknown field"),
    ("schedule", {"schedule": {"freq": "hourly", "byminute": 60}}, "byminute: Input should"),
    ("schedule", {"schedule": '{"freq": "daily", "timezone": "Nowhere"}'}, "timezone: 'Nowhere'"),
]


def test_a_timeout_of_too_many_seconds_is_refused_not_a_crash(api):
    """A JSON integer beyond a float's range (probe finding: a 500 before)."""
    body = json.dumps(INLINE)[:-1] + ', "timeout_seconds": 1' + "0" * 400 + "}"
    response = api.post("/jobs", raw=body.encode())
    assert response.status_code == 400
    assert "at most" in str(response.json()["fields"]["timeout_seconds"])


@pytest.mark.parametrize(("field", "change", "reason"), BAD_FIELDS)
def test_a_bad_field_is_400_naming_it_and_nothing_is_written(api, field, change, reason):
    response = api.post("/jobs", {**INLINE, **change})
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert field in fields and reason in " ".join(fields[field])
    assert not Job.objects.exists()


def test_a_missing_required_field_is_400_naming_it(api):
    response = api.post("/jobs", {"id": "inbox", "schedule": "* * * * *", "script": "x"})
    assert response.status_code == 400 and "name" in response.json()["fields"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "is not valid JSON"),
        (b"", "is empty"),
        (b"[1, 2]", "must be a JSON object, not an array"),
        (b"\xff\xfe", "is not UTF-8"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(api, raw, reason):
    response = api.post("/jobs", raw=raw)
    assert response.status_code == 400
    assert reason in response.json()["fields"]["body"][0]


def test_a_body_over_the_size_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = api.post("/jobs", {**INLINE, "script": "echo " + "x" * 2000})
    assert response.status_code == 413
    assert "1024 bytes" in response.json()["error"]
    assert not Job.objects.exists()


def test_a_partial_update_changes_only_the_fields_given(api):
    JobFactory(id="inbox", name="Old", schedule="0 * * * *")
    response = api.patch("/jobs/inbox", {"name": "New"})
    assert response.status_code == 200 and response.json()["job"]["name"] == "New"
    job = Job.objects.get(pk="inbox")
    assert (job.name, job.schedule) == ("New", "0 * * * *")


def test_a_bad_field_in_an_update_is_400_and_nothing_changes(api):
    JobFactory(id="inbox", name="Old")
    response = api.patch("/jobs/inbox", {"name": "New", "schedule": "every day"})
    assert response.status_code == 400 and "schedule" in response.json()["fields"]
    assert Job.objects.get(pk="inbox").name == "Old"


def test_an_update_cannot_change_a_jobs_id(api):
    JobFactory(id="inbox")
    response = api.patch("/jobs/inbox", {"id": "outbox"})
    assert response.status_code == 400 and "id" in response.json()["fields"]


def test_updating_an_unknown_job_is_404_and_creates_nothing(api):
    assert api.patch("/jobs/missing", NEW_JOB | {"id": "missing"}).status_code == 404
    assert not Job.objects.exists()


def test_deleting_a_job_removes_it_with_its_runs(api):
    job = JobFactory(id="inbox")
    RunFactory.create_batch(2, job=job)
    response = api.delete("/jobs/inbox")
    assert response.json() == {"ok": True, "deletedRuns": 2}
    assert not Job.objects.exists() and not Run.objects.exists()


def test_deleting_an_unknown_job_is_404(api):
    assert api.delete("/jobs/missing").status_code == 404


@pytest.mark.parametrize("method", ["patch", "post"])
def test_disable_and_enable_switch_a_job(api, method):
    JobFactory(id="inbox", enabled=True)
    assert getattr(api, method)("/jobs/inbox/disable").json() == {"ok": True}
    assert Job.objects.get(pk="inbox").enabled is False
    getattr(api, method)("/jobs/inbox/enable")
    assert Job.objects.get(pk="inbox").enabled is True


@pytest.mark.parametrize("action", ["enable", "disable"])
def test_enabling_or_disabling_an_unknown_job_is_404(api, action):
    assert api.patch(f"/jobs/missing/{action}").status_code == 404


def test_replacing_the_script_keeps_every_other_field(api):
    JobFactory(id="inbox", name="Keep", script="echo old")
    response = api.put("/jobs/inbox/script", {"script": "echo new"})
    assert response.json() == {"ok": True, "warnings": []}
    job = Job.objects.get(pk="inbox")
    assert (job.script, job.name) == ("echo new", "Keep")


def test_a_script_path_that_does_not_exist_is_accepted_and_the_run_would_say_so(api):
    JobFactory(id="inbox", script="echo old")
    response = api.put("/jobs/inbox/script", {"script": "/nowhere.sh", "source_type": "path"})
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "warnings": [
            "script: script not found: /nowhere.sh; saved anyway, its runs fail until it exists"
        ],
    }
    assert Job.objects.get(pk="inbox").script == "/nowhere.sh"


def test_creating_a_path_job_whose_script_is_missing_answers_201_with_a_warning(api):
    response = api.post("/jobs", {**NEW_JOB, "script": "/nowhere/x.sh"})
    assert response.status_code == 201
    assert response.json()["warnings"] == [
        "script: script not found: /nowhere/x.sh; saved anyway, its runs fail until it exists"
    ]


@pytest.mark.parametrize(
    "schedule",
    [
        {"freq": "minutely", "interval": 11, "timezone": "America/Chicago"},
        '{"freq": "minutely", "interval": 11, "timezone": "America/Chicago"}',
    ],
)
def test_a_recurrence_schedule_may_be_an_object_or_its_json_text(api, schedule):
    response = api.post("/jobs", {**INLINE, "schedule": schedule})
    assert response.status_code == 201
    stored = '{"freq":"minutely","interval":11,"timezone":"America/Chicago"}'
    assert response.json()["job"]["schedule"] == stored
    assert Job.objects.get(pk="inbox").schedule == stored


def test_patching_a_schedule_to_a_recurrence_object_changes_it(api):
    JobFactory(id="inbox")
    response = api.patch("/jobs/inbox", {"schedule": {"freq": "daily", "timezone": "UTC"}})
    assert response.status_code == 200
    assert Job.objects.get(pk="inbox").schedule == '{"freq":"daily","timezone":"UTC"}'


def test_replacing_the_script_requires_one(api):
    JobFactory(id="inbox")
    response = api.put("/jobs/inbox/script", {"source_type": "inline"})
    assert response.status_code == 400 and "script" in response.json()["fields"]


def test_replacing_the_script_of_an_unknown_job_is_404(api):
    assert api.put("/jobs/missing/script", {"script": "echo"}).status_code == 404
