"""The clock: when each enabled job fires next, and recording each fire exactly once.

A heap holds (next fire, job id) for enabled jobs, so a tick costs time in the
number of due fires, not of jobs. Each method takes ``now`` from the caller, so
tests drive the clock, and returns whether it found work.

Fires are recorded through ``Run.create_scheduled_many`` (one statement for a batch),
whose unique (job, instant) constraint leaves out a fire another scheduler already
recorded: only the runs this process inserted are dispatched. Dispatch happens ``dispatchLeadMs``
before the instant; the worker waits for the instant itself (see ``runner.tasks``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Count, Max

from runner import dispatch, notify, schedule
from runner.missed import CatchUpBounds, Fire, missed_fires
from runner.models import Job, Run, RunStatus, RunTrigger

logger = logging.getLogger(__name__)

# A fire the loop reaches more than this late (the machine slept, the loop was
# stuck) counts as missed and follows the job's missed-fire policy rather than
# running every slot of the gap.
LATE_FIRE_IS_MISSED = timedelta(seconds=10)
# Edits made without touching ``updated_at`` (a raw UPDATE) still show up this often.
FULL_RESYNC = timedelta(seconds=60)
# SQLite allows 999 parameters per statement in older builds.
LOAD_CHUNK = 500
_JUST_BEFORE = timedelta(microseconds=1)

_PLAN_FIELDS = ("id", "schedule", "timezone", "enabled", "missed_fire_policy", "created_at")
_SIGNATURE_FIELDS = ("id", "updated_at", "enabled", "schedule", "timezone", "missed_fire_policy")


@dataclass(frozen=True)
class Plan:
    """What the scheduler keeps of an enabled job: enough to compute its fires."""

    job_id: str
    schedule: str
    zone_name: str
    policy: str
    version: int = 0

    def next_fire_after(self, moment: datetime) -> datetime:
        """The job's first fire after ``moment``; ValueError/KeyError when it has none."""
        return schedule.next_fire_after(self.schedule, self.zone_name, moment)


class Scheduler:
    """Plans and records fires for every enabled job in the database."""

    def __init__(
        self,
        dispatcher: Callable[[Iterable[int]], int] = dispatch.dispatch,
        lead: timedelta | None = None,
    ) -> None:
        self._dispatch = dispatcher
        self._lead = lead
        self._plans: dict[str, Plan] = {}
        self._heap: list[tuple[datetime, str, int]] = []
        self._versions = itertools.count(1)
        self._signatures: dict[str, tuple] = {}
        self._fingerprint: tuple | None = None
        self._last_full_sync: datetime | None = None
        self.failed: dict[str, str] = {}

    @property
    def lead(self) -> timedelta:
        """How long before its instant a fire is dispatched."""
        if self._lead is not None:
            return self._lead
        return timedelta(milliseconds=settings.RUNNER.dispatch_lead_ms)

    # -- start-up -------------------------------------------------------------

    def start(self, now: datetime) -> bool:
        """Plan every enabled job and record the fires missed since its last one.

        A job's last fire is its newest scheduled run (or its creation); the slots
        between it and ``now`` were missed and follow the job's missed-fire policy.
        Returns whether anything was recorded.
        """
        self._fingerprint = _fingerprint()
        self._signatures = _signatures(Job.objects.all())
        self._last_full_sync = now
        last_fires = _last_scheduled_fires()
        fires: list[Fire] = []
        for row in Job.objects.filter(enabled=True).values(*_PLAN_FIELDS).iterator(2000):
            plan = self._plan(row, now)
            if plan is not None:
                since = max(filter(None, (last_fires.get(plan.job_id), row["created_at"])))
                fires += self._catch_up(plan, since, now)
        self._report_failures(list(self.failed.items()))
        recorded = self._record(fires, now)
        logger.info("%d jobs planned, %d cannot be scheduled", len(self._plans), len(self.failed))
        return recorded > 0

    # -- the tick ---------------------------------------------------------------

    def next_dispatch_at(self) -> datetime | None:
        """When ``fire_due`` next has work: the earliest planned fire minus the lead."""
        while self._heap:
            at, job_id, version = self._heap[0]
            plan = self._plans.get(job_id)
            if plan is not None and plan.version == version:
                return at - self.lead
            heapq.heappop(self._heap)  # an entry for a job since edited or dropped
        return None

    def fire_due(self, now: datetime) -> bool:
        """Record and dispatch every fire due by ``now`` plus the lead."""
        horizon = now + self.lead
        fires: list[Fire] = []
        while self._heap and self._heap[0][0] <= horizon:
            at, job_id, version = heapq.heappop(self._heap)
            plan = self._plans.get(job_id)
            if plan is None or plan.version != version:
                continue
            if now - at > LATE_FIRE_IS_MISSED:
                logger.warning("job %s: reached its fire at %s late; catching up", job_id, at)
                fires += self._catch_up(plan, at - _JUST_BEFORE, now)
                self._push_next(plan, now)
            else:
                fires.append(Fire(job_id, at))
                self._push_next(plan, at)
        return self._record(fires, now) > 0

    def reconcile(self, now: datetime) -> bool:
        """Pick up jobs added, edited, disabled or deleted since the last look.

        Cheap when nothing changed: one aggregate query (count, newest
        ``updated_at``). Otherwise one narrow read of every job's signature, and
        full rows only for the jobs that changed. Every ``FULL_RESYNC`` the
        signatures are read regardless, for edits that bypassed ``updated_at``.
        """
        fingerprint = _fingerprint()
        full_due = self._last_full_sync is None or now - self._last_full_sync >= FULL_RESYNC
        if fingerprint == self._fingerprint and not full_due:
            return False
        self._fingerprint = fingerprint
        if full_due:
            self._last_full_sync = now
        signatures = _signatures(Job.objects.all())
        changed = [job for job, sig in signatures.items() if self._signatures.get(job) != sig]
        deleted = [job_id for job_id in self._signatures if job_id not in signatures]
        self._signatures = signatures
        for job_id in deleted:
            self._drop(job_id, "deleted")
        failures_before = set(self.failed)
        for rows in _chunks(changed, LOAD_CHUNK):
            for row in Job.objects.filter(pk__in=rows).values(*_PLAN_FIELDS):
                self._replan(row, now)
        self._report_failures([(j, e) for j, e in self.failed.items() if j not in failures_before])
        return bool(changed or deleted)

    # -- planning ---------------------------------------------------------------

    def planned(self) -> dict[str, datetime]:
        """Each planned job's next fire (for tests and diagnostics)."""
        live = {job_id: at for at, job_id, version in self._heap if self._is_live(job_id, version)}
        return dict(sorted(live.items()))

    def _is_live(self, job_id: str, version: int) -> bool:
        plan = self._plans.get(job_id)
        return plan is not None and plan.version == version

    def _plan(self, row: dict, now: datetime) -> Plan | None:
        """Plan a job from its row, with its first fire after ``now``; None if it cannot be."""
        plan = Plan(
            job_id=row["id"],
            schedule=row["schedule"],
            zone_name=row["timezone"] or settings.TIME_ZONE,
            policy=row["missed_fire_policy"],
            version=next(self._versions),
        )
        self._plans[plan.job_id] = plan
        self.failed.pop(plan.job_id, None)
        return plan if self._push_next(plan, now) else None

    def _replan(self, row: dict, now: datetime) -> None:
        job_id = row["id"]
        if not row["enabled"]:
            self._drop(job_id, "disabled")
            return
        current = self._plans.get(job_id)
        zone_name = row["timezone"] or settings.TIME_ZONE
        if current is not None and (current.schedule, current.zone_name) == (
            row["schedule"],
            zone_name,
        ):
            self._plans[job_id] = replace(current, policy=row["missed_fire_policy"])
            return
        if self._plan(row, now) is not None:
            logger.info("job %s: planned anew from its edited schedule", job_id)

    def _drop(self, job_id: str, why: str) -> None:
        if self._plans.pop(job_id, None) is not None:
            logger.info("job %s: %s; it fires no more", job_id, why)
        self.failed.pop(job_id, None)

    def _push_next(self, plan: Plan, after: datetime) -> bool:
        """Queue the job's next fire after ``after``; False when it has none (recorded)."""
        try:
            at = plan.next_fire_after(after)
        except (ValueError, KeyError) as exc:
            self._plans.pop(plan.job_id, None)
            self.failed[plan.job_id] = f"schedule {plan.schedule!r} in {plan.zone_name}: {exc}"
            logger.error("job %s cannot be scheduled: %s", plan.job_id, self.failed[plan.job_id])
            return False
        heapq.heappush(self._heap, (at, plan.job_id, plan.version))
        return True

    def _catch_up(self, plan: Plan, since: datetime, now: datetime) -> list[Fire]:
        bounds = CatchUpBounds(
            window=timedelta(milliseconds=settings.RUNNER.missed_fire_window_ms),
            max_runs=settings.RUNNER.missed_fire_max,
        )
        try:
            fires = missed_fires(
                plan.job_id, plan.schedule, plan.zone_name, plan.policy, since, now, bounds
            )
        except (ValueError, KeyError):
            return []  # _push_next records why this schedule cannot be computed
        if fires:
            logger.warning(
                "job %s: %d missed-fire run(s) recorded (policy %s)",
                plan.job_id,
                len(fires),
                plan.policy,
            )
        return fires

    # -- recording ----------------------------------------------------------------

    def _record(self, fires: list[Fire], now: datetime) -> int:
        """Insert the fires as runs and dispatch those this process inserted; return how many.

        One transaction for the batch; if a job deleted meanwhile breaks its
        foreign key at commit, one transaction per fire. Fires the database could
        not take (it is down) go back on the heap for the next cycle; once more
        than ``LATE_FIRE_IS_MISSED`` late they follow the missed-fire policy.
        """
        if not fires:
            return 0
        # (instant, job) order: two schedulers inserting the same fires lock the
        # same rows in the same order and cannot deadlock.
        fires = sorted(fires, key=lambda fire: (fire.at, fire.job_id))
        try:
            return self._insert(fires, now)
        except IntegrityError:
            logger.info("a job went away meanwhile; recording %d fires one by one", len(fires))
        except DatabaseError:
            logger.exception("could not record %d fires; trying again next cycle", len(fires))
            for fire in fires:
                self._retry(fire)
            return 0
        inserted = 0
        for fire in fires:
            try:
                inserted += self._insert([fire], now)
            except IntegrityError:
                logger.info("job %s is gone; its fire at %s is dropped", fire.job_id, fire.at)
            except DatabaseError:
                logger.exception("job %s: could not record its fire at %s", fire.job_id, fire.at)
                self._retry(fire)
        return inserted

    def _insert(self, fires: list[Fire], now: datetime) -> int:
        with transaction.atomic():
            ids = Run.create_scheduled_many([(fire.job_id, fire.at) for fire in fires], now)
            to_run: list[int] = []
            for fire in fires:
                run_id = ids.get((fire.job_id, fire.at))
                if run_id is None:
                    continue  # another scheduler recorded this fire
                if fire.skip_reason:
                    Run(pk=run_id).abandon(fire.skip_reason, now, status=RunStatus.SKIPPED)
                else:
                    to_run.append(run_id)
            self._dispatch(to_run)
        return len(ids)

    def _retry(self, fire: Fire) -> None:
        plan = self._plans.get(fire.job_id)
        if plan is not None:
            heapq.heappush(self._heap, (fire.at, plan.job_id, plan.version))

    def _report_failures(self, failures: list[tuple[str, str]]) -> None:
        if not failures:
            return
        notify.report_failed_registrations(failures)


def _fingerprint() -> tuple:
    totals = Job.objects.aggregate(count=Count("id"), newest=Max("updated_at"))
    return (totals["count"], totals["newest"])


def _signatures(jobs) -> dict[str, tuple]:
    return {row[0]: row[1:] for row in jobs.values_list(*_SIGNATURE_FIELDS).iterator(2000)}


def _last_scheduled_fires() -> dict[str, datetime]:
    """Each job's newest scheduled fire on record."""
    rows = (
        Run.objects.filter(trigger=RunTrigger.SCHEDULE)
        .values("job_id")
        .annotate(last=Max("scheduled_for"))
        .values_list("job_id", "last")
    )
    return dict(rows)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
