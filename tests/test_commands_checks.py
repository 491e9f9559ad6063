"""The runner's own commands run the system checks without the job-file list (runner.W020):
it buried each command's own line under a block of warnings; ``manage.py check`` keeps it."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.factories import JobFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent

COMMANDS = [
    ("list_jobs",),
    ("runner_status",),
    ("enable_job", "inbox"),
    ("disable_job", "inbox"),
    ("add_job", "--id", "inbox", "--name", "Inbox"),
    ("add_queue", "--id", "mail"),
    ("ensure_admin",),
]


def stderr_of(*argv: str) -> str:
    err = StringIO()
    call_command(*argv, skip_checks=False, stdout=StringIO(), stderr=err)
    return err.getvalue()


@pytest.fixture(autouse=True)
def private_data_dir(settings, tmp_path):
    """The checks these commands run include runner.E010 (loose data-dir modes): give
    them a data dir of their own, whatever the suite's is."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    settings.DATA_DIR = data


@pytest.fixture
def missing_script(tmp_path):
    return JobFactory(id="inbox", source_type="path", script=str(tmp_path / "gone.py"))


@pytest.mark.parametrize("argv", COMMANDS, ids=[argv[0] for argv in COMMANDS])
def test_the_runners_commands_do_not_list_every_job_with_a_missing_script(missing_script, argv):
    assert "W020" not in stderr_of(*argv)


def test_a_refusal_is_the_one_line_on_stderr(missing_script):
    err = StringIO()
    with pytest.raises(CommandError, match="minute field: 61 is out of range"):
        call_command(
            "add_job", "--id", "inbox", "--schedule", "61 * * * *", skip_checks=False, stderr=err
        )
    assert err.getvalue() == ""


def test_manage_py_check_still_lists_them(missing_script):
    with pytest.raises(CommandError) as raised:
        call_command("check", "--fail-level", "WARNING", stdout=StringIO(), stderr=StringIO())
    assert "runner.W020" in str(raised.value)


def test_the_other_checks_still_run_before_the_runners_commands(missing_script, settings):
    settings.RUNNER_CONFIG_PROBLEMS = []
    settings.TIME_ZONE_PROBLEM = "TZ names no zone"
    with pytest.raises(CommandError, match=r"runner\.E004"):
        call_command("list_jobs", skip_checks=False, stdout=StringIO(), stderr=StringIO())


@pytest.mark.slow
def test_a_command_run_against_an_unmigrated_database_says_so_in_one_line(tmp_path):
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "elsewhere" / "jeeves.sqlite3").touch(mode=0o600)  # empty: no tables
    env = {"PATH": os.environ["PATH"], "JEEVES_DATA_DIR": str(tmp_path / "elsewhere")}
    result = subprocess.run(
        [sys.executable, "manage.py", "list_jobs"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    database = tmp_path / "elsewhere" / "jeeves.sqlite3"
    assert result.stderr == (
        f"CommandError: the database {database} has no runner tables: run manage.py migrate, "
        "or give this command the runner's JEEVES_DATA_DIR or DATABASE_URL\n"
    )


def test_a_scripts_dir_name_too_long_for_the_system_is_a_warning_not_a_crash(runner_config):
    from runner.checks import check_scripts_dir

    runner_config(scripts_dir="/" + "s" * 5000)
    [warning] = check_scripts_dir()
    assert warning.id == "runner.W001"
    assert warning.msg.endswith("… (5001 characters) is not a directory")


@pytest.mark.slow
@pytest.mark.parametrize("command", ["list_jobs", "runner_status", "check"])
def test_a_read_only_command_creates_no_database_nor_directories(tmp_path, command):
    database = tmp_path / "nonexist" / "dir" / "x.db"
    env = {
        "PATH": os.environ["PATH"],
        "JEEVES_DATA_DIR": str(tmp_path / "data"),
        "DJANGO_SECRET_KEY": "test-only",
        "DATABASE_URL": f"sqlite:///{database}",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", command], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert not (tmp_path / "nonexist").exists()
    assert "Traceback" not in result.stderr, result.stderr
    if command != "check":
        assert result.returncode == 1
        assert result.stderr == (
            f"manage.py: the database {database} does not exist (nothing was created): run "
            "manage.py migrate, or give this command the runner's JEEVES_DATA_DIR or "
            "DATABASE_URL\n"
        )
