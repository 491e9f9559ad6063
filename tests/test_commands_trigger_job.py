"""trigger_job: run a job now in this process, print how it ended, exit 0 only when ok."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from jeeves_site.database import database_url
from runner.models import Run
from tests.factories import JobFactory
from tests.fakes.slack_server import FakeSlack

pytestmark = pytest.mark.timeout(60)


def trigger(job_id: str) -> str:
    out = StringIO()
    call_command("trigger_job", job_id, stdout=out, stderr=StringIO())
    return out.getvalue()


def manage(*argv: str, **options) -> subprocess.Popen:
    """``manage.py`` in a child process, against this test's database."""
    env = {**os.environ, "DATABASE_URL": database_url()}
    return subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


@pytest.mark.django_db
def test_trigger_job_prints_status_exit_code_duration_and_output_tails():
    JobFactory(id="hello", script="echo out; echo err >&2")
    lines = trigger("hello").splitlines()
    run = Run.objects.get()
    assert lines[0] == f"run #{run.pk} of hello started"
    assert lines[1] == f"status: ok, exit code: 0, duration: {run.duration_ms} ms"
    assert lines[2:] == ["--- stdout (4 bytes) ---", "out", "--- stderr (4 bytes) ---", "err"]


@pytest.mark.django_db
def test_a_run_that_did_not_end_ok_prints_its_error_and_raises():
    JobFactory(id="broken", script="echo why >&2; exit 3")
    out = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("trigger_job", "broken", stdout=out)
    run = Run.objects.get()
    assert str(caught.value) == f"run #{run.pk} of broken ended error"
    assert "status: error, exit code: 3" in out.getvalue()
    assert "error: exit code 3:\nwhy" in out.getvalue()


@pytest.mark.django_db
def test_the_output_heading_says_when_only_the_last_lines_were_kept(runner_config):
    runner_config(output_tail_lines=2)
    JobFactory(id="chatty", script="seq 5")
    assert "--- stdout (10 bytes, only the last lines kept) ---\n4\n5\n" in trigger("chatty")


@pytest.mark.django_db
def test_trigger_job_records_a_manual_run_scheduled_for_when_it_was_asked():
    JobFactory(id="hello", script="true")
    trigger("hello")
    run = Run.objects.get()
    assert run.trigger == "manual" and run.scheduled_for <= run.started_at


@pytest.mark.django_db
def test_the_runs_slack_announcement_is_posted_before_trigger_job_returns(settings, tmp_path):
    token = tmp_path / "slack-token"
    token.write_text("xoxb-trigger-test")
    with FakeSlack(token="xoxb-trigger-test") as slack:
        notifications = replace(
            settings.RUNNER.notifications, slack_api_url=slack.url, slack_token_path=str(token)
        )
        settings.RUNNER = replace(settings.RUNNER, notifications=notifications)
        JobFactory(id="hello", script="true", on_success="C-OK")
        trigger("hello")
        assert [message.channel for message in slack.messages] == ["C-OK"]


@pytest.mark.django_db
def test_a_disabled_job_can_still_be_triggered():
    JobFactory(id="off", script="echo ran", enabled=False)
    assert "ran" in trigger("off")


@pytest.mark.django_db
def test_an_unknown_job_is_refused_and_no_run_is_recorded():
    with pytest.raises(CommandError, match=r"^unknown job id: nope$"):
        trigger("nope")
    assert not Run.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("script,status", [("exit 0", 0), ("exit 4", 1)])
def test_manage_py_trigger_job_exits_zero_only_when_the_run_ended_ok(script, status):
    JobFactory(id="job", script=script)
    child = manage("trigger_job", "job")
    _, err = child.communicate(timeout=30)
    assert child.returncode == status, err
    if status:
        assert err.strip().endswith(f"CommandError: run #{Run.objects.get().pk} of job ended error")


@pytest.mark.django_db(transaction=True)
def test_ctrl_c_ends_the_script_and_records_the_run_as_interrupted():
    JobFactory(id="slow", script="sleep 30")
    child = manage("trigger_job", "slow")
    assert child.stdout.readline().endswith("started\n")
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    run = Run.objects.get()
    assert child.returncode == 1, err
    assert (run.status, run.error) == ("error", "interrupted by SIGINT before it finished")
