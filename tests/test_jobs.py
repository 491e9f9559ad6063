"""runner.jobs: the upsert every entrance uses, enabling, removing and listing jobs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.forms.models import model_to_dict

from runner.jobs import (
    Change,
    UnknownJobs,
    get_jobs,
    job_rows,
    remove_jobs,
    set_enabled,
    upsert_job,
)
from runner.models import Job, Run
from tests.factories import JobFactory, RunFactory

pytestmark = pytest.mark.django_db

NEW = {"id": "inbox", "name": "Inbox", "schedule": "*/5 * * * *", "script": "echo hi"}
INLINE = {**NEW, "source_type": "inline"}
MONDAY_NOON = datetime(2025, 6, 2, 12, 0, 0, tzinfo=UTC)
LATER = datetime(2025, 6, 2, 12, 5, 0, tzinfo=UTC)


def refusal(fields, script_base=None) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        upsert_job(fields, script_base)
    return caught.value.message_dict


def test_a_new_job_is_added_with_the_model_defaults():
    job, change = upsert_job(INLINE)
    assert change == Change.ADDED
    assert (job.enabled, job.overlap_policy, job.type) == (True, "skip", "script")


def test_an_update_changes_only_the_fields_given():
    upsert_job({**INLINE, "description": "kept", "timeout_ms": 500})
    job, change = upsert_job({"id": "inbox", "schedule": "0 * * * *"})
    assert change == Change.UPDATED
    assert (job.schedule, job.description, job.timeout_ms) == ("0 * * * *", "kept", 500)


def test_an_update_with_the_values_stored_is_unchanged_and_keeps_updated_at():
    first, _ = upsert_job(INLINE)
    _, change = upsert_job(INLINE)
    assert change == Change.UNCHANGED
    assert Job.objects.get(pk="inbox").updated_at == first.updated_at


def test_a_new_job_without_its_required_fields_is_refused_naming_them():
    errors = refusal({"id": "inbox", "name": "Inbox"})
    assert errors == {
        "schedule": ["is required for a new job"],
        "script": ["is required for a new job"],
    }


def test_a_missing_id_is_refused():
    assert refusal({"name": "x"}) == {"id": ["is required"]}


def test_an_unknown_field_is_refused():
    assert refusal({**INLINE, "timeout": 5}) == {"timeout": ["unknown field"]}


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("name", 5, "must be a string, not int"),
        ("script", ["echo"], "must be a string, not list"),
        ("enabled", "yes", "must be true or false"),
        ("timeout_ms", 1.5, "whole number of milliseconds"),
        ("timeout_ms", True, "whole number of milliseconds"),
    ],
)
def test_a_value_of_the_wrong_json_type_is_refused_instead_of_coerced(field, value, needle):
    assert needle in refusal({**INLINE, field: value})[field][0]


def test_a_refused_update_writes_nothing():
    upsert_job(INLINE)
    before = model_to_dict(Job.objects.get(pk="inbox"))
    refusal({"id": "inbox", "name": "renamed", "schedule": "61 * * * *"})
    assert model_to_dict(Job.objects.get(pk="inbox")) == before


def test_a_relative_path_script_is_stored_absolute_against_the_base(script_file, tmp_path):
    script_file("poll.sh", "echo hi")
    job, _ = upsert_job({**NEW, "script": "./poll.sh"}, script_base=tmp_path)
    assert job.script == str(tmp_path / "poll.sh")


def test_inline_script_text_is_never_treated_as_a_path(tmp_path):
    job, _ = upsert_job({**INLINE, "script": "poll.sh"}, script_base=tmp_path)
    assert job.script == "poll.sh"


def test_get_jobs_names_every_unknown_id():
    JobFactory(id="known")
    with pytest.raises(UnknownJobs) as caught:
        get_jobs(["a", "known", "b"])
    assert caught.value.ids == ["a", "b"] and str(caught.value) == "unknown job ids: a, b"


def test_set_enabled_changes_and_touches_only_the_jobs_that_differ():
    with time_machine.travel(MONDAY_NOON, tick=False):
        JobFactory(id="on", enabled=True)
        JobFactory(id="off", enabled=False)
    with time_machine.travel(LATER, tick=False):
        assert set_enabled(["on", "off"], enabled=True) == 1
    on, off = Job.objects.get(pk="on"), Job.objects.get(pk="off")
    assert (on.updated_at, off.updated_at, off.enabled) == (MONDAY_NOON, LATER, True)


def test_remove_jobs_deletes_the_jobs_with_their_runs_and_counts_them():
    doomed, kept = JobFactory(id="doomed"), JobFactory(id="kept")
    RunFactory.create_batch(3, job=doomed)
    RunFactory(job=kept)
    assert remove_jobs(["doomed"]) == {"doomed": 3}
    assert list(Run.objects.values_list("job_id", flat=True)) == ["kept"]


@time_machine.travel(MONDAY_NOON, tick=False)
def test_job_rows_give_the_next_fire_in_utc_and_the_newest_runs_status():
    job = JobFactory(id="daily", schedule="30 9 * * *", timezone="Europe/Berlin")
    RunFactory(job=job, status="error")
    RunFactory(job=job, status="ok")
    [row] = job_rows(MONDAY_NOON)
    assert row.next_fire == datetime(2025, 6, 3, 7, 30, tzinfo=UTC)
    assert (row.zone, row.last_status) == ("Europe/Berlin", "ok")


def test_job_rows_give_no_next_fire_for_a_disabled_job():
    JobFactory(enabled=False)
    assert job_rows(MONDAY_NOON)[0].next_fire is None


def test_job_rows_take_one_query_whatever_the_number_of_jobs(django_assert_num_queries):
    for job in JobFactory.create_batch(30):
        RunFactory(job=job)
    with django_assert_num_queries(1):
        assert len(job_rows(MONDAY_NOON)) == 30
