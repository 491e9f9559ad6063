"""When a job fires: cron expressions evaluated in the job's own time zone.

croniter walks naive wall-clock times; this module turns each wall-clock slot into
real instants (UTC) following ISC/Debian cron's daylight-saving convention:

* A fixed-time job (no time field -- second, minute, hour -- starting with ``*``;
  ISC cron looks at the first character, so ``*/2`` is a wildcard and ``4-12,*/2``
  is not) whose slot falls in the hour that is skipped runs once, at the
  transition; a slot in the hour that repeats runs once, at its first occurrence.
* A wildcard job runs by the clock as it is: nothing fires at wall times that do
  not exist, and a repeated hour fires again, since real time passes twice.

Every fire is a pure function of (expression, zone, instant).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from runner.cron import make_iterator, parse
from runner.recurrence_text import looks_like_recurrence

# Offsets are sampled this often to find a zone's transitions; no zone changes its
# offset twice within this span.
_TRANSITION_SAMPLE = timedelta(hours=6)


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for ``name``, cached (jobs share a handful of zones)."""
    return ZoneInfo(name)


def is_fixed_time(expression: str) -> bool:
    """True when no time field (second, minute, hour) starts with ``*``.

    ISC cron's MIN_STAR/HR_STAR flags (entry.c) decide which jobs get its DST special
    case by the field's first character; seconds count the same way here.
    ``@hourly`` is ``0 * * * *``, a wildcard; the other macros are fixed-time.
    """
    return not any(field.startswith("*") for field in parse(expression).time_fields)


def _wall_to_instants(wall: datetime, tz: ZoneInfo, fixed: bool) -> list[datetime]:
    """Real instants at which a naive wall-clock slot fires (empty, one or two)."""
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    first_utc, second_utc = first.astimezone(UTC), second.astimezone(UTC)
    if first_utc == second_utc:
        return [first_utc]
    if first.utcoffset() < second.utcoffset():  # a gap: this wall time never happens
        if not fixed:
            return []
        # fold=1 maps a missing time with the offset after the gap; the gap ends
        # at the wall time shifted by the jump, whose instant is the transition.
        return [_gap_end(wall, tz)]
    return [first_utc] if fixed else [first_utc, second_utc]  # a repeated hour


def _gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant the clock jumped over ``wall`` (the first instant after the gap)."""
    before = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    after = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return _offset_change(tz, min(before, after), max(before, after))


def _offset_change(tz: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The instant, to the second, where the zone's offset changes within [low, high]."""
    offset = low.astimezone(tz).utcoffset()
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(tz).utcoffset() == offset:
            low = mid
        else:
            high = mid
    return high.replace(microsecond=0)


def _first_after(
    expression: str, tz: ZoneInfo, start_wall: datetime, after: datetime, stop_wall: datetime
) -> datetime | None:
    """The earliest instant > ``after`` among slots from ``start_wall`` up to ``stop_wall``.

    Slots come in wall-clock order, so the first slot with a qualifying instant
    gives the earliest instant unless a repeated hour lies ahead (see below).
    """
    fixed = is_fixed_time(expression)
    slots = make_iterator(expression, start_wall)
    while True:
        wall = slots.get_next(datetime)
        if wall > stop_wall:
            return None
        later = [instant for instant in _wall_to_instants(wall, tz, fixed) if instant > after]
        if later:
            return min(later)


@lru_cache(maxsize=2048)
def _fall_backs(tz: ZoneInfo, year: int) -> tuple[tuple[datetime, timedelta], ...]:
    """Each instant in ``year`` (UTC) where the clock goes back, with by how much."""
    moment = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(tz).utcoffset()
    found = []
    while moment < end:
        following = min(moment + _TRANSITION_SAMPLE, end)
        next_offset = following.astimezone(tz).utcoffset()
        if next_offset < offset:
            found.append((_offset_change(tz, moment, following), offset - next_offset))
        moment, offset = following, next_offset
    return tuple(found)


def _first_fall_back(
    tz: ZoneInfo, start: datetime, end: datetime
) -> tuple[datetime, timedelta] | None:
    """The first instant in (start, end] where the clock goes back, and by how much.

    Looked for over the whole span, however long: a fall-back between two fires
    with the same offset (a year apart, say) repeats an hour all the same.
    """
    if end - start <= _TRANSITION_SAMPLE:
        before, after = start.astimezone(tz).utcoffset(), end.astimezone(tz).utcoffset()
        return (_offset_change(tz, start, end), before - after) if after < before else None
    for year in range(start.year, end.year + 1):
        for instant, shift in _fall_backs(tz, year):
            if start < instant <= end:
                return instant, shift
    return None


def next_fire_after(expression: str, zone_name: str, after: datetime) -> datetime:
    """The first instant strictly after ``after`` (aware) at which the job fires, in UTC.

    Raises croniter's CroniterBadDateError for an expression that never fires, and
    ``runner.cron.CronError`` (a ValueError) for one whose syntax is refused. A JSON
    object is the original runner's recurrence schedule (see ``runner.recurrence``),
    which raises RecurrenceError, also a ValueError.
    """
    if looks_like_recurrence(expression):
        from runner import recurrence  # loads pydantic and dateutil: only when needed

        return recurrence.next_fire_after(expression, zone_name, after)
    tz = zone(zone_name)
    after_utc = after.astimezone(UTC)
    wall = after_utc.astimezone(tz).replace(tzinfo=None)
    best = _first_after(expression, tz, wall, after_utc, datetime.max)
    # When the clock goes back before that instant, the repeated hour's wall
    # times come again, earlier in the wall order than where we started. Only
    # the first fall-back matters: every slot of a later one has a first-pass
    # instant that the wall-order walk above would have reached before it.
    fall_back = _first_fall_back(tz, after_utc, best)
    if fall_back is not None:
        instant, shift = fall_back
        repeat_wall = instant.astimezone(tz).replace(tzinfo=None)
        start_wall = repeat_wall - timedelta(seconds=1)
        repeated = _first_after(expression, tz, start_wall, after_utc, repeat_wall + shift)
        if repeated is not None and repeated < best:
            best = repeated
    return best


def zone_name_of(expression: str, zone_name: str) -> str:
    """The zone a schedule is read in: a recurrence object's own, else ``zone_name``.

    Raises ValueError for a recurrence that does not parse.
    """
    if looks_like_recurrence(expression):
        from runner import recurrence

        return recurrence.zone_of(expression, zone_name)
    return zone_name


def fires_between(
    expression: str, zone_name: str, start: datetime, end: datetime, limit: int
) -> list[datetime]:
    """Fire instants in (start, end], oldest first, at most ``limit`` of the newest."""
    fires: list[datetime] = []
    moment = start
    while True:
        moment = next_fire_after(expression, zone_name, moment)
        if moment > end:
            return fires[-limit:] if limit else []
        fires.append(moment)
        if len(fires) > 2 * limit:
            del fires[:limit]


class FireIterator:
    """One schedule's fires, one after another, without rebuilding croniter per fire.

    ``next_after(after)`` answers exactly what ``next_fire_after(expression, zone_name,
    after)`` answers (the reference; a property test holds them together, DST zones
    included), but cheaply in the scheduler's usual pattern, where each ``after`` is the
    fire it was last given:

    * the answer for the last ``after`` is kept, so asking twice costs nothing;
    * a croniter is kept positioned at the wall time of the last fire returned; when
      ``after`` is that fire, the next wall slot is taken from it, and used as is if it
      names one instant (no DST gap or repeated hour) and no clock fall-back lies
      between ``after`` and it -- exactly the case where the reference's walk stops at
      that same slot. Anything else (a jump of ``after``, a DST transition near) goes
      to the reference, which repositions the croniter.

    A recurrence schedule (JSON) keeps only the last answer (its rules are compiled
    once already, ``runner.recurrence.compile_schedule``). Errors are the reference's.
    ``reset`` forgets everything (the scheduler calls it when the wall clock steps).
    """

    def __init__(self, expression: str, zone_name: str) -> None:
        self.expression = expression
        self.zone_name = zone_name
        self._cron = not looks_like_recurrence(expression)
        self.reset()

    def reset(self) -> None:
        """Forget the kept answer and croniter; the next call goes to the reference."""
        self._asked: datetime | None = None
        self._answer: datetime | None = None
        self._slots = None  # a croniter at the wall time of ``_answer``, built lazily
        self.fast = 0  # answers from the kept croniter (for tests and benchmarks)

    def next_after(self, after: datetime) -> datetime:
        """The first fire strictly after ``after`` (aware), in UTC; see the class."""
        if self._asked is not None and after == self._asked:
            return self._answer
        answer = None
        if self._cron and self._answer is not None and after == self._answer:
            answer = self._advance(after)
        if answer is None:
            answer = next_fire_after(self.expression, self.zone_name, after)
            self._slots = None
        self._asked, self._answer = after, answer
        return answer

    def _advance(self, after: datetime) -> datetime | None:
        """The next slot of the kept croniter when it is the reference's answer, else None."""
        tz = zone(self.zone_name)
        try:
            if self._slots is None:
                wall = self._answer.astimezone(tz).replace(tzinfo=None)
                self._slots = make_iterator(self.expression, wall)
            wall = self._slots.get_next(datetime)
        except (ValueError, KeyError):
            return None  # the reference raises the same error
        first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        if first != wall.replace(tzinfo=tz, fold=1).astimezone(UTC):
            return None  # a DST gap or a repeated hour: the reference decides
        after_utc = after.astimezone(UTC)
        if first <= after_utc or _first_fall_back(tz, after_utc, first) is not None:
            return None
        self.fast += 1
        return first
