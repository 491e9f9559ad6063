"""The django-q2 task that executes a run on a worker.

The scheduler dispatches each fire slightly ahead of its instant (``dispatchLeadMs``)
so that broker latency is paid before the fire, not after it; the task waits here
until ``scheduled_for`` and only then starts the run, so ``Run.start`` still
decides overlap and exactly-once at the instant itself.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from runner import coalesce, dispatch, worker_state
from runner.execution.executor import execute_run
from runner.execution.scripts import Cancellation
from runner.execution.sessions import resume_session_run
from runner.models import Run, RunStatus, RunTrigger

logger = logging.getLogger(__name__)

# A worker whose clock runs behind the scheduler's waits at most this much longer
# than the lead; past it, it starts the run by the scheduler's reckoning.
CLOCK_SKEW_ALLOWANCE_S = 1.0


def run_task(run_id: int) -> str:
    """Execute run ``run_id`` if it is still pending; return what became of it.

    Never raises: django-q2 would save and retry a failure, while the run row
    already records everything. A worker that is stopping claims nothing and puts
    the run back on the queue for the next worker.
    """
    try:
        return _run(run_id)
    except Exception:
        logger.exception("run %s could not be executed by this worker", run_id)
        return "failed"


def resume_task(run_id: int, holder: str | None = None) -> str:
    """Follow session run ``run_id`` to its end after its worker died; say what became of it.

    Dispatched by the liveness check for a ``running`` session run with a recorded
    session key whose worker is gone; ``holder`` is that worker, from which alone the
    run is taken over (see ``resume_session_run``). Never raises. A worker that is
    stopping does nothing: the run stays ``running`` and the next check dispatches the
    resume again.
    """
    try:
        if worker_state.STOPPING.is_set():
            return "stopping"
        cancel = Cancellation()
        with worker_state.holding(cancel):
            finished = resume_session_run(run_id, holder=holder, cancel=cancel)
        return finished.status if finished is not None else "gone"
    except Exception:
        logger.exception("run %s could not be resumed by this worker", run_id)
        return "failed"


def _run(run_id: int) -> str:
    if worker_state.STOPPING.is_set():
        return _hand_back(run_id)
    run = (
        Run.objects.filter(pk=run_id)
        .values("status", "job_id", "job__enabled", *coalesce.RUN_FIELDS)
        .first()
    )
    if run is None or run["status"] != RunStatus.PENDING:
        return "gone"
    if run["trigger"] == RunTrigger.SCHEDULE and not run["job__enabled"]:
        return _skip_disabled(run_id)
    if coalesce.skip_if_stale(run_id, run, timezone.now()):  # overtaken: see runner.coalesce
        return "skipped"
    if not _wait_until(run["scheduled_for"]):
        return _hand_back(run_id)
    cancel = Cancellation()
    with worker_state.holding(cancel):
        finished = execute_run(run_id, cancel=cancel)
    return finished.status if finished is not None else "gone"


def _wait_until(moment: datetime | None) -> bool:
    """Sleep until ``moment``; False if the worker started stopping meanwhile."""
    if moment is None:
        return True
    delay = (moment - timezone.now()).total_seconds()
    limit = settings.RUNNER.dispatch_lead_ms / 1000 + CLOCK_SKEW_ALLOWANCE_S
    return not worker_state.STOPPING.wait(min(delay, limit)) if delay > 0 else True


def _hand_back(run_id: int) -> str:
    dispatch.dispatch([run_id])
    logger.info("worker is stopping; run %s goes back on the queue", run_id)
    return "handed back"


def _skip_disabled(run_id: int) -> str:
    reason = "skipped: the job was disabled before this fire started"
    run = Run.objects.filter(pk=run_id).first()
    if run is not None:
        run.abandon(reason, timezone.now(), status=RunStatus.SKIPPED)
    return "skipped"
