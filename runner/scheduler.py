"""The clock: when each enabled job fires next, and recording each fire exactly once.

A heap holds (next fire, job id) for enabled jobs, so a tick costs time in the
number of due fires, not of jobs. Each method takes ``now`` from the caller, so
tests drive the clock, and returns whether it found work.

Fires are recorded through ``Run.create_scheduled_many`` (one statement for a batch),
whose unique (job, instant) constraint leaves out a fire another scheduler already
recorded: only the runs this process inserted are dispatched. Dispatch happens ``dispatchLeadMs``
before the instant; the worker waits for the instant itself (see ``runner.tasks``).
Catch-up runs (missed-fire policy ``all``) of an overlap-``skip`` job are the exception:
only the oldest is dispatched, the rest wait in the database for their turn
(``runner.catchup``).

Cron instants are wall-clock times (``now``); the periodic full re-read of the jobs
runs on the monotonic clock, so a step of the wall clock cannot stall it. The heap
holds one live entry per planned job, whatever happens: a batch the database
refused puts back the entries it took, and raises for the caller to back off.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Count, Max

from runner import dispatch, notify, schedule
from runner.missed import WHILE_BEHIND, WHILE_DOWN, CatchUpBounds, Fire, missed_fires
from runner.models import Job, OverlapPolicy, Run, RunStatus, RunTrigger

logger = logging.getLogger(__name__)

# A fire the loop reaches more than this late (the machine slept, the loop was
# stuck) counts as missed and follows the job's missed-fire policy rather than
# running every slot of the gap.
LATE_FIRE_IS_MISSED = timedelta(seconds=10)
# Edits made without touching ``updated_at`` (a raw UPDATE) still show up this often
# (seconds on the monotonic clock).
FULL_RESYNC_S = 60.0
# SQLite allows 999 parameters per statement in older builds.
LOAD_CHUNK = 500
_JUST_BEFORE = timedelta(microseconds=1)
# The wall clock moved this much more (or less) than the monotonic one between two
# ticks: it stepped, and every plan's kept schedule iterator starts afresh.
CLOCK_STEP_S = 1.0

_PLAN_FIELDS = (
    "id", "schedule", "timezone", "enabled", "missed_fire_policy", "overlap_policy",
    "created_at", "schedule_effective_at",
)  # fmt: skip
_SIGNATURE_FIELDS = (
    "id", "updated_at", "enabled", "schedule", "timezone", "missed_fire_policy", "overlap_policy",
)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """What the scheduler keeps of an enabled job: enough to compute its fires.

    ``fires`` is the job's kept schedule iterator; a plan is made anew (and with it
    the iterator) whenever the job's schedule or zone changes or it is enabled again.
    """

    job_id: str
    schedule: str
    zone_name: str
    policy: str
    overlap: str = OverlapPolicy.SKIP
    version: int = 0
    fires: schedule.FireIterator | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.fires is None:
            object.__setattr__(self, "fires", schedule.FireIterator(self.schedule, self.zone_name))

    def next_fire_after(self, moment: datetime) -> datetime:
        """The job's first fire after ``moment``; ValueError/KeyError when it has none."""
        return self.fires.next_after(moment)


class Scheduler:
    """Plans and records fires for every enabled job in the database."""

    def __init__(
        self,
        dispatcher: Callable[[Iterable[int]], int] = dispatch.dispatch,
        lead: timedelta | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dispatch = dispatcher
        self._lead = lead
        self._monotonic = monotonic
        self._plans: dict[str, Plan] = {}
        self._heap: list[tuple[datetime, str, int]] = []
        self._versions = itertools.count(1)
        self._signatures: dict[str, tuple] = {}
        self._fingerprint: tuple | None = None
        self._last_full_sync: float | None = None
        self._clock_skew: float | None = None  # wall - monotonic at the last tick (s)
        self.failed: dict[str, str] = {}
        # job id -> its first fire the database refused, until a batch is recorded
        self.held_back: dict[str, datetime] = {}

    @property
    def lead(self) -> timedelta:
        """How long before its instant a fire is dispatched."""
        if self._lead is not None:
            return self._lead
        return timedelta(milliseconds=settings.RUNNER.dispatch_lead_ms)

    # -- start-up -------------------------------------------------------------

    def start(self, now: datetime) -> bool:
        """Plan every enabled job and record the fires missed since its last one.

        Missed fires are the slots after both the job's newest scheduled run and the
        moment its current schedule took effect (``Job.schedule_effective_at``: its
        creation, its last change of schedule or zone, or its enabling) up to ``now``:
        time spent disabled or under another schedule is not missed time. They follow
        the job's missed-fire policy. Returns whether anything was recorded; raises
        DatabaseError when the database does not answer (call again).
        """
        self._plans.clear()
        self._heap.clear()
        self._fingerprint = _fingerprint()
        self._signatures = _signatures(Job.objects.all())
        self._last_full_sync = self._monotonic()
        last_fires = _last_scheduled_fires()
        fires: list[Fire] = []
        missed: list[tuple[str, int, str]] = []
        for row in Job.objects.filter(enabled=True).values(*_PLAN_FIELDS).iterator(2000):
            plan = self._plan(row, now)
            if plan is not None:
                effective = row["schedule_effective_at"] or row["created_at"]
                since = max(filter(None, (last_fires.get(plan.job_id), effective)))
                fires += self._catch_up(plan, since, now, missed=missed)
        _log_missed(missed)
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
        """Record and dispatch every fire due by ``now`` plus the lead.

        A fire reached more than ``LATE_FIRE_IS_MISSED`` late (the loop was stuck,
        the wall clock stepped forward, the database was down) follows the job's
        missed-fire policy for every slot up to ``now``. Raises DatabaseError when
        the database refused the batch, after putting the entries it took back on
        the heap unchanged: one entry per planned job, the same fires next time.
        """
        self._notice_clock_step(now)
        due = self._pop_due(now + self.lead)
        fires: list[Fire] = []
        resume_after: list[tuple[Plan, datetime]] = []
        missed: list[tuple[str, int, str]] = []
        held_back: list[tuple[str, int, str]] = []
        for at, plan in due:
            if now - at > LATE_FIRE_IS_MISSED:
                # After an outage the daemon sums up what was held back, in one line.
                quiet = plan.job_id in self.held_back
                if not quiet:
                    logger.warning(
                        "job %s: reached its fire at %s late; catching up", plan.job_id, at
                    )
                fires += self._catch_up(
                    plan, at - _JUST_BEFORE, now, held_back if quiet else missed, behind=True
                )
                resume_after.append((plan, now))
            else:
                slots = self._due_slots(plan, at, now + self.lead)
                fires += slots
                resume_after.append((plan, slots[-1].at))
        _log_missed(missed)
        _log_missed(held_back, logging.DEBUG)
        try:
            recorded = self._record(fires, now)
        except DatabaseError:
            for at, plan in due:
                self.held_back.setdefault(plan.job_id, at)
                heapq.heappush(self._heap, (at, plan.job_id, plan.version))
            raise
        if due:
            self.held_back.clear()
        for plan, after in resume_after:
            self._push_next(plan, after)
        return recorded > 0

    def _notice_clock_step(self, now: datetime) -> None:
        """Start every kept schedule iterator afresh when the wall clock stepped.

        An iterator's answers are a pure function of the instant it is asked about,
        so a step cannot make them wrong; forgetting them after one keeps that true
        by construction rather than by argument (``runner.clocks``).
        """
        skew = now.timestamp() - self._monotonic()
        if self._clock_skew is not None and abs(skew - self._clock_skew) > CLOCK_STEP_S:
            logger.info("the wall clock stepped by %+.1f s", skew - self._clock_skew)
            for plan in self._plans.values():
                plan.fires.reset()
        self._clock_skew = skew

    def _pop_due(self, horizon: datetime) -> list[tuple[datetime, Plan]]:
        """Take the live heap entries due by ``horizon``; stale ones are dropped."""
        due = []
        while self._heap and self._heap[0][0] <= horizon:
            at, job_id, version = heapq.heappop(self._heap)
            if self._is_live(job_id, version):
                due.append((at, self._plans[job_id]))
        return due

    def _due_slots(self, plan: Plan, at: datetime, horizon: datetime) -> list[Fire]:
        """The fire at ``at`` and the job's later ones already due by ``horizon``."""
        fires = [Fire(plan.job_id, at)]
        try:
            while (following := plan.next_fire_after(fires[-1].at)) <= horizon:
                fires.append(Fire(plan.job_id, following))
        except (ValueError, KeyError):
            pass  # _push_next records why
        return fires

    def reconcile(self, now: datetime) -> bool:
        """Pick up jobs added, edited, disabled or deleted since the last look.

        Cheap when nothing changed: one aggregate query (count, newest
        ``updated_at``). Otherwise one narrow read of every job's signature, and
        full rows only for the jobs that changed. Every ``FULL_RESYNC_S`` (monotonic)
        the signatures are read regardless, for edits that bypassed ``updated_at``;
        and every time while the newest ``updated_at`` lies ahead of ``now`` (the
        wall clock stepped back, so new edits look older than old ones).
        """
        fingerprint = _fingerprint()
        mono = self._monotonic()
        full_due = self._last_full_sync is None or mono - self._last_full_sync >= FULL_RESYNC_S
        # After the wall clock stepped back, an edit's updated_at is older than the
        # newest one seen, so the fingerprint cannot show it: read in full meanwhile.
        stepped_back = fingerprint[1] is not None and fingerprint[1] > now
        if fingerprint == self._fingerprint and not (full_due or stepped_back):
            return False
        signatures = _signatures(Job.objects.all())
        # Remembered only once read: a read the database refused is repeated in full.
        self._fingerprint = fingerprint
        if full_due:
            self._last_full_sync = mono
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
        self._compact()
        return bool(changed or deleted)

    # -- planning ---------------------------------------------------------------

    def heap_size(self) -> int:
        """Entries on the heap, stale ones included (for tests and the outage drill)."""
        return len(self._heap)

    def _compact(self) -> None:
        """Drop the stale entries edits left behind once they outnumber the live ones."""
        if len(self._heap) > 2 * len(self._plans) + 64:
            self._heap = [entry for entry in self._heap if self._is_live(entry[1], entry[2])]
            heapq.heapify(self._heap)

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
            overlap=row["overlap_policy"],
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
            self._plans[job_id] = replace(
                current, policy=row["missed_fire_policy"], overlap=row["overlap_policy"]
            )
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

    def _catch_up(
        self,
        plan: Plan,
        since: datetime,
        now: datetime,
        missed: list[tuple[str, int, str]],
        behind: bool = False,
    ) -> list[Fire]:
        """The missed fires of ``plan`` from ``since`` to ``now``, by its policy; the
        job's count goes onto ``missed``, for one report (``_log_missed``). ``behind``:
        this scheduler was running but reached them late (else none was running)."""
        bounds = CatchUpBounds(
            window=timedelta(milliseconds=settings.RUNNER.missed_fire_window_ms),
            max_runs=settings.RUNNER.missed_fire_max,
        )
        try:
            why = WHILE_BEHIND.format(late=_seconds(LATE_FIRE_IS_MISSED)) if behind else WHILE_DOWN
            fires = missed_fires(
                plan.job_id, plan.schedule, plan.zone_name, plan.policy, since, now, bounds, why
            )
        except (ValueError, KeyError):
            return []  # _push_next records why this schedule cannot be computed
        if fires:
            missed.append((plan.job_id, len(fires), plan.policy))
        return fires

    # -- recording ----------------------------------------------------------------

    def _record(self, fires: list[Fire], now: datetime) -> int:
        """Insert the fires as runs and dispatch those this process inserted; return how many.

        One transaction for the batch; if a job deleted meanwhile breaks its
        foreign key at commit, one transaction per fire. Any other DatabaseError
        (the database is down, locked or full) propagates: nothing of the batch is
        lost, since the caller keeps its fires, and recording one again later is
        harmless (the unique (job, instant) constraint).
        """
        if not fires:
            return 0
        # (instant, job) order: two schedulers inserting the same fires lock the
        # same rows in the same order and cannot deadlock.
        fires = sorted(fires, key=lambda fire: (fire.at, fire.job_id))
        waiting = self._waiting_their_turn(fires)
        try:
            return self._insert(fires, now, waiting)
        except IntegrityError:
            logger.info("a job went away meanwhile; recording %d fires one by one", len(fires))
        inserted = 0
        for fire in fires:
            try:
                inserted += self._insert([fire], now, waiting)
            except IntegrityError:
                logger.info("job %s is gone; its fire at %s is dropped", fire.job_id, fire.at)
        return inserted

    def _insert(self, fires: list[Fire], now: datetime, waiting: set[Fire]) -> int:
        """Insert ``fires``; dispatch those inserted here, but the ``waiting`` ones."""
        with transaction.atomic():
            ids = Run.create_scheduled_many([(fire.job_id, fire.at) for fire in fires], now)
            to_run: list[int] = []
            catch_up: list[int] = []
            for fire in fires:
                run_id = ids.get((fire.job_id, fire.at))
                if run_id is None:
                    continue  # another scheduler recorded this fire
                if fire.skip_reason:
                    Run(pk=run_id).abandon(fire.skip_reason, now, status=RunStatus.SKIPPED)
                    continue
                if fire.catch_up:
                    catch_up.append(run_id)
                if fire not in waiting:
                    to_run.append(run_id)
            for chunk in _chunks(catch_up, LOAD_CHUNK):
                Run.objects.filter(pk__in=chunk).update(catch_up=True)
            self._dispatch(to_run)
        return len(ids)

    def _waiting_their_turn(self, fires: list[Fire]) -> set[Fire]:
        """The catch-up fires (in time order) not to dispatch now: all but the oldest of
        each overlap-``skip`` job, which ``runner.catchup`` dispatches one by one."""
        first_seen: set[str] = set()
        waiting: set[Fire] = set()
        for fire in fires:
            if not fire.catch_up or not self._takes_turns(fire.job_id):
                continue
            if fire.job_id in first_seen:
                waiting.add(fire)
            first_seen.add(fire.job_id)
        return waiting

    def _takes_turns(self, job_id: str) -> bool:
        plan = self._plans.get(job_id)
        return plan is None or plan.overlap == OverlapPolicy.SKIP

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


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Jobs named one by one in the start's missed-fire report; the rest are counted.
MISSED_LOG_JOBS = 10


def _log_missed(missed: list[tuple[str, int, str]], level: int = logging.WARNING) -> None:
    """Report missed-fire runs recorded, as ``(job id, runs, policy)``: a line for each of
    the first ``MISSED_LOG_JOBS`` jobs, then one for the rest (thousands of jobs after
    an outage would otherwise bury the log)."""
    for job_id, count, policy in missed[:MISSED_LOG_JOBS]:
        logger.log(
            level, "job %s: %d missed-fire run(s) recorded (policy %s)", job_id, count, policy
        )
    rest = missed[MISSED_LOG_JOBS:]
    if rest:
        logger.log(
            level,
            "%d more jobs: %d missed-fire run(s) recorded in all (each is in the run list)",
            len(rest),
            sum(count for _job, count, _policy in rest),
        )


def _seconds(span: timedelta) -> str:
    return f"{span.total_seconds():g} s"
