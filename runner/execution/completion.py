"""Do the work of a run this worker holds, under a heartbeat; record and announce it.

``runner.execution.executor`` uses it after starting a run, and a resumed session run
(``runner.execution.sessions``) after taking one over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from functools import lru_cache, partial

from django.utils import timezone

from runner import notify
from runner.execution import live
from runner.execution.scripts import Cancellation
from runner.execution.steps import Steps, blocking, drive
from runner.models import Run, RunOutcome, RunStatus

logger = logging.getLogger(__name__)


def worker_name() -> str:
    """This process's name in ``runs.worker``: host and pid."""
    return _worker_name(os.getpid())


@lru_cache(maxsize=1)
def _worker_name(pid: int) -> str:
    # Once per process (a forked child has another pid): gethostname is a system call,
    # and every run asks for the name two or three times (issue 12).
    return f"{socket.gethostname()}:{pid}"


def complete_run(
    run: Run,
    work: Callable[[Run, threading.Event], RunOutcome],
    cancel: Cancellation | None = None,
) -> Run:
    """Do ``work`` for a run this worker holds, under a heartbeat (``runner.execution.live``,
    which also writes a script's output while it runs); record and announce it.

    ``execute_run`` uses it after starting a run, and a resumed session run after
    taking one over.
    """

    def steps(run: Run, cancel: threading.Event) -> Steps[RunOutcome]:
        return (yield from blocking(partial(work, run, cancel)))

    return drive(complete_run_steps(run, steps, cancel))


def complete_run_steps(
    run: Run,
    work: Callable[[Run, threading.Event], Steps[RunOutcome]],
    cancel: Cancellation | None = None,
) -> Steps[Run]:
    """``complete_run`` with ``work`` given as steps."""
    cancel = cancel or Cancellation()
    with live.current().holding(run, cancel):
        outcome = yield from _outcome(run, cancel, work)
    if not _record(run, outcome):
        logger.warning("run %s was finished elsewhere before its worker reported", run.pk)
        run.refresh_from_db()
        return run
    notify.run_finished(run)
    return run


def _record(run: Run, outcome: RunOutcome) -> bool:
    """``run.finish(outcome)``; if the outcome cannot be stored (a value the database
    refuses), the run still ends: as ``error`` with its exit code, saying why, rather
    than staying ``running`` until the liveness check calls its worker dead."""
    try:
        return run.finish(outcome, timezone.now())
    except Exception as exc:
        logger.exception("run %s: its outcome could not be recorded", run.pk)
        fallback = RunOutcome(
            status=RunStatus.ERROR,
            exit_code=outcome.exit_code,
            error=f"runner error: the run's outcome could not be recorded: {exc!r}"[:2000],
        )
        return run.finish(fallback, timezone.now())


def _outcome(
    run: Run, cancel: threading.Event, work: Callable[[Run, threading.Event], Steps[RunOutcome]]
) -> Steps[RunOutcome]:
    try:
        return (yield from work(run, cancel))
    except Exception as exc:  # the run must end recorded, whatever broke
        logger.exception("run %s failed inside the runner", run.pk)
        return RunOutcome(status=RunStatus.ERROR, error=f"runner error: {exc!r}")
