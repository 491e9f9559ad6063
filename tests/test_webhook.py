"""The generic webhook (issue 16): each incident alert as JSON, through the outbox with
retry and backoff, to the job's URL or the default; only http(s). A real HTTP server on
127.0.0.1 receives the posts."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta

import pytest

from jeeves_site.config_apply import effective_document
from jeeves_site.runner_config import issues_of, load_runner_config
from runner import notify, webhook
from runner.models import Incident
from tests.factories import JobFactory, RunFactory
from tests.fakes import refused_url
from tests.fakes.alerting import events
from tests.fakes.webhook_server import FakeWebhook

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("drained_outbox")]

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def quick_backoff(monkeypatch):
    monkeypatch.setattr(notify, "WEBHOOK_BACKOFF_S", 0.05)


def finish(job, status: str, at: datetime):
    run = RunFactory(job=job, status=status, finished_at=at, duration_ms=1000,
                     error="exit code 1" if status != "ok" else "")  # fmt: skip
    notify.run_finished(run)
    return run


def test_the_body_is_the_documented_json(servers):
    _, hook = servers
    job = JobFactory(id="hooked", name="Hooked")
    run = finish(job, "error", T0)
    finish(job, "ok", T0 + timedelta(minutes=3))
    assert notify.flush(10)
    raised, recovered = hook.bodies
    incident = Incident.objects.get()
    assert raised == {
        "event": "incident.raised",
        "kind": "failing",
        "text": raised["text"],
        "job": {"id": "hooked", "name": "Hooked"},
        "incident": {
            "id": incident.pk,
            "openedAt": "2026-03-02T12:00:00Z",
            "closedAt": None,
            "count": 1,
            "reminders": 0,
            "detail": "",
        },
        "runId": run.pk,
    }
    assert "failing since 2026-03-02 12:00:00 UTC, 1 failure" in raised["text"]
    assert recovered["event"] == "incident.recovered"
    assert recovered["incident"]["closedAt"] == "2026-03-02T12:03:00Z"
    assert recovered["text"].endswith("recovered after 1 failure over 3 min")


def test_a_jobs_own_url_wins_over_the_default(servers):
    _, default = servers
    with FakeWebhook() as own:
        job = JobFactory(webhook_url=own.url + "/mine?key=s3cret")
        finish(job, "error", T0)
        assert notify.flush(10)
        assert [b["event"] for b in own.bodies] == ["incident.raised"]
        assert default.bodies == []


def test_a_webhook_that_fails_for_a_while_gets_the_post_after_backoff(servers, quick_backoff):
    _, hook = servers
    hook.fail_first = 2  # 503, 503, then 200
    finish(JobFactory(), "error", T0)
    assert events(hook) == [("incident.raised", "failing")]
    assert hook.attempts == 3


def test_a_webhook_is_tried_at_most_four_times(servers, quick_backoff, caplog):
    _, hook = servers
    hook.fail_first = 10
    finish(JobFactory(), "error", T0)
    assert notify.flush(10)
    assert hook.attempts == notify.WEBHOOK_ATTEMPTS == 4
    assert "given up after 4 attempts" in caplog.text


def test_a_client_error_is_not_tried_again(servers, quick_backoff):
    _, hook = servers
    hook.fail_first, hook.fail_status = 1, 400
    finish(JobFactory(), "error", T0)
    assert notify.flush(10)
    assert (hook.attempts, hook.bodies) == (1, [])


def test_slack_is_not_held_up_by_a_webhook_waiting_for_its_retry(servers, monkeypatch):
    slack, hook = servers
    monkeypatch.setattr(notify, "WEBHOOK_BACKOFF_S", 0.5)
    hook.fail_first = 1
    finish(JobFactory(id="first"), "error", T0)
    finish(JobFactory(id="second"), "error", T0)
    assert notify.flush(10)
    # Both Slack posts and the second job's webhook went out before the first's retry.
    assert [b["job"]["id"] for b in hook.bodies] == ["second", "first"]
    assert len(slack.messages) == 2


def test_only_http_urls_are_posted_and_secrets_in_the_url_are_not_logged(caplog):
    caplog.set_level(logging.WARNING, logger="runner.webhook")
    for url in ("ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "http://"):
        assert webhook.post_json(url, {}, 1.0) == webhook.Sent.FAILED
    down = refused_url() + "/hook?token=s3cret"
    assert webhook.post_json("http://u:pw@" + down.split("//")[1], {}, 1.0) == webhook.Sent.RETRY
    assert "s3cret" not in caplog.text and "pw" not in caplog.text


def test_a_webhooks_path_is_not_logged_since_for_slack_style_hooks_it_is_the_secret(caplog):
    caplog.set_level(logging.WARNING, logger="runner.webhook")
    host = refused_url()
    hook = host + "/services/T0001/B0002/XXsecretXX"
    assert webhook.post_json(hook, {}, 1.0) == webhook.Sent.RETRY
    assert "XXsecretXX" not in caplog.text
    assert f"{host}/…" in caplog.text  # still says where it went
    assert webhook.safe_url("http://[::1]:8080/a/b?c=d") == "http://[::1]:8080/…"
    assert webhook.safe_url("https://hooks.example.com") == "https://hooks.example.com"


def test_the_default_url_in_config_must_be_http_and_is_redacted_in_the_config_api(
    tmp_path, settings
):
    config_file = tmp_path / "config.json"
    config_file.write_text('{"notifications": {"webhookUrl": "ftp://example.com/x"}}')
    config, problems = load_runner_config({}, tmp_path, str(config_file))
    assert config.notifications.webhook_url == ""
    assert any("webhookUrl" in p.where and "http(s)" in p.message for p in problems)
    assert issues_of({"notifications": {"webhookUrl": "file:///x"}})
    assert not issues_of({"notifications": {"webhookUrl": "https://hooks.example.com/a?k=1"}})
    env_config, _ = load_runner_config(
        {"JEEVES_WEBHOOK_URL": "https://hooks.example.com/t/s3cret"}, tmp_path, ""
    )
    assert env_config.notifications.webhook_url == "https://hooks.example.com/t/s3cret"
    assert "s3cret" not in repr(env_config)
    settings.RUNNER = dataclasses.replace(settings.RUNNER, notifications=env_config.notifications)
    assert effective_document()["notifications"]["webhookUrl"] == "[redacted]"
