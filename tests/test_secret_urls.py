"""A URL's password, and password-like query parameters, never shown: wherever the
configuration is displayed (``/config``, ``/api/config``, ``diffsettings``, a refused
value in ``check``) or logged, and in messages a run records."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from jeeves_site.secret_urls import redact_url

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw1@127.0.0.1:6379/0", "redis://:[redacted]@127.0.0.1:6379/0"),
        ("redis://127.0.0.1:6379/0?password=pw1", "redis://127.0.0.1:6379/0?password=[redacted]"),
        ("https://bob:pw1@gw.example.com:18789", "https://bob:[redacted]@gw.example.com:18789"),
        (
            "https://h/x?a=1&Token=pw1&api_key=pw2&client_secret=pw3&AUTH=pw4#top",
            "https://h/x?a=1&Token=[redacted]&api_key=[redacted]&client_secret=[redacted]"
            "&AUTH=[redacted]#top",
        ),
        ("https://h:bad-port/x?passwd=pw1", "https://h:bad-port/x?passwd=[redacted]"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("https://bob@h/x?page=2", "https://bob@h/x?page=2"),
        ("not a url", "not a url"),
    ],
)
def test_a_urls_password_and_secret_parameters_are_redacted(url, shown):
    assert redact_url(url) == shown


SECRETS = {
    "redisUrl": "redis://127.0.0.1:6379/0?password=redis-pass",
    "gatewayUrl": "http://gw:gw-pass@127.0.0.1:18789",
    "baseUrl": "https://admin:base-pass@jeeves.example.com/?token=base-token",
    "notifications": {"slackApiUrl": "https://slack.example.com/api?key=slack-key"},
}
SECRET_VALUES = ("redis-pass", "gw-pass", "base-pass", "base-token", "slack-key")


@pytest.mark.django_db
def test_the_config_document_shows_no_url_secret(settings, tmp_path):
    from jeeves_site.config_apply import effective_document
    from jeeves_site.runner_config import validate_config

    config, problems = validate_config(SECRETS)
    assert problems == []
    settings.RUNNER = config
    document = str(effective_document())
    assert not [value for value in SECRET_VALUES if value in document], document
    assert "redis://127.0.0.1:6379/0?password=[redacted]" in document
    assert "http://gw:[redacted]@127.0.0.1:18789" in document


def test_the_runner_settings_repr_shows_no_url_secret():
    from jeeves_site.runner_config import validate_config

    config, _ = validate_config(SECRETS)
    text = repr(config)
    assert not [value for value in SECRET_VALUES if value in text], text
    assert "port=1937" in text


def test_a_refused_url_is_echoed_without_its_password():
    from jeeves_site.runner_config import validate_config

    _, problems = validate_config({"gatewayUrl": "ftp://gw:gw-pass@127.0.0.1"})
    [problem] = problems
    assert "gatewayUrl" in problem.where and "gw-pass" not in problem.message
    assert "ftp://gw:[redacted]@127.0.0.1" in problem.message


@pytest.mark.slow
def test_diffsettings_shows_no_url_secret(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "JEEVES_DATA_DIR": str(tmp_path / "data"),
        "JEEVES_BROKER": "redis",
        "JEEVES_REDIS_URL": "redis://:redis-pass@127.0.0.1:6379/0",
        "JEEVES_GATEWAY_URL": "http://gw:gw-pass@127.0.0.1:18789",
        "JEEVES_BASE_URL": "https://admin:base-pass@jeeves.example.com/",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "diffsettings"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "redis://:[redacted]@127.0.0.1:6379/0" in result.stdout
    assert not [v for v in SECRET_VALUES if v in result.stdout + result.stderr], result.stdout


def test_a_gateway_error_names_the_gateway_without_its_password():
    import httpx

    from runner.execution.gateway import GatewayClient, GatewayConfig, GatewayError

    config = GatewayConfig("http://gw:gw-pass@127.0.0.1:9", "tok", request_timeout_s=1)
    client = GatewayClient(config, transport=httpx.MockTransport(_refuse))
    with pytest.raises(GatewayError) as raised:
        client.invoke("sessions_list", {})
    assert "gw-pass" not in str(raised.value)
    assert "gw:[redacted]@127.0.0.1:9" in str(raised.value)


def _refuse(request):
    raise httpx_connect_error(request)


def httpx_connect_error(request):
    import httpx

    return httpx.ConnectError("connection refused", request=request)


def test_a_notification_link_does_not_carry_the_base_urls_password(settings, db):
    from runner.notify import run_admin_url
    from tests.factories import RunFactory

    settings.RUNNER = dataclasses.replace(
        settings.RUNNER, base_url="https://admin:base-pass@jeeves.example.com"
    )
    link = run_admin_url(RunFactory())
    assert link.startswith("https://admin@jeeves.example.com/admin/")  # asks for it
