"""Run a script as a child process and report what it did.

Django-free on purpose: the runner decides what to run and records the outcome;
this module only starts the process (``runner.execution.spawn``), reads its output
within a fixed memory bound (``runner.execution.output``), and makes sure nothing it
started outlives it (``runner.execution.tree``). Linux only (it reads /proc).
"""

from __future__ import annotations

import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Protocol

from runner.execution.output import LiveTails, StreamTail, joined, result_tokens
from runner.execution.spawn import spawn, spawn_error_text
from runner.execution.tree import ProcessTree, has_exited, kill_pipe_holders, open_pidfd

_READ_SIZE = 64 * 1024
# How often a running child's descendants are recorded, so that one which escapes
# the session (setsid, then its parent exits) can still be found and ended: soon
# after the start, when scripts start their helpers, then every half second.
_FIRST_TRACK_S = 0.05
_TRACK_EVERY_S = 0.5
# Wake-up interval when the kernel cannot tell us the child exited (no pidfd), and
# while waiting for a terminated tree to die.
_POLL_S = 0.05
# After the child is gone: how long to read what is left in the pipes, and when to
# kill whatever still holds them open.
_DRAIN_S = 1.0
# How long to wait for SIGKILLed leftovers to be gone before returning.
_KILLED_GONE_S = 0.5
_KILL_PIPE_HOLDERS_AFTER_S = 0.1
# How often a wait looks at the caller's cancel flag.
_CANCEL_CHECK_S = 0.1


@dataclass(frozen=True)
class ProcessResult:
    """What a finished (or never started) child process did."""

    exit_code: int | None
    timed_out: bool
    cancelled: bool
    stdout: str
    stderr: str
    stdout_bytes: int
    stderr_bytes: int
    stdout_truncated: bool
    stderr_truncated: bool
    duration_ms: int
    tokens: int | None
    result_meta: dict | None
    signal: int | None
    error: str | None


class CancelFlag(Protocol):
    """What a wait looks at to end the child early (a ``threading.Event``, for one)."""

    def is_set(self) -> bool: ...


class ScriptNotRunnable(ValueError):
    """The script cannot be run: missing, or neither mapped nor executable."""


def default_interpreters() -> dict[str, list[str]]:
    """Return the interpreter map used when none is configured."""
    return {".py": [sys.executable], ".sh": ["bash"], ".js": ["node"]}


def resolve_command(script_path: str, interpreters: Mapping[str, Sequence[str] | str]) -> list[str]:
    """Return the argv that runs `script_path`, choosing the interpreter by extension.

    A file whose extension has no interpreter runs directly if it is executable.
    Raises ScriptNotRunnable otherwise, or when the file does not exist.
    """
    if not os.path.isfile(script_path):
        raise ScriptNotRunnable(f"script not found: {script_path}")
    # Absolute, so the child's cwd does not matter and a bare name is not looked
    # up on PATH.
    path = os.path.abspath(script_path)
    extension = os.path.splitext(path)[1]
    if extension in interpreters:
        return [*_interpreter_argv(extension, interpreters[extension]), path]
    if os.access(path, os.X_OK):
        return [path]
    raise ScriptNotRunnable(
        f"{script_path}: extension {extension or '(none)'!r} has no interpreter mapped "
        "and the file is not executable"
    )


def _interpreter_argv(extension: str, interpreter: Sequence[str] | str) -> list[str]:
    argv = [interpreter] if isinstance(interpreter, str) else list(interpreter)
    if not argv or not argv[0]:
        raise ScriptNotRunnable(f"the interpreter for {extension!r} is empty")
    return argv


@contextmanager
def inline_script_file(
    text: str, suffix: str, *, parent: str | None = None, prefix: str = "jr-inline-"
) -> Iterator[str]:
    """Write `text` to a private temporary file and yield its path.

    The file is mode 0600 in a new directory (mode 0700, named `prefix` + random,
    made in `parent`, default the system's temporary directory), and both are removed
    on leaving the block, however it is left. A runner killed with SIGKILL cannot
    clean up; its directories are found by their prefix.
    """
    if os.sep in suffix:
        raise ValueError(f"suffix must not contain {os.sep!r}: {suffix!r}")
    directory = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        path = os.path.join(directory, "script" + suffix)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            os.fchmod(fd, 0o600)  # exact, whatever the umask
            file.write(text.encode())
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class Supervisor:
    """Reads a started child's output and ends its process tree when it must (the
    child of ``start_process``, or a held one released: ``runner.execution.held``)."""

    def __init__(
        self,
        proc: subprocess.Popen,
        tail_lines: int,
        clock: Callable[[], float],
        cancel: CancelFlag | None = None,
    ):
        self.proc = proc
        self.stdout = StreamTail(tail_lines, parse_results=True)
        self.stderr = StreamTail(tail_lines, parse_results=False)
        self.timed_out = False
        self.cancelled = False
        # Held while output is fed, so another thread can copy the tails (``tails``).
        self._output_lock = threading.Lock()
        self._cancel = cancel
        self._clock = clock
        self._tree = ProcessTree(proc.pid)
        self._started_mono = time.monotonic()  # scans for tracking: none older than this
        self._track_interval = _FIRST_TRACK_S
        self._track_at = clock() + _FIRST_TRACK_S
        # Made by ``run``, on the thread that waits: a burst's spawns do not pay for them.
        self._selector: selectors.BaseSelector | None = None
        self._pidfd: int | None = None

    def _watch(self) -> None:
        # poll(2), not epoll: three descriptors, and no epoll instance to make and close
        # for every child (issue 12).
        self._selector = selectors.PollSelector()
        self._selector.register(self.proc.stdout.fileno(), selectors.EVENT_READ, self.stdout)
        self._selector.register(self.proc.stderr.fileno(), selectors.EVENT_READ, self.stderr)
        # Readable when the child exits, so no polling is needed to notice it. Until
        # the child is waited for it cannot be reaped, so opening it late is safe.
        self._pidfd = open_pidfd(self.proc.pid)
        if self._pidfd is not None:
            self._selector.register(self._pidfd, selectors.EVENT_READ, None)

    def run(self, timeout_s: float | None, grace_s: float, started: float | None = None) -> None:
        """Supervise the child until it and its tree are gone and output is read; the
        timeout counts from ``started`` (on ``clock``; default: now)."""
        try:
            self._watch()
            self._wait_for_exit(timeout_s, grace_s, started)
            if self._tree.kill_rest():
                self._await_tree_gone()
            self.proc.wait()
            self._drain()
        except BaseException:
            self._tree.signal(signal.SIGKILL)
            self.proc.wait()
            raise
        finally:
            self._close()

    def _wait_for_exit(
        self, timeout_s: float | None, grace_s: float, started: float | None
    ) -> None:
        since = self._clock() if started is None else started
        deadline = since + timeout_s if timeout_s is not None else math.inf
        if self._wait(until=deadline, cancellable=True):
            return
        if self._cancel is not None and self._cancel.is_set():
            self.cancelled = True
        else:
            self.timed_out = True
        self._tree.signal(signal.SIGTERM)
        if self._wait(until=self._clock() + grace_s, whole_tree=True):
            return
        self._tree.signal(signal.SIGKILL)
        self._wait(until=math.inf)

    def _wait(self, until: float, whole_tree: bool = False, cancellable: bool = False) -> bool:
        """Read output until the child has exited (and with `whole_tree`, until every
        member of its tree has), or until `until` or, when `cancellable`, until the
        cancel flag is set; return whether the child (or tree) is gone."""
        cancel = self._cancel if cancellable else None
        while True:
            now = self._clock()
            if self._child_exited() and not (whole_tree and self._tree.alive()):
                return True
            if now >= until or (cancel is not None and cancel.is_set()):
                return False
            if now >= self._track_at:
                self._track(now)
            wait = min(until, self._track_at) - now
            if cancel is not None:
                wait = min(wait, _CANCEL_CHECK_S)
            self._pump(wait if self._pidfd is not None else min(wait, _POLL_S))

    def _track(self, now: float) -> None:
        self._tree.track(not_before=self._started_mono)
        self._track_interval = min(self._track_interval * 2, _TRACK_EVERY_S)
        self._track_at = now + self._track_interval

    def _await_tree_gone(self) -> None:
        # SIGKILL is not instant: give the killed a moment, so that a caller looking
        # right after we return finds nothing left.
        deadline = self._clock() + _KILLED_GONE_S
        while self._tree.alive() and self._clock() < deadline:
            time.sleep(_POLL_S / 5)

    def _child_exited(self) -> bool:
        if not has_exited(self.proc.pid):
            return False
        if self._pidfd is not None:
            # It stays readable from now on; keep it from waking every select.
            self._selector.unregister(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        return True

    def _pump(self, timeout: float) -> None:
        for key, _ in self._selector.select(max(timeout, 0)):
            if key.data is None:
                continue  # the pidfd: the caller checks for exit itself
            chunk = os.read(key.fd, _READ_SIZE)
            if chunk:
                with self._output_lock:
                    key.data.feed(chunk)
            else:
                self._selector.unregister(key.fd)

    def tails(self) -> LiveTails:
        """The output so far, as the final result would hold it if the child ended now.

        Safe from any thread; costs a copy of the kept lines under a lock, and the
        decoding outside it, so the thread reading the child's pipes never waits long.
        """
        with self._output_lock:
            seen = self.stdout.total_bytes + self.stderr.total_bytes
            out, err = self.stdout.live_lines(), self.stderr.live_lines()
        return LiveTails(seen, joined(out), joined(err))

    def _drain(self) -> None:
        """Read what is left, never waiting long on a pipe something keeps open."""
        start = self._clock()
        holders_killed = False
        while self._selector.get_map():
            elapsed = self._clock() - start
            if elapsed >= _DRAIN_S:
                for key in self._selector.get_map().values():
                    key.data.truncated = True  # we stopped reading it
                return
            if not holders_killed and elapsed >= _KILL_PIPE_HOLDERS_AFTER_S:
                with suppress(OSError):  # out of descriptors: read on, then give up
                    kill_pipe_holders({os.fstat(fd).st_ino for fd in self._selector.get_map()})
                holders_killed = True
            next_step = _DRAIN_S if holders_killed else _KILL_PIPE_HOLDERS_AFTER_S
            self._pump(next_step - elapsed)

    def _close(self) -> None:
        if self._selector is not None:
            self._selector.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self.proc.stdout.close()
        self.proc.stderr.close()
        with self._output_lock:
            self.stdout.close()
            self.stderr.close()


def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    timeout_s: float | None,
    grace_s: float,
    tail_lines: int,
    clock: Callable[[], float] = time.monotonic,
    cancel: CancelFlag | None = None,
    umask: int = -1,
    on_start: Callable[[Callable[[], LiveTails]], None] | None = None,
) -> ProcessResult:
    """Run `argv` to completion and return what it did.

    The child gets its own session, stdin from /dev/null and exactly `env` (its
    PATH is also where argv[0] is looked up). At `timeout_s` its whole tree gets
    SIGTERM, and SIGKILL `grace_s` later; when the child exits, anything it left
    running is killed. Only the last `tail_lines` lines of each stream are kept.
    A failure to start is reported in `error`, never raised. Setting `cancel`
    (anything with ``is_set()``, e.g. a threading.Event) ends the tree the same
    way as a timeout, and the result says `cancelled`. `umask`, unless -1, is the
    child's umask (the caller's otherwise). `on_start`, once the child runs, is given
    a function that any thread may call for the output so far (``LiveTails``: the
    same bounded tails as the result's stdout and stderr).
    """
    started = start_process(
        argv, env=env, cwd=cwd, timeout_s=timeout_s, grace_s=grace_s,
        tail_lines=tail_lines, clock=clock, cancel=cancel, umask=umask,
    )  # fmt: skip
    if isinstance(started, ProcessResult):
        return started
    if on_start is not None:
        on_start(started.tails)
    return started.wait()


class RunningProcess:
    """A child ``start_process`` started: ``wait`` supervises it to its end.

    ``wait`` may be called on any thread (once); ``tails`` from any thread, any time.
    """

    def __init__(
        self, supervisor: Supervisor, started: float, timeout_s: float | None, grace_s: float
    ) -> None:
        self._supervisor = supervisor
        self._started = started
        self._timeout_s = timeout_s
        self._grace_s = grace_s
        self.tails = supervisor.tails

    @property
    def pid(self) -> int:
        """The child's process id (also its session and process group id)."""
        return self._supervisor.proc.pid

    def wait(self) -> ProcessResult:
        """Read its output until it and its tree are gone (ended at the timeout or
        on cancel, as ``run_process`` says); return what it did."""
        self._supervisor.run(self._timeout_s, self._grace_s, self._started)
        return _result(self._supervisor, self._supervisor._clock() - self._started)


def start_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    timeout_s: float | None,
    grace_s: float,
    tail_lines: int,
    clock: Callable[[], float] = time.monotonic,
    cancel: CancelFlag | None = None,
    umask: int = -1,
) -> RunningProcess | ProcessResult:
    """Start `argv` as ``run_process`` does and return it running, without waiting:
    the caller (or another thread) calls its ``wait``. A child that cannot start is
    returned as its ``ProcessResult`` (with `error`) at once; nothing is raised."""
    if tail_lines < 0:
        raise ValueError(f"tail_lines must be >= 0, not {tail_lines}")
    started = clock()
    try:
        proc = spawn(argv, subprocess.DEVNULL, env, cwd, umask)
    except OSError as exc:
        return _not_started(spawn_error_text(argv, env, cwd, exc), clock() - started)
    return RunningProcess(Supervisor(proc, tail_lines, clock, cancel), started, timeout_s, grace_s)


def _not_started(error: str, elapsed_s: float) -> ProcessResult:
    return ProcessResult(
        exit_code=None,
        timed_out=False,
        cancelled=False,
        stdout="",
        stderr="",
        stdout_bytes=0,
        stderr_bytes=0,
        stdout_truncated=False,
        stderr_truncated=False,
        duration_ms=round(elapsed_s * 1000),
        tokens=None,
        result_meta=None,
        signal=None,
        error=error,
    )


def _result(supervisor: Supervisor, elapsed_s: float) -> ProcessResult:
    code = supervisor.proc.returncode
    out, err = supervisor.stdout, supervisor.stderr
    return ProcessResult(
        exit_code=code if code >= 0 else None,
        timed_out=supervisor.timed_out,
        cancelled=supervisor.cancelled,
        stdout=out.text(),
        stderr=err.text(),
        stdout_bytes=out.total_bytes,
        stderr_bytes=err.total_bytes,
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        duration_ms=round(elapsed_s * 1000),
        tokens=result_tokens(out.result),
        result_meta=out.result,
        signal=-code if code < 0 else None,
        error=None,
    )
