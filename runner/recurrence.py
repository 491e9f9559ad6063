"""When a recurrence schedule (the original runner's RRStack JSON) fires.

What RRStack's ``nextEvent`` computes, in Python (the original's
src/rrstack/RRStack.queries.ts, compile.ts, coverage/arithmetic.ts):

* Fires are the occurrences of the ``event`` rules that the coverage cascade
  leaves active. The cascade starts from a baseline (``defaultEffect``; ``auto`` is
  the opposite of the first rule's effect when that is ``active``, else active)
  and each ``active``/``blackout`` rule covering an instant overrides the ones
  before it: the last covering rule decides.
* A rule with ``freq`` but no ``by*`` part below a day (hourly, minutely, secondly)
  repeats at a fixed period of real time from its ``starts`` (or the Unix epoch):
  ``{"freq": "minutely", "interval": 11}`` fires every 11 minutes, DST or not.
* Any other rule is an RRULE evaluated on the wall clock of the schedule's zone
  with python-dateutil, from ``starts`` (or the epoch's wall time in that zone,
  which gives a bare ``{"freq": "daily"}`` its time of day); each wall time
  becomes an instant as RFC 5545 says: a time the clock skips is read with the
  offset before the gap (02:30 → 03:30 after spring-forward), a repeated time
  is its first occurrence.

Differences from RRStack, where it is wrong by its own contract: ``count`` and
``ends`` also bound the fixed-period rules (RRStack's fast path ignores them).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo

import dateutil.rrule
from dateutil import rrule as du
from dateutil.relativedelta import relativedelta

from runner.recurrence_schema import (
    DurationParts,
    RecurrenceError,
    Rule,
    Stack,
    check_zone,
    parse,
    parse_moment,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How far ahead a schedule may first fire before it counts as never firing (as cron's).
HORIZON = timedelta(days=8 * 366)
# A wall time moves at most this far when it becomes an instant (DST gaps are <= 2 h).
DST_MARGIN = timedelta(hours=3)
# Steps past blocked events before giving up, so no schedule can stall the scheduler.
MAX_STEPS = 100_000
_TINY = timedelta(microseconds=1)
_FREQ = {
    "yearly": du.YEARLY, "monthly": du.MONTHLY, "weekly": du.WEEKLY, "daily": du.DAILY,
    "hourly": du.HOURLY, "minutely": du.MINUTELY, "secondly": du.SECONDLY,
}  # fmt: skip
_PERIOD = {"hourly": 3600, "minutely": 60, "secondly": 1}
_BY_KEYS = (
    "bysetpos", "bymonth", "bymonthday", "byyearday", "byweekno", "byweekday",
    "byhour", "byminute", "bysecond",
)  # fmt: skip
_DAY_KEYS = ("bymonth", "bymonthday", "byyearday", "byweekno", "byweekday")
_DAY = 86400
_UNIT = {du.HOURLY: 3600, du.MINUTELY: 60, du.SECONDLY: 1}
# A rule with ``count`` has its fires before an instant counted day by day (see
# ``FireCounter``); from its start to the instant asked about it may span this many days.
MAX_COUNTED_DAYS = 200 * 366
# ``bysetpos`` with ``freq`` daily or longer is counted by walking its fires, so its
# ``count`` may not be larger than this (the original's schedules use small counts).
MAX_WALKED_COUNT = 10_000


class _PastLastYear(Exception):
    """A bounded rrule's search went past its last year."""


class _BoundedIterInfo(dateutil.rrule._iterinfo):
    def rebuild(self, year: int, month: int) -> None:
        # Called as dateutil's search enters each new month (or year).
        if year > self.rrule.last_year:
            raise _PastLastYear
        super().rebuild(year, month)


class BoundedRRule(du.rrule):
    """dateutil's rrule that stops searching after ``last_year``.

    By-parts that match no date (``bymonth`` 11 with ``bymonthday`` 31) make
    dateutil search month after month up to the year 9999 without yielding; this
    rule raises ``_PastLastYear`` instead. It runs dateutil's own ``_iter`` with a
    bounded ``_iterinfo`` (python-dateutil is pinned).
    """

    _iter = types.FunctionType(
        du.rrule._iter.__code__,
        {**vars(dateutil.rrule), "_iterinfo": _BoundedIterInfo},
        "_iter",
        du.rrule._iter.__defaults__,
        du.rrule._iter.__closure__,
    )

    def __init__(self, *args, last_year: int, **kwargs) -> None:
        self.last_year = last_year
        super().__init__(*args, **kwargs)


def next_fire_after(text: str, zone_name: str, after: datetime) -> datetime:
    """The first fire strictly after ``after`` (aware), in UTC.

    ``zone_name`` is used when the object names no ``timezone``. Raises
    RecurrenceError (a ValueError) when the text is malformed or nothing fires
    within ``HORIZON``.
    """
    return compile_schedule(text, zone_name).next_fire_after(after)


def zone_of(text: str, zone_name: str) -> str:
    """The zone a recurrence is read in: its own ``timezone``, else ``zone_name``."""
    return compile_schedule(text, zone_name).zone_name


def validate(text: str, now: datetime | None = None) -> None:
    """RecurrenceError unless ``text`` is a well-formed recurrence that fires after ``now``."""
    next_fire_after(text, "UTC", now or datetime.now(UTC))


@lru_cache(maxsize=512)
def compile_schedule(text: str, zone_name: str) -> Schedule:
    """The parsed, compiled schedule (cached: the scheduler asks often, for few texts)."""
    stack = parse(text)
    zone_name = stack.timezone or zone_name
    check_zone(zone_name)
    zone = ZoneInfo(zone_name)
    try:
        rules = [_compile_rule(rule, index, stack, zone) for index, rule in enumerate(stack.rules)]
    except OverflowError as exc:
        raise _too_large(exc) from None
    return Schedule(
        zone_name=zone_name,
        events=[rule for rule in rules if rule.effect == "event"],
        coverage=[rule for rule in rules if rule.effect != "event"],
        baseline=_baseline(stack),
    )


def _too_large(exc: OverflowError) -> RecurrenceError:
    """The refusal of a schedule whose numbers overflow date arithmetic (an interval of
    10^20 minutes, a duration of a billion years): Python's message names no field."""
    return RecurrenceError(f"holds a number too large to compute its fires with ({exc})")


def _baseline(stack: Stack) -> str:
    if stack.defaultEffect != "auto":
        return stack.defaultEffect
    first = stack.rules[0].effect if stack.rules else None
    return "blackout" if first == "active" else "active"


@dataclass(frozen=True)
class CompiledRule:
    """One rule, ready to list its occurrence starts as UTC instants."""

    effect: str
    zone: ZoneInfo
    freq: str | None
    interval: int
    count: int | None
    starts: datetime | None  # UTC; None = open (the epoch anchors the cadence)
    ends: datetime | None  # UTC, inclusive of a start at that instant
    by: tuple[tuple[str, object], ...]
    wkst: int | None
    duration: DurationParts | None
    # wall time -> fires before it (``_fires_before``); filled as the rule is asked
    _counted: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def anchor(self) -> datetime:
        return self.starts or EPOCH

    @property
    def fixed_period(self) -> int | None:
        """Seconds between starts for a sub-daily rule with no by-parts, else None."""
        if self.freq in _PERIOD and not self.by:
            return _PERIOD[self.freq] * self.interval
        return None

    def starts_after(self, after: datetime) -> Iterator[datetime]:
        """Occurrence starts strictly after ``after``, ascending."""
        if self.freq is None:
            if self.starts is not None and self.starts > after:
                yield self.starts
            return
        yield from (self._periodic if self.fixed_period else self._by_rrule)(after)

    def _periodic(self, after: datetime) -> Iterator[datetime]:
        period = self.fixed_period
        index = max(0, int((after - self.anchor).total_seconds() // period))
        for step in itertools.count(index):
            start = self.anchor + timedelta(seconds=step * period)
            if (self.count is not None and step >= self.count) or (
                self.ends is not None and start > self.ends
            ):
                return
            if start > after:
                yield start

    def _by_rrule(self, after: datetime) -> Iterator[datetime]:
        # Wall times map to instants out of order by at most DST_MARGIN (a time in
        # a gap moves forward), so a heap that far deep yields them in order.
        begin = _wall(after - DST_MARGIN, self.zone)
        pending: list[datetime] = []
        try:
            for wall in self._rrule(begin).xafter(begin, inc=True):
                instant = _instant(wall, self.zone)
                heapq.heappush(pending, instant)
                while pending and pending[0] <= instant - DST_MARGIN:
                    first = heapq.heappop(pending)
                    if first > after:
                        yield first
        except _PastLastYear:
            pass  # nothing (more) within the horizon
        while pending:
            first = heapq.heappop(pending)
            if first > after:
                yield first

    def _rrule(self, target: datetime) -> du.rrule:
        """An rrule with RRStack's occurrences, started as late as ``target`` allows.

        Iterating from 1970 each time would be slow, so the start moves forward by
        whole multiples of the interval (keeping the cadence) once the implicit
        parts dateutil takes from the start are made explicit. ``count`` counts
        from the real start: the moved rule gets what is left of it once the fires
        before its start are counted, without walking them (``FireCounter``).
        """
        first, by = self._first_and_by
        start = _rebase(first, target, self.freq, self.interval)
        count = self.count
        if count is not None and start > first:
            count = max(0, count - self._fires_before(start))
        until = _wall(self.ends, self.zone).replace(microsecond=0) if self.ends else None
        return BoundedRRule(
            _FREQ[self.freq],
            last_year=min(target.year + HORIZON.days // 365 + 1, datetime.max.year),
            dtstart=start,
            interval=self.interval,
            wkst=self.wkst,
            count=count,
            until=until,
            cache=False,
            **by,
        )

    @cached_property
    def _first_and_by(self) -> tuple[datetime, dict]:
        """The rule's real start (a wall time) and its by-parts with the implicit ones."""
        first = _wall(self.anchor, self.zone).replace(microsecond=0)
        return first, _explicit_defaults(dict(self.by), self.freq, first)

    def _fires_before(self, end: datetime) -> int:
        """How many fires the rule has from its real start to the wall time ``end``
        (exclusive), as far as ``count`` matters: resumed from the nearest earlier
        answer, since the scheduler asks again a little later each time."""
        known = self._counted
        if end not in known:
            earlier = max((moment for moment in known if moment < end), default=None)
            begin, before = (earlier, known[earlier]) if earlier else (self._first_and_by[0], 0)
            if len(known) >= 64:
                known.clear()
            known[end] = before + self._counter.between(begin, end, limit=self.count - before)
        return known[end]

    @cached_property
    def _counter(self) -> FireCounter:
        first, by = self._first_and_by
        return FireCounter(_FREQ[self.freq], self.interval, self.wkst, first, by)

    def covers(self, moment: datetime) -> bool:
        """True when ``moment`` lies in one of this coverage rule's windows."""
        return any(end > moment for end in self._ends_of_windows_at(moment))

    def next_change(self, moment: datetime) -> datetime | None:
        """The first instant after ``moment`` where this rule starts or stops covering."""
        changes = [end for end in self._ends_of_windows_at(moment) if end > moment]
        changes += itertools.islice(self.starts_after(moment), 1)
        if self.freq is None and self.ends is not None and self.ends > moment:
            changes.append(self.ends)
        return min(changes, default=None)

    def _ends_of_windows_at(self, moment: datetime) -> list[datetime]:
        """The ends of the windows that started at or before ``moment`` and may reach it."""
        if self.freq is None:  # a span: [starts, ends)
            if self.starts is not None and self.starts > moment:
                return []
            return [self.ends or datetime.max.replace(tzinfo=UTC)]
        reach = _longest(self.duration)
        starts = itertools.takewhile(
            lambda start: start <= moment, self.starts_after(moment - reach - _TINY)
        )
        return [self._window_end(start) for start in starts]

    def _window_end(self, start: datetime) -> datetime:
        # As Luxon's plus(): calendar parts on the wall clock, the rest in real time.
        parts = self.duration
        wall = start.astimezone(self.zone).replace(tzinfo=None)
        wall += relativedelta(
            years=parts.years, months=parts.months, days=parts.weeks * 7 + parts.days
        )
        clock = timedelta(hours=parts.hours, minutes=parts.minutes, seconds=parts.seconds)
        return _instant(wall, self.zone) + clock


@dataclass(frozen=True)
class Schedule:
    """The compiled cascade: event rules, coverage rules and the baseline effect."""

    zone_name: str  # the object's own timezone, else the job's
    events: list[CompiledRule]
    coverage: list[CompiledRule]
    baseline: str

    def is_active(self, moment: datetime) -> bool:
        """Whether the cascade lets an event at ``moment`` fire (the last covering rule wins)."""
        effect = self.baseline
        for rule in self.coverage:
            if rule.covers(moment):
                effect = rule.effect
        return effect == "active"

    def next_fire_after(self, after: datetime) -> datetime:
        """The first event strictly after ``after`` that no blackout suppresses (UTC)."""
        try:
            return self._next_fire_after(after)
        except OverflowError as exc:  # an interval or a duration beyond what dates can hold
            raise _too_large(exc) from None

    def _next_fire_after(self, after: datetime) -> datetime:
        after = after.astimezone(UTC)
        limit = after + HORIZON
        moment = after
        for _ in range(MAX_STEPS):
            candidate = self._next_event(moment)
            if candidate is None or candidate > limit:
                break
            if self.is_active(candidate):
                return candidate
            # Blocked: nothing changes before the next window edge, so jump there.
            change = min(
                filter(None, (rule.next_change(candidate) for rule in self.coverage)),
                default=None,
            )
            if change is None or change > limit:
                break
            moment = max(candidate, change - _TINY)
        raise RecurrenceError(f"never fires (nothing within {HORIZON.days // 366} years)")

    def _next_event(self, after: datetime) -> datetime | None:
        firsts = (next(iter(rule.starts_after(after)), None) for rule in self.events)
        return min(filter(None, firsts), default=None)


def _compile_rule(rule: Rule, index: int, stack: Stack, zone: ZoneInfo) -> CompiledRule:
    options = rule.options
    where = f"rules[{index}].options"
    compiled = CompiledRule(
        effect=rule.effect,
        zone=zone,
        freq=options.freq,
        interval=options.interval or 1,
        count=options.count,
        starts=_moment(options.starts, options.dtstart, stack.timeUnit, zone, f"{where}.dtstart"),
        ends=_moment(options.ends, options.until, stack.timeUnit, zone, f"{where}.until"),
        by=tuple(
            (key, getattr(options, key)) for key in _BY_KEYS if getattr(options, key) is not None
        ),
        wkst=options.wkst,
        duration=rule.duration,
    )
    if (
        compiled.count is not None
        and compiled.count > MAX_WALKED_COUNT
        and options.bysetpos is not None
        and _FREQ.get(compiled.freq, du.SECONDLY) <= du.DAILY
    ):
        raise RecurrenceError(
            f"{where}.count: at most {MAX_WALKED_COUNT:,} with bysetpos and freq "
            f"{compiled.freq} (counting more of those fires takes too long); give "
            "ends instead, or no count"
        )
    if compiled.freq is not None:
        try:  # dateutil's own refusals (bysetpos 0, say), said where they belong
            compiled._rrule(_wall(compiled.anchor, zone))
        except ValueError as exc:
            raise RecurrenceError(f"{where}: {exc}") from None
    return compiled


def _moment(
    stamp: float | None, text: str | None, unit: str, zone: ZoneInfo, where: str
) -> datetime | None:
    if text is not None:
        return parse_moment(text, where, zone)
    if stamp is None:
        return None
    try:
        return EPOCH + timedelta(seconds=stamp / 1000 if unit == "ms" else stamp)
    except OverflowError:
        raise RecurrenceError(f"{where.rsplit('.', 1)[0]}: {stamp} is out of range") from None


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    # fold=0: a skipped time takes the offset before the gap, a repeated one its first.
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _longest(parts: DurationParts) -> timedelta:
    """An upper bound of the duration whatever the calendar and DST do."""
    days = parts.years * 366 + parts.months * 31 + parts.weeks * 7 + parts.days
    clock = timedelta(hours=parts.hours, minutes=parts.minutes, seconds=parts.seconds)
    return timedelta(days=days) + clock + (DST_MARGIN if days else timedelta(0))


def _explicit_defaults(by: dict, freq: str, first: datetime) -> dict:
    """The by-parts dateutil (like rrule.js) would take from the start, made explicit."""
    level = _FREQ[freq]
    if not any(key in by for key in ("byweekno", "byyearday", "bymonthday", "byweekday")):
        if level == du.YEARLY:
            by.setdefault("bymonth", first.month)
            by["bymonthday"] = first.day
        elif level == du.MONTHLY:
            by["bymonthday"] = first.day
        elif level == du.WEEKLY:
            by["byweekday"] = first.weekday()
    for key, value, below in (
        ("byhour", first.hour, du.HOURLY),
        ("byminute", first.minute, du.MINUTELY),
        ("bysecond", first.second, du.SECONDLY),
    ):
        if level < below:
            by.setdefault(key, value)
    return by


def _rebase(first: datetime, target: datetime, freq: str, interval: int) -> datetime:
    """The latest start <= ``target`` a whole number of intervals after ``first``.

    The yearly and monthly starts move to the first of their period, which only
    works with explicit by-parts (see ``_explicit_defaults``).
    """
    if target <= first:
        return first
    level = _FREQ[freq]
    if level == du.YEARLY:
        years = (target.year - first.year) // interval * interval
        return datetime(first.year + years, 1, 1) if years else first
    if level == du.MONTHLY:
        months = (target.year - first.year) * 12 + target.month - first.month
        months = months // interval * interval
        if not months:
            return first
        shifted = first.replace(day=1, hour=0, minute=0, second=0) + relativedelta(months=months)
        return shifted
    unit = {
        du.WEEKLY: timedelta(weeks=1), du.DAILY: timedelta(days=1),
        du.HOURLY: timedelta(hours=1), du.MINUTELY: timedelta(minutes=1),
        du.SECONDLY: timedelta(seconds=1),
    }[level]  # fmt: skip
    steps = (target - first) // (unit * interval)
    return first + unit * interval * steps


def _as_set(value: object) -> set[int] | None:
    if value is None:
        return None
    return set(value) if isinstance(value, list | tuple | set) else {value}


class FireCounter:
    """How many occurrences an rrule has between two wall times, without walking them.

    dateutil finds a rule's occurrences only by walking them from its start, so a
    rule with ``count`` asked about today walked every fire since 1970: 15 million
    for an every-2-minutes rule, half a minute per question. This counts them by
    day, as dateutil's own ``_iter`` makes them (by-parts made explicit by
    ``_explicit_defaults``):

    * The days that can hold fires come from dateutil itself, from a copy of the
      rule with its time of day reduced to midnight (daily, for a rule below a
      day), or by arithmetic when no by-part restricts the day.
    * A rule of a day or longer fires on such a day at each time of its
      ``byhour`` x ``byminute`` x ``bysecond`` set.
    * A rule below a day has periods every ``interval`` hours, minutes or seconds
      from the start's (truncated to the unit); a period fires when its hour,
      minute and second pass the by-parts at or above the unit, at the times its
      sub-unit by-parts (and ``bysetpos``) pick inside it. Which periods fall on a
      day depends only on the day's offset from the start modulo the period, so
      a whole day's count is a slice sum kept per residue.

    ``bysetpos`` with a rule of a day or longer picks among each period's times in
    ways that vary with the calendar: those are walked (``MAX_WALKED_COUNT`` bounds
    their ``count``). Exactness against dateutil is a property test.
    """

    def __init__(
        self, freq: int, interval: int, wkst: int | None, first: datetime, by: dict
    ) -> None:
        self.freq, self.interval, self.wkst, self.first, self.by = freq, interval, wkst, first, by
        self.day_by = {key: by[key] for key in _DAY_KEYS if key in by}
        self.walk = "bysetpos" in by and freq <= du.DAILY
        hours, minutes, seconds = (_as_set(by.get(k)) for k in ("byhour", "byminute", "bysecond"))
        if freq <= du.DAILY:
            self.times = sorted(
                {h * 3600 + m * 60 + s for h in hours for m in minutes for s in seconds}
            )
            return
        unit = self.unit = _UNIT[freq]
        self.period = unit * interval
        if freq == du.HOURLY:
            inside = sorted({m * 60 + s for m in minutes for s in seconds})
            origin = first.replace(minute=0, second=0)
        elif freq == du.MINUTELY:
            inside = sorted(seconds)
            origin = first.replace(second=0)
        else:
            inside, origin = [0], first
        positions = _as_set(by.get("bysetpos"))
        if positions:  # dateutil: the n-th (or n-th last) time of the period
            size = len(inside)
            inside = sorted(
                {inside[p - 1 if p > 0 else p] for p in positions if -size <= p <= size}
            )
        self.inside = inside
        self.origin_day = origin.toordinal()
        self.origin_time = origin.hour * 3600 + origin.minute * 60 + origin.second

        def passes(slot: int) -> bool:  # a period starting ``slot`` units into a day
            moment = slot * unit
            return (
                (hours is None or moment // 3600 in hours)
                and (freq < du.MINUTELY or minutes is None or moment // 60 % 60 in minutes)
                and (freq < du.SECONDLY or seconds is None or moment % 60 in seconds)
            )

        self.weights = [len(inside) if passes(slot) else 0 for slot in range(_DAY // unit)]
        self.whole_days: dict[int, int] = {}

    def between(self, begin: datetime, end: datetime, limit: int) -> int:
        """Occurrences in [begin, end) (wall times, ``begin`` not before the rule's
        start); once at least ``limit`` are found the answer may stop there."""
        if end <= begin:
            return 0
        if self.walk:
            return self._walk(begin, end, limit)
        if (end.date() - begin.date()).days > MAX_COUNTED_DAYS:
            raise RecurrenceError(
                f"count: fires would be counted from {begin:%Y-%m-%d} to {end:%Y-%m-%d}, "
                f"more than {MAX_COUNTED_DAYS // 366} years; give a later start"
            )
        first_day, last_day = begin.date(), end.date()
        low, high = _seconds(begin.time()), _seconds(end.time())
        total = 0
        for day in self._days(first_day, last_day):
            start = low if day == first_day else 0
            stop = high if day == last_day else _DAY
            total += self._on(day, start, stop)
        return total

    def _on(self, day: date, start: int, stop: int) -> int:
        """Occurrences on ``day`` at seconds of the day in [start, stop)."""
        if self.freq <= du.DAILY:
            return bisect.bisect_left(self.times, stop) - bisect.bisect_left(self.times, start)
        since = (day.toordinal() - self.origin_day) * _DAY - self.origin_time
        residue = -since % self.period
        if start == 0 and stop == _DAY and residue in self.whole_days:
            return self.whole_days[residue]
        unit, step = self.unit, self.period // self.unit
        slot = residue // unit  # periods start in the slots congruent to this modulo step
        # Periods wholly inside [start, stop), then the one or two cut by its ends.
        low, high = -(-start // unit), stop // unit
        total = sum(self.weights[low + (slot - low) % step : high : step]) if low < high else 0
        cuts = {moment // unit for moment in (start, stop) if moment % unit}
        for cut in cuts:
            if (cut - slot) % step == 0 and self.weights[cut]:
                moment = cut * unit
                total += bisect.bisect_left(self.inside, stop - moment) - bisect.bisect_left(
                    self.inside, start - moment
                )
        if start == 0 and stop == _DAY:
            self.whole_days[residue] = total
        return total

    def _days(self, first_day: date, last_day: date) -> Iterator[date]:
        """The days in [first_day, last_day] on which the rule may fire, ascending."""
        step = self.interval if self.freq == du.DAILY else 1
        if not self.day_by and self.freq >= du.DAILY:
            offset = (first_day.toordinal() - self.first.toordinal()) % step
            start = first_day.toordinal() + (-offset % step)
            for ordinal in range(start, last_day.toordinal() + 1, step):
                yield date.fromordinal(ordinal)
            return
        freq = min(self.freq, du.DAILY)
        interval = self.interval if self.freq <= du.DAILY else 1
        midnight = datetime.combine(first_day, time())
        days = BoundedRRule(
            freq,
            last_year=last_day.year,
            dtstart=_rebase(
                self.first.replace(hour=0, minute=0, second=0), midnight, _FREQ_NAME[freq], interval
            ),
            interval=interval,
            wkst=self.wkst,
            cache=False,
            byhour=0,
            byminute=0,
            bysecond=0,
            **self.day_by,
        )
        try:
            for moment in days.xafter(midnight, inc=True):
                if moment.date() > last_day:
                    return
                yield moment.date()
        except _PastLastYear:
            return

    def _walk(self, begin: datetime, end: datetime, limit: int) -> int:
        rule = BoundedRRule(
            self.freq,
            last_year=end.year,
            dtstart=_rebase(self.first, begin, _FREQ_NAME[self.freq], self.interval),
            interval=self.interval,
            wkst=self.wkst,
            cache=False,
            **self.by,
        )
        total = 0
        try:
            for moment in rule.xafter(begin, inc=True):
                if moment >= end or total >= limit:
                    break
                total += 1
        except _PastLastYear:
            pass
        return total


_FREQ_NAME = {level: name for name, level in _FREQ.items()}


def _seconds(clock: time) -> int:
    return clock.hour * 3600 + clock.minute * 60 + clock.second
