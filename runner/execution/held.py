"""Children made ahead of their run's instant and held before exec (issue 12): at the
instant a run costs a write to a pipe instead of a spawn."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress

from runner.execution.process import CancelFlag, RunningProcess, Supervisor
from runner.execution.spawn import exec_too_large, spawn

# A held child is this shell, waiting for a line on its stdin (the go pipe) before it
# execs the command with stdin from /dev/null; at end of file it exits unrun. dash
# passes its environment on as it got it, except: names that are not identifiers are
# dropped, ``_SHELL_SETS`` are set anew, and PWD is made the working directory, so the
# command's PWD is given to it aside and put back (or PWD unset). An environment the
# shell would change otherwise is not held.
HOLD_SHELL = shutil.which("dash", path="/usr/bin:/bin")  # None: nothing is held
_HELD_PWD = "JEEVES_HELD_PWD"
# stdin read-write, as subprocess.DEVNULL opens it.
_HOLD_SCRIPT_NO_PWD = 'read -r go || exit 125; unset PWD; exec "$@" <>/dev/null'
_HOLD_SCRIPT = _HOLD_SCRIPT_NO_PWD.replace(
    "unset PWD", f"PWD=${_HELD_PWD}; unset {_HELD_PWD}; export PWD"
)
_HOLD_NAME = "jeeves-held"
# How long a discarded held child is waited for: it exits once it reads end of file.
_HELD_EXIT_S = 0.1
_SHELL_SETS = frozenset({"IFS", "OPTIND", "PPID", _HELD_PWD})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Children held at once, at most, whatever ``hold_process``'s ``limit``.
MAX_HELD = 256
_held = 0
_held_lock = threading.Lock()


class HeldProcess:
    """A child made ahead of its run's instant (``hold_process``), waiting before exec.

    ``release`` at the instant lets it exec the command, which is then a
    ``RunningProcess`` like one ``start_process`` made; ``discard`` ends it unrun.
    Each may be called once, and the first of them decides.
    """

    def __init__(self, proc: subprocess.Popen, go: int, program: str, cwd: str | None) -> None:
        self.proc = proc
        self._go: int | None = go
        self._program = program
        self._cwd = cwd
        self._cwd_id = _identity(cwd)

    @property
    def pid(self) -> int:
        """The child's process id, which the command keeps once released."""
        return self.proc.pid

    def release(
        self,
        *,
        timeout_s: float | None,
        grace_s: float,
        tail_lines: int,
        clock: Callable[[], float] = time.monotonic,
        cancel: CancelFlag | None = None,
    ) -> RunningProcess | None:
        """Let the child exec the command, as ``start_process`` would have started it
        now (its timeout counts from now); None if it was discarded or is gone (then
        start the command afresh: nothing ran)."""
        go = self._take()
        if go is None:
            return None
        if not self._still_startable():
            os.close(go)
            self._end()
            return None
        started = clock()
        try:
            os.write(go, b"\n")
        except OSError:  # the held child died before its instant
            self._end()
            return None
        finally:
            os.close(go)
        supervisor = Supervisor(self.proc, tail_lines, clock, cancel)
        return RunningProcess(supervisor, started, timeout_s, grace_s)

    def discard(self) -> None:
        """End the child without running the command (it reads end of file and exits)."""
        go = self._take()
        if go is not None:
            os.close(go)
            self._end()

    def _take(self) -> int | None:
        """The go pipe, to the first caller of ``release`` or ``discard``; None after."""
        global _held
        with _held_lock:
            go, self._go = self._go, None
            if go is not None:
                _held -= 1
        return go

    def _still_startable(self) -> bool:
        """Whether the command would start as held: its program is still there, and its
        working directory is still the one the child was made in. Else spawned afresh,
        a failure is reported with its reason (``start_process``), and a directory made
        anew at the same path is the one the command runs in."""
        return os.access(self._program, os.X_OK) and _identity(self._cwd) == self._cwd_id

    def _end(self) -> None:
        self.proc.stdout.close()
        self.proc.stderr.close()
        # It exits as soon as it reads end of file: reaped now, not left a zombie until
        # the next spawn (if it takes longer, subprocess reaps it then).
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(_HELD_EXIT_S)


def hold_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    umask: int = -1,
    limit: int = MAX_HELD,
) -> HeldProcess | None:
    """Make the child that will run ``argv`` (as ``start_process`` does: own session,
    exactly ``env``, ``cwd``, ``umask``), held before exec until ``release``.

    So a burst of runs due at one instant spawns ahead of it, and at the instant each
    costs a write to a pipe (issue 12). None when holding could change what the run
    reports (an exec that would fail is reported by ``start_process`` with its reason,
    a held one would only exit 127): a command that is not an ELF program found now,
    a missing working directory, arguments too large; and when the spawn fails. Also
    None while ``limit`` children (at most ``MAX_HELD``) are held: each keeps three of
    this process's descriptors until it is released or discarded.
    """
    global _held
    program = _holdable(argv, env, cwd)
    if program is None:
        return None
    with _held_lock:
        if _held >= min(limit, MAX_HELD):
            return None
        _held += 1
    script, shell_env = _HOLD_SCRIPT_NO_PWD, env
    if "PWD" in env:
        script, shell_env = _HOLD_SCRIPT, {**env, _HELD_PWD: env["PWD"]}
    go = None
    try:
        read, go = os.pipe()
        try:
            proc = spawn([HOLD_SHELL, "-c", script, _HOLD_NAME, *argv], read, shell_env, cwd, umask)
        finally:
            os.close(read)
    except BaseException as exc:  # whatever the spawn raised, the slot and pipe are freed
        if go is not None:
            os.close(go)
        with _held_lock:
            _held -= 1
        if isinstance(exc, OSError):
            return None
        raise
    return HeldProcess(proc, go, program, cwd)


def held_count() -> int:
    """How many children this process holds now (``hold_process``)."""
    with _held_lock:
        return _held


def _holdable(argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> str | None:
    """The program ``argv`` would run if it may be held (see ``hold_process``), else None."""
    if not argv or not _shell_ready() or (cwd is not None and not os.path.isdir(cwd)):
        return None
    if any(name in _SHELL_SETS or not _IDENTIFIER.match(name) for name in env):
        return None
    program: str | None = argv[0]
    if os.sep in program:
        if not os.path.isabs(program):
            return None  # relative to the child's working directory
    elif "PATH" not in env:
        return None  # the shell's default search path is not subprocess's
    else:
        program = shutil.which(program, path=env["PATH"])
    if program is None or not _is_elf_program(program) or exec_too_large(argv, env):
        return None
    return program


def _identity(path: str | None) -> tuple[int, int] | None:
    """The directory ``path`` is now (device, inode); None for none, or if it is gone."""
    if path is None:
        return None
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino)


@functools.lru_cache(maxsize=1)
def _shell_ready() -> bool:
    return HOLD_SHELL is not None and os.access(HOLD_SHELL, os.X_OK)


def _is_elf_program(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            return os.access(path, os.X_OK) and file.read(4) == b"\x7fELF"
    except OSError:
        return False
