"""System checks for what another local user could use against the runner: a broker
anyone may talk to, files others may change or read, a data directory someone else owns."""

from __future__ import annotations

import getpass
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from runner import checks

ROOT = Path(__file__).resolve().parent.parent


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


# The data directory and its files belong to the runner's user (M6)

OTHER_UID = 65534  # nobody: another local user
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def mallorys_data_dir(root: Path) -> Path:
    """What another user prepares: a directory of hers, open to all, with her own key."""
    data = root / "jr-shared"
    data.mkdir()
    data.chmod(0o777)
    (data / "secret_key").write_text("mallorys-key")
    for path in (data, data / "secret_key"):
        os.chown(path, OTHER_UID, OTHER_UID)
    return data


@needs_root
def test_a_data_dir_owned_by_another_user_is_an_error_naming_the_chown(settings, tmp_path):
    settings.DATA_DIR = mallorys_data_dir(tmp_path)
    [error] = checks.check_data_dir_owner()
    assert error.id == "runner.E011"
    assert f"{settings.DATA_DIR} belongs to uid {OTHER_UID}" in error.msg
    assert f"chown -R {getpass.getuser()}: {settings.DATA_DIR}" in error.hint


@needs_root
def test_a_secret_key_owned_by_another_user_in_our_data_dir_is_an_error(settings, tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "secret_key").write_text("planted")
    os.chown(data / "secret_key", OTHER_UID, OTHER_UID)
    settings.DATA_DIR = data
    [error] = checks.check_data_dir_owner()
    assert f"{data / 'secret_key'} belongs to uid {OTHER_UID}" in error.msg


def test_an_installation_the_runner_owns_passes(settings, tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "secret_key").write_text("mine")
    settings.DATA_DIR = data
    assert checks.check_data_dir_owner() == []


def entrance(argv: list[str], data: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "JEEVES_DATA_DIR": str(data)}
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@needs_root
@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ["manage.py", "migrate", "--noinput"],
        ["manage.py", "check"],
        ["-c", "import jeeves_site.wsgi"],
    ],
    ids=["migrate", "check", "wsgi"],
)
def test_every_entrance_refuses_a_data_dir_another_user_owns_and_changes_nothing(tmp_path, argv):
    data = mallorys_data_dir(tmp_path)
    done = entrance(argv, data)
    assert done.returncode != 0
    assert f"{data} belongs to uid {OTHER_UID}" in done.stderr, done.stderr
    assert f"chown -R {getpass.getuser()}: {data}" in done.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o777  # not "tightened" into looking safe
    assert sorted(p.name for p in data.iterdir()) == ["secret_key"]  # no database in it
