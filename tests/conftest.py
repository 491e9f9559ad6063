"""Shared fixtures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import hypothesis
import pytest
import time_machine

from runner import tokens
from runner.client import get_runner_client
from runner.execution import session_follow, sessions
from tests.fakes.dispatch import Dispatched
from tests.moments import NOW

# drained_outbox and servers: the alert tests' Slack, webhook and outbox.
pytest_plugins = ["tests.fakes.alerting"]

# Property tests draw the same examples on every run and database: a test that passes
# must pass again (a random draw once found a minutes-long example in the last run).
hypothesis.settings.register_profile("deterministic", derandomize=True, database=None)
hypothesis.settings.load_profile("deterministic")


@pytest.fixture
def script_file(tmp_path: Path):
    """Write an executable script and return its path: ``script_file("x.sh", "echo hi")``."""

    def write(name: str, text: str, mode: int = 0o755) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        path.chmod(mode)
        return path

    return write


@pytest.fixture(autouse=True)
def fresh_late_reads():
    """``/api/status`` and the dashboard reuse a recent late-jobs answer; each test's
    database is new, so none is carried from one test into the next."""
    from runner import lateness

    lateness.forget_reads()
    yield
    lateness.forget_reads()


@pytest.fixture(scope="session")
def api_socket():
    """A socket of this user listening on loopback, standing for the runner's web server
    (scripts are given JR_API_URL and JR_API_TOKEN only where their user listens:
    ``runner.api.own_listener``); it takes no connections."""
    import socket

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        yield listening


@pytest.fixture(autouse=True)
def served_api(settings, api_socket):
    """JR_API_URL names the session's listening socket, as it names the web server."""
    settings.RUN_API_URL = f"http://127.0.0.1:{api_socket.getsockname()[1]}/api"
    return settings.RUN_API_URL


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Tests log users in constantly; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def runner_config(settings):
    """Change runner settings for one test: ``runner_config(kill_grace_ms=200)``."""

    def change(**values) -> None:
        settings.RUNNER = replace(settings.RUNNER, **values)

    return change


@pytest.fixture
def jr():
    """A script client, as a script the runner starts would get it."""
    with get_runner_client() as client:
        yield client


@pytest.fixture
def clock():
    """The clock frozen at ``tests.moments.NOW``; ``clock.shift(seconds)`` moves it."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def daemons(tmp_path):
    """Start real runscheduler/runworkers processes; all are killed after the test."""
    from tests.daemons import Daemons

    started = Daemons(tmp_path)
    yield started
    started.cleanup()


@pytest.fixture
def workers(monkeypatch):
    """Workers in this process: runs dispatched (manual ones too) execute on a real pool."""
    from runner import dispatch
    from tests.fakes.workers import InlineWorkers

    inline = InlineWorkers()
    monkeypatch.setattr(dispatch, "dispatch", inline)
    yield inline
    inline.close()


@pytest.fixture
def dispatched() -> Dispatched:
    """A recording dispatcher for the scheduler and liveness checks."""
    return Dispatched()


@pytest.fixture
def quick_gateway(monkeypatch):
    """Poll every few milliseconds and give up on a silent gateway after half a second;
    the gateway token comes only from what the test configures."""
    monkeypatch.setattr(session_follow, "FIRST_POLL_S", 0.01)
    monkeypatch.setattr(session_follow, "MAX_POLL_INTERVAL_S", 0.04)
    monkeypatch.setattr(sessions, "REQUEST_TIMEOUT_S", 0.5)
    monkeypatch.delenv(tokens.GATEWAY_TOKEN_ENV, raising=False)
