"""Cron expressions as the runner reads them: 5 fields, or 6 with seconds first.

Every expression is checked against one grammar here before croniter sees it, so
what is accepted is exactly what the README documents, and every fire is a pure
function of (expression, zone, instant):

* per field: ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n``, ``a/n`` (= ``a-max/n``) and
  comma lists of them; month and weekday names (``jan``, ``mon``), any case; weekday
  0-7 with Sunday 0 or 7;
* day of month: ``L`` (last day), ``15W`` (nearest weekday to the 15th, alone);
  day of week: ``5L`` or ``L5`` (last Friday), ``5#2`` (second Friday);
* macros ``@yearly @annually @monthly @weekly @daily @midnight @hourly``.

Refused, each with what to write instead: random ``R`` and Jenkins ``H`` (not a
pure function of the expression), Quartz ``?``, reverse ranges (``5-1``; Vixie cron
refuses them), ``*`` inside a list, ``@reboot``, and ``L``/``W``/``#`` beside a day
field that does not start with ``*`` (cron ORs the day fields then, which croniter
gets wrong for these forms).

Day fields follow ISC/Vixie cron: when the day-of-month or the day-of-week field
starts with ``*`` both must match (AND), otherwise either may (OR).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from jeeves_site.echo import echoed

# How far ahead a schedule may first fire before we call it "never": leap-day
# schedules fire every 4 years, and 8 covers the century rule's gap.
NEVER_FIRES_HORIZON_YEARS = 8

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    first_name_value: int = 0


SECOND = _Field("second", 0, 59)
MINUTE = _Field("minute", 0, 59)
HOUR = _Field("hour", 0, 23)
DAY = _Field("day-of-month", 1, 31)
MONTH = _Field("month", 1, 12, tuple(MONTHS), 1)
WEEKDAY = _Field("day-of-week", 0, 7, tuple(WEEKDAYS), 0)
FIVE_FIELDS = (MINUTE, HOUR, DAY, MONTH, WEEKDAY)

_VALUE = r"(\d+|[a-z]{3})"
_PLAIN = re.compile(rf"^(?:\*|{_VALUE}(?:-{_VALUE})?)(?:/(\d+))?$")
_LAST_WEEKDAY = re.compile(rf"^(?:{_VALUE}l|l{_VALUE})$")
_NTH_WEEKDAY = re.compile(rf"^{_VALUE}#(\d+)$")
_NEAREST_WEEKDAY = re.compile(r"^(\d+)w$")


class CronError(ValueError):
    """The expression is malformed or never fires; the message says which."""


class _Invalid(CronError):
    """One field's problem; ``parse`` names the whole expression around it."""


@dataclass(frozen=True)
class Cron:
    """A checked expression: its fields as written (seconds first when present) and
    the equivalent text croniter evaluates."""

    fields: tuple[str, ...]
    croniter_text: str

    @property
    def and_days(self) -> bool:
        """ISC cron's rule: both day fields must match when either starts with ``*``."""
        day, weekday = self.day_fields
        return day.startswith("*") or weekday.startswith("*")

    @property
    def has_seconds(self) -> bool:
        return len(self.fields) == 6

    @property
    def time_fields(self) -> tuple[str, ...]:
        """Second (if any), minute and hour fields, as written."""
        return self.fields[:3] if self.has_seconds else self.fields[:2]

    @property
    def day_fields(self) -> tuple[str, str]:
        """Day-of-month and day-of-week fields, as written."""
        return self.fields[-3], self.fields[-1]


def _field_count(expression: str) -> int:
    return len(expression.split())


def has_seconds(expression: str) -> bool:
    """True for a 6-field expression, whose first field is the second."""
    return _field_count(expression) == 6


# Control characters other than a tab, which cron files put between fields.
_CONTROLS = frozenset(map(chr, [*range(9), *range(10, 32), 127]))


@lru_cache(maxsize=4096)
def parse(expression: str) -> Cron:
    """The checked form of ``expression``; raises ``CronError`` naming what is wrong."""
    text = expression.strip()
    if not text:
        raise CronError("is empty; give a cron expression such as '*/5 * * * *'")
    if not text.isascii():  # int() reads other scripts' digits: a fullwidth 1 is minute 1
        odd = next(char for char in text if not char.isascii())
        raise CronError(
            f"{echoed(text)} holds {odd!r} (U+{ord(odd):04X}); a cron expression is ASCII "
            "digits, names and * , - / ? L W #"
        )
    control = next((char for char in text if char in _CONTROLS), None)
    if control is not None:  # split() would take a line break for a field separator
        raise CronError(
            f"{echoed(text)} holds {control!r}; a cron expression is one line, its fields "
            "separated by spaces or tabs"
        )
    if text.startswith("@"):
        text = _expand_macro(text)
    fields = tuple(text.split())
    if len(fields) not in (5, 6):
        raise CronError(
            f"{echoed(text)} has {len(fields)} fields; use 5 (minute hour day month weekday) "
            "or 6 with seconds first"
        )
    specs = (SECOND, *FIVE_FIELDS) if len(fields) == 6 else FIVE_FIELDS
    try:
        parts = [
            _check_field(field.lower(), spec) for field, spec in zip(fields, specs, strict=True)
        ]
        _check_day_fields(fields[-3], fields[-1], parts[-3], parts[-1])
    except _Invalid as exc:
        raise CronError(f"{echoed(text)} is not a valid cron expression: {exc}") from None
    return Cron(fields, " ".join(parts))


def _expand_macro(text: str) -> str:
    macro = text.lower()
    if macro in MACROS:
        return MACROS[macro]
    if macro == "@reboot":
        raise CronError("'@reboot' is not a schedule; run the job with trigger_job at start-up")
    raise CronError(f"{echoed(text)} is not a known macro (one of: {', '.join(MACROS)})")


def _check_field(text: str, spec: _Field) -> str:
    """The field in croniter's syntax (names as numbers); refuses what cron does not mean."""
    items = text.split(",")
    if any(not item for item in items):
        raise _Invalid(f"{spec.name} field {echoed(text)} has an empty list item")
    if len(items) > 1 and "*" in items:
        raise _Invalid(f"{spec.name} field {echoed(text)} lists '*' with other values; write '*'")
    if text == "*":
        return text
    converted = [_check_item(item, spec, len(items)) for item in items]
    special = [item for item in converted if "#" in item or "l" in item]
    if spec is WEEKDAY and special and len(special) < len(items):
        raise _Invalid(
            f"day-of-week field {echoed(text)} mixes plain weekdays with '#'/'L' ones; "
            "make them separate jobs"
        )
    plain = {
        int(value)
        for item in converted
        if item.isdigit() or "," in item
        for value in item.split(",")
    }
    rest = [item for item in converted if not (item.isdigit() or "," in item)]
    return ",".join([*map(str, sorted(plain)), *rest])


def _check_item(item: str, spec: _Field, count: int) -> str:
    if item[0] in "rh":
        raise _Invalid(_NON_DETERMINISTIC[item[0]])
    if item == "?":
        raise _Invalid(
            f"'?' in the {spec.name} field is Quartz syntax; write '*' "
            "(weekdays here are 0-7, Sunday 0 or 7)"
        )
    if spec is DAY and (item in ("l", "lw") or item.startswith("l-")):
        if item != "l":
            raise _Invalid(f"{echoed(item.upper())} is not supported; use 'L' (the last day)")
        return "l"
    if spec is DAY and (match := _NEAREST_WEEKDAY.match(item)):
        if count > 1:
            raise _Invalid(f"{echoed(item.upper())} must be the only day-of-month value")
        return f"{_number(match[1], spec)}w"
    if spec is WEEKDAY and (match := _LAST_WEEKDAY.match(item)):
        return f"l{_number(match[1] or match[2], spec)}"
    if spec is WEEKDAY and (match := _NTH_WEEKDAY.match(item)):
        nth = int(match[2])
        if not 1 <= nth <= 5:
            raise _Invalid(f"{echoed(item)}: the week number after '#' must be 1 to 5")
        return f"{_number(match[1], spec)}#{nth}"
    match = _PLAIN.match(item)
    if not match:
        raise _Invalid(f"{spec.name} field: {echoed(item)} is not valid cron syntax")
    return _plain_item(item, match, spec)


_NON_DETERMINISTIC = {
    "r": "'R' (a random value) is refused: it is drawn again each time the schedule is "
    "read, so fire times would change; write a fixed value such as '17'",
    "h": "'H' (a hashed value) is not supported; write a fixed value such as '17'",
}


def _plain_item(item: str, match: re.Match, spec: _Field) -> str:
    """The item's values as an explicit list: croniter misreads some ranges and steps
    (an equal range such as ``22-22/2`` stands for the whole field there)."""
    first, last, step = match[1], match[2], match[3]
    if step is not None and int(step) == 0:
        raise _Invalid(f"{spec.name} field: {echoed(item)} has a step of 0")
    top = 6 if spec is WEEKDAY else spec.high  # a weekday '*/n' or 'a/n' stops at Saturday
    if first is None:
        low, high = spec.low, top
    else:
        low = _number(first, spec)
        if last is None and not step:
            return str(low % 7 if spec is WEEKDAY else low)
        high = top  # 'a/n' is 'a-max/n'
        if spec is WEEKDAY and low == 7 and last is None:
            low = 0
    if last is not None:
        high = _number(last, spec)
        if spec is WEEKDAY and high == 0 and low > 0:  # 'fri-sun': Sunday as 7
            high = 7
        if low > high:
            raise _Invalid(
                f"{spec.name} field: {echoed(item)} is a reverse range, which cron refuses; "
                f"write '{_split_reverse(low, high, spec)}'"
            )
    values = range(low, high + 1, int(step or 1))
    return ",".join(str(value % 7 if spec is WEEKDAY else value) for value in values)


def _split_reverse(low: int, high: int, spec: _Field) -> str:
    top = 6 if spec is WEEKDAY else spec.high
    return f"{low}-{top},{spec.low}-{high}" if low <= top else f"{spec.low}-{high}"


def _number(value: str, spec: _Field) -> int:
    if value.isdigit():
        number = int(value)
    elif value in spec.names:
        number = spec.names.index(value) + spec.first_name_value
    else:
        raise _Invalid(f"{spec.name} field: {echoed(value)} is not a number or a known name")
    if not spec.low <= number <= spec.high:
        raise _Invalid(
            f"{spec.name} field: {echoed(number)} is out of range ({spec.low}-{spec.high})"
        )
    return number


def _check_day_fields(day: str, weekday: str, day_form: str, weekday_form: str) -> None:
    """L, W and # only beside a day field starting with '*' (where cron ANDs them);
    ``*_form`` are the fields in croniter's syntax, where names are numbers."""
    pairs = ((day, day_form, weekday, "day-of-week"), (weekday, weekday_form, day, "day-of-month"))
    for field, form, other, other_name in pairs:
        if re.search(r"[lw#]", form) and not other.startswith("*"):
            raise _Invalid(
                f"{echoed(field)} needs the {other_name} field to start with '*' "
                f"(with {echoed(other)} there "
                "cron would match either field); write '*' there or make a separate job"
            )


def make_iterator(expression: str, start: datetime) -> croniter:
    """Return a croniter positioned at ``start``, evaluating ``expression`` with ISC
    cron's day-field rule (raises ``CronError`` for an expression ``parse`` refuses).

    croniter spends most of its constructor expanding the expression, which does not
    depend on the start (``expand_from_start_time`` is off): one expanded croniter per
    expression is kept, and each call gets a copy of it moved to ``start``.
    """
    iterator = copy.copy(_expanded(expression))
    # croniter merges a '*' entry into these sets as it goes: each copy gets its own.
    iterator.nth_weekday_of_month = {
        weekday: set(nths) for weekday, nths in iterator.nth_weekday_of_month.items()
    }
    iterator.set_current(start, force=True)
    return iterator


@lru_cache(maxsize=4096)
def _expanded(expression: str) -> croniter:
    cron = parse(expression)
    return croniter(
        cron.croniter_text,
        datetime(2000, 1, 1),
        second_at_beginning=cron.has_seconds,
        day_or=not cron.and_days,
        max_years_between_matches=NEVER_FIRES_HORIZON_YEARS,
    )


def validate_cron(expression: str, now: datetime | None = None) -> None:
    """Raise ``CronError`` unless ``expression`` is valid and fires at least once."""
    text = expression.strip()
    cron = parse(text)
    try:
        make_iterator(text, now or datetime.now(UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise CronError(f"{echoed(text)} never fires") from None
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise CronError(
            f"{echoed(' '.join(cron.fields))} is not a valid cron expression: {exc}"
        ) from None
