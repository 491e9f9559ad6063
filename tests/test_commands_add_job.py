"""add_job: upsert a job from flags; a refusal is one line and writes nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.forms.models import model_to_dict

from runner.jobs import upsert_job
from runner.management.commands.add_job import fields_from_options
from runner.models import Job

pytestmark = pytest.mark.django_db

BASE = ["--id", "inbox", "--name", "Inbox", "--schedule", "*/5 * * * *"]
INLINE = [*BASE, "--source-type", "inline", "--script", "echo hi"]


def add_job(*argv: str) -> str:
    out = StringIO()
    call_command("add_job", *argv, stdout=out, stderr=StringIO())
    return out.getvalue()


def refusal(*argv: str) -> str:
    with pytest.raises(CommandError) as caught:
        add_job(*argv)
    return str(caught.value)


def test_every_flag_sets_its_field(script_file, tmp_path):
    script = script_file("poll.sh", "echo hi")
    add_job(
        *BASE, "--script", str(script), "--type", "script", "--source-type", "path",
        "--description", "Poll the inbox", "--timeout", "60000", "--overlap", "allow",
        "--missed-fire", "latest", "--on-failure", "C1", "--on-success", "C2",
        "--output-channel", "C3", "--env", "A=1", "--env", "B=x=y", "--arg", "one",
        "--arg=--two", "--timezone", "Europe/Berlin", "--thinking", "high", "--disabled",
        "--interpreter", "node --no-warnings", "--alert-after", "3", "--remind-hours", "6",
        "--late-grace", "900", "--slow-factor", "2.5", "--retries", "2", "--retry-backoff", "45",
        "--webhook-url", "https://hooks.example.com/jr",
    )  # fmt: skip
    job = model_to_dict(Job.objects.get(pk="inbox"))
    assert job == {
        "id": "inbox", "name": "Inbox", "schedule": "*/5 * * * *", "script": str(script),
        "type": "script", "source_type": "path", "description": "Poll the inbox",
        "timeout_ms": 60000, "overlap_policy": "allow", "missed_fire_policy": "latest",
        "on_failure": "C1", "on_success": "C2", "output_channel": "C3",
        "env": {"A": "1", "B": "x=y"}, "args": ["one", "--two"], "timezone": "Europe/Berlin",
        "thinking": "high", "enabled": False, "interpreter": "node --no-warnings",
        "alert_after_failures": 3, "alert_reminder_hours": 6, "late_grace_s": 900,
        "slow_factor": 2.5, "retries": 2, "retry_backoff_s": 45,
        "webhook_url": "https://hooks.example.com/jr",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("flag", "value", "field", "words"),
    [
        ("--alert-after", "0", "alert_after_failures", "greater than or equal to 1"),
        ("--alert-after", "two", "alert_after_failures", "is not a whole number"),
        ("--remind-hours", "-1", "alert_reminder_hours", "greater than or equal to 0"),
        ("--remind-hours", "99999999", "alert_reminder_hours", "less than or equal to 8760"),
        ("--late-grace", "59", "late_grace_s", "greater than or equal to 60"),
        ("--late-grace", "1e9", "late_grace_s", "is not a whole number"),
        ("--slow-factor", "0.5", "slow_factor", "must be 0 (no slow alerts) or between 1"),
        ("--slow-factor", "nan", "slow_factor", "NaN or Infinity"),
        ("--slow-factor", "inf", "slow_factor", "NaN or Infinity"),
        ("--retries", "-1", "retries", "greater than or equal to 0"),
        ("--retries", "11", "retries", "less than or equal to 10"),
        ("--retry-backoff", "0", "retry_backoff_s", "greater than or equal to 1"),
        ("--retry-backoff", "86400", "retry_backoff_s", "less than or equal to 3600"),
        ("--webhook-url", "ftp://example.com/x", "webhook_url", "http:// or https://"),
        ("--webhook-url", "file:///etc/passwd", "webhook_url", "http:// or https://"),
        ("--webhook-url", "http://", "webhook_url", "http:// or https://"),
    ],
)
def test_alert_and_retry_flags_refuse_bad_values(flag, value, field, words):
    message = refusal(*INLINE, flag, value)
    assert field in message and words in message
    assert not Job.objects.exists()


def test_add_job_says_whether_it_added_updated_or_left_the_job_unchanged():
    assert add_job(*INLINE) == "job inbox: added\n"
    assert add_job("--id", "inbox", "--name", "Renamed") == "job inbox: updated\n"
    assert add_job("--id", "inbox", "--name", "Renamed") == "job inbox: unchanged\n"


def test_a_relative_script_path_is_stored_absolute_against_the_current_directory(
    script_file, tmp_path, monkeypatch
):
    script_file("poll.sh", "echo hi")
    monkeypatch.chdir(tmp_path)
    add_job(*BASE, "--script", "poll.sh")
    assert Job.objects.get(pk="inbox").script == str(tmp_path / "poll.sh")


def test_an_update_changes_only_the_flags_given():
    add_job(*INLINE, "--description", "kept", "--env", "A=1", "--timeout", "500")
    add_job("--id", "inbox", "--schedule", "0 9 * * *")
    job = Job.objects.get(pk="inbox")
    assert (job.schedule, job.description, job.env, job.timeout_ms) == (
        "0 9 * * *", "kept", {"A": "1"}, 500,
    )  # fmt: skip


def test_env_pairs_and_json_objects_combine_with_later_ones_winning():
    add_job(*INLINE, "--env", '{"A": "json", "B": "json"}', "--env", "B=pair")
    assert Job.objects.get(pk="inbox").env == {"A": "json", "B": "pair"}


def test_given_env_and_args_replace_the_stored_ones():
    add_job(*INLINE, "--env", "A=1", "--arg", "x")
    add_job("--id", "inbox", "--env", "B=2", "--arg", "y")
    job = Job.objects.get(pk="inbox")
    assert (job.env, job.args) == ({"B": "2"}, ["y"])


def test_clear_flags_remove_the_env_the_args_and_the_timeout():
    add_job(*INLINE, "--env", "A=1", "--arg", "x", "--timeout", "500")
    add_job("--id", "inbox", "--clear-env", "--clear-args", "--no-timeout")
    job = Job.objects.get(pk="inbox")
    assert (job.env, job.args, job.timeout_ms) == ({}, [], None)


def test_enabled_turns_a_disabled_job_back_on():
    add_job(*INLINE, "--disabled")
    add_job("--id", "inbox", "--enabled")
    assert Job.objects.get(pk="inbox").enabled


# Refusals: (extra flags, what the one line says). The last of a repeated flag wins.
REFUSALS = [
    (["--schedule", "61 * * * *"], "schedule: '61 * * * *' is not a valid cron expression"),
    (["--schedule", "0 0 30 2 *"], "schedule: '0 0 30 2 *' never fires"),
    (["--schedule", "* * *"], "schedule: '* * *' has 3 fields"),
    (["--timezone", "Mars/Olympus"], "timezone: 'Mars/Olympus' is not a known IANA time zone"),
    (["--env", "{not json"], "env: not valid JSON"),
    (["--env", "NOEQUALS"], "env: 'NOEQUALS' is not KEY=VALUE"),
    (["--env", '{"A": 1}'], "env: the value of A must be a string, not int"),
    (["--env", "JR_RUN_ID=7"], "env: JR_RUN_ID is set by the runner and cannot be overridden"),
    (["--type", "lambda"], "type: Value 'lambda' is not a valid choice (one of: script, session)"),
    (["--overlap", "queue"], "overlap_policy: Value 'queue' is not a valid choice (one of: "),
    (["--missed-fire", "some"], "missed_fire_policy: Value 'some' is not a valid choice"),
    (["--thinking", "deep"], "thinking: Value 'deep' is not a valid choice"),
    (["--timeout", "soon"], "timeout_ms: 'soon' is not a whole number of milliseconds"),
    (["--timeout", "-5"], "timeout_ms: Ensure this value is greater than or equal to 1"),
    # fullwidth digits
    (["--timeout", "\uff11\uff10"], "timeout_ms: '\uff11\uff10' is not a whole number"),
    (["--timeout", " 10"], "timeout_ms: ' 10' is not a whole number of milliseconds"),
    (["--timeout", "1_000"], "timeout_ms: '1_000' is not a whole number of milliseconds"),
    (["--timeout", "9" * 5000], "timeout_ms: '99999"),
    (["--retries", "\u0663"], "retries: '\u0663' is not a whole number"),  # Arabic-Indic 3
    (["--slow-factor", "1_5"], "slow_factor: '1_5' is not a number"),
    (["--slow-factor", "\uff12"], "slow_factor: '\uff12' is not a number"),
    (["--schedule", '{"freq": "weekly", "byweekday": 7}'], "schedule: byweekday: Input should"),
    (["--schedule", '{"freq": "daily", "timezone": "Mars/X"}'], "schedule: timezone: 'Mars/X'"),
    (["--schedule", '{"freq": "daily"'], "schedule: is not valid JSON"),
    (["--enabled", "--disabled"], "not allowed with argument --enabled"),
]


@pytest.mark.parametrize("extra,message", REFUSALS)
def test_a_new_job_with_bad_input_is_refused_in_one_line_and_not_written(extra, message):
    text = refusal(*INLINE, *extra)
    assert message in text and "\n" not in text
    assert len(text) < 300  # a long value is named by its start and size
    assert not Job.objects.exists()


@pytest.mark.parametrize("extra,message", REFUSALS)
def test_an_update_with_bad_input_is_refused_in_one_line_and_changes_nothing(extra, message):
    upsert_job({"id": "inbox", "name": "Inbox", "schedule": "0 * * * *", "script": "echo hi",
                "source_type": "inline", "env": {"KEEP": "1"}})  # fmt: skip
    before = model_to_dict(Job.objects.get(pk="inbox"))
    text = refusal("--id", "inbox", "--name", "Renamed", *extra)
    assert message in text and "\n" not in text
    assert model_to_dict(Job.objects.get(pk="inbox")) == before


def test_a_new_job_without_name_schedule_and_script_is_refused_naming_them():
    assert refusal("--id", "inbox") == (
        "name: is required for a new job; schedule: is required for a new job; "
        "script: is required for a new job"
    )


def test_an_id_with_spaces_is_refused():
    text = refusal("--id", "my job", *INLINE[2:])
    assert text.startswith("id: use letters, digits")
    assert not Job.objects.exists()


def test_a_recurrence_object_schedule_is_stored_as_compact_json_text():
    add_job(*INLINE, "--schedule", '{"freq": "minutely", "interval": 11, "timezone": "UTC"}')
    stored = '{"freq":"minutely","interval":11,"timezone":"UTC"}'
    assert Job.objects.get(pk="inbox").schedule == stored


def test_a_path_job_whose_script_is_missing_is_added_with_a_warning(tmp_path):
    out, err = StringIO(), StringIO()
    script = tmp_path / "later.sh"
    call_command(*["add_job", *BASE, "--script", str(script)], stdout=out, stderr=err)
    assert out.getvalue() == "job inbox: added\n"
    assert err.getvalue() == (
        f"job inbox: warning: script: script not found: {script}; "
        "saved anyway, its runs fail until it exists\n"
    )


@pytest.mark.parametrize(
    ("flag", "field"),
    [("--timeout", "timeout_ms"), ("--alert-after", "alert_after_failures"),
     ("--remind-hours", "alert_reminder_hours"), ("--retries", "retries"),
     ("--retry-backoff", "retry_backoff_s")],
)  # fmt: skip
def test_a_number_padded_with_thousands_of_zeros_is_read_as_its_value(flag, field):
    """int() counts leading zeros against its 4,300-digit limit; the flag reads the value
    (here 1), never a traceback."""
    add_job(*INLINE, f"{flag}={'0' * 5000}1")
    assert getattr(Job.objects.get(pk="inbox"), field) == 1


def test_a_padded_number_out_of_its_fields_range_is_refused_in_one_line():
    text = refusal(*INLINE, f"--late-grace={'0' * 5000}1")
    assert "late_grace_s" in text and "greater than or equal to 60" in text
    assert len(text) < 300 and "\n" not in text


def test_signed_numbers_keep_their_sign():
    assert fields_from_options({"id": "x", "retries": "+3"})["retries"] == 3
    assert fields_from_options({"id": "x", "timeout": "-0005"})["timeout_ms"] == -5
