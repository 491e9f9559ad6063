"""Every project command refuses an argument that is not valid text (a byte that is not
UTF-8 reaches Python as a lone surrogate) with one line naming the option, never a
traceback; a file path is the exception, its bytes go to the system as they are."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command, get_commands, load_command_class
from django.db import connection

from runner.management.base import ProjectCommand
from tests.procs import ROOT, bare_env

pytestmark = pytest.mark.django_db

PROJECT_APPS = ("runner", "runner.api", "queues", "statestore")
UNDECODABLE = "a\udcff"
# Django's own options, handled before any command runs.
DJANGO_OPTIONS = {"settings", "pythonpath", "verbosity", "traceback", "no_color", "force_color",
                  "skip_checks", "version", "help"}  # fmt: skip


def project_commands() -> list[str]:
    return sorted(name for name, app in get_commands().items() if app in PROJECT_APPS)


def text_arguments(name: str) -> list:
    """The arguments of command ``name`` that take text, Django's own left out."""
    command = load_command_class(get_commands()[name], name)
    parser = command.create_parser("manage.py", name)
    return [
        action
        for action in parser._actions
        if action.dest not in DJANGO_OPTIONS and action.nargs != 0 and not action.choices
    ]


def argv(name: str, undecodable: str) -> tuple[list[str], str]:
    """A call of ``name`` giving ``UNDECODABLE`` to the argument ``undecodable`` (a dest)
    and ``x`` to every other required one; and how the refusal names it."""
    words, named = [], ""
    for action in text_arguments(name):
        chosen = action.dest == undecodable
        value = UNDECODABLE if chosen else "x"
        if chosen:
            named = (
                max(action.option_strings, key=len)
                if action.option_strings
                else (action.metavar or action.dest)
            )
        if action.option_strings and (chosen or action.required):
            words.append(f"{action.option_strings[-1]}={value}")
        elif not action.option_strings:
            words.append(value)
    return words, named


CASES = [
    (name, action)
    for name in project_commands()
    for action in text_arguments(name)
    if action.dest not in load_command_class(get_commands()[name], name).path_options
]


def test_the_project_commands_are_found():
    assert {"add_job", "add_queue", "create_api_token", "runscheduler", "runworkers",
            "sync_jobs"} <= set(project_commands())  # fmt: skip


@pytest.mark.parametrize("name", project_commands())
def test_every_project_command_checks_its_arguments(name):
    assert isinstance(load_command_class(get_commands()[name], name), ProjectCommand)


@pytest.mark.parametrize(("name", "action"), CASES, ids=[f"{n}-{a.dest}" for n, a in CASES])
def test_an_undecodable_argument_is_refused_naming_the_option(name, action):
    words, named = argv(name, action.dest)
    out = StringIO()
    with pytest.raises(CommandError) as refused:
        call_command(name, *words, stdout=out, stderr=out)
    assert str(refused.value) == (
        f"{named}: 'a\\udcff' is not valid text (a byte that is not UTF-8, from the "
        "terminal or the shell?); give it as UTF-8"
    )
    assert out.getvalue() == ""


@pytest.mark.parametrize("name", ["sync_jobs", "import_original_db"])
def test_a_path_may_hold_any_bytes(name, tmp_path):
    """A directory or file whose name is not UTF-8 is the system's to find, not refused."""
    with pytest.raises(CommandError) as refused:
        call_command(name, str(tmp_path / UNDECODABLE), stdout=StringIO(), stderr=StringIO())
    assert "not valid text" not in str(refused.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    "words", [["enable_job", b"a\xff"], ["create_api_token", "t", b"--user=a\xff"]]
)
def test_from_a_shell_it_is_one_line_and_exit_status_1(words, settings):
    done = subprocess.run(
        [sys.executable, "manage.py", *words],
        cwd=ROOT,
        env={
            **bare_env(connection.settings_dict),
            "DJANGO_SECRET_KEY": "test-only-x",
            "JEEVES_DATA_DIR": str(settings.DATA_DIR),
        },
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.decode().startswith("CommandError: ") and b"Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
