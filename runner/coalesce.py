"""Overload coalescing: pending runs that their job's schedule has overtaken are skipped.

When more runs are due than workers can start, or a restart finds runs left
pending, a pending scheduled run is finished as ``skipped`` (never started late)
under the same policies as missed fires:

* its job has overlap policy ``skip`` and missed-fire policy ``skip`` or ``latest``, and
* it is more than ``LATE_FIRE_IS_MISSED`` (10 s) past its instant — the lateness at
  which the scheduler, too, counts a fire as missed — and its job has fired again
  since (the schedule's next instant after the run's is due); or it is older than
  ``missedFireWindowMs``.

The 10 s keeps a job whose runs are picked up a little late from having every run
overtaken by the next: each run gets 10 s to start.

Runs of ``all`` jobs and of ``allow`` jobs are kept (each slot was asked for), and
so are manual runs. ``stale_reason`` is the one rule; the scheduler's ``sweep``
and the worker about to start a run (``runner.tasks``) both call it, and both
finish the run by the same conditional update, so a run is skipped or started,
never both.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection

from runner import schedule
from runner.models import MissedFirePolicy, OverlapPolicy, Run, RunStatus, RunTrigger
from runner.scheduler import LATE_FIRE_IS_MISSED

logger = logging.getLogger(__name__)

# What the rule reads of a run and its job (``Run.objects.values(*RUN_FIELDS)``).
RUN_FIELDS = (
    "trigger", "scheduled_for", "job__overlap_policy", "job__missed_fire_policy",
    "job__schedule", "job__timezone",
)  # fmt: skip
COALESCED_POLICIES = (MissedFirePolicy.SKIP, MissedFirePolicy.LATEST)
# Runs examined per sweep; the rest wait for the next one (a second later).
SWEEP_BATCH = 2000


def stale_reason(run: Mapping[str, Any], now: datetime) -> str | None:
    """Why the pending run ``run`` (``RUN_FIELDS``) must be skipped at ``now``; None to keep it.

    Raises nothing: a schedule that cannot be computed keeps the run (the scheduler
    reports such jobs as failed registrations).
    """
    policy = run["job__missed_fire_policy"]
    if (
        run["trigger"] != RunTrigger.SCHEDULE
        or run["scheduled_for"] is None
        or run["job__overlap_policy"] != OverlapPolicy.SKIP
        or policy not in COALESCED_POLICIES
    ):
        return None
    window = timedelta(milliseconds=settings.RUNNER.missed_fire_window_ms)
    if now - run["scheduled_for"] > window:
        return (
            f"skipped: still pending past the missed-fire window ({_seconds(window)}) "
            f"after its instant (overlap skip, missed-fire policy {policy})"
        )
    if now - run["scheduled_for"] <= LATE_FIRE_IS_MISSED:
        return None
    zone = run["job__timezone"] or settings.TIME_ZONE
    try:
        following = schedule.next_fire_after(run["job__schedule"], zone, run["scheduled_for"])
    except (ValueError, KeyError):
        return None
    if following > now:
        return None
    return (
        "skipped: the job fired again and this run was still waiting to start "
        f"{_seconds(LATE_FIRE_IS_MISSED)} after its instant "
        f"(overload coalescing: overlap skip, missed-fire policy {policy})"
    )


def skip(run_ids: list[int], reason: str, now: datetime) -> int:
    """Finish these runs as skipped with ``reason`` if they are still pending; how many were."""
    return Run.objects.filter(pk__in=run_ids, status=RunStatus.PENDING).update(
        status=RunStatus.SKIPPED, finished_at=now, error=reason
    )


def skip_if_stale(run_id: int, run: Mapping[str, Any], now: datetime) -> bool:
    """For a worker about to start pending run ``run_id``: skip it if stale; True if skipped."""
    reason = stale_reason(run, now)
    return bool(reason) and skip([run_id], reason, now) == 1


# The reason of a run a starting scheduler finds overtaken: it was left pending by a
# runner that stopped (or handed back at its stop), not skipped for want of a worker,
# so ``runner.health`` does not count it as an overload.
AT_START = "skipped: found pending when the scheduler started, overtaken by its job's schedule"


def sweep(now: datetime, started_at: datetime | None = None) -> int:
    """Skip the stale pending runs (up to ``SWEEP_BATCH``, oldest first); return how many.
    ``started_at``: when the sweeping scheduler started; a run due before it waited for a
    runner that stopped, not for a worker, and its reason says so (``AT_START``). At the
    start itself it is ``now``; later sweeps find the runs that were not yet overtaken
    then (a restart within seconds of the stop that handed them back).

    One read of the candidates (served by the ``runs_active`` index) and one
    UPDATE per distinct reason; when no scheduled run is pending that late, one
    small hand-written probe instead (the loop sweeps every second, idle or not).
    """
    if not _any_late_pending(now - LATE_FIRE_IS_MISSED):
        return 0
    candidates = (
        Run.objects.filter(
            status=RunStatus.PENDING,
            trigger=RunTrigger.SCHEDULE,
            scheduled_for__lt=now - LATE_FIRE_IS_MISSED,
            job__overlap_policy=OverlapPolicy.SKIP,
            job__missed_fire_policy__in=COALESCED_POLICIES,
        )
        .order_by("scheduled_for")
        .values("pk", *RUN_FIELDS)[:SWEEP_BATCH]
    )
    by_reason: dict[str, list[int]] = {}
    for run in candidates:
        reason = stale_reason(run, now)
        if reason and started_at is not None and run["scheduled_for"] < started_at:
            reason = f"{AT_START} (missed-fire policy {run['job__missed_fire_policy']})"
        if reason:
            by_reason.setdefault(reason, []).append(run["pk"])
    skipped = sum(skip(ids, reason, now) for reason, ids in by_reason.items())
    if skipped:
        logger.debug("%d pending run(s) overtaken by their job's schedule were skipped", skipped)
    return skipped


def _any_late_pending(before: datetime) -> bool:
    """Whether any scheduled run still pending was due before ``before`` (an index on
    status serves it: few runs are pending)."""
    with connection.cursor() as cursor:
        cursor.execute(_LATE_PENDING_SQL, [_adapt(before)])
        return cursor.fetchone() is not None


def _adapt(moment: datetime):
    return connection.ops.adapt_datetimefield_value(moment)


# Literal values, so a planner may use a partial index on status (never user input).
_LATE_PENDING_SQL = (
    f"SELECT 1 FROM runs WHERE status = '{RunStatus.PENDING.value}' "
    f"AND \"trigger\" = '{RunTrigger.SCHEDULE.value}' AND scheduled_for < %s LIMIT 1"
)


def _seconds(span: timedelta) -> str:
    return f"{span.total_seconds():g} s"
