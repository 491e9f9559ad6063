"""Slack notifications of finished runs, against a real loopback Slack (tests/fakes)."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner import notify, slack
from runner.execution.executor import execute_run
from runner.models import Run
from tests.factories import JobFactory, RunFactory
from tests.fakes import refused_url
from tests.fakes.slack_server import FakeSlack

SLACK_TOKEN = "xoxb-notify-test-0d9e-keep-secret"
# Far above what posting to a healthy loopback takes, well below the Slack timeout: a
# run that waited on Slack could not finish within it.
NOT_DELAYED_S = 1.5
SLACK_TIMEOUT_S = 2.0

pytestmark = pytest.mark.usefixtures("drained_outbox")


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=SLACK_TOKEN) as server:
        yield server


@pytest.fixture
def configure(settings, tmp_path: Path) -> Callable[..., None]:
    """Configure notifications: Slack's URL and token file, channels, base URL."""

    def apply(api_url: str, *, token: str | None = SLACK_TOKEN, base_url: str = "", **notes):
        token_path = ""
        if token is not None:
            token_path = str(tmp_path / "slack-token")
            Path(token_path).write_text(token, encoding="utf-8")
        config = settings.RUNNER
        notifications = dataclasses.replace(
            config.notifications,
            slack_api_url=api_url,
            slack_token_path=token_path,
            timeout_s=SLACK_TIMEOUT_S,
            **notes,
        )
        settings.RUNNER = dataclasses.replace(
            config, notifications=notifications, base_url=base_url
        )

    return apply


@pytest.fixture
def slack_api(fake_slack: FakeSlack, configure) -> FakeSlack:
    """The fake Slack, configured with default channels for failures and successes."""
    configure(fake_slack.url, default_on_failure="C-FAIL", default_on_success="C-OK")
    return fake_slack


def finished_run(status: str = "ok", **fields: Any) -> Run:
    job_fields = {key: fields.pop(key) for key in list(fields) if key in _JOB_FIELDS}
    job = JobFactory(id="inbox-poll", name="Poll the inbox", **job_fields)
    return RunFactory(job=job, status=status, duration_ms=fields.pop("duration_ms", 1234), **fields)


_JOB_FIELDS = {"on_failure", "on_success", "output_channel"}


def posted(server: FakeSlack) -> list[tuple[str | None, str | None]]:
    assert notify.flush(10)
    return [(message.channel, message.text) for message in server.messages]


# -- routing ---------------------------------------------------------------------


@pytest.mark.django_db
def test_an_ok_run_is_announced_in_the_jobs_success_channel(slack_api):
    notify.run_finished(finished_run("ok", on_success="C-JOB-OK"))

    ((channel, text),) = posted(slack_api)
    assert channel == "C-JOB-OK"
    assert text.startswith(":white_check_mark: *Poll the inbox* (`inbox-poll`): ok, took 1.2 s")


@pytest.mark.django_db
def test_a_failed_run_is_announced_in_the_jobs_failure_channel_with_its_error(slack_api):
    error = "exit code 2:\n" + "\n".join(f"line {n}" for n in range(1, 10))
    notify.run_finished(finished_run("error", on_failure="C-JOB-FAIL", error=error))

    ((channel, text),) = posted(slack_api)
    assert channel == "C-JOB-FAIL"
    assert ": error, took 1.2 s" in text
    assert "exit code 2:\nline 1\nline 2\nline 3\nline 4\n... (5 more lines)" in text


@pytest.mark.django_db
def test_a_timed_out_run_counts_as_a_failure(slack_api):
    notify.run_finished(finished_run("timeout", on_failure="C-JOB-FAIL", error="timed out"))

    assert [channel for channel, _ in posted(slack_api)] == ["C-JOB-FAIL"]


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "channel"), [("ok", "C-OK"), ("error", "C-FAIL")])
def test_a_job_without_its_own_channel_uses_the_configured_default(slack_api, status, channel):
    notify.run_finished(finished_run(status))

    assert [sent for sent, _ in posted(slack_api)] == [channel]


@pytest.mark.django_db
def test_a_run_with_no_channel_anywhere_is_not_posted(fake_slack, configure):
    configure(fake_slack.url)

    notify.run_finished(finished_run("error", error="broken"))

    assert posted(fake_slack) == []


@pytest.mark.django_db
def test_a_skipped_run_is_not_announced(slack_api):
    notify.run_finished(finished_run("skipped", error="skipped: run #1 is still running"))

    assert posted(slack_api) == []


@pytest.mark.django_db
def test_the_message_links_to_the_run_in_the_admin_when_a_base_url_is_set(fake_slack, configure):
    configure(fake_slack.url, base_url="https://jeeves.example/", default_on_success="C-OK")
    run = finished_run("ok")

    notify.run_finished(run)

    ((_, text),) = posted(fake_slack)
    assert text.endswith(f"<https://jeeves.example/admin/runner/run/{run.pk}/change/|View run>")


@pytest.mark.django_db
def test_without_a_base_url_the_message_has_no_link(slack_api):
    notify.run_finished(finished_run("ok"))

    ((_, text),) = posted(slack_api)
    assert "View run" not in text


# -- output channel ---------------------------------------------------------------


@pytest.mark.django_db
def test_an_ok_runs_stdout_goes_to_its_output_channel(slack_api):
    notify.run_finished(finished_run("ok", output_channel="C-OUT", stdout="3 new mails\n1 urgent"))

    assert ("C-OUT", "3 new mails\n1 urgent") in posted(slack_api)


@pytest.mark.django_db
def test_long_output_is_trimmed_to_slacks_limit_keeping_its_end(slack_api):
    stdout = "\n".join(f"line {n:06d}" for n in range(10_000))

    notify.run_finished(finished_run("ok", output_channel="C-OUT", stdout=stdout))

    (text,) = [text for channel, text in posted(slack_api) if channel == "C-OUT"]
    assert len(text) <= slack.SLACK_TEXT_LIMIT
    assert text.startswith("[trimmed: first ") and text.endswith("line 009999")


@pytest.mark.django_db
def test_a_failed_runs_output_is_not_posted_to_its_output_channel(slack_api):
    notify.run_finished(finished_run("error", output_channel="C-OUT", stdout="partial"))

    assert [channel for channel, _ in posted(slack_api)] == ["C-FAIL"]


@pytest.mark.django_db
def test_empty_output_is_not_posted(slack_api):
    notify.run_finished(finished_run("ok", output_channel="C-OUT", stdout="  \n"))

    assert [channel for channel, _ in posted(slack_api)] == ["C-OK"]


# -- through execute_run: Slack trouble never changes or delays a run ------------------


def execute_timed(job: Any) -> tuple[Run, float]:
    run = RunFactory(job=job)
    started = time.monotonic()
    finished = execute_run(run.pk, worker="test:1")
    return finished, time.monotonic() - started


@pytest.mark.django_db(transaction=True)
def test_a_run_executed_with_slack_up_is_announced(slack_api):
    finished, _ = execute_timed(JobFactory(script="echo fine", output_channel="C-OUT"))

    assert finished.status == "ok"
    assert [channel for channel, _ in posted(slack_api)] == ["C-OK", "C-OUT"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["not_ok", "rate_limited", "server_error", "invalid_json", "slow"])
def test_slack_failing_leaves_the_run_as_it_ended_and_does_not_delay_it(slack_api, caplog, mode):
    slack_api.mode = mode
    slack_api.delay = SLACK_TIMEOUT_S + 3

    finished, took = execute_timed(JobFactory(script="echo broken >&2; exit 4"))

    assert took < NOT_DELAYED_S
    assert notify.flush(SLACK_TIMEOUT_S + 5)
    stored = Run.objects.get(pk=finished.pk)
    assert (stored.status, stored.exit_code, stored.error) == ("error", 4, "exit code 4:\nbroken")
    assert [r for r in caplog.records if r.name == "runner.slack" and r.levelname == "WARNING"]


@pytest.mark.django_db(transaction=True)
def test_slack_refusing_connections_leaves_the_run_ok(configure, caplog):
    configure(refused_url(), default_on_success="C-OK")

    finished, took = execute_timed(JobFactory(script="echo fine"))

    assert notify.flush(10)
    assert took < NOT_DELAYED_S
    assert Run.objects.get(pk=finished.pk).status == "ok"
    assert any("cannot post to Slack" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_without_a_slack_token_nothing_is_posted_and_the_setting_is_named(
    fake_slack, configure, caplog
):
    configure(fake_slack.url, token=None, default_on_failure="C-FAIL")

    notify.run_finished(finished_run("error", error="broken"))

    assert posted(fake_slack) == []
    assert any("notifications.slackTokenPath" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_a_full_outbox_drops_the_message_and_logs_it(slack_api, monkeypatch, caplog):
    monkeypatch.setattr(notify, "_outbox", notify.Outbox(limit=0))

    notify.run_finished(finished_run("ok"))

    assert slack_api.messages == []
    assert any("dropped" in r.getMessage() for r in caplog.records)


# -- the start-up report ---------------------------------------------------------


def test_jobs_that_failed_to_load_are_reported_to_the_default_failure_channel(slack_api):
    notify.report_failed_registrations(
        [("nightly", "bad cron expression '61 * * * *'\nminute out of range"), ("a<b", "")]
    )

    ((channel, text),) = posted(slack_api)
    assert channel == "C-FAIL"
    assert text.splitlines() == [
        ":warning: 2 jobs could not be scheduled:",
        "• `nightly`: bad cron expression '61 * * * *'",
        "• `a&lt;b`: no reason given",
    ]


def test_no_failed_registrations_send_nothing(slack_api):
    notify.report_failed_registrations([])

    assert posted(slack_api) == []


def test_failed_registrations_without_a_failure_channel_are_only_logged(
    fake_slack, configure, caplog
):
    configure(fake_slack.url)

    with caplog.at_level(logging.WARNING, logger="runner.notify"):
        notify.report_failed_registrations([("nightly", "bad cron expression")])

    assert posted(fake_slack) == []
    assert "job nightly could not be scheduled: bad cron expression" in caplog.messages


# -- the log line of a finished run ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_log_line_of_a_failed_script_names_its_exit_code_and_its_last_stderr_line(caplog):
    job = JobFactory(script="echo starting >&2; echo 'ValueError: no inbox' >&2; exit 2")
    caplog.set_level(logging.INFO, logger="runner.notify")

    execute_run(RunFactory(job=job).pk, worker="test:1")

    finished = [r.getMessage() for r in caplog.records if "finished" in r.getMessage()]
    assert finished[-1].endswith("finished: error (exit code 2: ValueError: no inbox)")


@pytest.mark.parametrize(
    "error,line",
    [
        ("", ""),
        (
            "timed out after 5 ms; its processes were ended",
            "timed out after 5 ms; its processes were ended",
        ),
        ("exit code 1", "exit code 1"),
        ("exit code 2:\nTraceback:\n  x\nKeyError: 'a'\n", "exit code 2: KeyError: 'a'"),
    ],
)
def test_a_runs_error_line_keeps_the_first_line_whole_and_the_cause(error, line):
    assert Run(error=error).error_line == line
