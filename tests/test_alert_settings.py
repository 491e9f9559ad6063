"""Every alert and retry setting (issue 16) in every entrance: the admin form, add_job
(tests/test_commands_add_job.py), sync_jobs job files and the API; the same refusals."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from runner.models import Job
from tests.api.conftest import api, token, token_owner  # noqa: F401 (fixtures)
from tests.test_admin import job_form
from tests.test_commands_sync_jobs import original, repo, sync, write  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db

SETTINGS = {
    "alert_after_failures": 3,
    "alert_reminder_hours": 6,
    "late_grace_s": 900,
    "slow_factor": 2.5,
    "retries": 2,
    "retry_backoff_s": 45,
    "webhook_url": "https://hooks.example.com/jr",
}
DEFAULTS = {
    "alert_after_failures": 1,
    "alert_reminder_hours": 0,
    "late_grace_s": None,
    "slow_factor": 3.0,
    "retries": 0,
    "retry_backoff_s": 30,
    "webhook_url": "",
}
# (field, bad value, words of the refusal) for JSON entrances (API, job files).
BAD = [
    ("alert_after_failures", 0, "greater than or equal to 1"),
    ("alert_after_failures", 10**6, "less than or equal to 10000"),
    ("alert_after_failures", "3", "must be a whole number"),
    ("alert_reminder_hours", -1, "greater than or equal to 0"),
    ("alert_reminder_hours", 10**12, "less than or equal to 8760"),
    ("late_grace_s", 30, "greater than or equal to 60"),
    ("late_grace_s", 10**9, "less than or equal to 2592000"),
    ("late_grace_s", 1.5, "must be a whole number, or null for the default"),
    ("slow_factor", 0.5, "must be 0 (no slow alerts) or between 1 and 1000"),
    ("slow_factor", 1e300, "must be 0 (no slow alerts) or between 1 and 1000"),
    ("slow_factor", -3, "must be 0 (no slow alerts) or between 1 and 1000"),
    ("slow_factor", True, "must be a number"),
    ("retries", -1, "greater than or equal to 0"),
    ("retries", 11, "less than or equal to 10"),
    ("retries", None, "must be a whole number"),
    ("retry_backoff_s", 0, "greater than or equal to 1"),
    ("retry_backoff_s", 10**7, "less than or equal to 3600"),
    ("webhook_url", "ftp://example.com/x", "must be an http:// or https:// URL"),
    ("webhook_url", "https://exa mple.com/", "must not contain spaces"),
    ("webhook_url", "x" * 2001, "at most 2000 characters"),
    ("webhook_url", 5, "must be a string"),
]


def settings_of(job_id: str) -> dict:
    job = Job.objects.get(pk=job_id)
    return {name: getattr(job, name) for name in SETTINGS}


# -- API --------------------------------------------------------------------------------


def test_the_api_creates_shows_and_changes_the_settings(api):  # noqa: F811
    body = {"id": "inbox", "name": "Inbox", "schedule": "*/5 * * * *", "script": "echo hi"}
    body["source_type"] = "inline"
    created = api.post("/jobs", {**body, **SETTINGS})
    assert created.status_code == 201, created.json()
    assert settings_of("inbox") == SETTINGS
    shown = api.get("/jobs/inbox").json()["job"]
    assert {name: shown[name] for name in SETTINGS} == SETTINGS
    changed = api.patch("/jobs/inbox", {"late_grace_s": None, "slow_factor": 0, "retries": 0})
    assert changed.status_code == 200
    assert settings_of("inbox") == SETTINGS | {
        "late_grace_s": None,
        "slow_factor": 0.0,
        "retries": 0,
    }


@pytest.mark.parametrize(("field", "value", "reason"), BAD)
def test_the_api_refuses_bad_settings_naming_the_field(api, field, value, reason):  # noqa: F811
    body = {"id": "inbox", "name": "Inbox", "schedule": "*/5 * * * *", "script": "echo hi"}
    response = api.post("/jobs", {**body, "source_type": "inline", field: value})
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert field in fields and reason in " ".join(fields[field])
    assert not Job.objects.exists()


# -- job files (sync_jobs) ----------------------------------------------------------------


def test_a_job_file_sets_the_settings_and_leaving_them_out_means_the_defaults(repo):  # noqa: F811
    write(repo, "a.json", [original(**SETTINGS), original(id="plain")])
    assert sync(repo / "jobs").error is None
    assert settings_of("poll") == SETTINGS
    assert settings_of("plain") == DEFAULTS


def test_a_null_webhook_in_a_job_file_means_none(repo):  # noqa: F811
    write(repo, "a.json", [original(webhook_url=None, late_grace_s=None)])
    assert sync(repo / "jobs").error is None
    assert settings_of("poll")["webhook_url"] == ""


# null in a job file means "empty" only for text, env and args; for a number it is refused too.
@pytest.mark.parametrize(("field", "value", "reason"), BAD)
def test_a_job_file_with_a_bad_setting_is_refused(repo, field, value, reason):  # noqa: F811
    write(repo, "a.json", [original(**{field: value})])
    result = sync(repo / "jobs")
    assert result.error and f"{field}: " in result.err and reason in result.err
    assert not Job.objects.exists()


# -- the admin form -------------------------------------------------------------------------


@pytest.fixture
def admin_client(db) -> Client:
    admin = get_user_model().objects.create_superuser("root", "r@example.com", "pw")
    client = Client()
    client.force_login(admin)
    return client


def test_the_admin_form_sets_the_settings_and_keeps_defaults_when_left_out(admin_client):
    url = reverse("admin:runner_job_add")
    form = job_form(**{name: str(value) for name, value in SETTINGS.items()})
    assert admin_client.post(url, form).status_code == 302
    assert settings_of("inbox") == SETTINGS
    assert admin_client.post(url, job_form(id="other")).status_code == 302
    assert settings_of("other") == DEFAULTS
    page = admin_client.get(reverse("admin:runner_job_change", args=["inbox"])).content.decode()
    assert "Alerts and retries" in page and 'name="late_grace_s"' in page


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alert_reminder_hours", "-1"),
        ("late_grace_s", "59"),
        ("slow_factor", "0.5"),
        ("slow_factor", "nan"),
        ("retries", "11"),
        ("retry_backoff_s", "0"),
        ("webhook_url", "file:///etc/passwd"),
    ],
)
def test_the_admin_form_refuses_bad_settings(admin_client, field, value):
    response = admin_client.post(reverse("admin:runner_job_add"), job_form(**{field: value}))
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Job.objects.exists()
