"""next_fire_after against a brute-force reference, for random expressions and zones.

The reference knows nothing of croniter or runner.cron: it parses the documented
syntax itself, walks real time minute by minute over each local day whose date
matches, and applies the documented rules:

* day fields: AND when either starts with ``*``, OR otherwise (ISC cron);
* a wall time that repeats fires on its first pass, and on its second pass too
  for a wildcard job (a time field starting with ``*``);
* wall times the clock skips fire nothing for a wildcard job, and for a
  fixed-time job once, at the first instant after the jump.

Starts are drawn around each zone's offset changes (DST and the others) and at
random over 2000-2040, so the first few fires cross transitions and, for sparse
expressions, years.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from runner.cron import CronError, validate_cron
from runner.schedule import next_fire_after

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",  # 30-minute DST
    "Asia/Kolkata",  # +05:30, no DST
    "Pacific/Apia",  # skipped 30 December 2011; DST until 2021
    "America/Santiago",  # changes at midnight, the fall-back repeats 23:00
    "Africa/Casablanca",  # DST suspended each Ramadan since 2019
    "Europe/Volgograd",  # +03 -> +04 -> +03 without DST (2018, 2020)
    "Pacific/Chatham",  # +12:45 / +13:45
    "America/Havana",  # changes at midnight
]
FIRES = 5
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()  # noqa: SIM905
WEEKDAYS = "sun mon tue wed thu fri sat".split()  # noqa: SIM905


# --- the reference evaluator ----------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    last_day: bool
    nearest_weekday: int | None
    months: frozenset[int]
    weekdays: frozenset[int]
    last_weekdays: frozenset[int]
    nth_weekdays: frozenset[tuple[int, int]]
    and_days: bool
    fixed: bool

    def date_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_day = self._day_of_month(day)
        by_weekday = self._day_of_week(day)
        return by_day and by_weekday if self.and_days else by_day or by_weekday

    def _day_of_month(self, day: date) -> bool:
        last = calendar.monthrange(day.year, day.month)[1]
        if self.nearest_weekday is not None:
            return day.day == nearest_weekday(day.year, day.month, self.nearest_weekday)
        return day.day in self.days or (self.last_day and day.day == last)

    def _day_of_week(self, day: date) -> bool:
        weekday = day.isoweekday() % 7
        last = calendar.monthrange(day.year, day.month)[1]
        return (
            weekday in self.weekdays
            or (weekday in self.last_weekdays and day.day + 7 > last)
            or (weekday, (day.day - 1) // 7 + 1) in self.nth_weekdays
        )

    def minute_matches(self, wall: datetime) -> bool:
        return wall.hour in self.hours and wall.minute in self.minutes


def nearest_weekday(year: int, month: int, wanted: int) -> int:
    """Quartz's W: the weekday nearest the day, never leaving the month."""
    last = calendar.monthrange(year, month)[1]
    day = min(wanted, last)
    weekday = date(year, month, day).weekday()  # Monday 0
    if weekday == 5:
        return day - 1 if day > 1 else day + 2
    if weekday == 6:
        return day + 1 if day < last else day - 2
    return day


def parse_reference(expression: str) -> Reference:
    fields = expression.lower().split()
    if fields[0].startswith("@"):
        fields = {
            "@yearly": "0 0 1 1 *",
            "@annually": "0 0 1 1 *",
            "@monthly": "0 0 1 * *",
            "@weekly": "0 0 * * 0",
            "@daily": "0 0 * * *",
            "@midnight": "0 0 * * *",
            "@hourly": "0 * * * *",
        }[fields[0]].split()
    if len(fields) == 5:
        fields = ["0", *fields]
    second, minute, hour, day, month, weekday = fields
    days, last_day, nearest = set(), False, None
    for item in day.split(","):
        if item == "l":
            last_day = True
        elif item.endswith("w"):
            nearest = int(item[:-1])
        else:
            days |= values(item, 1, 31, [])
    plain, last_weekdays, nth = set(), set(), set()
    for item in weekday.split(","):
        if match := re.fullmatch(r"(\w+)l|l(\w+)", item):
            last_weekdays.add(number(match[1] or match[2], WEEKDAYS) % 7)
        elif "#" in item:
            name, week = item.split("#")
            nth.add((number(name, WEEKDAYS) % 7, int(week)))
        else:
            plain |= {value % 7 for value in values(item, 0, 7, WEEKDAYS, top=6)}
    return Reference(
        seconds=frozenset(values(second, 0, 59, [])) if second else frozenset({0}),
        minutes=frozenset(values(minute, 0, 59, [])),
        hours=frozenset(values(hour, 0, 23, [])),
        days=frozenset(days),
        last_day=last_day,
        nearest_weekday=nearest,
        months=frozenset(values(month, 1, 12, MONTHS, first=1)),
        weekdays=frozenset(plain),
        last_weekdays=frozenset(last_weekdays),
        nth_weekdays=frozenset(nth),
        and_days=day.startswith("*") or weekday.startswith("*"),
        fixed=not any(field.startswith("*") for field in fields[:3]),
    )


def values(field: str, low: int, high: int, names, first=0, top=None) -> set[int]:
    """The set a plain field (lists, ranges, steps, names) stands for."""
    result = set()
    for item in field.split(","):
        text, _, step = item.partition("/")
        if text == "*":
            start, end = low, top if top is not None else high
        elif "-" in text:
            start, end = (number(part, names, first) for part in text.split("-"))
            if names is WEEKDAYS and end == 0 < start:  # 'fri-sun'
                end = 7
        else:
            start = number(text, names, first)
            end = start if not step else (top if top is not None else high)
            if names is WEEKDAYS and step and start == 7:
                start = 0
        result |= set(range(start, end + 1, int(step) if step else 1))
    return result


def number(text: str, names, first=0) -> int:
    return int(text) if text.isdigit() else names.index(text) + first


def reference_fires(expression: str, zone_name: str, start: datetime, count: int) -> list:
    """The first ``count`` fires after ``start``, by walking real time over matching days."""
    spec, tz = parse_reference(expression), ZoneInfo(zone_name)
    fires: set[datetime] = set()
    day = start.astimezone(tz).date() - DAY
    enough_on = None
    limit = day + timedelta(days=366 * 9)
    # Instants grow with the local date, except where a fall-back crosses midnight:
    # one more day covers that.
    while day <= limit and (enough_on is None or day <= enough_on + DAY):
        if spec.date_matches(day):
            fires |= fires_on(spec, tz, day, start, count)
        if enough_on is None and len(fires) >= count:
            enough_on = day
        day += DAY
    return sorted(fires)[:count]


def fires_on(
    spec: Reference, tz: ZoneInfo, day: date, start: datetime, count: int
) -> set[datetime]:
    """The fires of a matching local date, by walking each real minute around it, up to
    the ``count``-th after ``start`` (the walk finds them in order)."""
    midnight = datetime.combine(day, datetime.min.time())
    bounds = [
        (midnight + extra).replace(tzinfo=tz, fold=fold).astimezone(UTC)
        for extra in (timedelta(0), DAY)
        for fold in (0, 1)
    ]
    # Fires up to ``start`` are not wanted; the walk begins a minute before it at the
    # latest, to see a jump of the clock at its first step.
    moment = max(min(bounds) - 3 * 60 * MINUTE, start - MINUTE).replace(second=0, microsecond=0)
    end = max(bounds) + 3 * 60 * MINUTE
    fires: set[datetime] = set()
    previous = moment.astimezone(tz).replace(tzinfo=None)
    while moment < end:
        moment += MINUTE
        local = moment.astimezone(tz)
        wall = local.replace(tzinfo=None)
        if wall - previous > MINUTE and spec.fixed:  # the clock jumped over some walls
            skipped = previous + MINUTE
            while skipped < wall:
                if skipped.date() == day and spec.minute_matches(skipped):
                    fires |= {moment} if moment > start else set()
                    break
                skipped += MINUTE
        if wall.date() == day and spec.minute_matches(wall) and (local.fold == 0 or not spec.fixed):
            fires |= {
                moment + timedelta(seconds=second)
                for second in spec.seconds
                if moment + timedelta(seconds=second) > start
            }
        if len(fires) >= count:
            break
        previous = wall
    return fires


# --- where to start ---------------------------------------------------------------------


@cache
def transitions(zone_name: str, year: int) -> tuple[datetime, ...]:
    """Instants in ``year`` where the zone's offset changes (daily samples, then bisection)."""
    tz = ZoneInfo(zone_name)
    found, moment = [], datetime(year, 1, 1, tzinfo=UTC)
    while moment.year == year:
        following = moment + DAY
        if moment.astimezone(tz).utcoffset() != following.astimezone(tz).utcoffset():
            low, high = moment, following
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                same = middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset()
                low, high = (middle, high) if same else (low, middle)
            found.append(high)
        moment = following
    return tuple(found)


@st.composite
def starts(draw, zone_name: str) -> tuple[datetime, datetime | None]:
    """A start, and the wall time just around the offset change it is near (if it is)."""
    year = draw(st.integers(2000, 2040))
    changes = transitions(zone_name, year)
    if changes and draw(st.integers(0, 3)):
        change = draw(st.sampled_from(changes))
        jitter = timedelta(seconds=draw(st.integers(-3 * 3600, 3600)))
        tz = ZoneInfo(zone_name)
        # The last wall time before the change, or the wall time just before the
        # clock's new reading: the repeated or the skipped stretch, one of the two.
        walls = [
            (change - timedelta(seconds=1)).astimezone(tz),
            change.astimezone(tz) - timedelta(seconds=1),
        ]
        return change + jitter, draw(st.sampled_from(walls)).replace(tzinfo=None)
    offset = timedelta(seconds=draw(st.integers(0, 365 * 86400)))
    return datetime(year, 1, 1, tzinfo=UTC) + offset, None


# --- random expressions ----------------------------------------------------------------


def plain_items(low: int, high: int, names=(), first=0):
    value = st.integers(low, high)

    def show(number: int) -> st.SearchStrategy[str]:
        if names and 0 <= number - first < len(names):
            return st.sampled_from(
                [str(number), names[number - first], names[number - first].upper()]
            )
        return st.just(str(number))

    single = value.flatmap(show)
    ranges = (
        st.tuples(value, value)
        .map(sorted)
        .flatmap(lambda pair: st.tuples(show(pair[0]), show(pair[1])).map("-".join))
    )
    steps = st.integers(1, high - low + 2).map(str)
    return st.one_of(
        single,
        ranges,
        st.tuples(ranges, steps).map("/".join),
        st.tuples(single, steps).map("/".join),
    )


def plain_field(low: int, high: int, names=(), first=0, star_weight=3):
    listed = st.lists(plain_items(low, high, names, first), min_size=1, max_size=3).map(",".join)
    starred = st.one_of(
        st.just("*"),
        st.integers(1, high - low + 2).map(lambda step: f"*/{step}"),
        st.tuples(
            st.integers(1, high - low + 2).map(lambda step: f"*/{step}"),
            st.lists(plain_items(low, high, names, first), min_size=1, max_size=2).map(",".join),
        ).map(",".join),
    )
    return st.one_of(*[starred] * star_weight, listed)


weekday_names = st.integers(0, 7).flatmap(
    lambda day: st.sampled_from([str(day), WEEKDAYS[day % 7]])
)
special_weekdays = st.lists(
    st.one_of(
        weekday_names.map(lambda day: f"{day}L"),
        weekday_names.map(lambda day: f"L{day}"),
        st.tuples(weekday_names, st.integers(1, 5)).map(lambda pair: f"{pair[0]}#{pair[1]}"),
    ),
    min_size=1,
    max_size=2,
).map(",".join)
special_days = st.one_of(
    st.just("L"),
    st.integers(1, 31).map(lambda day: f"{day}W"),
    st.lists(plain_items(1, 31), min_size=0, max_size=2).map(lambda items: ",".join([*items, "L"])),
)


def around(value: int, low: int, high: int):
    """Fields that match ``value``: itself, a small range, or a list holding it."""
    return st.one_of(
        st.just(str(value)),
        st.just(f"{max(low, value - 1)}-{min(high, value + 1)}"),
        plain_items(low, high).map(lambda item: f"{item},{value}"),
    )


@st.composite
def expressions(draw, anchor: datetime | None = None) -> str:
    """Random expressions; with an ``anchor``, often ones due at that wall time's hour,
    date and month, rare enough that the next fire after it is far away."""
    if draw(st.integers(0, 20)) == 0:
        return draw(st.sampled_from(["@yearly", "@monthly", "@weekly", "@daily", "@hourly"]))
    seconds = draw(st.booleans())
    aimed = anchor is not None and draw(st.booleans())
    hours = around(anchor.hour, 0, 23) if aimed else None
    # Aimed at a change, sparse seconds and minutes let the first few fires reach
    # past the stretch the clock repeats or skips.
    sparse = st.integers(10, 40).map(lambda step: f"*/{step}")
    time_fields = [
        draw(sparse if aimed else plain_field(0, 59, star_weight=1)) if seconds else None,
        draw(st.one_of(sparse, plain_field(0, 59)) if aimed else plain_field(0, 59, star_weight=2)),
        # Hours near the usual transition times make DST cases likely.
        draw(
            hours
            if hours is not None
            else st.one_of(plain_field(0, 23), plain_items(0, 3), plain_items(22, 23))
        ),
    ]
    day_kind = draw(st.sampled_from(["plain", "plain", "special-day", "special-weekday"]))
    if aimed:
        weekday = str(anchor.isoweekday() % 7)
        day, weekday = draw(
            st.sampled_from([(str(anchor.day), "*"), ("*", weekday), (str(anchor.day), weekday)])
        )
        month = draw(st.one_of(around(anchor.month, 1, 12), st.just("*")))
        return " ".join(field for field in [*time_fields, day, month, weekday] if field)
    if day_kind == "special-day":
        day, weekday = draw(special_days), draw(st.sampled_from(["*", "*/2", "*/3"]))
    elif day_kind == "special-weekday":
        day, weekday = draw(st.sampled_from(["*", "*/2", "*/5"])), draw(special_weekdays)
    else:
        day, weekday = draw(plain_field(1, 31)), draw(plain_field(0, 7, WEEKDAYS))
    month = draw(plain_field(1, 12, MONTHS, first=1, star_weight=4))
    return " ".join(field for field in [*time_fields, day, month, weekday] if field is not None)


def our_fires(expression: str, zone_name: str, start: datetime, count: int) -> list:
    fires, moment = [], start
    for _ in range(count):
        moment = next_fire_after(expression, zone_name, moment)
        fires.append(moment)
    return fires


# --- the property ------------------------------------------------------------------------


@st.composite
def cases(draw) -> tuple[str, str, datetime]:
    zone_name = draw(st.sampled_from(ZONES))
    start, anchor = draw(starts(zone_name))
    return draw(expressions(anchor)), zone_name, start


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(case=cases())
# Disagreements found so far, kept. The repeated hour lost when the next match is a
# year away (the bug of issue 11; also with 30- and 45-minute offsets):
@example(case=("*/30 1 1 4-11 *", "America/New_York", at(2026, 10, 31, 12)))
@example(case=("*/15 2 * 10 L0", "Europe/Berlin", at(2026, 10, 24, 12)))
@example(case=("*/10 */10 0 29 10 *", "America/Havana", at(2000, 10, 29, 4, 58, 1)))
@example(case=("*/10 */10 1 5 4 *", "Australia/Lord_Howe", at(2037, 4, 4, 14, 55, 31)))
@example(case=("*/4 2 5 4 *", "Pacific/Chatham", at(2037, 4, 4, 13, 15, 18)))
# croniter reads an equal range ('22-22/2', '23/2' as '23-23/2') as the whole field:
@example(case=("* 17-30 22-22/2 * 5-nov/8,1-4 *", "America/New_York", at(2000, 1, 1, 0, 2, 23)))
@example(case=("*/57,42-42/41,37-58/43 * */24 * SUN-SUN,0-thu,5", "UTC", at(2037, 1, 2, 18)))
@example(case=("* * 23/2 26W * */2", "Pacific/Apia", at(2024, 1, 1, 0, 13, 9)))
@example(case=("*/31 22 3,9-31/31,L */7,dec,dec/6 */2", "America/Havana", at(2028, 3, 12, 5)))
# A lone weekday 7 (Sunday) in a list was read as 7-7... then as every day:
@example(case=("*/12 22-22/3 */6 */6 */4,7,0-WED", "America/New_York", at(2038, 1, 1, 0, 8)))
# The reference once read '0-0' in the weekday field as 0-7:
@example(case=("*/25,23-31 24-28,17-55 0-3/4 * */1 */9,0-0", "UTC", at(2000, 1, 1)))
def test_next_fire_after_agrees_with_the_brute_force_reference(case):
    expression, zone_name, start = case
    try:
        validate_cron(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except CronError:
        assume(False)
    expected = reference_fires(expression, zone_name, start, FIRES)
    assume(len(expected) == FIRES)  # fires beyond 9 years are not compared
    assert our_fires(expression, zone_name, start, FIRES) == expected
