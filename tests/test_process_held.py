"""A child made ahead of its run's instant and held before exec (``hold_process``).

A burst of runs due at one instant spawns before it; at the instant each run costs a
write (issue 12). What a held child runs must be what ``start_process`` would have
run, and nothing may run unless it is released.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.execution import held as holding
from runner.execution.held import HOLD_SHELL, hold_process
from runner.execution.process import start_process
from tests.processes import SETTLE_S, survivors

pytestmark = pytest.mark.timeout(30)

MARKER = "JR_TEST_MARKER"
PY = sys.executable
LIMITS = {"timeout_s": 10.0, "grace_s": 1.0, "tail_lines": 100}
# What a script can see of how it was started.
INTROSPECT = textwrap.dedent(
    """
    import fcntl, os, sys
    print(sorted(os.listdir("/proc/self/fd")))
    print(repr(sys.stdin.read()), fcntl.fcntl(0, fcntl.F_GETFL) & os.O_ACCMODE)
    print(os.getcwd(), oct(os.umask(0)), os.getsid(0) == os.getpid() == os.getpgid(0))
    print(sorted(os.environ.items()), sys.argv[1:])
    status = open("/proc/self/status").read().splitlines()
    print([line for line in status if line.startswith(("SigBlk", "SigIgn", "SigCgt"))])
    """
)


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    """A minimal environment; fails the test if any process carrying it survives."""
    marker = uuid.uuid4().hex
    yield {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8", MARKER: marker}
    left = survivors(MARKER, marker, SETTLE_S)
    for proc in left:
        proc.kill()
    assert not left, f"processes left running: {left}"


def waiting_to_read(pid: int) -> None:
    """Wait until the held shell is blocked reading its go pipe."""
    process = psutil.Process(pid)
    for _ in range(2000):
        if process.status() == psutil.STATUS_SLEEPING and "pipe" in _wchan(pid):
            return
        psutil.wait_procs([process], timeout=0.005)
    raise AssertionError("the held shell never waited on its pipe")


def _wchan(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return ""


def test_a_held_child_runs_the_command_only_once_released(env, tmp_path):
    ran = tmp_path / "ran"
    held = hold_process(["bash", "-c", f"echo go > {ran}; echo out; echo err >&2"], env=env)
    waiting_to_read(held.pid)
    assert not ran.exists()
    assert os.path.realpath(psutil.Process(held.pid).exe()) == os.path.realpath(HOLD_SHELL)

    result = held.release(**LIMITS).wait()
    assert (result.exit_code, result.stdout, result.stderr, result.error) == (0, "out", "err", None)
    assert ran.read_text() == "go\n"


@pytest.mark.parametrize("pwd", [None, "elsewhere", "here"])
def test_a_released_child_starts_as_a_spawned_one_would(env, tmp_path, pwd):
    """Same descriptors (stdin empty, no go pipe), working directory, umask, session,
    signal dispositions, environment (PWD as given, or none: the shell would set it)
    and arguments as ``start_process`` gives."""
    argv = [PY, "-c", INTROSPECT, "a b", "c"]
    if pwd is not None:
        env["PWD"] = str(tmp_path) if pwd == "here" else "/no/such/place"
    options = {"env": env, "cwd": str(tmp_path), "umask": 0o027}
    spawned = start_process(argv, **options, **LIMITS).wait()
    released = hold_process(argv, **options).release(**LIMITS).wait()
    assert (released.exit_code, released.stderr) == (0, "")
    assert released.stdout == spawned.stdout
    assert "['0', '1', '2', '3']" in released.stdout  # 3: the listing's own descriptor


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True).filter(
    lambda name: name not in {"IFS", "OPTIND", "PPID", "JEEVES_HELD_PWD", "PATH"}
)
values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


@settings(max_examples=30, deadline=None)
@given(extra=st.dictionaries(names, values, max_size=8))
def test_a_released_child_gets_exactly_the_environment_given(extra):
    """Whatever the values (line breaks, quotes, ``$``, non-ASCII): the shell holding
    the child passes the environment on unchanged (Python adds LC_CTYPE to both)."""
    env = {"PATH": os.environ["PATH"], **extra}
    argv = [PY, "-c", "import os, sys; sys.stdout.write(repr(sorted(os.environb.items())))"]
    released = hold_process(argv, env=env).release(**LIMITS).wait()
    spawned = start_process(argv, env=env, **LIMITS).wait()
    assert released.stdout == spawned.stdout
    assert all(repr(os.fsencode(value)) in released.stdout for value in extra.values())


def test_a_discarded_held_child_exits_without_running_the_command_and_is_reaped(env, tmp_path):
    ran = tmp_path / "ran"
    held = hold_process(["bash", "-c", f"echo go > {ran}"], env=env)
    held.discard()
    assert held.proc.returncode == 125  # reaped by the discard, not left a zombie
    assert not psutil.pid_exists(held.pid)
    assert not ran.exists()
    assert held.release(**LIMITS) is None  # the first of the two decided


def test_a_program_gone_before_the_instant_is_reported_as_a_spawn_would(env, tmp_path):
    program = tmp_path / "mytrue"
    program.write_bytes(Path(shutil.which("true")).read_bytes())
    program.chmod(0o755)
    held = hold_process([str(program)], env=env)
    program.unlink()
    assert held.release(**LIMITS) is None  # the caller spawns it: the error has its reason
    assert held.proc.returncode == 125
    spawned = start_process([str(program)], env=env, **LIMITS)
    assert spawned.error == f"interpreter '{program}' not found"


def test_a_working_directory_made_anew_before_the_instant_is_the_one_used(env, tmp_path):
    """The held child was made in the old directory; the command must run in the one
    at the path at its instant (and a directory gone is reported, not run in)."""
    work = tmp_path / "work"
    work.mkdir()
    argv = ["bash", "-c", "ls"]
    held = hold_process(argv, env=env, cwd=str(work))
    work.rmdir()
    work.mkdir()
    (work / "new").touch()
    assert held.release(**LIMITS) is None
    assert start_process(argv, env=env, cwd=str(work), **LIMITS).wait().stdout == "new"
    gone = hold_process(argv, env=env, cwd=str(work))
    (work / "new").unlink()
    work.rmdir()
    assert gone.release(**LIMITS) is None
    spawned = start_process(argv, env=env, cwd=str(work), **LIMITS)
    assert spawned.error == f"working directory not found: {work}"


def test_a_held_child_that_died_is_not_released_and_nothing_ran(env, tmp_path):
    ran = tmp_path / "ran"
    held = hold_process(["bash", "-c", f"echo go > {ran}"], env=env)
    os.kill(held.pid, signal.SIGKILL)
    os.waitid(os.P_PID, held.pid, os.WEXITED | os.WNOWAIT)
    assert held.release(**LIMITS) is None  # the caller starts the command afresh
    assert not ran.exists()


def test_a_released_childs_timeout_counts_from_its_release(env):
    """Held for 2 s, then given a 1.5 s timeout: a script of 0.2 s ends ok (counted from
    the hold, it would have timed out at once), and one of 30 s is ended at it."""
    quick = hold_process(["bash", "-c", "sleep 0.2; echo done"], env=env)
    slow = hold_process(["sleep", "30"], env=env)
    time.sleep(2.0)  # the hold, not a wait for something to happen
    limits = {**LIMITS, "timeout_s": 1.5}
    finished = quick.release(**limits).wait()
    assert (finished.timed_out, finished.exit_code, finished.stdout) == (False, 0, "done")
    ended = slow.release(**limits).wait()
    assert ended.timed_out and ended.signal == signal.SIGTERM


def _script(tmp_path: Path, text: str, mode: int = 0o755) -> str:
    path = tmp_path / "script"
    path.write_text(text)
    path.chmod(mode)
    return str(path)


@pytest.mark.parametrize(
    "case",
    [
        "missing interpreter",
        "a script run directly",
        "relative program",
        "missing working directory",
        "no PATH",
        "a name the shell drops",
        "a name the shell sets",
        "too large",
    ],
)
def test_a_command_whose_exec_could_fail_is_not_held(env, tmp_path, case):
    """``start_process`` reports why an exec failed (a missing interpreter, a ``#!``
    line's, a working directory); a held child could only exit 127. Such commands are
    left to be spawned at their instant, where the reason is reported as before."""
    argv, options = ["bash", "-c", "true"], {"env": env}
    if case == "missing interpreter":
        argv = ["no-such-interpreter-here", "x"]
    elif case == "a script run directly":
        argv = [_script(tmp_path, "#!/bin/sh\ntrue\n")]
    elif case == "relative program":
        argv = ["./bin/bash"]
    elif case == "missing working directory":
        options["cwd"] = str(tmp_path / "gone")
    elif case == "no PATH":
        options["env"] = {MARKER: env[MARKER]}
    elif case == "a name the shell drops":
        options["env"] = {**env, "A.B": "1"}
    elif case == "a name the shell sets":
        options["env"] = {**env, "OPTIND": "3"}
    else:
        options["env"] = {**env, "BIG": "x" * 200_000}
    assert hold_process(argv, **options) is None


def test_children_are_held_up_to_the_limit_and_each_release_or_discard_frees_one(env):
    """Each held child keeps three descriptors open in the worker until its instant:
    past the caller's limit a run is spawned at its instant instead."""
    before = holding.held_count()
    first = hold_process(["true"], env=env, limit=before + 2)
    second = hold_process(["true"], env=env, limit=before + 2)
    assert hold_process(["true"], env=env, limit=before + 2) is None
    first.release(**LIMITS).wait()
    third = hold_process(["true"], env=env, limit=before + 2)
    assert third is not None
    second.discard()
    third.discard()
    third.discard()  # a second discard frees nothing more
    assert holding.held_count() == before


def test_a_spawn_that_raises_frees_its_slot_and_pipe(env):
    """Whatever the spawn raises (here a NUL in an argument), the held slot and the go
    pipe are given back: a leak would lower the worker's limit for good."""
    before, fds = holding.held_count(), len(os.listdir("/proc/self/fd"))
    with pytest.raises(ValueError, match="null byte"):
        hold_process(["true", "a\x00b"], env=env)
    assert (holding.held_count(), len(os.listdir("/proc/self/fd"))) == (before, fds)
