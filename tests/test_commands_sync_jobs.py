"""sync_jobs DIR: upsert jobs from the original runner's job files, reporting each one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from django.forms.models import model_to_dict

from queues.models import Queue
from runner.jobs import upsert_job
from runner.models import Job

pytestmark = pytest.mark.django_db


@dataclass
class Result:
    out: str
    err: str
    error: str | None  # the CommandError, when the command exited non-zero


def sync(directory: Path, *flags: str) -> Result:
    out, err = StringIO(), StringIO()
    try:
        call_command("sync_jobs", str(directory), *flags, stdout=out, stderr=err)
    except CommandError as exc:
        return Result(out.getvalue(), err.getvalue(), str(exc))
    return Result(out.getvalue(), err.getvalue(), None)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A scripts repository: ``jobs/`` for job files, ``scripts/poll.sh``."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "poll.sh").write_text("echo hi\n")
    return tmp_path


def write(repo: Path, name: str, content: object) -> None:
    text = content if isinstance(content, str | bytes) else json.dumps(content)
    path = repo / "jobs" / name
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)


def original(**overrides) -> dict:
    """A job as the original runner's files hold it, with its extra keys."""
    job = {
        "id": "poll", "name": "Poll", "script": "scripts/poll.sh", "schedule": "*/11 * * * *",
        "description": "Poll mail", "overlap_policy": "allow", "timeout_seconds": 300,
        "enabled": True, "type": "script", "on_failure": None, "on_success": "C2",
        "output_channel": None, "source_type": "path", "env": {"A": "1"}, "args": ["--x"],
        "domain": "email", "prerequisite": None,
    }  # fmt: skip
    job.update(overrides)
    return job


def test_a_file_in_the_original_format_adds_its_jobs_with_scripts_relative_to_its_parent(repo):
    write(repo, "email.json", [original()])
    result = sync(repo / "jobs")
    assert result.error is None
    assert model_to_dict(Job.objects.get(pk="poll")) == {
        "id": "poll", "name": "Poll", "script": str(repo / "scripts" / "poll.sh"),
        "schedule": "*/11 * * * *", "description": "Poll mail", "overlap_policy": "allow",
        "timeout_ms": 300_000, "enabled": True, "type": "script", "on_failure": "",
        "on_success": "C2", "output_channel": "", "source_type": "path", "env": {"A": "1"},
        "args": ["--x"], "timezone": "", "missed_fire_policy": "skip", "thinking": "low",
        "interpreter": "node", "alert_after_failures": 1, "alert_reminder_hours": 0,
        "late_grace_s": None, "slow_factor": 3.0, "retries": 0, "retry_backoff_s": 30,
        "webhook_url": "",
    }  # fmt: skip
    assert "email.json: job poll: added" in result.out.splitlines()


def test_our_own_timezone_and_missed_fire_policy_keys_are_accepted(repo):
    write(repo, "a.json", [original(timezone="Europe/Berlin", missed_fire_policy="latest")])
    sync(repo / "jobs")
    job = Job.objects.get(pk="poll")
    assert (job.timezone, job.missed_fire_policy) == ("Europe/Berlin", "latest")


def test_a_second_sync_of_the_same_files_reports_every_job_unchanged(repo):
    write(repo, "a.json", [original(id="one"), original(id="two")])
    sync(repo / "jobs")
    result = sync(repo / "jobs")
    assert result.out.splitlines()[-1].startswith("0 added, 0 updated, 2 unchanged, 0 skipped")


def test_a_changed_file_makes_the_job_what_it_says_and_removed_keys_take_their_defaults(repo):
    write(repo, "a.json", [original(enabled=False, timezone="Europe/Berlin")])
    sync(repo / "jobs")
    Job.objects.filter(pk="poll").update(description="edited in the admin")
    write(repo, "a.json", [{"id": "poll", "name": "Poll", "script": "scripts/poll.sh",
                            "schedule": "0 * * * *"}])  # fmt: skip
    assert "a.json: job poll: updated" in sync(repo / "jobs").out
    job = model_to_dict(Job.objects.get(pk="poll"))
    assert job == {**job, "schedule": "0 * * * *", "description": "", "timeout_ms": None,
                   "enabled": True, "timezone": "", "overlap_policy": "skip", "env": {},
                   "args": [], "on_success": ""}  # fmt: skip


def test_a_job_file_entry_without_a_required_key_is_skipped_even_for_an_existing_job(repo):
    write(repo, "a.json", [original()])
    sync(repo / "jobs")
    write(repo, "a.json", [{"id": "poll", "schedule": "0 * * * *"}])
    result = sync(repo / "jobs")
    assert "name: is required in a job file; script: is required in a job file" in result.err
    assert Job.objects.get(pk="poll").schedule == "*/11 * * * *"


def test_the_originals_unstored_keys_are_reported_once_for_the_whole_sync(repo):
    write(repo, "a.json", [original(id="one"), original(id="two")])
    write(repo, "b.json", [original(id="three", colour="red")])
    result = sync(repo / "jobs")
    assert result.error is None
    assert result.out.count("ignored") == 2
    assert (
        "a.json, b.json: ignored: accepted and not stored, as by the original runner: "
        "domain, prerequisite" in result.out
    )
    assert "b.json: ignored: not job fields: colour" in result.out


def test_a_list_file_gets_the_originals_interpreter_and_an_object_file_ours(repo):
    write(repo, "a.json", [original(id="theirs")])
    write(repo, "b.json", {"jobs": [original(id="ours")]})
    write(repo, "c.json", [original(id="chosen", interpreter="python3")])
    sync(repo / "jobs")
    assert dict(Job.objects.values_list("id", "interpreter")) == {
        "theirs": "node", "ours": "", "chosen": "python3"
    }  # fmt: skip


def test_what_the_original_accepts_in_a_list_file_is_synced_with_its_meaning(repo):
    # sync-jobs.ts stores timeout_seconds 0 (no timeout: executor.ts "if (timeoutMs)"),
    # fills null fields with "?? default", and zod's .int() takes 11.0 for 11.
    nulls = dict.fromkeys(("enabled", "type", "overlap_policy", "source_type"))
    recurrence = {"freq": "minutely", "interval": 11.0, "timezone": "UTC", "byhour": [9.0]}
    write(repo, "a.json", [
        original(id="no-timeout", timeout_seconds=0),
        original(id="nulls", **nulls),
        original(id="floats", schedule=recurrence),
    ])  # fmt: skip
    result = sync(repo / "jobs")
    assert result.error is None, result.err
    jobs = {job.id: job for job in Job.objects.all()}
    assert jobs["no-timeout"].timeout_ms is None
    assert "timeout_seconds 0 means no timeout" in result.err
    assert (jobs["nulls"].enabled, jobs["nulls"].type) == (True, "script")
    assert (jobs["nulls"].overlap_policy, jobs["nulls"].source_type) == ("skip", "path")
    assert jobs["floats"].schedule == (
        '{"freq":"minutely","interval":11,"timezone":"UTC","byhour":[9]}'
    )


def test_an_object_file_is_ours_and_keeps_refusing_null_and_zero(repo):
    write(repo, "a.json", {"jobs": [original(id="zero", timeout_seconds=0)]})
    write(repo, "b.json", {"jobs": [original(id="null", enabled=None)]})
    result = sync(repo / "jobs")
    assert "timeout_seconds: must be a positive number" in result.err
    assert "enabled: must be true or false" in result.err
    assert not Job.objects.exists()


def test_a_path_job_whose_script_is_missing_is_added_with_a_warning(repo):
    write(repo, "a.json", [original(script="scripts/later.ts")])
    result = sync(repo / "jobs")
    assert result.error is None
    later = repo / "scripts" / "later.ts"
    assert result.err == (
        f"a.json: job poll: added; warning: script: script not found: {later}; "
        "saved anyway, its runs fail until it exists\n"
    )
    assert Job.objects.get(pk="poll").script == str(later)


def test_without_a_directory_sync_reads_jobs_dir_from_the_config(repo, settings):
    write(repo, "a.json", [original()])
    settings.RUNNER = replace_runner(settings.RUNNER, jobs_dir=str(repo / "jobs"))
    out = StringIO()
    call_command("sync_jobs", stdout=out, stderr=StringIO())
    assert "a.json: job poll: added" in out.getvalue()


def test_without_a_directory_or_jobs_dir_sync_falls_back_beside_the_config_file(repo, settings):
    (repo / "scripts" / "jobs").mkdir()
    (repo / "scripts" / "jobs" / "a.json").write_text(json.dumps([original(script="poll.sh")]))
    settings.RUNNER = replace_runner(
        settings.RUNNER, jobs_dir="", config_file=str(repo / "config.json")
    )
    out = StringIO()
    call_command("sync_jobs", stdout=out, stderr=StringIO())
    assert Job.objects.get(pk="poll").script == str(repo / "scripts" / "poll.sh")


def test_without_a_directory_or_any_config_sync_says_what_to_give(settings):
    settings.RUNNER = replace_runner(settings.RUNNER, jobs_dir="", config_file="")
    with pytest.raises(CommandError, match="give DIR, or set jobsDir"):
        call_command("sync_jobs", stdout=StringIO(), stderr=StringIO())


def replace_runner(config, **changes):
    """The runner config with these settings changed, whether or not it declares them."""
    copy = SimpleNamespace(**{**vars_of(config), **changes})
    return copy


def vars_of(config) -> dict:
    if hasattr(config, "model_dump"):
        return {name: getattr(config, name) for name in type(config).model_fields}
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


@pytest.mark.parametrize(
    "job,reason",
    [
        (original(schedule="61 * * * *"), "schedule: '61 * * * *' is not a valid cron expression"),
        (original(schedule="0 0 30 2 *"), "schedule: '0 0 30 2 *' never fires"),
        (original(schedule="H * * * *"), "'H' (a hashed value) is not supported"),
        (original(timezone="Mars/Olympus"), "timezone: 'Mars/Olympus' is not a known IANA"),
        (original(env=["A=1"]), "env: must be a JSON object of strings"),
        (original(env={"A": 1}), "env: the value of A must be a string, not int"),
        (original(env={"JR_JOB_ID": "x"}), "env: JR_JOB_ID is set by the runner"),
        (original(args="--x"), "args: must be a JSON list of strings"),
        (original(type="lambda"), "type: Value 'lambda' is not a valid choice (one of: "),
        (original(overlap_policy="queue"), "overlap_policy: Value 'queue' is not a valid choice"),
        (original(timeout_seconds=-1), "timeout_seconds: must be a positive number of seconds"),
        (original(timeout_seconds="60"), "timeout_seconds: must be a positive number of seconds"),
        (original(timeout_seconds=0.0001), "timeout_seconds: must be at least 0.001 seconds"),
        (original(timeout_seconds=10**400), "timeout_seconds: must be at most"),
        (original(timeout_ms=5), "timeout_seconds: give timeout_seconds or timeout_ms, not both"),
        (original(enabled="yes"), "enabled: must be true or false"),
        (original(schedule={"freq": "fortnightly"}), "schedule: freq: Input should be 'yearly'"),
        (original(schedule={"freq": "daily", "timezone": "Mars/X"}), "schedule: timezone: 'Mars"),
        (original(schedule={"timezone": "UTC"}), 'schedule: has no rule with "effect": "event"'),
        (original(schedule={"freq": "daily", "count": 1}), "schedule: never fires"),
        (original(type="session", script="prompt.js"), "script: a session job takes a prompt"),
        (original(name=None), "name: must be a string, not NoneType"),
        ({"name": "no id"}, "id: is required"),
        ("poll", "a job must be a JSON object"),
    ],
)
def test_a_refused_job_is_skipped_with_the_field_and_reason_and_not_written(repo, job, reason):
    write(repo, "a.json", [job])
    result = sync(repo / "jobs")
    assert result.err.startswith("a.json: job ") and reason in result.err
    assert result.err.count("\n") == 1 and result.error
    assert not Job.objects.exists()


def test_a_refused_job_leaves_its_stored_version_untouched(repo):
    write(repo, "a.json", [original()])
    sync(repo / "jobs")
    before = model_to_dict(Job.objects.get(pk="poll"))
    write(repo, "a.json", [original(name="Renamed", schedule="61 * * * *")])
    assert sync(repo / "jobs").error
    assert model_to_dict(Job.objects.get(pk="poll")) == before


@pytest.mark.parametrize(
    "content,reason",
    [
        ('[{"id": "poll",', "not valid JSON: Expecting"),
        (b'["\xff\xfe"]', "not UTF-8 text"),
        ({"id": "poll"}, 'must hold a JSON list of jobs, or an object {"jobs": [...]'),
        ({"jobs": {"id": "poll"}}, "must hold a JSON list of jobs"),
        ("42", "must hold a JSON list of jobs"),
    ],
)
def test_a_malformed_file_is_refused_by_name_while_other_files_apply(repo, content, reason):
    write(repo, "bad.json", content)
    write(repo, "good.json", [original()])
    result = sync(repo / "jobs")
    assert result.err.startswith(f"bad.json: refused: {reason}")
    assert result.error == "0 skipped, 1 refused; see the lines above"
    assert list(Job.objects.values_list("id", flat=True)) == ["poll"]


def test_a_jobs_object_file_is_read_like_a_list(repo):
    write(repo, "a.json", {"jobs": [original()]})
    assert sync(repo / "jobs").error is None
    assert Job.objects.filter(pk="poll").exists()


def test_an_id_defined_twice_is_skipped_naming_the_file_that_defined_it(repo):
    write(repo, "a.json", [original(name="First")])
    write(repo, "b.json", [original(name="Second")])
    result = sync(repo / "jobs")
    assert "b.json: job poll: skipped: id already defined in a.json" in result.err
    assert Job.objects.get(pk="poll").name == "First"


def test_a_missing_directory_is_refused(tmp_path):
    assert sync(tmp_path / "nowhere").error == f"{tmp_path / 'nowhere'}: not a directory"


def test_a_refused_directory_is_named_on_one_line_and_within_bounds(tmp_path):
    """A path given by mistake (a pasted blob, a name holding a line break) is echoed on
    one line, and a very long one by its start and size."""
    odd = tmp_path / "jobs\nERROR forged"
    assert sync(odd).error == f"{tmp_path}/jobs\\x0aERROR forged: not a directory"
    long = "/" + "d" * 5000
    error = sync(Path(long)).error
    assert error.endswith("… (5001 characters): cannot read: File name too long")
    assert len(error) < 400


def test_a_directory_without_job_files_is_refused(repo):
    assert sync(repo / "jobs").error == f"{repo / 'jobs'}: no *.json files"


def test_a_dry_run_reports_what_it_would_do_and_writes_nothing(repo):
    write(repo, "a.json", [original()])
    result = sync(repo / "jobs", "--dry-run")
    assert "a.json: job poll: added" in result.out
    assert result.out.splitlines()[-1].endswith("; nothing written")
    assert not Job.objects.exists()


def test_atomic_writes_nothing_when_one_job_is_refused(repo):
    write(repo, "a.json", [original(id="good"), original(id="bad", schedule="61 * * * *")])
    result = sync(repo / "jobs", "--atomic")
    assert result.error and result.out.splitlines()[-1].endswith("; nothing written")
    assert not Job.objects.exists()


def test_atomic_writes_everything_when_every_job_is_accepted(repo):
    write(repo, "a.json", [original(id="one"), original(id="two")])
    assert sync(repo / "jobs", "--atomic").error is None
    assert Job.objects.count() == 2


def test_queues_in_a_sync_file_are_defined_and_a_bad_one_is_skipped_with_its_reason(repo):
    queues = [{"id": "mail", "max_attempts": 5}, {"id": "bad", "max_attempts": 0}]
    write(repo, "a.json", {"jobs": [original()], "queues": queues})
    result = sync(repo / "jobs")
    assert "a.json: queue mail: added" in result.out
    assert "a.json: queue bad: skipped: max_attempts" in result.err
    assert Queue.objects.get(pk="mail").max_attempts == 5
    assert not Queue.objects.filter(pk="bad").exists()
    assert Job.objects.filter(pk="poll").exists()


def test_a_queue_synced_again_unchanged_is_reported_unchanged_and_not_rewritten(repo):
    queue = {"id": "mail", "max_attempts": 5, "dedup_config": {"path": "$.id"}}
    write(repo, "a.json", {"jobs": [original()], "queues": [queue]})
    sync(repo / "jobs")
    written = Queue.objects.get(pk="mail").updated_at
    result = sync(repo / "jobs")
    assert "a.json: queue mail: unchanged" in result.out
    assert Queue.objects.get(pk="mail").updated_at == written


def test_a_queue_synced_with_a_change_is_reported_updated(repo):
    write(repo, "a.json", {"jobs": [original()], "queues": [{"id": "mail", "max_attempts": 5}]})
    sync(repo / "jobs")
    write(repo, "a.json", {"jobs": [original()], "queues": [{"id": "mail", "max_attempts": 6}]})
    assert "a.json: queue mail: updated" in sync(repo / "jobs").out
    assert Queue.objects.get(pk="mail").max_attempts == 6


def test_a_job_added_by_add_job_is_updated_in_place_by_sync(repo):
    upsert_job({"id": "poll", "name": "Old", "schedule": "0 * * * *", "script": "echo",
                "source_type": "inline"})  # fmt: skip
    write(repo, "a.json", [original()])
    assert "a.json: job poll: updated" in sync(repo / "jobs").out
    assert Job.objects.get(pk="poll").name == "Poll"


def test_a_timeout_of_5000_digits_is_refused_as_longer_than_a_year(repo):
    """Too long for int(): read as a huge integer, it is too large, not 'not positive'."""
    text = json.dumps([original()]).replace(
        '"timeout_seconds": 300', '"timeout_seconds": ' + "9" * 5000
    )
    (repo / "jobs" / "a.json").write_text(text)
    result = sync(repo / "jobs")
    assert "timeout_seconds: must be at most" in result.err and "positive" not in result.err
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "job",
    [original(id="x" * 4000), original(id="a\nb\rc"), original(overlap_policy="q" * 4000)],
    ids=["4000-char-id", "id-with-line-breaks", "4000-char-choice"],
)
def test_a_refused_job_is_named_on_one_short_line(repo, job):
    write(repo, "a.json", [job])
    [line] = sync(repo / "jobs").err.splitlines()
    assert line.startswith("a.json: job ") and len(line) < 300, line[:400]


def test_job_files_other_users_can_change_are_refused(repo):
    jobs = repo / "jobs"
    (jobs / "open.json").write_text(json.dumps([]))
    (jobs / "open.json").chmod(0o666)
    result = sync(jobs)
    assert "open.json: refused: is mode 0666, writable by other users" in result.err
    assert result.error is not None
    jobs.chmod(0o777)
    result = sync(jobs)
    assert result.error.startswith(f"{jobs}: refused: is mode 0777, writable by other users")


def test_a_list_files_cron_keeps_the_meaning_croner_gave_it_and_an_object_files_ours(repo):
    write(repo, "a.json", [original(id="theirs", schedule="0 9 */2 * 1")])
    write(repo, "b.json", {"jobs": [original(id="ours", schedule="0 9 */2 * 1")]})
    write(repo, "c.json", [original(id="none", schedule="0 0 31W * */2")])
    result = sync(repo / "jobs")
    assert dict(Job.objects.values_list("id", "schedule")) == {
        "theirs": "0 9 1-31/2 * 1", "ours": "0 9 */2 * 1"
    }  # fmt: skip
    assert "a.json: job theirs: added; warning: schedule '0 9 */2 * 1' is written" in result.err
    assert "c.json: job none: skipped: schedule: '0 0 31W * */2' has no equivalent" in result.err
