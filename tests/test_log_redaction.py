"""API tokens never reach a log line, wherever a client put them in a URL."""

from __future__ import annotations

import logging
import runpy
from io import StringIO
from pathlib import Path

import pytest
from django.test import Client

from jeeves_site.log_redaction import RedactTokens, redact
from runner.api.run_tokens import token_for
from runner.api.tokens import new_secret

ROOT = Path(__file__).resolve().parent.parent


def test_a_token_and_a_runs_token_are_redacted_and_a_short_prefix_is_kept():
    secret = new_secret()
    assert redact(f"Not Found: /api/t/{secret}/jobs") == "Not Found: /api/t/jr_***/jobs"
    assert redact("jrr_3hyZPnL-8R29i8FJ_6oIRRexx8gnXf5MFxYJJBKxhf4 x") == "jrr_*** x"
    assert redact("token jr_Ab12cd3 (prefix)") == "token jr_Ab12cd3 (prefix)"


def test_a_runs_token_is_redacted_whole_with_its_run_id():
    secret = token_for(1234, "host:99")
    assert redact(f"Not Found: /api/t/{secret}/state.") == "Not Found: /api/t/jrr_***/state."
    assert redact(f"Bearer {secret}") == "Bearer jrr_***"


@pytest.fixture
def runner_log():
    """What the runner's own log handlers write, as text."""
    handlers = [
        handler
        for handler in logging.getLogger().handlers
        if any(isinstance(f, RedactTokens) for f in handler.filters)
    ]
    assert handlers, "every configured handler redacts tokens"
    stream = StringIO()
    old = [handler.setStream(stream) for handler in handlers]
    yield stream
    for handler, previous in zip(handlers, old, strict=True):
        handler.setStream(previous)


@pytest.mark.django_db
def test_a_token_misplaced_in_a_url_is_not_in_the_log_of_its_404(runner_log):
    secret = new_secret()
    assert Client().get(f"/api/t/{secret}/jobs").status_code == 404
    assert "Not Found: /api/t/jr_***/jobs" in runner_log.getvalue()
    assert secret not in runner_log.getvalue()


def test_gunicorns_access_log_shows_no_token_in_any_atom():
    """The request line, the path, and what a page opened under ``/t/<token>/`` sends
    with its assets: the Referer (a probe found it logged whole), headers, environ."""
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config

    config = runpy.run_path(str(ROOT / "jeeves_site" / "gunicorn.conf.py"))
    logger = config["RedactingLogger"](Config())
    secret, prefix = new_secret(), "x" * 20  # a prefix need not look like a token
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/t/{prefix}/api/docs",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": f"/t/{prefix}/api/docs",
        "HTTP_REFERER": f"http://127.0.0.1:1937/t/{prefix}/api/docs",
        "HTTP_AUTHORIZATION": f"Bearer {secret}",
    }
    request = SimpleNamespace(headers=[("REFERER", f"http://[::1]:1937/t/{secret}/x")])
    response = SimpleNamespace(status="200 OK", sent=0, headers=[])
    atoms = logger.atoms(response, request, environ, timedelta(0))
    shown = " ".join(str(value) for value in atoms.values())
    assert secret not in shown and prefix not in shown
    assert atoms["f"] == "http://127.0.0.1:1937/t/***/api/docs"
    assert atoms["r"] == "GET /t/***/api/docs HTTP/1.1"
