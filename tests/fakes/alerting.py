"""Slack and the webhook, both real loopback servers, wired into ``settings.RUNNER``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from runner import notify
from tests.fakes.slack_server import FakeSlack
from tests.fakes.webhook_server import FakeWebhook

TOKEN = "xoxb-alerts-test-token"


@contextmanager
def alert_servers(settings, tmp_path: Path) -> Iterator[tuple[FakeSlack, FakeWebhook]]:
    """Slack (failure channel ``C-FAIL``) and a default webhook, for one test."""
    with FakeSlack(token=TOKEN) as slack, FakeWebhook() as hook:
        token_path = tmp_path / "slack-token"
        token_path.write_text(TOKEN, encoding="utf-8")
        config = settings.RUNNER
        notifications = dataclasses.replace(
            config.notifications,
            slack_api_url=slack.url,
            slack_token_path=str(token_path),
            timeout_s=2.0,
            default_on_failure="C-FAIL",
            default_on_success="",
            webhook_url=hook.url + "/hook",
        )
        settings.RUNNER = dataclasses.replace(config, notifications=notifications, base_url="")
        yield slack, hook


@pytest.fixture
def drained_outbox() -> Iterator[None]:
    """Let every queued post finish inside the test that queued it."""
    yield
    assert notify.flush(10)


@pytest.fixture
def servers(settings, tmp_path: Path) -> Iterator[tuple[FakeSlack, FakeWebhook]]:
    """``alert_servers`` as a fixture."""
    with alert_servers(settings, tmp_path) as pair:
        yield pair


def texts(slack: FakeSlack) -> list[str]:
    """Every Slack text received so far, once the outbox is drained."""
    assert notify.flush(10)
    return [message.text for message in slack.messages]


def events(hook: FakeWebhook) -> list[tuple[str, str]]:
    """Every webhook (event, kind) received so far, once the outbox is drained."""
    assert notify.flush(10)
    return [(body["event"], body["kind"]) for body in hook.bodies]
