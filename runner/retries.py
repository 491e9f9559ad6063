"""Retries (issue 16): a failed or timed-out run is tried again as a new run.

Per job, ``retries`` (default 0) attempts after the first and ``retry_backoff_s``
(default 30 s) before the first of them, doubling for each further one, at most
``MAX_BACKOFF_S`` apart. A retry is a ``Run`` with trigger ``retry``, ``retry_of``
the run it tries again and ``attempt`` one more than that run's; its
``scheduled_for`` is the failed run's end plus the backoff. A retry of a catch-up
run is a catch-up run too: under overlap ``skip`` it waits its turn, after the missed
slots still waiting, as the run it retries did (``runner.catchup``).

* ``schedule_retry`` is called where a run is finished (``notify.run_finished``,
  which every finishing path calls). The unique constraint on ``retry_of`` makes
  it exactly-once: of two processes seeing the same failure, one inserts the
  retry, and both learn that it exists.
* A job with overlap policy ``skip`` is never retried past its next scheduled
  fire: that fire tries again anyway. The failed run's ``notes`` say so.
* ``RetryDispatcher.dispatch_due`` (the scheduler's periodic check) hands a
  pending retry to the workers through the normal dispatch path once its instant
  is within the dispatch lead, like a fire. ``Run.start`` then applies the same
  overlap rule as to a scheduled run, and the worker pool the same concurrency.
  A retry that was never dispatched (a scheduler restart) is picked up by the
  liveness check's re-dispatch of stale pending runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction

from runner import dispatch
from runner.models import OverlapPolicy, Run, RunStatus, RunTrigger

logger = logging.getLogger(__name__)

RETRIED_STATUSES = (RunStatus.ERROR, RunStatus.TIMEOUT)
# Two attempts are never further apart than this, however many doublings.
MAX_BACKOFF_S = 3600
# Pending retries looked at per check; the rest wait for the next one.
BATCH = 500


def backoff(first_s: int, attempt: int) -> timedelta:
    """The wait after failed attempt ``attempt`` (1 = the first run): ``first_s``
    doubled per earlier retry, at most ``MAX_BACKOFF_S``."""
    return timedelta(seconds=min(first_s * 2 ** max(0, attempt - 1), MAX_BACKOFF_S))


def schedule_retry(run: Run) -> bool:
    """Record the retry of finished run ``run`` if its job calls for one.

    Returns True when a retry of ``run`` exists (this call or another process
    inserted it), False when the run is final: not failed, out of attempts, or
    its retry would come after the job's next scheduled fire (overlap ``skip``).
    """
    job = run.job
    if run.status not in RETRIED_STATUSES or run.attempt > job.retries:
        return False
    finished = run.finished_at or run.created_at
    at = finished + backoff(job.retry_backoff_s, run.attempt)
    if job.overlap_policy == OverlapPolicy.SKIP:
        following = _next_fire(job, finished)
        if following is not None and at >= following:
            _note(run, f"not retried: the retry at {_iso(at)} would come after the next "
                  f"scheduled fire at {_iso(following)} (overlap skip)")  # fmt: skip
            return False
    try:
        with transaction.atomic():
            retry = Run.objects.create(
                job=job,
                trigger=RunTrigger.RETRY,
                scheduled_for=at,
                retry_of=run,
                attempt=run.attempt + 1,
                catch_up=run.catch_up,
            )
    except IntegrityError:  # another process recorded it (or the job is gone)
        return Run.objects.filter(retry_of=run).exists()
    logger.info(
        "run %s of %s failed (%s); retry %d of %d is run %s at %s",
        run.pk, job.pk, run.status, run.attempt, job.retries, retry.pk, _iso(at),
    )  # fmt: skip
    return True


class RetryDispatcher:
    """Dispatches pending retries when they are due; remembers what it sent.

    A retry dispatched twice (another scheduler, a restart) is harmless: the run
    row decides who starts it (``runner.dispatch``).
    """

    def __init__(self, dispatcher: Callable[[Iterable[int]], int] = dispatch.dispatch) -> None:
        self._dispatch = dispatcher
        self._sent: set[int] = set()

    def dispatch_due(self, now: datetime, ahead: timedelta = timedelta(0)) -> bool:
        """Dispatch the pending retries due within the dispatch lead (plus ``ahead``: the
        time to the caller's next look) of ``now``. The worker waits for each one's
        instant (``runner.pool``), up to the lead and a second beyond it."""
        horizon = now + timedelta(milliseconds=settings.RUNNER.dispatch_lead_ms) + ahead
        due = list(
            Run.objects.filter(
                status=RunStatus.PENDING, trigger=RunTrigger.RETRY, scheduled_for__lte=horizon
            )
            .order_by("scheduled_for", "id")
            .values_list("pk", flat=True)[:BATCH]
        )
        new = [pk for pk in due if pk not in self._sent]
        self._sent = set(due)  # forget what is no longer pending
        if new:
            self._dispatch(new)
        return bool(new)


def _next_fire(job, moment: datetime) -> datetime | None:
    try:
        return job.next_fire_after(moment)
    except (ValueError, KeyError):  # a schedule that no longer loads
        return None


def _note(run: Run, text: str) -> None:
    notes = f"{run.notes}\n{text}".strip()
    Run.objects.filter(pk=run.pk).update(notes=notes)
    run.notes = notes


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")
