"""Reading the gateway and Slack tokens from the configured files and environment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from runner import tokens

SECRET = "tok-3c1d-do-not-print"


@pytest.fixture
def configure(settings):
    """Point gatewayTokenPath / notifications.slackTokenPath at files."""

    def apply(gateway_path: str = "", slack_path: str = "") -> None:
        runner = settings.RUNNER
        settings.RUNNER = dataclasses.replace(
            runner,
            gateway_token_path=gateway_path,
            notifications=dataclasses.replace(runner.notifications, slack_token_path=slack_path),
        )

    return apply


@pytest.fixture(autouse=True)
def no_token_in_environment(monkeypatch):
    monkeypatch.delenv(tokens.GATEWAY_TOKEN_ENV, raising=False)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "token"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_gateway_token_is_read_from_its_file_without_surrounding_whitespace(
    tmp_path, configure
):
    configure(gateway_path=write(tmp_path, f"  {SECRET}\n"))
    assert tokens.gateway_token() == SECRET


def test_the_gateway_token_file_wins_over_the_environment(tmp_path, configure, monkeypatch):
    monkeypatch.setenv(tokens.GATEWAY_TOKEN_ENV, "from-env")
    configure(gateway_path=write(tmp_path, SECRET))
    assert tokens.gateway_token() == SECRET


def test_without_a_token_file_the_environment_supplies_the_gateway_token(configure, monkeypatch):
    monkeypatch.setenv(tokens.GATEWAY_TOKEN_ENV, SECRET)
    configure()
    assert tokens.gateway_token() == SECRET


def test_no_gateway_token_anywhere_is_none(configure):
    configure()
    assert tokens.gateway_token() is None


def test_a_missing_token_file_names_the_setting_and_path(tmp_path, configure):
    configure(gateway_path=str(tmp_path / "absent"))
    with pytest.raises(tokens.TokenUnavailable, match=r"gatewayTokenPath: cannot read .*absent"):
        tokens.gateway_token()


def test_an_empty_token_file_is_refused(tmp_path, configure):
    configure(slack_path=write(tmp_path, "\n"))
    with pytest.raises(tokens.TokenUnavailable, match=r"slackTokenPath: .* is empty"):
        tokens.slack_token()


def test_the_slack_token_is_read_from_its_file(tmp_path, configure):
    configure(slack_path=write(tmp_path, SECRET + "\n"))
    assert tokens.slack_token() == SECRET


def test_no_slack_token_file_is_none(configure):
    configure()
    assert tokens.slack_token() is None


def test_the_original_runners_gateway_api_key_is_used_when_no_file_is_named(
    configure, settings, monkeypatch
):
    monkeypatch.setenv(tokens.GATEWAY_TOKEN_ENV, "from-env")
    configure()
    settings.RUNNER = dataclasses.replace(settings.RUNNER, gateway_api_key=SECRET)
    assert tokens.gateway_token() == SECRET
