"""A child's process tree, found from /proc: its members are recorded, signalled and
ended, so that nothing a script started outlives it. Linux only."""

from __future__ import annotations

import errno
import math
import os
import signal
import threading
import time
from collections import defaultdict
from contextlib import suppress
from typing import NamedTuple


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


class ProcessTree:
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


def kill_pipe_holders(inodes: set[int]) -> None:
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


def has_exited(pid: int) -> bool:
    """Whether child ``pid`` has exited (or is not this process's child), leaving it
    unreaped."""
    # WNOWAIT leaves the child a zombie: until it is reaped its pid, which is also
    # its group id, cannot be reused, so signalling the group stays safe.
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def open_pidfd(pid: int) -> int | None:
    """A descriptor readable once ``pid`` exits (pidfd_open); None where there is none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None
