"""Runs whose worker is gone, and runs whose delivery was lost.

* A ``running`` run whose heartbeat is older than ``livenessTimeoutMs`` is
  finished as ``error`` saying which worker went silent and when. Bound: the
  timeout plus one check interval (30 s + 5 s by default).
* A ``running`` run whose worker process was on this host and no longer exists
  is finished at once, and whatever its script left running is ended. This is
  also how a restarted scheduler recovers what its previous life left behind.
* A ``pending`` run older than ``pendingRedispatchMs`` is dispatched again: its
  task may have been lost (Redis is at-most-once, a dead cluster held it). A
  duplicate delivery is harmless, since only one can start the run. Each run is
  dispatched again after the bound, then after twice as long each time (capped),
  so runs that are only waiting for a free worker do not flood the queue.

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
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import psutil
from django.conf import settings
from django.db.models import Q

from jeeves_site.database import database_url
from runner import dispatch, notify
from runner.models import Run, RunStatus

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
    """The checks, with the memory of which pending runs were dispatched again when."""

    def __init__(
        self,
        dispatcher: Callable[[Iterable[int]], int] = dispatch.dispatch,
        host: str | None = None,
    ) -> None:
        self._dispatch = dispatcher
        self.host = host or socket.gethostname()
        self._retries: dict[int, tuple[datetime, int]] = {}

    def check(self, now: datetime) -> bool:
        """All three checks; True if any found work."""
        dead = self.reap_dead_local(now)
        silent = self.reap_silent(now)
        return self.redispatch_pending(now) or dead or silent

    def reap_silent(self, now: datetime) -> bool:
        """Finish running runs whose worker has not sent a heartbeat within the timeout."""
        timeout = timedelta(milliseconds=settings.RUNNER.liveness_timeout_ms)
        cutoff = now - timeout
        silent = Run.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
        found = False
        for run in silent.order_by("heartbeat_at")[:BATCH]:
            reason = (
                f"worker {run.worker} stopped sending heartbeats at {_iso(run.heartbeat_at)} "
                f"(none for {timeout.total_seconds():g} s); the run was declared dead"
            )
            found |= _finish_dead(run, reason, now, heartbeat_at__lt=cutoff)
        return found

    def reap_dead_local(self, now: datetime) -> bool:
        """Finish running runs whose worker process on this host no longer exists."""
        mine = Run.objects.filter(status=RunStatus.RUNNING, worker__startswith=f"{self.host}:")
        found = False
        for run in mine.order_by("id")[:BATCH]:
            pid = _pid_of(run.worker)
            if pid is None or _alive(pid, run.started_at):
                continue
            ended = end_orphaned_scripts(run.pk)
            reason = f"worker {run.worker} died (process {pid} is gone) while the run was going"
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
            .order_by("id")
            .values_list("pk", flat=True)[:BATCH]
        )
        stale = list(stale)
        self._retries = {pk: retry for pk, retry in self._retries.items() if pk in set(stale)}
        due = [pk for pk in stale if pk not in self._retries or self._retries[pk][0] <= now]
        for pk in due:
            tries = self._retries.get(pk, (now, 0))[1] + 1
            wait = min(bound * 2**tries, MAX_REDISPATCH_BACKOFF)
            self._retries[pk] = (now + wait, tries)
        if due:
            logger.info("dispatching again %d run(s) still pending after %s", len(due), bound)
            self._dispatch(due)
        return bool(due)


def _finish_dead(run: Run, reason: str, now: datetime, **still: object) -> bool:
    """Finish ``run`` as error if it is still running and matches ``still``; announce it."""
    duration_ms = (
        max(0, int((now - run.started_at).total_seconds() * 1000)) if run.started_at else None
    )
    changed = Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, **still).update(
        status=RunStatus.ERROR, finished_at=now, error=reason, duration_ms=duration_ms
    )
    if not changed:
        return False
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
