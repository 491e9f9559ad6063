"""Files an operator names are read only when they are regular and small: a FIFO or a
symlink to /dev/zero is refused at once, at every entrance that reads such a file."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from jeeves_site.env import env_secret
from jeeves_site.runner_config import load_runner_config
from jeeves_site.small_files import read_small_file
from runner import sync, tokens
from runner.checks import check_secret_files

pytestmark = pytest.mark.timeout(20)  # the failure these guard against is a hang


@pytest.fixture(params=["fifo", "device", "directory"])
def not_a_file(request, tmp_path: Path) -> Path:
    """A path named like a file that is a FIFO, a symlink to /dev/zero, or a directory."""
    path = tmp_path / "thing.json"
    if request.param == "fifo":
        os.mkfifo(path)
    elif request.param == "device":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    return path


def test_a_regular_file_within_the_limit_is_read(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b"[1]")
    assert read_small_file(path, 3) == b"[1]"


def test_a_file_over_the_limit_is_refused(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b"[12]")
    with pytest.raises(OSError, match="larger than 3 bytes"):
        read_small_file(path, 3)


def test_a_fifo_a_device_or_a_directory_is_refused_without_waiting(not_a_file):
    with pytest.raises(OSError) as raised:
        read_small_file(not_a_file, 1000)
    assert raised.value.strerror in ("not a regular file", "Is a directory")


@pytest.mark.django_db
def test_sync_jobs_refuses_such_a_job_file_by_name(not_a_file):
    report = sync.sync_directory(not_a_file.parent)
    [entry] = [e for e in report.entries if e.file == "thing.json"]
    assert entry.action == sync.REFUSED and "cannot be read" in entry.reason


def test_sync_jobs_refuses_a_job_file_over_its_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(sync, "MAX_JOB_FILE_BYTES", 10)
    (tmp_path / "big.json").write_text('[{"id": "a"}]')
    with pytest.raises(sync.FileRefused, match="larger than 10 bytes"):
        sync.load_file(tmp_path / "big.json")


def test_such_a_config_file_is_a_problem_and_the_defaults_apply(not_a_file):
    config, problems = load_runner_config({"JEEVES_CONFIG": str(not_a_file)})
    assert [p.message for p in problems if p.level == "error"] != []
    assert "cannot read the config file" in problems[0].message
    assert config.port == 1937


def test_such_a_secret_file_is_refused_naming_the_variable(not_a_file):
    with pytest.raises(ImproperlyConfigured, match="TOKEN_FILE: cannot read"):
        env_secret("TOKEN", environ={"TOKEN_FILE": str(not_a_file)})


def test_a_secret_file_that_is_not_utf8_is_refused_without_its_content(tmp_path):
    (tmp_path / "key").write_bytes(b"\xff\xfehunter2")
    with pytest.raises(ImproperlyConfigured, match=r"TOKEN_FILE: .* is not UTF-8") as raised:
        env_secret("TOKEN", environ={"TOKEN_FILE": str(tmp_path / "key")})
    assert "hunter2" not in str(raised.value)


def test_such_a_token_file_makes_the_token_unavailable(not_a_file, settings):
    settings.RUNNER = dataclasses.replace(settings.RUNNER, gateway_token_path=str(not_a_file))
    with pytest.raises(tokens.TokenUnavailable, match="gatewayTokenPath: cannot read"):
        tokens.gateway_token()


def test_manage_py_check_reports_such_a_token_file_without_waiting(not_a_file, settings):
    settings.RUNNER = dataclasses.replace(settings.RUNNER, gateway_token_path=str(not_a_file))
    [error] = check_secret_files()
    assert error.id == "runner.E002" and str(not_a_file) in error.msg
