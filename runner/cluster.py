"""A django-q2 cluster hosted inside our own daemons (``runscheduler``, ``runworkers``).

Three things stock django-q2 1.11 gets wrong for a job runner, fixed here:

* SIGTERM to the whole process group (systemd's default, ``kill -- -PGID``) kills
  the sentinel and its workers outright, and the main process then hangs in
  ``Cluster.stop``. Every cluster process here gets a Python handler that only
  sets ``worker_state.STOPPING`` (not SIG_IGN, which scripts would inherit), and
  TERM/INT stay blocked across the fork so there is no window without it.
* A stop lets running tasks run forever. Here a worker that is told to stop
  gives its runs the shutdown grace, then cancels them with a reason, so each run
  is recorded as ended by the stop.
* A worker spawns its scripts with vfork, stepping out of the runner's process
  group while it does, so that a group SIGTERM cannot land in a child that has
  not yet left the group (``runner.execution.spawn.allow_fast_spawn``).
* One task occupies a worker process until it returns. Here the task only gives
  its run to the process's pool (``runner.pool``), which runs up to
  ``maxConcurrency`` of them on threads; the cluster has one worker process.
* Killing the main process (or the sentinel) with SIGKILL leaves orphans that
  keep claiming tasks. Each cluster process watches its parent: an orphaned
  sentinel stops its cluster the ordinary way, orphaned workers finish or cancel
  their run and exit, an orphaned pusher or monitor exits at once.
* The sentinel replaces a dead worker but not a frozen one (SIGSTOP, a hang holding
  the interpreter), and nothing starts on the host until it wakes. Here each worker
  beats into a shared value; the sentinel kills a worker frozen for
  ``livenessTimeoutMs`` (``WorkerWatchdog``), and the ordinary replacement follows.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable

import psutil
from django.conf import settings
from django.db import connections
from django_q import cluster as q_cluster
from django_q.conf import Conf

from runner import pool, worker_state
from runner.execution.spawn import allow_fast_spawn
from runner.stop_report import POLL_S as STOP_REPORT_POLL_S
from runner.stop_report import StopReport

logger = logging.getLogger(__name__)

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
# How often a cluster process checks whether its parent is still there, and how often
# a worker beats (``WorkerBeat``) and the sentinel looks at the beats (``WorkerWatchdog``).
PARENT_CHECK_S = 0.5
# A watchdog that found more than this between two of its looks was stopped itself
# (the whole runner paused: Ctrl-Z, a container or VM paused): silence counts again
# from its waking, not from before the pause.
WATCHDOG_PAUSED_S = 2.0
# Added to the shutdown grace and the kill grace when waiting for a cluster to stop.
STOP_MARGIN_S = 10.0
# How long a kill of the cluster waits for its processes to be gone.
KILL_WAIT_S = 2.0


def _on_stop_signal(signum: int, frame: object) -> None:
    worker_state.STOPPING.set()


class RunnerSentinel(q_cluster.Sentinel):
    """django-q2's sentinel, with safe signal handling and an eye on its parent."""

    def start(self) -> None:
        # Runs in the sentinel after Sentinel.__init__ set SIGINT to SIG_IGN and
        # SIGTERM to SIG_DFL; every process it forks inherits these handlers.
        for number in STOP_SIGNALS:
            signal.signal(number, _on_stop_signal)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        ParentWatch(on_orphaned=self._parent_died).start()
        bound_s = settings.RUNNER.liveness_timeout_ms / 1000
        WorkerWatchdog(lambda: list(self.pool), bound_s).start()
        super().start()

    def _parent_died(self) -> None:
        logger.error("the runner process died; stopping its workers (sentinel %s)", os.getpid())
        _signal_children(os.getpid(), signal.SIGTERM)
        self.stop_event.set()

    def reincarnate(self, process) -> None:
        """As django-q2's, but a dead worker's hold on the task queue is let go first."""
        if process in self.pool:
            free_task_queue(self.task_queue, Conf.WORKERS)
        super().reincarnate(process)

    def spawn_process(self, target: Callable, *args) -> q_cluster.Process:
        """As django-q2 1.11.1's, but each child starts through ``_child_main``, and a
        worker is given the shared value it beats into (``process.beat``)."""
        context = q_cluster.get_mp_context()
        beat = context.RawValue("d", time.monotonic()) if target == q_cluster.worker else None
        process = context.Process(
            target=_child_main,
            args=(target, *args),
            kwargs={"beat": beat},
            name=f"Process-{uuid.uuid4().hex}",
        )
        process.daemon = True
        if target == q_cluster.worker:
            process.daemon = Conf.DAEMONIZE_WORKERS
            process.timer = args[2]
            process.beat = beat
            self.pool.append(process)
        process.start()
        return process


def free_task_queue(task_queue, workers: int) -> bool:
    """Release the task queue's reader lock if a worker died holding it; True if it did.

    A worker waits for its next task inside ``Queue.get`` holding that lock, so a
    worker killed while idle (``kill -9``, the OOM killer) dies holding it, and the
    worker spawned in its place waits on the lock for ever: no run starts again until
    a restart (newcomer probe). With one worker, the only reader, a lock taken while
    that worker is dead can only be the dead one's; with several, whose it is cannot be
    told, and it is left alone.
    """
    lock = task_queue._rlock
    if workers != 1 or lock is None or lock._semlock._get_value() != 0:
        return False
    lock.release()
    logger.warning("the dead worker held the task queue's lock; released it")
    return True


def _child_main(target: Callable, *args, beat=None) -> None:
    """Entry point of a worker, pusher or monitor: watch the parent, then do the work.

    A worker's runs execute on its pool's threads (``runner.pool``), so when
    django-q2's worker loop ends (a poison pill at a stop) the process waits for
    them: runs not yet started are handed back, running ones get the shutdown grace.
    A worker beats into ``beat`` (a shared double, monotonic seconds) all its life.
    """
    # What the process holds now (Django, the settings, django-q2) lives as long as it
    # does: out of the collector's full passes, which otherwise walk it again and again
    # as runs churn through objects (issue 12).
    gc.freeze()
    if target != q_cluster.worker:
        ParentWatch(on_orphaned=lambda: os._exit(0)).start()
        target(*args)
        return
    allow_fast_spawn()
    WorkerBeat(beat).start()
    WorkerGuard().start()
    try:
        target(*args)
    finally:
        pool.close_current()


class ParentWatch(threading.Thread):
    """Calls ``on_orphaned`` once, soon after this process's parent has gone.

    Polls ``getppid`` with plain sleeps: the sentinel forks while this thread
    runs, and a forked child must not inherit a lock this thread held.
    """

    def __init__(self, on_orphaned: Callable[[], None]) -> None:
        super().__init__(name="parent-watch", daemon=True)
        self.parent = os.getppid()
        self.on_orphaned = on_orphaned

    def run(self) -> None:
        while os.getppid() == self.parent:
            time.sleep(PARENT_CHECK_S)
        self.on_orphaned()


class WorkerBeat(threading.Thread):
    """Writes ``time.monotonic()`` into ``beat`` every ``PARENT_CHECK_S`` while the
    process lives: a worker frozen or hung with the interpreter stops beating.

    CLOCK_MONOTONIC is one clock for every process of the machine, so the sentinel
    compares the value with its own reading.
    """

    def __init__(self, beat) -> None:
        super().__init__(name="worker-beat", daemon=True)
        self.beat = beat

    def run(self) -> None:
        while True:
            self.beat.value = time.monotonic()
            time.sleep(PARENT_CHECK_S)


class WorkerWatchdog(threading.Thread):
    """In the sentinel: SIGKILL each worker frozen for ``bound_s`` (its beat standing
    still for that and one beat period).

    django-q2's guard loop then finds the worker dead and spawns another
    (``RunnerSentinel.reincarnate``), and the runs it held are finished by liveness as
    those of a dead worker, with their scripts ended (``runner.liveness``). A SIGTERM
    would wait in a stopped process's queue; SIGKILL ends it stopped or not. Each
    process is killed (and logged) once. A pause of the whole runner (every process
    stopped together, this one too) is not a freeze: silence counts from when the
    watchdog woke (``WATCHDOG_PAUSED_S``). Plain sleeps and no locks: the sentinel forks
    while this thread runs.

    ``workers`` returns the sentinel's worker processes (``process.pid``,
    ``process.beat.value``); ``monotonic`` and ``kill`` are parameters for tests.
    """

    def __init__(
        self,
        workers: Callable[[], Iterable],
        bound_s: float,
        monotonic: Callable[[], float] = time.monotonic,
        kill: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(name="worker-watchdog", daemon=True)
        self.workers = workers
        self.bound_s = bound_s
        self.monotonic = monotonic
        self.kill = kill or _kill
        self.killed: set[int] = set()
        self._looked: float | None = None  # when ``check`` last ran
        self._awake_since = -math.inf  # since when it has run without a pause

    def run(self) -> None:
        while True:
            time.sleep(PARENT_CHECK_S)
            self.check()

    def check(self) -> list[int]:
        """Kill the workers frozen for the bound; return their pids."""
        now = self.monotonic()
        if self._looked is not None and now - self._looked > WATCHDOG_PAUSED_S:
            self._awake_since = now  # paused with the workers, it saw none of their beats
        self._looked = now
        silent = []
        for process in self.workers():
            beat = getattr(process, "beat", None)
            if beat is None or process.pid is None or process.pid in self.killed:
                continue
            silence = now - max(beat.value, self._awake_since)
            # A beat is up to one period old when the worker freezes: only a silence of
            # the bound and a period is a freeze of the bound (helper probe).
            if silence < self.bound_s + PARENT_CHECK_S:
                continue
            self.killed.add(process.pid)
            logger.error(
                "worker %s has not beaten for %.1f s (frozen or hung; livenessTimeoutMs is "
                "%d): killing it so that another worker takes its place",
                process.pid,
                silence,
                round(self.bound_s * 1000),
            )
            self.kill(process.pid)
            silent.append(process.pid)
        return silent


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class WorkerGuard(threading.Thread):
    """Ends a worker's run once a stop's grace has run out, and an orphan's life.

    On a stop (a signal, or the sentinel gone) the running job gets
    ``shutdownGraceMs`` to finish; then it is cancelled and recorded as ended by
    the stop. An orphaned worker exits as soon as it holds no run, since nobody
    will send it another task or a poison pill.
    """

    def __init__(self) -> None:
        super().__init__(name="worker-guard", daemon=True)
        self.parent = os.getppid()
        self.runner = _parent_of(self.parent)

    def run(self) -> None:
        while not worker_state.STOPPING.wait(PARENT_CHECK_S):
            if self._orphaned():
                worker_state.STOPPING.set()
        grace_ms = settings.RUNNER.shutdown_grace_ms
        deadline = time.monotonic() + grace_ms / 1000
        while time.monotonic() < deadline:
            self._exit_if_orphaned_and_idle()
            time.sleep(min(PARENT_CHECK_S, max(0.0, deadline - time.monotonic())))
        if worker_state.cancel_current(self._reason(grace_ms)):
            logger.warning("worker %s ended its run: the shutdown grace ran out", os.getpid())
        while True:
            self._exit_if_orphaned_and_idle()
            time.sleep(PARENT_CHECK_S)

    def _reason(self, grace_ms: int) -> str:
        why = f"the shutdown grace of {grace_ms} ms ran out"
        if self._orphaned():
            return f"runner stopped: its worker cluster died; the run ended when {why}"
        if self.runner is not None and _parent_of(self.parent) != self.runner:
            return f"runner stopped: runner process {self.runner} died; the run ended when {why}"
        return f"runner stopped: the run was still going when {why}"

    def _orphaned(self) -> bool:
        return os.getppid() != self.parent

    def _exit_if_orphaned_and_idle(self) -> None:
        if self._orphaned() and not worker_state.busy():
            os._exit(0)


class RunnerCluster(q_cluster.Cluster):
    """django-q2's cluster, starting a ``RunnerSentinel``."""

    def start(self) -> int:
        # Cluster.start forks with the module's global Sentinel as its target.
        # TERM/INT stay blocked across the fork; RunnerSentinel.start unblocks
        # them once its handlers are in place.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        saved, q_cluster.Sentinel = q_cluster.Sentinel, RunnerSentinel
        try:
            return super().start()
        finally:
            q_cluster.Sentinel = saved
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_cluster(on_stop_signal: Callable[[int, object], None]) -> RunnerCluster:
    """Start the workers in child processes; call from the main thread.

    ``on_stop_signal`` becomes this process's SIGTERM/SIGINT handler in place of
    the cluster's own (which stops the cluster from inside a signal handler).
    """
    cluster = RunnerCluster()  # no broker: a broker opens a DB connection before the fork
    for number in STOP_SIGNALS:
        signal.signal(number, on_stop_signal)
    connections.close_all()  # last before the fork: children must not share a socket
    cluster.start()
    return cluster


def stop_timeout_s() -> float:
    """How long a stop may take: the shutdown grace, the kill grace, and a margin."""
    config = settings.RUNNER
    return (config.shutdown_grace_ms + config.kill_grace_ms) / 1000 + STOP_MARGIN_S


def stop_cluster(cluster: RunnerCluster | None, timeout_s: float | None = None) -> bool:
    """Stop the workers, letting running jobs use the shutdown grace; True if clean.

    The workers are told by signal (they may not have had one if only this
    process was signalled), then django-q2's own stop drains the cluster. If that
    takes longer than ``timeout_s`` every process of the cluster is killed.
    """
    if cluster is None or cluster.sentinel is None:
        return True
    sentinel = cluster.sentinel.pid
    report = StopReport(sentinel)
    _signal_children(sentinel, signal.SIGTERM)
    stopper = threading.Thread(target=cluster.stop, name="cluster-stop", daemon=True)
    stopper.start()
    deadline = time.monotonic() + (stop_timeout_s() if timeout_s is None else timeout_s)
    while stopper.is_alive() and time.monotonic() < deadline:
        stopper.join(min(STOP_REPORT_POLL_S, max(0.0, deadline - time.monotonic())))
        report.check()
    if not stopper.is_alive():
        return True
    logger.error("the worker cluster did not stop in time; killing its processes")
    kill_tree(sentinel)
    return False


def sentinel_alive(cluster: RunnerCluster | None) -> bool:
    """True while the cluster's sentinel process is running."""
    return cluster is not None and cluster.sentinel is not None and cluster.sentinel.is_alive()


def _parent_of(pid: int) -> int | None:
    try:
        return psutil.Process(pid).ppid()
    except psutil.Error:
        return None


def _signal_children(pid: int, number: int) -> None:
    try:
        children = psutil.Process(pid).children()
    except psutil.Error:
        return
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.send_signal(number)


def kill_tree(pid: int, wait_s: float = KILL_WAIT_S) -> None:
    """SIGKILL a process and everything below it; wait up to ``wait_s`` for them to go.

    Gone means exited or a zombie: whoever looks next (liveness, for the runs their
    workers held) must find them dead.
    """
    try:
        root = psutil.Process(pid)
        processes = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    deadline = time.monotonic() + wait_s
    while any(map(_running, processes)) and time.monotonic() < deadline:
        time.sleep(0.01)


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
