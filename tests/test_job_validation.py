"""The one validation layer refuses bad job definitions, naming the field."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from runner.models import Job
from runner.validation import describe

pytestmark = pytest.mark.django_db


def make_job(**fields) -> Job:
    values = {
        "id": "inbox",
        "name": "Poll inbox",
        "schedule": "*/5 * * * *",
        "script": "echo hi",
        "source_type": "inline",
    }
    values.update(fields)
    return Job(**values)


def errors_of(job: Job) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        job.full_clean()
    return caught.value.message_dict


def test_a_well_formed_job_is_accepted():
    make_job().full_clean()


def test_a_six_field_schedule_with_seconds_is_accepted():
    make_job(schedule="*/10 * * * * *").full_clean()


@pytest.mark.parametrize(
    "schedule,needle",
    [
        ("every day", "fields"),
        ("61 * * * *", "not a valid cron expression"),
        ("0 0 30 2 *", "never fires"),
        ("* * * * * * 2030", "fields"),
        ("", "This field cannot be blank"),
    ],
)
def test_a_bad_schedule_is_refused(schedule, needle):
    assert any(needle in message for message in errors_of(make_job(schedule=schedule))["schedule"])


def test_a_cron_schedule_longer_than_the_bound_is_refused_without_quoting_it():
    # Valid cron, but 10,000 characters: it would widen every list row that shows it.
    schedule = "0 0 * * * " + ",".join(["1"] * 4995)
    message = errors_of(make_job(schedule=schedule))["schedule"][0]
    assert "at most 1,000" in message
    assert len(message) < 200


def test_a_cron_schedule_at_the_bound_is_judged_on_its_content():
    schedule = "0 0 * * " + ",".join(["1"] * 496)  # 999 characters
    assert len(schedule) <= 1000
    make_job(schedule=schedule).full_clean()


def test_a_recurrence_object_has_its_own_larger_bound():
    padding = " " * 70_000
    message = errors_of(make_job(schedule='{"freq": "daily"' + padding + "}"))["schedule"][0]
    assert "recurrence object" in message and "at most 65,536" in message


def test_an_unknown_timezone_is_refused():
    errors = errors_of(make_job(timezone="Mars/Olympus"))
    assert "not a known IANA time zone" in errors["timezone"][0]


def test_a_known_timezone_is_accepted():
    make_job(timezone="Europe/Berlin").full_clean()


def test_an_unknown_type_is_refused():
    assert "type" in errors_of(make_job(type="lambda"))


def test_an_unknown_overlap_policy_is_refused():
    assert "overlap_policy" in errors_of(make_job(overlap_policy="queue"))


def test_an_unknown_missed_fire_policy_is_refused():
    assert "missed_fire_policy" in errors_of(make_job(missed_fire_policy="sometimes"))


@pytest.mark.parametrize("timeout", [0, -1])
def test_a_timeout_below_one_millisecond_is_refused(timeout):
    assert "timeout_ms" in errors_of(make_job(timeout_ms=timeout))


@pytest.mark.parametrize(
    "env,needle",
    [
        (["A=1"], "JSON object"),
        ({"A": 1}, "must be a string"),
        ({"1A": "x"}, "not a valid variable name"),
        ({"JR_RUN_ID": "7"}, "cannot be overridden"),
        ({"DATABASE_URL": "sqlite://"}, "cannot be overridden"),
    ],
)
def test_bad_env_is_refused(env, needle):
    assert needle in errors_of(make_job(env=env))["env"][0]


@pytest.mark.parametrize("args", [{"a": "b"}, ["ok", 3], "--flag"])
def test_args_that_are_not_a_list_of_strings_are_refused(args):
    assert "list of strings" in errors_of(make_job(args=args))["args"][0]


def test_a_path_job_whose_script_is_missing_is_accepted_with_a_warning(tmp_path):
    job = make_job(source_type="path", script=str(tmp_path / "missing.py"))
    job.full_clean()
    assert job.warnings() == [
        f"script: script not found: {tmp_path / 'missing.py'}; "
        "saved anyway, its runs fail until it exists"
    ]


def test_a_path_job_whose_script_exists_is_accepted(script_file):
    make_job(source_type="path", script=str(script_file("ok.sh", "exit 0"))).full_clean()


def test_a_session_job_naming_a_program_file_is_refused():
    job = make_job(type="session", source_type="path", script="poll.js")
    assert "not a program file" in errors_of(job)["script"][0]


def test_a_session_job_with_a_missing_prompt_file_is_accepted_with_a_warning(tmp_path):
    job = make_job(type="session", source_type="path", script=str(tmp_path / "brief.md"))
    job.full_clean()
    assert job.warnings()[0].startswith("script: prompt file not found: ")


def test_a_session_jobs_raw_prompt_with_the_default_source_type_is_accepted():
    job = make_job(type="session", source_type="path", script="Summarise my inbox, then file it.")
    job.full_clean()
    assert job.warnings() == []


def test_an_inline_job_or_an_existing_script_has_no_warning(script_file):
    assert make_job(source_type="inline", script="echo hi").warnings() == []
    assert make_job(source_type="path", script=str(script_file("ok.sh", "exit 0"))).warnings() == []


def test_a_session_job_with_inline_prompt_text_is_accepted():
    make_job(type="session", source_type="inline", script="Summarise my inbox.").full_clean()


def test_an_id_with_spaces_is_refused():
    assert "id" in errors_of(make_job(id="my job"))


def test_an_empty_script_is_refused():
    assert "script" in errors_of(make_job(script="  "))


@pytest.mark.parametrize("env", [[], None, ""])
def test_an_empty_env_of_the_wrong_type_is_refused(env):
    assert "JSON object" in errors_of(make_job(env=env))["env"][0]


@pytest.mark.parametrize("args", [{}, None, ""])
def test_empty_args_of_the_wrong_type_are_refused(args):
    assert "list of strings" in errors_of(make_job(args=args))["args"][0]


def test_a_refusal_is_described_in_one_line_naming_each_field():
    with pytest.raises(ValidationError) as caught:
        make_job(schedule="61 * * * *", type="lambda").full_clean()
    text = describe(caught.value, Job)
    assert "\n" not in text
    assert "schedule: '61 * * * *' is not a valid cron expression" in text
    assert "type: Value 'lambda' is not a valid choice (one of: script, session)" in text
