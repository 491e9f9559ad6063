"""System checks for what another local user could use against the runner: a broker
anyone may talk to, files others may change or read, a data directory someone else owns."""

from __future__ import annotations

import getpass
import os
import stat
import subprocess
import sys
from dataclasses import replace
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


# Code and configuration other users could change; secrets they could read (L6)


def private_dir(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(mode=0o700)
    return path


def test_a_config_file_others_can_write_is_an_error(runner_config, tmp_path):
    config = private_dir(tmp_path, "etc") / "config.json"
    config.write_text("{}")
    config.chmod(0o666)
    runner_config(config_file=str(config))
    [error] = checks.check_code_sources()
    assert error.id == "runner.E012"
    assert f"{config} is mode 0666" in error.msg and "runners" in error.msg
    assert f"chmod go-w {config}" in error.hint


def test_a_config_file_in_a_directory_others_can_write_is_an_error(runner_config, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # not sticky: anyone can replace the file
    (shared / "config.json").write_text("{}")
    runner_config(config_file=str(shared / "config.json"))
    [error] = checks.check_code_sources()
    assert f"its directory {shared} is mode 0777" in error.msg


def test_job_files_and_their_directory_others_can_write_are_errors(runner_config, tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    jobs.chmod(0o777)
    (jobs / "a.json").write_text("[]")
    (jobs / "a.json").chmod(0o666)
    runner_config(jobs_dir=str(jobs))
    found = checks.check_code_sources()
    assert {e.id for e in found} == {"runner.E013"}
    assert any(f"{jobs} is mode 0777" in e.msg for e in found)
    assert any(f"{jobs / 'a.json'} is mode 0666" in e.msg for e in found)


def test_private_code_sources_pass(runner_config, tmp_path):
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)  # as /tmp: others cannot replace what is ours
    config = sticky / "config.json"
    config.write_text("{}")
    jobs = private_dir(tmp_path, "jobs")
    (jobs / "a.json").write_text("[]")
    runner_config(config_file=str(config), jobs_dir=str(jobs), scripts_dir=str(tmp_path))
    assert checks.check_code_sources() == []


def test_a_scripts_dir_anyone_may_add_to_is_an_error_sticky_or_not(runner_config, tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    scripts.chmod(0o1777)  # a job naming a script not written yet runs whatever lands there
    runner_config(scripts_dir=str(scripts))
    [error] = checks.check_code_sources()
    assert error.id == "runner.E013" and f"{scripts} is mode 1777" in error.msg


def test_secret_files_others_can_read_are_warnings(runner_config, tmp_path, monkeypatch):
    from jeeves_site import env

    monkeypatch.setattr(env, "SECRET_FILES", {})
    key, slack = tmp_path / "key", tmp_path / "slack-token"
    for path in (key, slack):
        path.write_text("s3cret")
        path.chmod(0o644)
    env.env_secret("DJANGO_SECRET_KEY", {"DJANGO_SECRET_KEY_FILE": str(key)})
    runner_config(
        notifications=replace(checks.settings.RUNNER.notifications, slack_token_path=str(slack))
    )
    found = checks.check_secret_file_modes()
    assert {e.id for e in found} == {"runner.W005"}
    messages = " ".join(e.msg for e in found)
    assert f"DJANGO_SECRET_KEY_FILE: {key} is mode 0644" in messages
    assert f"notifications.slackTokenPath: {slack} is mode 0644" in messages
    for path in (key, slack):
        path.chmod(0o600)
    assert checks.check_secret_file_modes() == []


@pytest.mark.django_db
def test_a_job_script_others_can_change_is_an_error(tmp_path, script_file):
    from tests.factories import JobFactory

    script = script_file("open.sh", "echo hi", mode=0o777)
    JobFactory(id="open", source_type="path", script=str(script))
    [error] = checks.check_job_scripts()
    assert error.id == "runner.E013" and f"{script} is mode 0777" in error.msg
    script.chmod(0o755)
    assert checks.check_job_scripts() == []


@needs_root
def test_a_data_dir_inside_another_users_directory_is_an_error(settings, tmp_path):
    hers = tmp_path / "hers"
    hers.mkdir()
    os.chown(hers, OTHER_UID, OTHER_UID)  # she can rename our directory away and put hers
    data = hers / "data"
    data.mkdir(mode=0o700)
    settings.DATA_DIR = data
    [error] = checks.check_data_dir_owner()
    assert f"{hers} belongs to uid {OTHER_UID}" in error.msg
