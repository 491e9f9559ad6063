"""Run a script as a child process and report what it did.

Django-free on purpose: the runner decides what to run and records the outcome;
this module only starts the process, reads its output within a fixed memory bound,
and makes sure nothing it started outlives it. Linux only (it reads /proc).
"""

from __future__ import annotations

import errno
import functools
import math
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from statestore.values import MAX_BIGINT, json_loads, json_problem

RESULT_PREFIX = "JR_RESULT:"
# A longer line keeps only its end, and a JR_RESULT line that long is ignored.
MAX_LINE_BYTES = 64 * 1024

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


_RESULT_PREFIX_BYTES = RESULT_PREFIX.encode()
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


class LiveTails(NamedTuple):
    """A running child's output so far (see ``run_process``'s ``on_start``).

    ``seen`` is the number of bytes read from both streams: unchanged means the
    tails are unchanged.
    """

    seen: int
    stdout: str
    stderr: str


class _Flag(Protocol):
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


def parse_result_line(line: str) -> dict | None:
    """Return the JSON object of a `JR_RESULT:{...}` line, or None if it is not one.

    NaN and Infinity are refused: they are not JSON and a database JSON column
    would reject them later.
    """
    if not line.startswith(RESULT_PREFIX):
        return None
    try:
        value = json_loads(line[len(RESULT_PREFIX) :])
    except (ValueError, RecursionError):
        return None
    # Too deep or a huge integer: ignored like a line that is not JSON (text is made
    # storable later, by RunOutcome.storable).
    if not isinstance(value, dict) or json_problem(value, strings=False):
        return None
    return value


def _tokens(result: dict | None) -> int | None:
    tokens = (result or {}).get("tokens")
    # Beyond 64 bits the runs.tokens column cannot hold it, and the run could not finish.
    if isinstance(tokens, int) and not isinstance(tokens, bool) and 0 <= tokens <= MAX_BIGINT:
        return tokens
    return None


class _StreamTail:
    """The last lines of one output stream, kept within a fixed memory bound."""

    def __init__(self, max_lines: int, parse_results: bool) -> None:
        self.lines: deque[bytes] = deque(maxlen=max_lines)
        self.total_bytes = 0
        self.truncated = False
        self.result: dict | None = None
        self._parse_results = parse_results
        self._partial = b""
        self._partial_cut = False

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes read from the stream."""
        self.total_bytes += len(chunk)
        data = self._partial + chunk
        *complete, partial = data.split(b"\n")
        if complete:
            self._take(complete, data)
            self._partial_cut = False
        self._partial = self._cap_partial(partial)

    def close(self) -> None:
        """Take the last line when the stream did not end with a newline."""
        if self._partial:
            self._take([self._partial], self._partial)
        self._partial = b""

    def text(self) -> str:
        """Return the kept lines, decoded line by line, joined by newlines."""
        return _joined(self.lines)

    def live_lines(self) -> list[bytes]:
        """The lines ``text`` would keep if the stream ended now (a partial last line
        counts as one), within the same bound; a copy, for another thread to decode."""
        lines = list(self.lines)
        if self._partial:
            lines.append(self._partial)
        limit = self.lines.maxlen or 0
        return lines[-limit:] if limit else []

    def _take(self, lines: list[bytes], data: bytes) -> None:
        # Every line is checked for a result, not only the kept ones.
        if self._parse_results and _RESULT_PREFIX_BYTES in data:
            self._scan_results(lines)
        self._keep(lines)

    def _scan_results(self, lines: list[bytes]) -> None:
        for index, line in enumerate(lines):
            cut = len(line) > MAX_LINE_BYTES or (index == 0 and self._partial_cut)
            if line.startswith(_RESULT_PREFIX_BYTES) and not cut:
                result = parse_result_line(line.decode("utf-8", "replace"))
                self.result = result if result is not None else self.result

    def _keep(self, lines: list[bytes]) -> None:
        max_lines = self.lines.maxlen or 0
        kept = lines[max(0, len(lines) - max_lines) :] if max_lines else []
        if len(kept) < len(lines) or len(self.lines) + len(kept) > max_lines:
            self.truncated = True
        for line in kept:
            if len(line) > MAX_LINE_BYTES:
                line = _keep_end(line)
                self.truncated = True
            self.lines.append(line)

    def _cap_partial(self, partial: bytes) -> bytes:
        if len(partial) <= MAX_LINE_BYTES:
            return partial
        self._partial_cut = True
        self.truncated = True
        return _keep_end(partial)


def _joined(lines) -> str:
    return "\n".join(line.decode("utf-8", "replace") for line in lines)


def _keep_end(line: bytes) -> bytes:
    end = line[-MAX_LINE_BYTES:]
    # Start on a character boundary: skip up to three UTF-8 continuation bytes.
    start = 0
    while start < 3 and start < len(end) and end[start] & 0xC0 == 0x80:
        start += 1
    return end[start:]


class _Proc(NamedTuple):
    ppid: int
    pgrp: int
    sid: int
    start: int  # start time in clock ticks: tells a pid's reuse apart
    zombie: bool


def _scan_processes() -> dict[int, _Proc]:
    """Read every process's parent, group, session and start time from /proc."""
    processes = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            proc = _read_stat(int(name))
            if proc is not None:
                processes[int(name)] = proc
    return processes


def _read_stat(pid: int) -> _Proc | None:
    """The process's stat, or None if it is gone; raises ``OSError`` when this process
    cannot look (out of descriptors or memory), which is not the same as gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError as exc:
        if exc.errno in _CANNOT_LOOK:
            raise
        return None
    # The command name is in parentheses and may itself contain them.
    fields = data[data.rfind(b")") + 2 :].split()
    if len(fields) < 20:
        return None  # the process vanished while being read
    return _Proc(
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        sid=int(fields[3]),
        start=int(fields[19]),
        zombie=fields[0] == b"Z",
    )


_CANNOT_LOOK = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})
_scan_lock = threading.Lock()
_last_scan: tuple[float, dict[int, _Proc]] = (-math.inf, {})
# A scan of /proc reads every process's stat file: milliseconds on a busy host. The
# periodic tracking of every child of this process shares one scan this recent.
_SHARED_SCAN_S = 0.05


def _shared_scan(not_before: float) -> dict[int, _Proc]:
    """A scan of every process, taken at ``not_before`` or later and at most
    ``_SHARED_SCAN_S`` ago; one for all the children this process tracks at about the
    same moment (a burst of runs), instead of one each (issue 12). Read-only."""
    global _last_scan
    with _scan_lock:  # a thread that finds the scan too old scans; the others wait for it
        taken, processes = _last_scan
        now = time.monotonic()
        if taken < not_before or now - taken > _SHARED_SCAN_S:
            processes = _scan_processes()
            _last_scan = (now, processes)
        return processes


class _ProcessTree:
    """The child's session and every live process known to descend from it.

    The child leads its own session and process group (start_new_session), so a
    group signal reaches most of its tree. Processes that left the group are found
    by session id, by parentage, or because an earlier scan recorded them; one that
    double-forked and called setsid before any scan saw it cannot be found.
    """

    def __init__(self, root: int) -> None:
        self.root = root
        self._known: dict[int, int] = {}  # pid -> start time

    # A scan that cannot be made (this process is out of descriptors) must not end the
    # script (helper probe): the members recorded before are kept, and the tree counts
    # as alive until a scan says otherwise.

    def track(self, not_before: float) -> None:
        """Record the current members, so orphans can be found later, from a scan of
        /proc taken at ``not_before`` (time.monotonic) or later, maybe shared."""
        with suppress(OSError):
            self._known = self._members(_shared_scan(not_before))

    def alive(self) -> bool:
        """Whether any member other than the child itself is still alive."""
        try:
            return bool(self._members(_scan_processes()))
        except OSError:
            return True

    def signal(self, sig: int) -> None:
        """Send `sig` to the child and every member found now or recorded before."""
        # Scan before signalling: a member that dies first orphans its children and
        # they could no longer be found by parentage.
        with suppress(OSError):
            self._known = self._members(_scan_processes())
        _send_group(self.root, sig)
        for pid in self._known:
            _send(pid, sig)

    def kill_rest(self) -> bool:
        """SIGKILL what is left once the child is done; cheap when no scan ever found
        a member. Return whether members were found and killed."""
        if self._known:
            self.signal(signal.SIGKILL)
        else:
            _send_group(self.root, signal.SIGKILL)
        return bool(self._known)

    def _members(self, processes: dict[int, _Proc]) -> dict[int, int]:
        seeds = [self.root]
        seeds += [pid for pid, p in processes.items() if self.root in (p.pgrp, p.sid)]
        seeds += [
            pid
            for pid, start in self._known.items()
            if pid in processes and processes[pid].start == start
        ]
        found = _descendants(seeds, processes)
        found.difference_update({self.root, os.getpid()})
        return {pid: processes[pid].start for pid in found if not processes[pid].zombie}


def _descendants(seeds: list[int], processes: dict[int, _Proc]) -> set[int]:
    children = defaultdict(list)
    for pid, proc in processes.items():
        children[proc.ppid].append(pid)
    found: set[int] = set()
    stack = list(seeds)
    while stack:
        pid = stack.pop()
        if pid not in found and pid in processes:
            found.add(pid)
            stack.extend(children[pid])
    return found


def _send_group(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _send(pid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _kill_pipe_holders(inodes: set[int]) -> None:
    """SIGKILL every process that holds one of these pipes open.

    Our own direct children are skipped: another job's child may hold the pipe in
    the instant between fork and exec, before its inherited descriptors are closed.
    """
    targets = {f"pipe:[{inode}]" for inode in inodes}
    me = os.getpid()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me and _holds_any(int(name), targets):
            proc = _read_stat(int(name))
            if proc is not None and proc.ppid != me:
                _send(int(name), signal.SIGKILL)


def _holds_any(pid: int, targets: set[str]) -> bool:
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"{fd_dir}/{fd}") in targets:
                return True
        except OSError:
            continue
    return False


def _has_exited(pid: int) -> bool:
    # WNOWAIT leaves the child a zombie: until it is reaped its pid, which is also
    # its group id, cannot be reused, so signalling the group stays safe.
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


class _Supervisor:
    """Reads a started child's output and ends its process tree when it must."""

    def __init__(
        self,
        proc: subprocess.Popen,
        tail_lines: int,
        clock: Callable[[], float],
        cancel: _Flag | None = None,
    ):
        self.proc = proc
        self.stdout = _StreamTail(tail_lines, parse_results=True)
        self.stderr = _StreamTail(tail_lines, parse_results=False)
        self.timed_out = False
        self.cancelled = False
        # Held while output is fed, so another thread can copy the tails (``tails``).
        self._output_lock = threading.Lock()
        self._cancel = cancel
        self._clock = clock
        self._tree = _ProcessTree(proc.pid)
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
        self._pidfd = _open_pidfd(self.proc.pid)
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
        if not _has_exited(self.proc.pid):
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
        return LiveTails(seen, _joined(out), _joined(err))

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
                    _kill_pipe_holders({os.fstat(fd).st_ino for fd in self._selector.get_map()})
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
    cancel: _Flag | None = None,
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
        self, supervisor: _Supervisor, started: float, timeout_s: float | None, grace_s: float
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
    cancel: _Flag | None = None,
    umask: int = -1,
) -> RunningProcess | ProcessResult:
    """Start `argv` as ``run_process`` does and return it running, without waiting:
    the caller (or another thread) calls its ``wait``. A child that cannot start is
    returned as its ``ProcessResult`` (with `error`) at once; nothing is raised."""
    if tail_lines < 0:
        raise ValueError(f"tail_lines must be >= 0, not {tail_lines}")
    started = clock()
    try:
        proc = _spawn(argv, subprocess.DEVNULL, env, cwd, umask)
    except OSError as exc:
        return _not_started(_spawn_error_text(argv, env, cwd, exc), clock() - started)
    return RunningProcess(_Supervisor(proc, tail_lines, clock, cancel), started, timeout_s, grace_s)


def _spawn(
    argv: Sequence[str], stdin: int, env: Mapping[str, str], cwd: str | None, umask: int
) -> subprocess.Popen:
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
        cancel: _Flag | None = None,
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
        supervisor = _Supervisor(self.proc, tail_lines, clock, cancel)
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
            proc = _spawn(
                [HOLD_SHELL, "-c", script, _HOLD_NAME, *argv], read, shell_env, cwd, umask
            )
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
    if program is None or not _is_elf_program(program) or _exec_too_large(argv, env):
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


# Linux's MAX_ARG_STRLEN: the longest single argument or NAME=value exec takes.
_MAX_EXEC_STRING = 32 * 4096 - 1


def _exec_too_large(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
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


def _spawn_error_text(
    argv: Sequence[str], env: Mapping[str, str], cwd: str | None, exc: OSError
) -> str:
    program = argv[0] if argv else ""
    if exc.errno in (errno.E2BIG, errno.EACCES) and (why := _exec_too_large(argv, env)):
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


def _result(supervisor: _Supervisor, elapsed_s: float) -> ProcessResult:
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
        tokens=_tokens(out.result),
        result_meta=out.result,
        signal=-code if code < 0 else None,
        error=None,
    )
