"""The Slack client against a real loopback Slack API (tests/fakes)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from runner.slack import SlackConfig, format_run_message, post_message, trim_for_slack
from tests.fakes import refused_url
from tests.fakes.slack_server import FakeSlack

TOKEN = "xoxb-1111-2222-secret-never-log-me"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def config(slack: FakeSlack) -> SlackConfig:
    return SlackConfig(TOKEN, base_url=slack.url, timeout_s=0.5)


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="runner.slack")
    return caplog


def slack_warnings(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "runner.slack")


# -- posting -----------------------------------------------------------------------


def test_a_message_is_posted_to_the_channel_with_the_bearer_token(slack, config):
    assert post_message(config, "C0123", "backup finished") is True

    (message,) = slack.messages
    assert (message.channel, message.text) == ("C0123", "backup finished")
    assert message.headers["Authorization"] == f"Bearer {TOKEN}"
    assert message.content_type.startswith("application/json")


def test_a_refused_post_logs_slacks_error_and_returns_false(slack, config, warnings):
    slack.mode = "not_ok"

    assert post_message(config, "C404", "hello") is False
    assert "channel_not_found" in slack_warnings(warnings)


def test_a_wrong_token_logs_invalid_auth(slack, warnings):
    config = SlackConfig("xoxb-wrong", base_url=slack.url)

    assert post_message(config, "C0123", "hello") is False
    assert "invalid_auth" in slack_warnings(warnings)


def test_a_rate_limit_logs_retry_after_and_does_not_wait(slack, config, warnings):
    slack.mode, slack.retry_after = "rate_limited", "30"
    started = time.monotonic()

    assert post_message(config, "C0123", "hello") is False
    assert time.monotonic() - started < config.timeout_s
    assert "Retry-After 30 s" in slack_warnings(warnings)


def test_a_server_error_logs_the_status_and_returns_false(slack, config, warnings):
    slack.mode = "server_error"

    assert post_message(config, "C0123", "hello") is False
    assert "HTTP 500" in slack_warnings(warnings)


def test_a_slow_slack_is_given_up_on_within_the_timeout(slack, config, warnings):
    slack.mode, slack.delay = "slow", 3
    started = time.monotonic()

    assert post_message(config, "C0123", "hello") is False
    assert time.monotonic() - started < config.timeout_s + 0.5
    assert "did not answer within 0.5 s" in slack_warnings(warnings)


def test_an_answer_that_is_not_json_is_logged_and_returns_false(slack, config, warnings):
    slack.mode = "invalid_json"

    assert post_message(config, "C0123", "hello") is False
    assert "non-JSON" in slack_warnings(warnings)


def test_a_refused_connection_is_logged_and_returns_false(warnings):
    config = SlackConfig(TOKEN, base_url=refused_url(), timeout_s=0.5)

    assert post_message(config, "C0123", "hello") is False
    assert "cannot post to Slack" in slack_warnings(warnings)


def test_an_unknown_host_is_logged_and_returns_false(warnings):
    config = SlackConfig(TOKEN, base_url="http://nonexistent.invalid/api", timeout_s=0.5)

    assert post_message(config, "C0123", "hello") is False
    assert "nonexistent.invalid" in slack_warnings(warnings)


@pytest.mark.parametrize(
    "config",
    [SlackConfig(TOKEN, base_url="slack.com/api"), SlackConfig("xoxb-\u00e9", base_url="http://x")],
    ids=["base url without scheme", "token that is not ascii"],
)
def test_bad_settings_are_logged_and_return_false(config, warnings):
    assert post_message(config, "C0123", "hello") is False
    assert "cannot post to Slack" in slack_warnings(warnings)


def test_the_token_is_never_logged_or_shown(slack, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="runner")  # configured at INFO in settings
    config = SlackConfig(TOKEN, base_url=slack.url, timeout_s=0.3)
    slack.delay = 1
    for mode in ["ok", "not_ok", "rate_limited", "server_error", "slow", "invalid_json"]:
        slack.mode = mode
        post_message(config, "C0123", "hello")
    post_message(SlackConfig(TOKEN, base_url=refused_url()), "C0123", "hello")

    assert len(caplog.records) > 5
    assert all(TOKEN not in record.getMessage() for record in caplog.records)
    assert TOKEN not in repr(config)


# -- formatting ----------------------------------------------------------------------


def test_a_run_message_names_the_job_status_and_duration():
    text = format_run_message("inbox-poll", "Poll inbox", "ok", 12_340, None)

    assert text == ":white_check_mark: *Poll inbox* (`inbox-poll`): ok, took 12.3 s"


def test_a_failed_run_message_shows_the_first_five_lines_of_the_error():
    error = "\n".join(f"line {n}" for n in range(1, 8))

    text = format_run_message("sync", "Sync", "error", 850, error)

    assert "line 5" in text and "line 6" not in text
    assert "(2 more lines)" in text
    assert "took 850 ms" in text


def test_a_run_message_links_to_the_run_when_given_a_url():
    text = format_run_message("sync", "Sync", "timeout", 245_000, None, "https://runner/runs/7")

    assert text.endswith("<https://runner/runs/7|View run>")
    assert "took 4 min 5 s" in text


def test_a_run_message_escapes_slack_control_characters():
    text = format_run_message("sync", "A <b> & c", "error", None, "x < y")

    assert "A &lt;b&gt; &amp; c" in text and "x &lt; y" in text
    assert "time unknown" in text


def test_text_within_the_limit_is_not_trimmed():
    assert trim_for_slack("short output", limit=100) == "short output"


def test_long_output_keeps_its_tail_and_says_it_was_trimmed():
    output = "\n".join(f"line {n}" for n in range(10_000))

    trimmed = trim_for_slack(output, limit=1000)

    assert len(trimmed) <= 1000
    assert trimmed.startswith("[trimmed: first ")
    assert trimmed.endswith("line 9999")
    notice, first_kept, *_ = trimmed.splitlines()
    omitted = int(notice.split()[2])
    assert output[omitted:] == trimmed.split("\n", 1)[1]
    assert first_kept.startswith("line ") and output[omitted - 1] == "\n"


def test_the_default_trim_limit_stays_under_slacks_40000_characters():
    trimmed = trim_for_slack("x" * 100_000)

    assert len(trimmed) <= 39_000
    assert trimmed.endswith("x" * 1000)
