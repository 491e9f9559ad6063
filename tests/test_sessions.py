"""Session jobs through execute_run against a real loopback gateway (tests/fakes).

The gateway is reached through configuration (``settings.RUNNER.gateway_url``); only the
poll backoff and the request timeout are shortened, through their module defaults.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from runner import tokens, worker_state
from runner.execution import sessions
from runner.execution.executor import execute_run
from runner.execution.scripts import Cancellation
from runner.models import Run
from runner.tasks import resume_task
from tests.factories import JobFactory, RunFactory
from tests.fakes import refused_url
from tests.fakes.gateway_server import FakeGateway

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quick_gateway")]

TOKEN = "gw-secret-51d0-never-store-me"
PROMPT = "Summarise my inbox"


@pytest.fixture
def fake_gateway() -> Iterator[FakeGateway]:
    with FakeGateway(token=TOKEN) as gw:
        yield gw


@pytest.fixture
def configure(settings, tmp_path: Path) -> Callable[..., None]:
    """Set the gateway's URL and token file (and the scripts dir) in settings.RUNNER."""

    def apply(url: str, token: str | None = TOKEN, **runner: Any) -> None:
        token_path = ""
        if token is not None:
            token_path = str(tmp_path / "gateway-token")
            Path(token_path).write_text(token + "\n", encoding="utf-8")
        config = settings.RUNNER
        settings.RUNNER = dataclasses.replace(
            config,
            gateway_url=url,
            gateway_token_path=token_path,
            scripts_dir=str(tmp_path),
            **runner,
        )

    return apply


@pytest.fixture
def gw(fake_gateway: FakeGateway, configure) -> FakeGateway:
    """The fake gateway, configured as the runner's gateway."""
    configure(fake_gateway.url)
    return fake_gateway


def session_run(**job: Any) -> Run:
    fields = {"type": "session", "source_type": "inline", "script": PROMPT, "timeout_ms": 60_000}
    return RunFactory(job=JobFactory(**(fields | job)))


def wait_until(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``target`` on a thread that closes its database connection when done, so the
    test database can be dropped at the end of the session."""
    result: list[Any] = []

    def work() -> None:
        try:
            result.append(target())
        finally:
            connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, result


# -- how a session ends ------------------------------------------------------------


def test_a_session_that_finishes_done_ends_ok_with_its_tokens(gw):
    gw.next_session(finish="done", after_polls=2, total_tokens=4321, model="opus-x")
    run = session_run()

    finished = execute_run(run.pk, worker="test:1")

    key = gw.spawned[0]
    assert (finished.status, finished.tokens, finished.error) == ("ok", 4321, "")
    assert finished.result_meta == {"sessionKey": key, "runId": "run-1", "model": "opus-x"}
    assert finished.exit_code is None


def test_stdout_is_a_one_line_summary_of_the_session(gw):
    gw.next_session(finish="done", total_tokens=99)

    finished = execute_run(session_run().pk, worker="test:1")

    assert "\n" not in finished.stdout
    assert gw.spawned[0] in finished.stdout and "99 tokens" in finished.stdout
    assert finished.stdout_bytes == len(finished.stdout)


def test_the_spawn_carries_the_prompt_job_id_thinking_and_timeout(gw):
    run = session_run(id="inbox-digest", thinking="high", timeout_ms=90_000)

    execute_run(run.pk, worker="test:1")

    (spawn,) = gw.calls("sessions_spawn")
    assert spawn.args == {
        "task": PROMPT,
        "label": "inbox-digest",
        "thinking": "high",
        "runTimeoutSeconds": 90,
    }


def test_a_job_without_a_timeout_gives_its_session_five_minutes(gw):
    execute_run(session_run(timeout_ms=None).pk, worker="test:1")

    (spawn,) = gw.calls("sessions_spawn")
    assert spawn.args["runTimeoutSeconds"] == 300


def test_a_session_that_ends_in_error_ends_the_run_in_error(gw):
    gw.next_session(finish="error", error="model provider overloaded")

    finished = execute_run(session_run().pk, worker="test:1")

    assert finished.status == "error"
    assert "model provider overloaded" in finished.error
    assert finished.result_meta["sessionKey"] == gw.spawned[0]


def test_a_session_the_gateway_timed_out_ends_the_run_as_timeout(gw):
    gw.next_session(finish="timeout", total_tokens=500)

    finished = execute_run(session_run().pk, worker="test:1")

    assert (finished.status, finished.tokens) == ("timeout", 500)
    assert "run timeout" in finished.error


def test_a_session_that_never_finishes_times_out_at_the_jobs_deadline(gw):
    gw.next_session(finish="never")

    finished = execute_run(session_run(timeout_ms=300).pk, worker="test:1")

    assert finished.status == "timeout"
    assert "still running when the job's timeout of 0.3 s passed" in finished.error
    assert 300 <= finished.duration_ms < 2_000


def test_a_session_that_vanished_with_a_complete_transcript_ends_ok(gw):
    gw.next_session(finish="vanish", after_polls=1, history_complete=True)

    finished = execute_run(session_run().pk, worker="test:1")

    assert finished.status == "ok"
    assert "from its transcript" in finished.stdout
    assert len(gw.calls("sessions_history")) == 1


def test_a_session_that_vanished_with_an_aborted_transcript_ends_in_error(gw):
    gw.next_session(finish="vanish", stop_reason="aborted")

    finished = execute_run(session_run().pk, worker="test:1")

    assert finished.status == "error" and finished.error.endswith("ended: aborted")


def test_the_session_key_is_on_the_run_while_the_session_is_still_running(gw, configure):
    configure(gw.url, heartbeat_interval_ms=50)
    gw.next_session(finish="never")
    run = session_run()
    thread, _ = in_thread(lambda: execute_run(run.pk, worker="test:1"))

    wait_until(lambda: gw.calls("sessions_list"))
    stored = Run.objects.get(pk=run.pk)

    assert stored.status == "running"
    assert stored.result_meta == {"sessionKey": gw.spawned[0], "runId": "run-1"}
    Run.objects.get(pk=run.pk).abandon("test over", timezone.now())
    thread.join(5)


# -- each failure mode ends the run with its own error -------------------------------


@pytest.mark.parametrize(
    ("mode", "options", "expected"),
    [
        ("unauthorized", {}, "rejected the token (401 Unauthorized)"),
        ("not_allowed", {}, "add `sessions_spawn` to `gateway.tools.allow`"),
        ("rate_limited", {"retry_after": "120"}, "retry after 120 s, which is past the job's"),
        ("server_error", {}, "failed on sessions_spawn with HTTP 500: Internal Server Error"),
        ("not_json", {}, "body that is not JSON (HTTP 200): <html>"),
        ("not_ok", {"message": "quota exhausted"}, "sessions_spawn failed: tool_error: quota"),
        ("slow", {"delay": 3}, "did not answer sessions_spawn within 0.5 s (request timeout)"),
    ],
)
def test_a_gateway_failure_ends_the_run_with_its_specific_error(gw, mode, options, expected):
    gw.fail(mode, tool="sessions_spawn", **options)

    finished = execute_run(session_run().pk, worker="test:1")

    assert finished.status == "error"
    assert finished.error.startswith("could not start the session: ")
    assert expected in finished.error
    assert finished.result_meta is None


def test_a_refused_connection_ends_the_run_saying_the_gateway_is_not_reachable(configure):
    url = refused_url()
    configure(url)

    finished = execute_run(session_run().pk, worker="test:1")

    assert finished.status == "error"
    assert f"not reachable at {url}: connection refused" in finished.error


def test_a_429_within_the_deadline_is_waited_out_and_the_session_runs(gw):
    gw.fail("rate_limited", tool="sessions_spawn", times=1, retry_after="0.05")

    finished = execute_run(session_run().pk, worker="test:1")

    assert finished.status == "ok"
    assert len(gw.calls("sessions_spawn")) == 2


def test_a_poll_the_gateway_rejects_ends_the_run_with_the_session_key(gw):
    gw.next_session(finish="never")
    gw.fail("unauthorized", tool="sessions_list")

    finished = execute_run(session_run().pk, worker="test:1")

    assert finished.status == "error" and "401 Unauthorized" in finished.error
    assert finished.result_meta["sessionKey"] == gw.spawned[0]


def test_polls_failing_until_the_deadline_say_the_session_may_still_be_running(gw):
    gw.next_session(finish="never")
    gw.fail("server_error", tool="sessions_list")

    finished = execute_run(session_run(timeout_ms=200).pk, worker="test:1")

    assert finished.status == "error"
    assert "HTTP 500" in finished.error and "may still be running" in finished.error


# -- configuration ---------------------------------------------------------------


def test_without_a_gateway_token_the_run_says_what_to_configure(fake_gateway, configure):
    configure(fake_gateway.url, token=None)

    finished = execute_run(session_run().pk, worker="test:1")

    assert finished.status == "error"
    assert "no OpenClaw gateway token is configured" in finished.error
    assert "gatewayTokenPath" in finished.error and "OPENCLAW_GATEWAY_TOKEN" in finished.error
    assert fake_gateway.requests == []


def test_an_unreadable_token_file_names_the_setting_and_the_file(fake_gateway, configure, settings):
    configure(fake_gateway.url)
    config = settings.RUNNER
    missing = "/nonexistent/gateway-token"
    settings.RUNNER = dataclasses.replace(config, gateway_token_path=missing)

    finished = execute_run(session_run().pk, worker="test:1")

    assert finished.status == "error"
    assert f"gatewayTokenPath: cannot read the token file {missing}" in finished.error
    assert fake_gateway.requests == []


def test_openclaw_gateway_token_in_the_environment_supplies_the_token(
    fake_gateway, configure, monkeypatch
):
    configure(fake_gateway.url, token=None)
    monkeypatch.setenv(tokens.GATEWAY_TOKEN_ENV, TOKEN)

    finished = execute_run(session_run().pk, worker="test:1")

    assert finished.status == "ok"


# -- the prompt ------------------------------------------------------------------


def test_a_prompt_file_is_read_relative_to_the_scripts_dir(gw, tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "digest.md").write_text("# Digest\nSummarise.", encoding="utf-8")

    execute_run(session_run(source_type="path", script="prompts/digest.md").pk, worker="t:1")

    assert gw.calls("sessions_spawn")[0].args["task"] == "# Digest\nSummarise."


def test_a_prompt_file_may_be_an_absolute_txt_path(gw, tmp_path):
    path = tmp_path / "elsewhere.txt"
    path.write_text("Check the calendar.", encoding="utf-8")

    execute_run(session_run(source_type="path", script=str(path)).pk, worker="t:1")

    assert gw.calls("sessions_spawn")[0].args["task"] == "Check the calendar."


def test_an_inline_script_that_only_names_a_markdown_file_reads_it(gw, tmp_path):
    (tmp_path / "digest.md").write_text("From the file.", encoding="utf-8")

    execute_run(session_run(script="digest.md").pk, worker="t:1")

    assert gw.calls("sessions_spawn")[0].args["task"] == "From the file."


def test_a_missing_prompt_file_ends_the_run_without_calling_the_gateway(gw, tmp_path):
    run = session_run(source_type="path", script="gone.md")

    finished = execute_run(run.pk, worker="t:1")

    assert finished.status == "error"
    assert finished.error == f"the prompt file {tmp_path / 'gone.md'} does not exist"
    assert gw.requests == []


def test_a_prompt_file_name_too_long_for_the_system_is_a_missing_file(gw, tmp_path):
    run = session_run(source_type="path", script="x" * 300 + ".md")

    finished = execute_run(run.pk, worker="t:1")

    assert finished.status == "error"
    assert finished.error.startswith("the prompt file ") and "runner error" not in finished.error
    assert gw.requests == []


def test_a_raw_prompt_with_the_default_source_type_is_the_prompt_as_in_the_original(gw):
    run = session_run(source_type="path", script="Summarise the unread mail.\nBe brief.")

    execute_run(run.pk, worker="t:1")

    assert gw.calls("sessions_spawn")[0].args["task"] == "Summarise the unread mail.\nBe brief."


def test_an_empty_prompt_file_ends_the_run_in_error(gw, tmp_path):
    (tmp_path / "empty.md").write_text("\n", encoding="utf-8")

    finished = execute_run(session_run(source_type="path", script="empty.md").pk, worker="t:1")

    assert finished.status == "error" and "is empty" in finished.error


def test_a_program_file_is_refused_as_a_prompt(gw):
    finished = execute_run(session_run(script="collect.py").pk, worker="t:1")

    assert finished.status == "error"
    assert "takes a prompt, not a program" in finished.error
    assert gw.requests == []


def test_a_prompt_over_two_megabytes_is_refused_before_anything_is_sent(gw):
    finished = execute_run(session_run(script="x" * (2 * 1024 * 1024 + 1)).pk, worker="t:1")

    assert finished.status == "error" and "prompt is too large" in finished.error
    assert gw.requests == []


# -- cancel ----------------------------------------------------------------------


def test_a_cancel_ends_the_wait_for_the_session_promptly(gw):
    gw.next_session(finish="never")
    run = session_run(timeout_ms=60_000)
    run.start("test:1", timezone.now())
    cancel = Cancellation()
    thread, result = in_thread(lambda: sessions.run_session_job(run, cancel))
    wait_until(lambda: gw.calls("sessions_list"))

    cancelled_at = time.monotonic()
    cancel.cancel("stopped: the scheduler is shutting down")
    thread.join(5)

    assert time.monotonic() - cancelled_at < 1.0
    (outcome,) = result
    assert outcome.status == "error"
    assert outcome.error.startswith("stopped: the scheduler is shutting down; ")
    assert f"stopped following session {gw.spawned[0]}" in outcome.error


def test_a_session_run_reaped_elsewhere_stops_following_its_session(gw, configure, settings):
    configure(gw.url, heartbeat_interval_ms=50)
    gw.next_session(finish="never")
    run = session_run(timeout_ms=60_000)
    thread, result = in_thread(lambda: execute_run(run.pk, worker="test:1"))
    wait_until(lambda: gw.calls("sessions_list"))

    Run.objects.get(pk=run.pk).abandon("worker test:1 stopped sending heartbeats", timezone.now())
    thread.join(5)

    assert not thread.is_alive()
    assert result[0].error == "worker test:1 stopped sending heartbeats"


# -- resuming after a restart ----------------------------------------------------


def left_running(key: str | None, started_ago_s: float = 5, **job: Any) -> Run:
    """A session run its scheduler left behind: running, held by a dead worker."""
    run = session_run(**job)
    started = timezone.now() - timedelta(seconds=started_ago_s)
    meta = {"sessionKey": key, "runId": "run-before"} if key else None
    Run.objects.filter(pk=run.pk).update(
        status="running", worker="old-host:99", started_at=started, result_meta=meta
    )
    return Run.objects.get(pk=run.pk)


def test_a_run_left_behind_is_resumed_by_its_session_key(gw):
    gw.add_session("agent:main:subagent:kept", finish="done", total_tokens=77)
    run = left_running("agent:main:subagent:kept")

    finished = sessions.resume_session_run(run.pk, worker="new-host:1")

    assert (finished.status, finished.tokens, finished.worker) == ("ok", 77, "new-host:1")
    assert finished.result_meta["sessionKey"] == "agent:main:subagent:kept"
    assert gw.calls("sessions_spawn") == []
    assert finished.duration_ms >= 5_000


def test_a_resumed_run_past_its_deadline_still_records_how_the_session_ended(gw):
    gw.add_session("agent:main:subagent:late", finish="done", after_polls=0)
    run = left_running("agent:main:subagent:late", started_ago_s=3600, timeout_ms=60_000)

    finished = sessions.resume_session_run(run.pk, worker="new-host:1")

    assert finished.status == "ok"


def test_a_resumed_session_that_never_ends_times_out_at_the_original_deadline(gw, monkeypatch):
    monkeypatch.setattr(sessions, "RESUME_GRACE_S", 0.2)
    gw.add_session("agent:main:subagent:stuck", finish="never")
    run = left_running("agent:main:subagent:stuck", started_ago_s=59.8, timeout_ms=60_000)

    started = time.monotonic()
    finished = sessions.resume_session_run(run.pk, worker="new-host:1")

    assert finished.status == "timeout" and "timeout of 60 s passed" in finished.error
    assert time.monotonic() - started < 2


def test_a_run_left_behind_without_a_session_key_is_finished_saying_why(gw):
    run = left_running(None)

    finished = sessions.resume_session_run(run.pk, worker="new-host:1")

    assert finished.status == "error"
    assert finished.error == sessions.NO_KEY_REASON
    assert gw.requests == []


def test_a_run_that_is_no_longer_running_is_not_resumed(gw):
    gw.add_session("agent:main:subagent:once", finish="done")
    run = left_running("agent:main:subagent:once")
    sessions.resume_session_run(run.pk, worker="new-host:1")

    assert sessions.resume_session_run(run.pk, worker="new-host:2") is None
    assert Run.objects.get(pk=run.pk).worker == "new-host:1"


def test_a_script_run_is_not_resumed_as_a_session():
    run = RunFactory(job=JobFactory())
    Run.objects.filter(pk=run.pk).update(status="running", worker="old-host:99")

    assert sessions.resume_session_run(run.pk, worker="new-host:1") is None
    assert Run.objects.get(pk=run.pk).worker == "old-host:99"


# -- resume_task: what the liveness check dispatches -------------------------------


def test_resume_task_follows_a_dead_workers_run_to_its_end(gw):
    gw.add_session("agent:main:subagent:kept", finish="done", total_tokens=77)
    run = left_running("agent:main:subagent:kept")

    assert resume_task(run.pk, holder="old-host:99") == "ok"

    finished = Run.objects.get(pk=run.pk)
    assert (finished.status, finished.tokens, finished.error) == ("ok", 77, "")
    assert finished.result_meta["sessionKey"] == "agent:main:subagent:kept"
    assert gw.calls("sessions_spawn") == []


def test_a_second_resume_task_does_nothing(gw):
    gw.add_session("agent:main:subagent:once", finish="done", total_tokens=5)
    run = left_running("agent:main:subagent:once")
    resume_task(run.pk, holder="old-host:99")
    requests = len(gw.requests)
    before = Run.objects.get(pk=run.pk)

    assert resume_task(run.pk, holder="old-host:99") == "gone"
    assert resume_task(run.pk) == "gone"

    after = Run.objects.get(pk=run.pk)
    assert (after.status, after.worker, after.finished_at) == (
        "ok",
        before.worker,
        before.finished_at,
    )
    assert len(gw.requests) == requests


def test_resume_task_leaves_a_run_another_worker_already_took_over(gw):
    run = left_running("agent:main:subagent:taken")
    Run.objects.filter(pk=run.pk).update(worker="new-host:1")

    assert resume_task(run.pk, holder="old-host:99") == "gone"

    assert Run.objects.get(pk=run.pk).worker == "new-host:1"
    assert gw.requests == []


def test_a_stopping_worker_does_not_resume(gw):
    run = left_running("agent:main:subagent:later")
    worker_state.STOPPING.set()
    try:
        assert resume_task(run.pk, holder="old-host:99") == "stopping"
    finally:
        worker_state.STOPPING.clear()

    assert Run.objects.get(pk=run.pk).status == "running"
    assert gw.requests == []
