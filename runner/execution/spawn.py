"""Spawning a child: fast (vfork) and safe from the runner's own stop signals, and the
reason a spawn failed in words an operator can act on."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress

# CPython spawns with vfork(), and its vfork child resets every signal handler to
# SIG_DFL before it calls setsid(): a SIGTERM sent to the worker's process group in
# that instant (systemd stopping the runner) kills the new script before it starts,
# and the run reads "killed by SIGTERM" instead of how the stop ended it. A forked
# child keeps the worker's harmless Python handler until exec, so spawn with fork,
# except while this process is out of the runner's group (see ``allow_fast_spawn``).
subprocess._USE_VFORK = False


def allow_fast_spawn() -> None:
    """Spawn this process's scripts with vfork, each from outside the runner's group.

    fork() of a large Python process costs several milliseconds a script (copying
    page tables, then copy-on-write faults until exec); vfork() almost nothing. The
    danger above needs a signal sent to the spawning process's group while the child
    is still in it, so each spawn (``_outside_the_group``) first moves this process
    into a process group of its own, whose id no supervisor or terminal knows, and
    moves it back once the child has exec'd (in its own session). A group signal in
    that window misses this process too; a stop still reaches it, since
    ``runner.cluster`` signals its workers by pid. Call once, at the start of a
    process that spawns scripts from several threads (a cluster worker).
    """
    global _home_group
    with _group_lock:
        _home_group = os.getpgid(0)


_group_lock = threading.Lock()
_home_group: int | None = None
_spawning = 0


@contextmanager
def _outside_the_group() -> Iterator[None]:
    """While any thread spawns: this process leads a group of its own, and uses vfork."""
    global _spawning
    with _group_lock:
        if _home_group is not None and _spawning == 0:
            with suppress(OSError):  # a session leader cannot move: keep fork
                os.setpgid(0, 0)
                subprocess._USE_VFORK = True
        _spawning += 1
    try:
        yield
    finally:
        with _group_lock:
            _spawning -= 1
            if _home_group is not None and _spawning == 0 and subprocess._USE_VFORK:
                subprocess._USE_VFORK = False
                with suppress(OSError):  # the runner's group is gone: nobody signals it
                    os.setpgid(0, _home_group)


def spawn(
    argv: Sequence[str], stdin: int, env: Mapping[str, str], cwd: str | None, umask: int
) -> subprocess.Popen:
    """Start ``argv`` with ``stdin`` (a descriptor or ``subprocess.DEVNULL``), its output
    on two pipes, exactly ``env``, in ``cwd``, under ``umask`` (-1: this process's), in a
    session of its own; raises ``OSError`` when it cannot start (``spawn_error_text``)."""
    with _outside_the_group():
        return subprocess.Popen(
            list(argv),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            umask=umask,
        )


# Linux's MAX_ARG_STRLEN: the longest single argument or NAME=value exec takes.
_MAX_EXEC_STRING = 32 * 4096 - 1


def exec_too_large(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """Why exec would refuse ``argv`` and ``env`` with E2BIG, or None.

    Searching PATH, the kernel's E2BIG can be hidden behind a later directory's
    EACCES, so the size is judged here rather than read from the error."""
    strings = [os.fsencode(arg) for arg in argv]
    strings += [os.fsencode(f"{name}={value}") for name, value in env.items()]
    longest = max((len(item) for item in strings), default=0)
    total = sum(len(item) + 1 for item in strings)
    limit = os.sysconf("SC_ARG_MAX") if "SC_ARG_MAX" in os.sysconf_names else 2**21
    if longest <= _MAX_EXEC_STRING and total <= limit:
        return None
    return (
        f"its arguments and environment are too large to start a program ({total:,} bytes, "
        f"the longest {longest:,}; the kernel takes {_MAX_EXEC_STRING:,} a string and "
        f"{limit:,} in all): put large data in a file"
    )


def spawn_error_text(
    argv: Sequence[str], env: Mapping[str, str], cwd: str | None, exc: OSError
) -> str:
    """Why ``argv`` could not start (``exc``, raised by ``spawn``), for the run's error."""
    program = argv[0] if argv else ""
    if exc.errno in (errno.E2BIG, errno.EACCES) and (why := exec_too_large(argv, env)):
        return f"cannot start {program!r}: {why}"
    if isinstance(exc, FileNotFoundError):
        if cwd is not None and exc.filename == cwd:
            return f"working directory not found: {cwd}"
        if os.sep in program and os.path.isfile(program):
            return f"cannot run {program!r}: the interpreter on its #! line was not found"
        return f"interpreter {program!r} not found"
    if isinstance(exc, PermissionError):
        return f"permission denied running {program!r}"
    return f"cannot start {program!r}: {exc.strerror or exc}"
