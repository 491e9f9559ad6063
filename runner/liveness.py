"""Runs whose worker is gone, and runs whose delivery was lost.

* A ``running`` run whose heartbeat is older than ``livenessTimeoutMs`` is
  finished as ``error`` saying which worker went silent and when. Bound: the
  timeout plus one check interval (30 s + 5 s by default). "Older" must hold on
  both clocks a step of the scheduler's own wall clock cannot move: the
  database's (``runner.clocks.database_now``), and this scheduler's monotonic
  clock, over which it has watched the heartbeat stand still for the timeout. So
  a forward step never kills a healthy run, and a scheduler that just started
  waits one timeout before calling a run on another host silent.
* A ``running`` run whose worker process was on this host and no longer exists
  is finished at once, and whatever its script left running is ended. This is
  also how a restarted scheduler recovers what its previous life left behind.
* Either way, a session run whose session key was recorded is not finished but
  resumed: a ``runner.tasks.resume_task`` is dispatched that takes the run over
  from the dead worker and follows its session by the key to its end. Until a
  worker takes it, the resume is dispatched again with the same backoff as below.
  A session run without a key is finished like a script run.
* A ``pending`` run older than ``pendingRedispatchMs`` is dispatched again: its
  task may have been lost (Redis is at-most-once, a dead cluster held it). A
  duplicate delivery is harmless, since only one can start the run. Each run is
  dispatched again after the bound, then after twice as long each time (capped),
  so runs that are only waiting for a free worker do not flood the queue. Catch-up
  runs waiting for their turn behind a sibling (``runner.catchup``) are left out:
  they were not lost, and the sibling's end dispatches the next.

Every change is a conditional update, so several schedulers can run these checks
on one database at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import psutil
from django.conf import settings
from django.db.models import Q

from jeeves_site.database import database_url
from runner import catchup, dispatch, notify
from runner.clocks import database_now
from runner.models import JobType, Run, RunStatus

logger = logging.getLogger(__name__)

MAX_CHECK_INTERVAL = timedelta(seconds=5)
MAX_REDISPATCH_BACKOFF = timedelta(minutes=10)
# Runs handled per check; more wait for the next check.
BATCH = 500
# A pid whose process started this long after the run did belongs to someone else.
PID_REUSE_SLACK_S = 1.0


def check_interval() -> timedelta:
    """How often the liveness checks run: every heartbeat interval, at most 5 s apart."""
    return min(MAX_CHECK_INTERVAL, timedelta(milliseconds=settings.RUNNER.heartbeat_interval_ms))


class Liveness:
    """The checks, with the memory of which runs were dispatched (again) when."""

    def __init__(
        self,
        dispatcher: Callable[[Iterable[int]], int] = dispatch.dispatch,
        host: str | None = None,
        resumer: Callable[[Iterable[tuple[int, str]]], int] = dispatch.dispatch_resume,
        monotonic: Callable[[], float] = time.monotonic,
        database_clock: Callable[[], datetime] = database_now,
    ) -> None:
        self._dispatch = dispatcher
        self._resume = resumer
        self._monotonic = monotonic
        self._database_clock = database_clock
        self.host = host or socket.gethostname()
        # Backoffs are on the monotonic clock (seconds), so a wall step does not freeze them.
        self._retries: dict[int, tuple[float, int]] = {}
        # (run, dead worker) -> (when to dispatch its resume again, how many so far)
        self._resumes: dict[tuple[int, str], tuple[float, int]] = {}
        # running run -> (its heartbeat as last read, monotonic time it was first read so)
        self._watched: dict[int, tuple[datetime | None, float]] = {}

    def check(self, now: datetime) -> bool:
        """All three checks; True if any found work."""
        self._forget_taken_resumes()
        dead = self.reap_dead_local(now)
        silent = self.reap_silent(now)
        return self.redispatch_pending(now) or dead or silent

    def reap_silent(self, now: datetime) -> bool:
        """Finish (or resume) running runs whose worker sent no heartbeat within the timeout.

        ``now`` only stamps ``finished_at``; silence is judged on the database's clock
        and on the monotonic clock (see the module docstring).
        """
        timeout = timedelta(milliseconds=settings.RUNNER.liveness_timeout_ms)
        cutoff = self._database_clock() - timeout
        silent_ids = self._watch_heartbeats(timeout.total_seconds())
        silent = Run.objects.select_related("job").filter(
            pk__in=silent_ids, status=RunStatus.RUNNING, heartbeat_at__lt=cutoff
        )
        found = False
        for run in silent.order_by("heartbeat_at")[:BATCH]:
            if _resumable(run):
                found |= self._resume_dead(run, "went silent")
                continue
            reason = (
                f"worker {run.worker} stopped sending heartbeats at {_iso(run.heartbeat_at)} "
                f"(none for {timeout.total_seconds():g} s); the run was declared dead"
            )
            found |= _finish_dead(
                run,
                reason,
                now,
                # A frozen worker of this host (stopped, swapped out, hung) still has its
                # script running: ended, or the job's next run would overlap it.
                end_scripts=run.worker.startswith(f"{self.host}:"),
                heartbeat_at__lt=cutoff,
                heartbeat_at=run.heartbeat_at,
            )
        return found

    def _watch_heartbeats(self, timeout_s: float) -> list[int]:
        """Note every running run's heartbeat; the ids of those standing still for the timeout."""
        mono = self._monotonic()
        beats = Run.objects.filter(status=RunStatus.RUNNING).values_list("pk", "heartbeat_at")
        watched = {}
        for pk, heartbeat in beats.iterator(2000):
            seen = self._watched.get(pk)
            watched[pk] = seen if seen is not None and seen[0] == heartbeat else (heartbeat, mono)
        self._watched = watched
        return [pk for pk, (_, since) in watched.items() if mono - since >= timeout_s]

    def reap_dead_local(self, now: datetime, killed_at_stop: bool = False) -> bool:
        """Finish (or resume) running runs whose worker process on this host is gone.
        ``killed_at_stop``: this host's workers were just killed because they did not
        stop in time (``cluster.stop_cluster``), which the runs' errors say."""
        mine = Run.objects.select_related("job").filter(
            status=RunStatus.RUNNING, worker__startswith=f"{self.host}:"
        )
        found = False
        for run in mine.order_by("id")[:BATCH]:
            pid = _pid_of(run.worker)
            if pid is None or _alive(pid, run.started_at):
                continue
            if _resumable(run):
                found |= self._resume_dead(run, f"died (process {pid} is gone)")
                continue
            ended = end_orphaned_scripts(run.pk)
            reason = f"worker {run.worker} died (process {pid} is gone) while the run was going"
            if killed_at_stop:
                reason = (
                    f"runner stopped: worker {run.worker} did not stop in time (frozen or "
                    f"hung) and was killed (process {pid} is gone) while the run was going"
                )
            if ended:
                reason += f"; its leftover processes {', '.join(map(str, ended))} were ended"
            found |= _finish_dead(run, reason, now, worker=run.worker)
        return found

    def redispatch_pending(self, now: datetime) -> bool:
        """Dispatch again the pending runs no worker has started within the bound."""
        bound = timedelta(milliseconds=settings.RUNNER.pending_redispatch_ms)
        cutoff = now - bound
        stale = (
            Run.objects.filter(status=RunStatus.PENDING, created_at__lt=cutoff)
            .filter(Q(scheduled_for__isnull=True) | Q(scheduled_for__lt=cutoff))
            .exclude(catchup.WAITING_THEIR_TURN)
            .order_by("id")
            .values_list("pk", flat=True)[:BATCH]
        )
        stale = list(stale)
        mono = self._monotonic()
        self._retries = {pk: retry for pk, retry in self._retries.items() if pk in set(stale)}
        due = [pk for pk in stale if pk not in self._retries or self._retries[pk][0] <= mono]
        for pk in due:
            tries = self._retries.get(pk, (mono, 0))[1] + 1
            self._retries[pk] = (mono + _backoff_s(bound, tries), tries)
        if due:
            logger.info("dispatching again %d run(s) still pending after %s", len(due), bound)
            self._dispatch(due)
        return bool(due)

    def _resume_dead(self, run: Run, what: str) -> bool:
        """Dispatch a resume of session run ``run`` unless one is still within its backoff."""
        memo = (run.pk, run.worker)
        retry = self._resumes.get(memo)
        mono = self._monotonic()
        if retry is not None and retry[0] > mono:
            return False
        tries = (retry or (mono, 0))[1] + 1
        bound = timedelta(milliseconds=settings.RUNNER.pending_redispatch_ms)
        self._resumes[memo] = (mono + _backoff_s(bound, tries), tries)
        key = run.result_meta["sessionKey"]
        logger.warning(
            "run %s of %s: worker %s %s; dispatching a resume of session %s",
            run.pk,
            run.job_id,
            run.worker,
            what,
            key,
        )
        self._resume([memo])
        return True

    def _forget_taken_resumes(self) -> None:
        """Drop resumes whose run is finished or held by another worker by now."""
        if not self._resumes:
            return
        held = set(
            Run.objects.filter(
                pk__in={pk for pk, _ in self._resumes}, status=RunStatus.RUNNING
            ).values_list("pk", "worker")
        )
        self._resumes = {memo: retry for memo, retry in self._resumes.items() if memo in held}


def _backoff_s(bound: timedelta, tries: int) -> float:
    """The wait before dispatching again: the bound doubled per try, capped (seconds)."""
    return min(bound * 2**tries, MAX_REDISPATCH_BACKOFF).total_seconds()


def _resumable(run: Run) -> bool:
    """A session run whose session key was recorded: it can be followed by another worker."""
    return run.job.type == JobType.SESSION and bool((run.result_meta or {}).get("sessionKey"))


def _finish_dead(
    run: Run, reason: str, now: datetime, end_scripts: bool = False, **still: object
) -> bool:
    """Finish ``run`` as error if it is still running and matches ``still``; announce it.
    ``end_scripts``: end what its script runs on this host first (``end_orphaned_scripts``),
    before the announcement lets the job's next run start."""
    duration_ms = (
        max(0, int((now - run.started_at).total_seconds() * 1000)) if run.started_at else None
    )
    changed = Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, **still).update(
        status=RunStatus.ERROR, finished_at=now, error=reason, duration_ms=duration_ms
    )
    if not changed:
        return False
    ended = end_orphaned_scripts(run.pk) if end_scripts else []
    if ended:
        reason += f"; its processes {', '.join(map(str, ended))} were ended"
        Run.objects.filter(pk=run.pk).update(error=reason)
    logger.warning("run %s of %s: %s", run.pk, run.job_id, reason)
    finished = Run.objects.select_related("job").filter(pk=run.pk).first()
    if finished is not None:
        notify.run_finished(finished)
    return True


def _pid_of(worker: str) -> int | None:
    try:
        return int(worker.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def _alive(pid: int, started_at: datetime | None) -> bool:
    """True when ``pid`` runs and could be the worker that started a run at ``started_at``."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # exists, but not ours to inspect
    return started_at is None or created <= started_at.timestamp() + PID_REUSE_SLACK_S


def end_orphaned_scripts(run_id: int) -> list[int]:
    """Terminate processes a dead worker's script left behind; return their pids.

    They are recognised by the variables the runner gave the script: this run's
    ``JR_RUN_ID`` and this database's ``DATABASE_URL`` (another installation on
    the same host numbers its runs too). SIGTERM now, SIGKILL after the kill
    grace, on a thread so the scheduler's loop does not wait.
    """
    wanted = {"JR_RUN_ID": str(run_id), "DATABASE_URL": database_url()}
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            env = process.environ()
        except psutil.Error:
            continue
        if all(env.get(name) == value for name, value in wanted.items()):
            found.append(process)
    for process in found:
        _send(process, signal.SIGTERM)
    if found:
        grace = settings.RUNNER.kill_grace_ms / 1000
        threading.Thread(target=_kill_survivors, args=(found, grace), daemon=True).start()
    return [process.pid for process in found]


def _kill_survivors(processes: list[psutil.Process], grace_s: float) -> None:
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        _send(process, signal.SIGKILL)


def _send(process: psutil.Process, number: int) -> None:
    with contextlib.suppress(psutil.Error):
        process.send_signal(number)


def _iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z" if moment else "never"
