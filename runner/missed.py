"""Fires missed while no scheduler ran (or one ran too far behind), and what each
missed-fire policy makes of them.

* ``skip`` (the default): nothing is run. One ``skipped`` run, at the newest missed
  slot, says how many fires were missed and between which instants (at which, for one).
* ``latest``: one run, for the newest missed slot.
* ``all``: a run for each missed slot within ``missedFireWindowMs``, at most
  ``missedFireMax`` of the newest, oldest first. When older slots are left out, a
  ``skipped`` run at the newest of them says how many and why. These runs are
  catch-up runs (``Fire.catch_up``): under overlap ``skip`` they run one after
  another instead of skipping each other (``runner.catchup``).

Every decision is a row in ``runs`` with its slot as ``scheduled_for``, so the unique
(job, scheduled_for) constraint keeps two schedulers from recording it twice.
Walking a schedule costs about 50 µs a fire, so counts stop at ``COUNT_CAP`` and
the newest slots are found by widening a window back from now, never by walking
a whole outage of an every-second job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from runner import schedule
from runner.models import MissedFirePolicy

COUNT_CAP = 1000
# Why fires went unhandled, as the ``skip`` reason says it: missed while no scheduler
# ran (found at start-up), or reached too late by a running one (a slow tick, a
# stepped clock, a database that did not answer).
WHILE_DOWN = "while no scheduler was running"
WHILE_BEHIND = "while the scheduler was running behind (it reached them more than {late} late)"
_FIRST_SPAN = timedelta(seconds=2)


@dataclass(frozen=True)
class Fire:
    """A run to record for ``job_id`` at ``at``; ``skip_reason`` records it as skipped;
    ``catch_up``: one of the runs policy ``all`` makes for missed slots."""

    job_id: str
    at: datetime
    skip_reason: str = ""
    catch_up: bool = False


@dataclass(frozen=True)
class CatchUpBounds:
    """How far back ``all`` goes, and how many runs it makes at most."""

    window: timedelta
    max_runs: int


def newest_fires(
    expression: str, zone_name: str, since: datetime, until: datetime, limit: int
) -> list[datetime]:
    """Up to ``limit`` of the newest fire instants in (since, until], oldest first."""
    if limit <= 0 or until <= since:
        return []
    span = _FIRST_SPAN
    while True:
        start = max(since, until - span)
        fires = schedule.fires_between(expression, zone_name, start, until, limit)
        if len(fires) >= limit or start == since:
            return fires
        span *= 4


def count_fires(
    expression: str, zone_name: str, since: datetime, until: datetime, cap: int = COUNT_CAP
) -> int:
    """How many fires fall in (since, until], counting no further than ``cap + 1``."""
    count, moment = 0, since
    while count <= cap:
        moment = schedule.next_fire_after(expression, zone_name, moment)
        if moment > until:
            break
        count += 1
    return count


def missed_fires(
    job_id: str,
    expression: str,
    zone_name: str,
    policy: str,
    since: datetime,
    until: datetime,
    bounds: CatchUpBounds,
    why: str = WHILE_DOWN,
) -> list[Fire]:
    """The runs to record for the fires in (since, until] that no scheduler handled;
    ``why`` ends the ``skip`` reason (``WHILE_DOWN``, ``WHILE_BEHIND``)."""
    if schedule.next_fire_after(expression, zone_name, since) > until:
        return []  # the usual case, in one step
    newest = newest_fires(expression, zone_name, since, until, 1)
    if policy == MissedFirePolicy.LATEST:
        return [Fire(job_id, newest[0])]
    if policy == MissedFirePolicy.ALL:
        return _all(job_id, expression, zone_name, since, until, bounds)
    count = count_fires(expression, zone_name, since, until)
    first = schedule.next_fire_after(expression, zone_name, since)
    when = f"at {_iso(first)}" if count == 1 else f"between {_iso(first)} and {_iso(newest[0])}"
    reason = f"skipped: missed {_how_many(count)} {when} {why} (missed-fire policy skip)"
    return [Fire(job_id, newest[0], reason)]


def _all(
    job_id: str,
    expression: str,
    zone_name: str,
    since: datetime,
    until: datetime,
    bounds: CatchUpBounds,
) -> list[Fire]:
    window_start = max(since, until - bounds.window)
    kept = newest_fires(expression, zone_name, window_start, until, bounds.max_runs)
    fires = [Fire(job_id, at, catch_up=True) for at in kept]
    # Everything missed before the first kept slot was left out.
    left_out_until = kept[0] - timedelta(microseconds=1) if kept else until
    left_out = newest_fires(expression, zone_name, since, left_out_until, 1)
    if left_out:
        count = count_fires(expression, zone_name, since, left_out_until)
        which = (
            "this missed fire was"
            if count == 1
            else f"{_how_many(count)} missed up to this one were"
        )
        reason = (
            f"skipped: {which} not run: catch-up "
            f"(missed-fire policy all) reaches back {_duration(bounds.window)} and makes "
            f"at most {bounds.max_runs} runs"
        )
        fires.insert(0, Fire(job_id, left_out[0], reason))
    return fires


def _how_many(count: int) -> str:
    if count > COUNT_CAP:
        return f"more than {COUNT_CAP} fires"
    return "1 fire" if count == 1 else f"{count} fires"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
