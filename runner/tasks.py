"""The django-q2 task that executes a run on a worker.

The scheduler dispatches each fire slightly ahead of its instant (``dispatchLeadMs``)
so that broker latency is paid before the fire, not after it. The task hands the run
to this worker process's pool (``runner.pool``) and returns: the pool waits for
``scheduled_for`` on a timer, without holding an execution slot, and only then starts
the run, so ``Run.start`` still decides overlap and exactly-once at the instant itself.
"""

from __future__ import annotations

import logging
import resource
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from runner import catchup, coalesce, dispatch, pool, worker_state
from runner.execution import held, scripts
from runner.execution.completion import worker_name
from runner.execution.executor import execute_run_steps
from runner.execution.scripts import Cancellation
from runner.execution.sessions import resume_session_run
from runner.execution.steps import Steps
from runner.models import JobType, Run, RunStatus, RunTrigger, StartResult

logger = logging.getLogger(__name__)

# A run due at least this far ahead has its child spawned ahead and held before exec
# (``held.hold_process``): a burst's spawns then happen before its instant, and at
# the instant each run costs a write (issue 12, bench/README.md, round seven). A run
# due sooner is spawned when it starts: holding would gain nothing.
HOLD_AHEAD = timedelta(milliseconds=20)
# Descriptors a worker keeps for everything but its runs' children: database and broker
# connections, logs, its own pipes.
RESERVED_FDS = 128


def run_task(run_id: int) -> str:
    """Execute run ``run_id`` if it is still pending; return what became of it.

    Never raises: django-q2 would save and retry a failure, while the run row
    already records everything. Returns once the pool took the run ("accepted"),
    before it ran. A worker that is stopping claims nothing and puts the run back
    on the queue for the next worker.
    """
    return run_tasks([run_id])


def run_tasks(run_ids: list[int]) -> str:
    """``run_task`` for each of ``run_ids``: the task ``runner.dispatch`` queues for up
    to ``RUNS_PER_TASK`` runs, read in one statement and handed to the pool together,
    so that those already due (a task that arrived late) start together too. Never
    raises; says what became of each run, in order."""
    try:
        return ", ".join(_run(run_ids))
    except Exception:
        logger.exception("runs %s could not be executed by this worker", run_ids)
        return ", ".join("failed" for _run_id in run_ids)


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


def _run(run_ids: list[int]) -> list[str]:
    if worker_state.STOPPING.is_set():
        return [hand_back(run_id) for run_id in run_ids]
    loaded = Run.load_many(run_ids)
    outcomes: dict[int, str] = {}
    ready: list[Run] = []
    for run_id in dict.fromkeys(run_ids):
        try:
            outcome = _screen(loaded.get(run_id))
        except Exception:  # this run only: the task's others still go to the pool
            logger.exception("run %s could not be executed by this worker", run_id)
            outcome = "failed"
        if outcome is None:
            ready.append(loaded[run_id])
        else:
            outcomes[run_id] = outcome
    taken = pool.current(_make_pool).submit_many(ready) if ready else []
    for run, accepted in zip(ready, taken, strict=True):
        outcomes[run.pk] = "accepted" if accepted else "handed back"
    return [outcomes[run_id] for run_id in run_ids]


def _screen(run: Run | None) -> str | None:
    """What became of ``run`` before the pool: gone, skipped (its job disabled, or
    overtaken: ``runner.coalesce``); None for a run to submit (its launch made)."""
    if run is None or run.status != RunStatus.PENDING:
        return "gone"
    if run.trigger != RunTrigger.MANUAL and not run.job.enabled:  # fires and retries
        return _skip_disabled(run)
    if coalesce.skip_if_stale(run.pk, _rule_fields(run), timezone.now()):
        return _made_way(run)
    if run.job.type == JobType.SCRIPT:
        _prepare(run)
    return None


def _prepare(run: Run) -> None:
    """Make a script run's launch while it waits for its instant (``scripts.prepare``),
    so that starting it is only the spawn; a run due ``HOLD_AHEAD`` or more from now has
    its child spawned now too, held before exec, and starting it is a write. One that
    cannot be made now is made, and its error recorded, when the run starts."""
    ahead = run.scheduled_for is not None and run.scheduled_for - timezone.now() >= HOLD_AHEAD
    try:
        run.launch = scripts.prepare(run, worker_name(), hold_up_to=held_limit() if ahead else 0)
    except Exception:
        logger.debug("run %s: its launch is made when it starts", run.pk, exc_info=True)


def held_limit() -> int:
    """How many children this worker may hold before their instants at once
    (``held.hold_process``): each keeps three of its descriptors until then, and each
    running run three (two pipes and a pidfd). So the soft RLIMIT_NOFILE (often 1,024)
    less ``RESERVED_FDS`` and ``maxConcurrency`` running runs, a third of the rest; past
    it, a run is spawned at its instant."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return held.MAX_HELD
    free = soft - RESERVED_FDS - 3 * settings.RUNNER.max_concurrency
    return max(0, min(held.MAX_HELD, free // 3))


def _make_pool() -> pool.RunPool:
    return pool.RunPool(settings.RUNNER.max_concurrency, _execute, hand_back, _start)


def _start(runs: list[Run]) -> dict[int, StartResult]:
    """What the pool does with runs come due together: skip those overtaken
    (``runner.coalesce``; they are left out of the answer), start the rest in one
    statement (``Run.start_many``). A catch-up run that must wait its turn
    (``runner.catchup``) is left out too: it stays pending and gives its slot back."""
    now = timezone.now()
    due = [run for run in runs if not coalesce.skip_if_stale(run.pk, _rule_fields(run), now)]
    if not due:
        return {}
    results = Run.start_many(due, worker_name(), timezone.now())
    return {pk: result for pk, result in results.items() if result != StartResult.WAITING}


def _execute(run: Run, started: StartResult) -> Steps[None]:
    """What the pool does with a run ``_start`` tried to start: execute it, as steps
    (``runner.execution.steps``) the pool drives."""
    cancel = Cancellation()
    with worker_state.holding(cancel):
        yield from execute_run_steps(run, cancel=cancel, started=started)


def _rule_fields(run: Run) -> dict:
    """The run as ``coalesce.RUN_FIELDS`` names it."""
    job = run.job
    return {
        "trigger": run.trigger,
        "scheduled_for": run.scheduled_for,
        "job__overlap_policy": job.overlap_policy,
        "job__missed_fire_policy": job.missed_fire_policy,
        "job__schedule": job.schedule,
        "job__timezone": job.timezone,
    }


def hand_back(run_id: int) -> str:
    """Put a run this stopping worker will not start back on the queue for another."""
    dispatch.dispatch([run_id])
    logger.info("worker is stopping; run %s goes back on the queue", run_id)
    return "handed back"


def _skip_disabled(run: Run) -> str:
    reason = "skipped: the job was disabled before this run started"
    run.abandon(reason, timezone.now(), status=RunStatus.SKIPPED)
    return _made_way(run)


def _made_way(run: Run) -> str:
    """A run skipped before it started: its job's next catch-up run may go now."""
    try:
        catchup.wake_next(run, timezone.now())
    except Exception:  # the liveness check's re-dispatch picks the next one up
        logger.exception("could not dispatch the catch-up run after run %s", run.pk)
    return "skipped"
