"""Neither the gateway token nor the Slack token reaches a log line or a stored run.

Full flows with both loopback fakes, successes and failures, with every logger at
DEBUG (httpx and httpcore included), then every record and every run field searched.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from runner import notify
from runner.execution.executor import execute_run
from runner.models import Run
from tests.factories import JobFactory, RunFactory
from tests.fakes.gateway_server import FakeGateway
from tests.fakes.slack_server import FakeSlack

GATEWAY_TOKEN = "gw-tok-8a7e1f0c-secret"
SLACK_TOKEN = "xoxb-9f2c4d7e-secret"
SECRETS = (GATEWAY_TOKEN, SLACK_TOKEN)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quick_gateway")]


def configure(settings, tmp_path: Path, gw: FakeGateway, slack_api: FakeSlack) -> None:
    gateway_token, slack_token = tmp_path / "gateway-token", tmp_path / "slack-token"
    gateway_token.write_text(GATEWAY_TOKEN, encoding="utf-8")
    slack_token.write_text(SLACK_TOKEN, encoding="utf-8")
    config = settings.RUNNER
    settings.RUNNER = dataclasses.replace(
        config,
        base_url="https://jeeves.example",
        gateway_url=gw.url,
        gateway_token_path=str(gateway_token),
        notifications=dataclasses.replace(
            config.notifications,
            slack_api_url=slack_api.url,
            slack_token_path=str(slack_token),
            default_on_failure="C-FAIL",
            default_on_success="C-OK",
            timeout_s=0.3,
        ),
    )


def session(**job) -> int:
    fields = {"type": "session", "source_type": "inline", "script": "Do it", "timeout_ms": 5_000}
    return RunFactory(job=JobFactory(output_channel="C-OUT", **(fields | job))).pk


def run_every_flow(gw: FakeGateway, slack_api: FakeSlack) -> None:
    gw.next_session(finish="done", total_tokens=10)
    execute_run(session(), worker="t:1")
    gw.next_session(finish="error", error=f"auth header was Bearer {GATEWAY_TOKEN}")
    execute_run(session(), worker="t:1")
    gw.fail("not_ok", tool="sessions_spawn", times=1, message=f"bad token {GATEWAY_TOKEN}")
    execute_run(session(), worker="t:1")
    gw.fail("unauthorized", tool="sessions_spawn", times=1)
    execute_run(session(), worker="t:1")
    gw.fail("server_error", tool="sessions_list", times=2)
    gw.next_session(finish="done")
    execute_run(session(), worker="t:1")
    gw.next_session(finish="never")
    execute_run(session(timeout_ms=200), worker="t:1")
    execute_run(RunFactory(job=JobFactory(script="echo out; exit 1")).pk, worker="t:1")
    assert notify.flush(10)
    slack_api.mode, slack_api.error = "not_ok", f"invalid_auth for {SLACK_TOKEN}"
    gw.next_session(finish="done")
    execute_run(session(), worker="t:1")
    slack_api.mode, slack_api.delay = "slow", 1
    execute_run(session(), worker="t:1")
    assert notify.flush(10)


def test_no_token_appears_in_any_log_line_or_stored_run_field(settings, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="runner")  # configured at INFO in settings
    with FakeGateway(token=GATEWAY_TOKEN) as gw, FakeSlack(token=SLACK_TOKEN) as slack_api:
        configure(settings, tmp_path, gw, slack_api)
        run_every_flow(gw, slack_api)
        assert len(slack_api.messages) >= 10
        assert gw.requests and all(
            r.headers.get("Authorization") == f"Bearer {GATEWAY_TOKEN}" for r in gw.requests
        )

    assert Run.objects.count() == 9
    assert {run.status for run in Run.objects.all()} == {"ok", "error", "timeout"}
    logged = caplog.text + "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for record in caplog.records
    )
    stored = json.dumps(list(Run.objects.values()), default=str)
    for secret in SECRETS:
        assert secret not in logged
        assert secret not in stored
