"""Shared fixtures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest


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
def fast_password_hashing(settings):
    """Tests log users in constantly; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def runner_settings(settings):
    """Change runner settings for one test: ``runner_settings(missed_fire_max=3)``."""

    def change(**values) -> None:
        settings.RUNNER = replace(settings.RUNNER, **values)

    return change


@pytest.fixture
def daemons(tmp_path):
    """Start real runscheduler/runworkers processes; all are killed after the test."""
    from tests.daemons import Daemons

    started = Daemons(tmp_path)
    yield started
    started.cleanup()
