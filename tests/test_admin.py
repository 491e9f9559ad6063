"""The admin answers staff, turns away anonymous users, and validates job forms."""

from __future__ import annotations

import pytest
from django.urls import reverse

from runner.models import Job
from tests.factories import (
    JobFactory,
    QueueFactory,
    QueueItemFactory,
    RunFactory,
    StateEntryFactory,
    StateItemFactory,
)

pytestmark = pytest.mark.django_db

MODELS = {
    "runner_job": JobFactory,
    "runner_run": RunFactory,
    "statestore_stateentry": StateEntryFactory,
    "statestore_stateitem": StateItemFactory,
    "queues_queue": QueueFactory,
    "queues_queueitem": QueueItemFactory,
}
ADDABLE = [name for name in MODELS if name != "runner_run"]


@pytest.mark.parametrize("name", MODELS)
def test_every_changelist_answers_a_superuser(admin_client, name):
    MODELS[name]()
    assert admin_client.get(reverse(f"admin:{name}_changelist")).status_code == 200


@pytest.mark.parametrize("name", MODELS)
def test_every_change_page_answers_a_superuser(admin_client, name):
    obj = MODELS[name]()
    assert admin_client.get(reverse(f"admin:{name}_change", args=[obj.pk])).status_code == 200


@pytest.mark.parametrize("name", ADDABLE)
def test_every_add_page_answers_a_superuser(admin_client, name):
    assert admin_client.get(reverse(f"admin:{name}_add")).status_code == 200


def test_runs_cannot_be_added_by_hand(admin_client):
    assert admin_client.get(reverse("admin:runner_run_add")).status_code == 403


@pytest.mark.parametrize("name", MODELS)
def test_anonymous_users_are_sent_to_log_in(client, name):
    response = client.get(reverse(f"admin:{name}_changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_job_list_shows_the_last_run_status(admin_client):
    job = JobFactory(id="inbox")
    RunFactory(job=job, status="ok")
    RunFactory(job=job, status="error")
    response = admin_client.get(reverse("admin:runner_job_changelist"))
    assert b"error" in response.content


def test_the_job_list_filters_by_last_status(admin_client):
    RunFactory(job=JobFactory(id="failing"), status="error")
    RunFactory(job=JobFactory(id="passing"), status="ok")
    response = admin_client.get(reverse("admin:runner_job_changelist") + "?last_status=error")
    listed = [job.id for job in response.context["cl"].result_list]
    assert listed == ["failing"]


def test_the_run_list_filters_by_typed_job_id(admin_client):
    RunFactory(job=JobFactory(id="a"))
    RunFactory(job=JobFactory(id="b"))
    response = admin_client.get(reverse("admin:runner_run_changelist") + "?job=b")
    assert [run.job_id for run in response.context["cl"].result_list] == ["b"]


def test_the_run_detail_shows_output_and_error(admin_client):
    run = RunFactory(stdout="hello out", stderr="warn err", error="exit code 3")
    response = admin_client.get(reverse("admin:runner_run_change", args=[run.pk]))
    assert b"hello out" in response.content and b"exit code 3" in response.content


def job_form(**overrides) -> dict:
    data = {
        "id": "inbox",
        "name": "Poll inbox",
        "description": "",
        "enabled": "on",
        "type": "script",
        "source_type": "inline",
        "script": "echo hi",
        "args": "[]",
        "env": "{}",
        "thinking": "low",
        "schedule": "*/5 * * * *",
        "timezone": "",
        "overlap_policy": "skip",
        "missed_fire_policy": "skip",
        "timeout_ms": "",
        "on_failure": "",
        "on_success": "",
        "output_channel": "",
    }
    data.update(overrides)
    return data


def test_a_valid_job_is_created_from_the_admin_form(admin_client):
    response = admin_client.post(reverse("admin:runner_job_add"), job_form())
    assert response.status_code == 302
    assert Job.objects.get(id="inbox").schedule == "*/5 * * * *"


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("schedule", "61 * * * *", "not a valid cron expression"),
        ("schedule", "0 0 30 2 *", "never fires"),
        ("schedule", "R * * * *", "drawn again each time"),
        ("timezone", "Nowhere/City", "not a known IANA time zone"),
        ("env", '{"A": 1}', "must be a string"),
        ("env", "{not json", "Enter a valid JSON"),
        ("args", '"--x"', "list of strings"),
        ("timeout_ms", "0", "greater than or equal to 1"),
        ("type", "lambda", "not one of the available choices"),
        ("overlap_policy", "queue", "not one of the available choices"),
    ],
)
def test_the_job_form_refuses_bad_input_naming_the_field(admin_client, field, value, needle):
    response = admin_client.post(reverse("admin:runner_job_add"), job_form(**{field: value}))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors and any(needle in message for message in errors[field])
    assert not Job.objects.exists()


def test_the_job_form_saves_a_missing_script_file_with_a_warning(admin_client, tmp_path):
    form = job_form(source_type="path", script=str(tmp_path / "gone.py"))
    response = admin_client.post(reverse("admin:runner_job_add"), form, follow=True)
    assert Job.objects.get(pk="inbox").script == str(tmp_path / "gone.py")
    messages = [str(message) for message in response.context["messages"]]
    assert any("script not found" in message for message in messages)


def test_the_job_form_takes_a_recurrence_object_and_refuses_a_bad_one(admin_client):
    schedule = '{"freq": "minutely", "interval": 97, "timezone": "Europe/Berlin"}'
    admin_client.post(reverse("admin:runner_job_add"), job_form(schedule=schedule))
    assert Job.objects.get(pk="inbox").schedule == (
        '{"freq":"minutely","interval":97,"timezone":"Europe/Berlin"}'
    )
    bad = job_form(id="other", schedule='{"freq": "minutely", "interval": 0}')
    response = admin_client.post(reverse("admin:runner_job_add"), bad)
    errors = response.context["adminform"].form.errors["schedule"]
    assert errors == ["interval: Input should be greater than 0"]
