"""System checks for what another local user could use against the runner: a broker
anyone may talk to, files others may change or read, a data directory someone else owns."""

from __future__ import annotations

import pytest

from runner import checks


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "redis://jeeves@127.0.0.1:6379/0", "unix:///run/r.sock"]
)
def test_the_redis_broker_without_a_password_is_a_warning_saying_why(runner_config, url):
    runner_config(broker="redis", redis_url=url)
    [warning] = checks.check_redis_password()
    assert warning.id == "runner.W004"
    assert "any local user" in warning.msg and "monitor" in warning.msg
    assert "requirepass" in warning.hint


@pytest.mark.parametrize(
    "url",
    ["redis://:s3cret@127.0.0.1:6379/0", "redis://jeeves:s3cret@h/0", "redis://h/0?password=s3"],
)
def test_the_redis_broker_with_a_password_is_not_warned_about(runner_config, url):
    runner_config(broker="redis", redis_url=url)
    assert checks.check_redis_password() == []


def test_the_database_broker_needs_no_redis_password(runner_config):
    runner_config(broker="orm", redis_url="redis://127.0.0.1:6379/0")
    assert checks.check_redis_password() == []
