"""The console's next fires: each (schedule, zone) computed once and kept until it passes.

A next fire found after ``t0`` stays the next fire at any ``now`` from ``t0`` up to it
(no fire lies between), so it can be reused until it is due: the dashboard and the job
list then recompute only the schedules that fired since the last page, not every
job's. Jobs sharing a schedule and zone share one entry. Per process, bounded.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from runner import schedule

MAX_ENTRIES = 20_000
# (expression, zone) -> (the moment it was read after, its next fire after that moment)
_cache: OrderedDict[tuple[str, str], tuple[datetime, datetime]] = OrderedDict()
_lock = threading.Lock()


def next_fire(expression: str, zone_name: str, now: datetime) -> datetime:
    """The first fire after ``now`` (UTC), as ``runner.schedule.next_fire_after`` gives it.

    Raises what that raises (ValueError and kin) for a schedule that does not load.
    """
    key = (expression, zone_name)
    cached = _valid(key, now)
    if cached is not None:
        return cached
    at = schedule.next_fire_after(expression, zone_name, now)
    with _lock:
        _cache[key] = (now, at)
        _cache.move_to_end(key)
        while len(_cache) > MAX_ENTRIES:
            _cache.popitem(last=False)
    return at


def is_known(expression: str, zone_name: str, now: datetime) -> bool:
    """True when the next fire of this pair is cached and still ahead (free to ask)."""
    return _valid((expression, zone_name), now) is not None


def _valid(key: tuple[str, str], now: datetime) -> datetime | None:
    """The cached next fire, if it was read at or before ``now`` and is still ahead of it."""
    with _lock:
        entry = _cache.get(key)
    if entry is None:
        return None
    read_after, at = entry
    return at if read_after <= now < at else None


@dataclass(frozen=True)
class Soonest:
    """The soonest fires found, and how many distinct schedules were (and were not) read."""

    fires: list[tuple[datetime, str]]  # (instant, key id), soonest first
    computed: int
    total: int

    @property
    def partial(self) -> bool:
        return self.computed < self.total


def soonest(
    pairs: Iterable[tuple[str, str, str]],
    now: datetime,
    limit: int,
    budget_s: float,
    clock=time.monotonic,
) -> Soonest:
    """The ``limit`` soonest fires of ``(key, expression, zone)`` triples.

    Each distinct (expression, zone) is read once. Cached ones first; uncached ones
    only while ``budget_s`` seconds last, so a page never waits on thousands of new
    schedules (``partial`` says so; the next page goes on where this one stopped).
    Schedules that do not load are left out.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for key, expression, zone_name in pairs:
        groups.setdefault((expression, zone_name), []).append(key)
    ordered = sorted(groups, key=lambda pair: not is_known(*pair, now))
    deadline = clock() + budget_s
    fires: list[tuple[datetime, str]] = []
    computed = 0
    for pair in ordered:
        if not is_known(*pair, now) and computed and clock() > deadline:
            break
        computed += 1
        try:
            at = next_fire(*pair, now)
        except Exception:  # listed under the schedules that do not load
            continue
        fires += [(at, key) for key in groups[pair]]
    fires.sort()
    return Soonest(fires[:limit], computed, len(groups))


def clear() -> None:
    """Forget every cached fire (tests)."""
    with _lock:
        _cache.clear()
