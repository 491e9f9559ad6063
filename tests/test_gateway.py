"""The OpenClaw Gateway client against a real loopback gateway (tests/fakes)."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.execution.gateway import (
    SESSIONS_LIST_LIMIT,
    GatewayClient,
    GatewayConfig,
    GatewayError,
    transcript_complete,
)
from runner.execution.prompts import PromptError, resolve_prompt
from runner.execution.session_follow import MAX_POLL_INTERVAL_S, SessionOutcome, run_session
from tests.fakes import refused_url
from tests.fakes.gateway_server import FakeGateway

TOKEN = "gw-secret-7f3a9c1e-never-log-me"


class FakeClock:
    """A clock that only moves when the code under test sleeps; records each sleep."""

    def __init__(self, start: float = 10_000.0) -> None:
        self.start = self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    with FakeGateway(token=TOKEN) as gw:
        yield gw


@pytest.fixture
def client(gateway: FakeGateway) -> Iterator[GatewayClient]:
    with GatewayClient(GatewayConfig(gateway.url, TOKEN, request_timeout_s=2)) as c:
        yield c


def client_for(url: str, token: str | None = TOKEN, timeout_s: float = 2) -> GatewayClient:
    return GatewayClient(GatewayConfig(url, token, request_timeout_s=timeout_s))


def run(client: GatewayClient, clock: FakeClock | None = None, **options: Any) -> SessionOutcome:
    clock = clock or FakeClock()
    arguments: dict[str, Any] = {
        "task": "Summarise my inbox",
        "label": "inbox-digest",
        "thinking": "low",
        "timeout_s": 300,
    }
    arguments.update(options)
    return run_session(client, clock=clock, sleep=clock.sleep, **arguments)


# -- how a session ends ------------------------------------------------------------


def test_a_session_that_finishes_done_is_ok_with_its_tokens_and_model(gateway, client):
    gateway.next_session(finish="done", after_polls=2, total_tokens=4321, model="opus-x")

    outcome = run(client)

    assert outcome.status == "ok"
    assert outcome.tokens == 4321
    assert outcome.model == "opus-x"
    assert outcome.session_key == gateway.spawned[0]
    assert outcome.error is None
    assert len(gateway.calls("sessions_list")) == 3


def test_the_summary_is_one_line_naming_the_session_and_tokens(gateway, client):
    gateway.next_session(finish="done", total_tokens=99)

    outcome = run(client)

    assert "\n" not in outcome.summary
    assert gateway.spawned[0] in outcome.summary
    assert "99 tokens" in outcome.summary


def test_the_spawn_request_carries_task_label_thinking_and_timeout(gateway, client):
    run(client, timeout_s=90)

    (spawn,) = gateway.calls("sessions_spawn")
    assert spawn.method == "POST"
    assert spawn.path == "/tools/invoke"
    assert spawn.headers["Authorization"] == f"Bearer {TOKEN}"
    assert spawn.headers["Content-Type"] == "application/json"
    assert spawn.args == {
        "task": "Summarise my inbox",
        "label": "inbox-digest",
        "thinking": "low",
        "runTimeoutSeconds": 90,
    }


def test_on_spawned_receives_the_key_and_run_id_before_the_first_poll(gateway, client):
    seen = []

    def on_spawned(key: str, run_id: str | None) -> None:
        seen.append((key, run_id, len(gateway.calls("sessions_list"))))

    run(client, on_spawned=on_spawned)

    assert seen == [(gateway.spawned[0], "run-1", 0)]


def test_a_session_that_ends_in_error_is_an_error_run(gateway, client):
    gateway.next_session(finish="error", error="model provider overloaded")

    outcome = run(client)

    assert outcome.status == "error"
    assert "model provider overloaded" in outcome.error
    assert outcome.session_key == gateway.spawned[0]


def test_a_session_the_gateway_timed_out_is_a_timeout_run(gateway, client):
    gateway.next_session(finish="timeout")

    outcome = run(client)

    assert outcome.status == "timeout"
    assert "run timeout" in outcome.error


def test_a_session_that_never_finishes_times_out_exactly_at_the_runners_deadline(gateway, client):
    gateway.next_session(finish="never")
    clock = FakeClock()

    outcome = run(client, clock, timeout_s=60)

    assert outcome.status == "timeout"
    assert "still running" in outcome.error and "60 s" in outcome.error
    assert clock.now == clock.start + 60


def test_a_vanished_session_with_a_complete_transcript_is_ok(gateway, client):
    gateway.next_session(finish="vanish", after_polls=1, history_complete=True)

    outcome = run(client)

    assert outcome.status == "ok"
    assert outcome.tokens is None
    (history,) = gateway.calls("sessions_history")
    assert history.args == {"sessionKey": gateway.spawned[0], "limit": 3, "includeTools": False}


def test_a_vanished_session_whose_transcript_ends_aborted_is_an_error_run(gateway, client):
    gateway.next_session(finish="vanish", stop_reason="aborted")

    outcome = run(client)

    assert outcome.status == "error"
    assert outcome.error.endswith("ended: aborted")


def test_a_vanished_session_with_an_unfinished_transcript_is_waited_for_until_the_deadline(
    gateway, client
):
    gateway.next_session(finish="vanish", after_polls=0, history_complete=False)

    outcome = run(client, timeout_s=60)

    assert outcome.status == "timeout"
    assert len(gateway.calls("sessions_history")) > 2


def test_a_listed_session_without_a_status_is_judged_by_its_transcript(gateway, client):
    gateway.next_session(finish="done", after_polls=2, with_status=False, total_tokens=321)

    outcome = run(client)

    assert (outcome.status, outcome.tokens) == ("ok", 321)
    assert len(gateway.calls("sessions_history")) == 3


def test_a_session_key_directly_under_result_is_accepted():
    with FakeGateway(token=TOKEN, spawn_shape="flat") as gw, client_for(gw.url) as client:
        outcome = run(client)

    assert outcome.status == "ok"
    assert outcome.session_key == gw.spawned[0]


def test_the_session_is_found_among_other_sessions(gateway, client):
    gateway.add_session("agent:main:main", finish="never")
    gateway.next_session(finish="done", total_tokens=7)

    outcome = run(client)

    assert (outcome.status, outcome.tokens) == ("ok", 7)


def test_a_session_is_resumed_by_its_key_without_spawning_again(gateway, client):
    gateway.add_session("agent:main:subagent:before-restart", finish="done", total_tokens=50)
    spawned = []

    outcome = run(
        client, session_key="agent:main:subagent:before-restart", on_spawned=spawned.append
    )

    assert outcome.status == "ok"
    assert outcome.session_key == "agent:main:subagent:before-restart"
    assert gateway.calls("sessions_spawn") == []
    assert spawned == []


def test_a_resumed_session_keeps_the_deadline_of_its_original_start(gateway, client):
    gateway.add_session("agent:main:subagent:before-restart", finish="never")
    clock = FakeClock()

    outcome = run(
        client, clock, timeout_s=60, session_key="agent:main:subagent:before-restart", elapsed_s=50
    )

    assert outcome.status == "timeout"
    assert "60 s" in outcome.error
    assert clock.now == clock.start + 10


# -- polling ---------------------------------------------------------------------


def test_polls_back_off_from_a_few_seconds_to_at_most_fifteen(gateway, client):
    gateway.next_session(finish="never")
    clock = FakeClock()

    run(client, clock, timeout_s=120)

    first, *rest = clock.sleeps
    assert 2 <= first <= 3
    growing = [b / a for a, b in zip(clock.sleeps, rest, strict=False) if b < MAX_POLL_INTERVAL_S]
    assert all(1.5 <= ratio <= 2 for ratio in growing[:-1])
    assert max(clock.sleeps) == MAX_POLL_INTERVAL_S == 15
    assert sum(clock.sleeps) == pytest.approx(120)


def test_sessions_list_asks_for_a_small_page_of_recently_active_sessions(gateway, client):
    gateway.next_session(finish="never")
    clock = FakeClock()

    run(client, clock, timeout_s=300)

    calls = gateway.calls("sessions_list")
    assert all(call.args["limit"] == SESSIONS_LIST_LIMIT <= 25 for call in calls)
    assert all(call.args["messageLimit"] == 0 for call in calls)
    assert calls[0].args["activeMinutes"] == 2
    assert max(call.args["activeMinutes"] for call in calls) == math.ceil(300 / 60) + 1


def test_a_failed_poll_is_retried_and_the_session_still_completes(gateway, client):
    gateway.next_session(finish="done", after_polls=1)
    gateway.fail("server_error", tool="sessions_list", times=2)

    outcome = run(client)

    assert outcome.status == "ok"


def test_polls_failing_until_the_deadline_end_the_run_with_the_gateway_error(gateway, client):
    gateway.fail("server_error", tool="sessions_list")

    outcome = run(client, timeout_s=30)

    assert outcome.status == "error"
    assert "HTTP 500" in outcome.error
    assert "may still be running" in outcome.error


def test_a_rejected_poll_ends_the_run_at_once(gateway, client):
    gateway.fail("not_ok", tool="sessions_list", message="sessions_list is disabled")
    clock = FakeClock()

    outcome = run(client, clock)

    assert outcome.status == "error"
    assert "sessions_list is disabled" in outcome.error
    assert len(clock.sleeps) == 1


# -- failure modes -----------------------------------------------------------------


def test_a_refused_connection_says_the_gateway_is_not_reachable_at_its_url():
    url = refused_url()
    with client_for(url) as client:
        outcome = run(client)

    assert outcome.status == "error"
    assert f"not reachable at {url}" in outcome.error
    assert "connection refused" in outcome.error


def test_an_unknown_host_is_reported_as_a_dns_failure():
    with client_for("http://nonexistent.invalid:18789") as client:
        outcome = run(client)

    assert outcome.status == "error"
    assert "DNS" in outcome.error and "nonexistent.invalid" in outcome.error


def test_a_gateway_url_without_a_scheme_is_reported_as_a_configuration_error():
    with client_for("localhost:18789") as client:
        outcome = run(client)

    assert "gatewayUrl 'localhost:18789' is not a usable http(s) URL" in outcome.error


def test_a_gateway_slower_than_the_request_timeout_is_reported_as_a_timeout(gateway):
    gateway.fail("slow", tool="sessions_spawn", delay=3)
    started = time.monotonic()
    with client_for(gateway.url, timeout_s=0.3) as client:
        outcome = run(client)

    assert outcome.status == "error"
    assert "did not answer sessions_spawn within 0.3 s" in outcome.error
    assert time.monotonic() - started < 2


def test_a_rejected_token_names_the_settings_that_supply_it(gateway):
    with client_for(gateway.url, token="not-the-token") as client:
        outcome = run(client)

    assert "401" in outcome.error
    assert "gatewayTokenPath, gatewayApiKey or OPENCLAW_GATEWAY_TOKEN" in outcome.error


def test_a_missing_token_says_none_is_configured(gateway):
    with client_for(gateway.url, token=None) as client:
        outcome = run(client)

    assert "none is configured" in outcome.error
    assert "Authorization" not in gateway.requests[0].headers


def test_a_spawn_the_gateway_does_not_allow_names_the_allow_list(gateway, client):
    gateway.fail("not_allowed", tool="sessions_spawn")

    outcome = run(client)

    assert outcome.status == "error"
    assert "the gateway does not allow the tool sessions_spawn" in outcome.error
    assert "add `sessions_spawn` to `gateway.tools.allow`" in outcome.error


def test_a_405_says_the_url_is_not_the_gateways_endpoint(gateway, client):
    gateway.fail("method_not_allowed")

    outcome = run(client)

    assert "405" in outcome.error and "gatewayUrl" in outcome.error


def test_a_429_exposes_retry_after_on_the_error(gateway, client):
    gateway.fail("rate_limited", retry_after="7")

    with pytest.raises(GatewayError) as raised:
        client.spawn("task", "job", "low", 60)

    assert raised.value.status_code == 429
    assert raised.value.retry_after == 7.0
    assert "retry after 7 s" in str(raised.value)


def test_a_429_on_spawn_is_waited_out_and_the_spawn_retried(gateway, client):
    gateway.fail("rate_limited", tool="sessions_spawn", times=2, retry_after="7")
    clock = FakeClock()

    outcome = run(client, clock)

    assert outcome.status == "ok"
    assert clock.sleeps[:2] == [7, 7]
    assert len(gateway.calls("sessions_spawn")) == 3
    assert len(gateway.spawned) == 1


def test_a_429_while_polling_delays_the_next_poll_by_retry_after(gateway, client):
    gateway.fail("rate_limited", tool="sessions_list", times=1, retry_after="20")
    clock = FakeClock()

    outcome = run(client, clock)

    assert outcome.status == "ok"
    assert clock.sleeps[1] == 20


def test_a_429_asking_to_wait_past_the_deadline_fails_the_run_without_waiting(gateway, client):
    gateway.fail("rate_limited", retry_after="600")
    clock = FakeClock()

    outcome = run(client, clock, timeout_s=300)

    assert outcome.status == "error"
    assert "retry after 600 s" in outcome.error and "timeout of 300 s" in outcome.error
    assert clock.sleeps == []


def test_a_server_error_reports_the_status_and_the_start_of_the_body(gateway, client):
    gateway.fail("server_error", tool="sessions_spawn")

    outcome = run(client)

    assert outcome.status == "error"
    assert "HTTP 500" in outcome.error
    assert "upstream agent crashed" in outcome.error
    assert len(gateway.calls("sessions_spawn")) == 1


def test_a_body_that_is_not_json_is_reported_with_an_excerpt(gateway, client):
    gateway.fail("not_json")

    outcome = run(client)

    assert "not JSON" in outcome.error
    assert "control UI" in outcome.error


def test_ok_false_quotes_the_gateways_error_type_and_message(gateway, client):
    gateway.fail("not_ok", error_type="invalid_request", message="agentId is not allowed")

    outcome = run(client)

    assert outcome.status == "error"
    assert "invalid_request: agentId is not allowed" in outcome.error


def test_a_prompt_over_two_megabytes_is_refused_before_anything_is_sent(gateway, client):
    outcome = run(client, task="x" * (2 * 1024 * 1024))

    assert outcome.status == "error"
    assert "prompt is too large" in outcome.error and "2 MB" in outcome.error
    assert gateway.requests == []


# -- the token stays secret ----------------------------------------------------------


def test_the_config_repr_hides_the_token():
    config = GatewayConfig("http://127.0.0.1:18789", TOKEN)

    assert TOKEN not in repr(config)
    assert TOKEN not in repr(GatewayClient(config))
    assert "token=<set>" in repr(config)


def test_the_token_appears_in_no_log_record_error_or_outcome(gateway, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="runner")  # configured at INFO in settings

    def attempt(url: str = gateway.url, **config: Any) -> SessionOutcome:
        with client_for(url, **config) as client:
            return run(client)

    outcomes = [attempt()]
    for mode, options in [
        ("server_error", {"tool": "sessions_spawn"}),
        ("not_json", {}),
        ("not_ok", {"message": f"bad header: Bearer {TOKEN}"}),
        ("rate_limited", {"retry_after": "9999"}),
        ("slow", {"delay": 1}),
    ]:
        gateway.fail(mode, times=1, **options)
        outcomes.append(attempt(timeout_s=0.3))
    gateway.fail("server_error", tool="sessions_list", times=3)
    outcomes.append(attempt())
    outcomes.append(attempt(token=TOKEN + "-wrong"))
    outcomes.append(attempt(refused_url()))
    outcomes.append(attempt("http://nonexistent.invalid"))

    assert [outcome.status for outcome in outcomes].count("error") == 8
    assert caplog.records
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
    for outcome in outcomes:
        assert TOKEN not in repr(dataclasses.astuple(outcome))


# -- transcripts and prompts ----------------------------------------------------------


def test_a_transcript_ending_in_an_assistant_stop_is_complete():
    assert transcript_complete([{"role": "user"}, {"role": "assistant", "stopReason": "stop"}])


def test_a_transcript_waiting_on_a_tool_call_is_not_complete():
    assert not transcript_complete([{"role": "assistant", "stopReason": "toolUse"}])
    assert not transcript_complete([{"role": "user"}])
    assert not transcript_complete([])


def test_a_prompt_given_as_text_is_used_as_it_is(tmp_path: Path):
    assert resolve_prompt("Summarise notes.md for me", tmp_path) == "Summarise notes.md for me"


def test_a_prompt_naming_a_markdown_file_is_read_from_the_base_directory(tmp_path: Path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "digest.md").write_text("# Digest\nSummarise the inbox.\n")

    assert resolve_prompt("prompts/digest.md", tmp_path) == "# Digest\nSummarise the inbox.\n"


def test_a_prompt_naming_a_text_file_is_read(tmp_path: Path):
    (tmp_path / "task.txt").write_text("Check the calendar.")

    assert resolve_prompt("task.txt", tmp_path) == "Check the calendar."


def test_a_prompt_file_that_does_not_exist_is_an_error(tmp_path: Path):
    with pytest.raises(PromptError, match="does not exist") as raised:
        resolve_prompt("missing.md", tmp_path)

    assert str(tmp_path / "missing.md") in str(raised.value)


@pytest.mark.parametrize("script", ["sync.py", "scripts/poll.sh", "run.js", "job.ts", "x.rb"])
def test_a_program_file_is_refused_for_a_session_job(tmp_path: Path, script: str):
    with pytest.raises(PromptError, match="takes a prompt, not a program"):
        resolve_prompt(script, tmp_path)


def test_an_empty_prompt_is_refused(tmp_path: Path):
    with pytest.raises(PromptError, match="empty"):
        resolve_prompt("  \n", tmp_path)


@pytest.mark.timeout(20)
def test_a_prompt_file_that_is_a_fifo_is_an_error_not_a_wait(tmp_path: Path):
    os.mkfifo(tmp_path / "task.md")
    with pytest.raises(PromptError, match=r"cannot read the prompt file .*not a regular file"):
        resolve_prompt("task.md", tmp_path)
