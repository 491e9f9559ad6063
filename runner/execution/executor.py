"""Run one run of a job: the single path every trigger takes.

The scheduler's workers, ``trigger_job``, the admin's "Run now" and the API all
call ``execute_run``. It starts the run only if this delivery wins the run row
(see ``Run.start``), keeps a heartbeat while the job works, records the outcome
and announces it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from django.utils import timezone

from runner import notify
from runner.execution.completion import complete_run_steps, worker_name
from runner.execution.scripts import Cancellation, script_job_steps
from runner.execution.sessions import run_session_job
from runner.execution.steps import Steps, drive
from runner.models import JobType, Run, RunOutcome, StartResult


def _session_job_steps(run: Run, cancel: threading.Event) -> Steps[RunOutcome]:
    return (yield partial(run_session_job, run, cancel))


# A job type's work, as steps (``runner.execution.steps``): a script's child is waited
# for in a step, a session is followed in one.
STEPS_BY_TYPE: dict[str, Callable[[Run, threading.Event], Steps[RunOutcome]]] = {
    JobType.SCRIPT: script_job_steps,
    JobType.SESSION: _session_job_steps,
}


def execute_run(
    run_id: int | Run, worker: str | None = None, cancel: Cancellation | None = None
) -> Run | None:
    """Start, run and finish the run if this delivery wins it; None if another did.

    ``run_id`` may be the run itself, read with its job. Setting ``cancel`` (see
    ``Cancellation.cancel``) ends the job early; the run ends as ``error`` with the
    given reason.
    """
    return drive(execute_run_steps(run_id, worker, cancel))


def execute_run_steps(
    run_id: int | Run,
    worker: str | None = None,
    cancel: Cancellation | None = None,
    started: StartResult | None = None,
) -> Steps[Run | None]:
    """``execute_run`` as steps: the database work where it is driven, the waits yielded.

    ``started``: the run's start was tried already (``Run.start_many``), with this result.
    """
    run = run_id if isinstance(run_id, Run) else Run.load(run_id)
    if run is None:
        return None
    if started is None:
        started = run.start(worker or worker_name(), timezone.now())
    if started in (StartResult.GONE, StartResult.WAITING):  # WAITING: runner.catchup
        return None
    if started == StartResult.SKIPPED:
        run.refresh_from_db()
        notify.run_finished(run)
        return run
    return (yield from complete_run_steps(run, _by_type, cancel))


def _by_type(run: Run, cancel: threading.Event) -> Steps[RunOutcome]:
    return (yield from STEPS_BY_TYPE[run.job.type](run, cancel))


@contextmanager
def cancel_on_signals(
    cancel: Cancellation, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[None]:
    """Turn these signals into a cancellation while the block runs (main thread only).

    So an operator's Ctrl-C ends the script and the run is still recorded, instead
    of the run being left ``running`` for the liveness check to find.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(number: int, frame) -> None:
        cancel.cancel(f"interrupted by {signal.Signals(number).name} before it finished")

    previous = {number: signal.signal(number, handle) for number in signals}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
