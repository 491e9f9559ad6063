"""Recurrence schedules as text: recognised and normalised without parsing them.

Kept free of heavy imports, so that code which only stores or dispatches
schedules (every script's ``django.setup()`` loads the validation layer) does not
load pydantic and dateutil; ``runner.recurrence`` does the rest when needed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from statestore.values import MAX_JSON_DEPTH, json_loads, json_problem


class RecurrenceError(ValueError):
    """A recurrence object that is malformed or never fires; the message says where."""


def looks_like_recurrence(text: str) -> bool:
    """True when a schedule's text is a JSON object (anything else is read as cron)."""
    return text.lstrip().startswith("{")


def canonical_text(value: Mapping | str) -> str:
    """A recurrence object (or its JSON text) as compact JSON text, as the original stores it.

    Raises RecurrenceError when the text is not a JSON object.
    """
    data = load_object(value) if isinstance(value, str) else value
    problem = json_problem(data)  # an object read from a job file may hold anything
    if problem:
        raise RecurrenceError(problem)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def load_object(text: str) -> dict:
    """The JSON object in ``text``; RecurrenceError when it is not one, or is not a
    value the runner stores (``statestore.values.json_problem``: nested more than
    ``MAX_JSON_DEPTH`` levels, say)."""
    try:
        data = json_loads(text)  # an integer too long for int() is named, not raised
    except json.JSONDecodeError as exc:
        raise RecurrenceError(f"is not valid JSON: {exc}") from None
    except RecursionError:  # Python's parser recurses: deeper than it can, far past ours
        raise RecurrenceError(f"is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:  # NaN or Infinity
        raise RecurrenceError(f"is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RecurrenceError("a recurrence schedule must be a JSON object")
    problem = json_problem(data)
    if problem:
        raise RecurrenceError(problem)
    return data


# --- Words for the console: "every day at 07:15", "every 11 minutes (America/Chicago)" ---

_UNITS = {
    "yearly": "year", "monthly": "month", "weekly": "week", "daily": "day",
    "hourly": "hour", "minutely": "minute", "secondly": "second",
}  # fmt: skip
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Frequencies whose fires fall at a time of day (the by-parts or the start's own).
_DAY_OR_LONGER = ("yearly", "monthly", "weekly", "daily")
# Beyond this many times of day, the hours and minutes are listed apart.
_MAX_TIMES = 6


def recurrence_words(text: str, zone_name: str = "UTC") -> str:
    """A recurrence object in words, e.g. ``every week on Monday and Friday at 09:00``.

    Covers runner.recurrence_schema's whole shape: event rules (each frequency and
    interval, every by-part, count, start and end, one-time events), active and
    blackout windows with their durations, and the object's own zone. The times a
    rule leaves out are its start's (RRStack's rule), read in ``zone_name`` when the
    object names no zone. ``""`` when the text is not a valid recurrence object.
    """
    from runner import recurrence  # pydantic and dateutil: loaded only when words are asked

    try:
        stack = recurrence.parse(text)
        compiled = recurrence.compile_schedule(text, zone_name)
    except ValueError:
        return ""
    events = [_rule_words(rule) for rule in compiled.events]
    words = "; ".join(events)
    for rule in compiled.coverage:
        kind = "only within" if rule.effect == "active" else "except"
        words += f"; {kind} {_rule_words(rule)}"
    return f"{words} ({stack.timezone})" if stack.timezone else words


def _rule_words(rule) -> str:
    """One compiled rule (runner.recurrence.CompiledRule) in words."""
    zone = rule.zone
    if rule.freq is None:
        if rule.effect == "event":
            return f"once, at {_moment(rule.starts, zone)}"
        start = f"from {_moment(rule.starts, zone)}" if rule.starts else "from the start"
        return f"{start} until {_moment(rule.ends, zone)}" if rule.ends else start
    by = {key: _as_list(value) for key, value in rule.by}
    unit = _UNITS[rule.freq]
    parts = [f"every {rule.interval} {unit}s" if rule.interval > 1 else f"every {unit}"]
    if "bymonth" in by:
        parts.append("in " + _join([_MONTHS[month - 1] for month in by["bymonth"]]))
    if "byweekno" in by:
        parts.append(_numbers("in week", [_ordinal_or_last(n, True) for n in by["byweekno"]]))
    if "byyearday" in by:
        days = [_ordinal_or_last(n) for n in by["byyearday"]]
        parts.append(f"on the {_join(days)} day of the year")
    if "bymonthday" in by:
        parts.append(f"on the {_join([_ordinal_or_last(n) for n in by['bymonthday']])} day")
    if "byweekday" in by:
        parts.append("on " + _join([_WEEKDAYS[day] for day in by["byweekday"]]))
    parts += _time_words(rule, by)
    if "bysetpos" in by:
        picks = [_ordinal_or_last(n) for n in by["bysetpos"]]
        parts.append(f"(only the {_join(picks)} of each {unit})")
    if rule.wkst is not None:
        parts.append(f"(weeks starting on {_WEEKDAYS[rule.wkst]})")
    if rule.duration is not None:
        parts.append(f"for {_duration(rule.duration)}")
    if rule.count:
        parts[-1] += ","
        parts.append(f"{rule.count} time{'s' if rule.count != 1 else ''}")
    if rule.starts:
        parts.append(f"from {_moment(rule.starts, zone)}")
    if rule.ends:
        parts.append(f"until {_moment(rule.ends, zone)}")
    return " ".join(parts)


def _time_words(rule, by: dict[str, list[int]]) -> list[str]:
    """When in the day (or hour, or minute) a rule fires; the start's time fills the gaps."""
    start = rule.anchor.astimezone(rule.zone)
    if rule.freq in _DAY_OR_LONGER:
        hours = by.get("byhour", [start.hour])
        minutes = by.get("byminute", [start.minute])
        seconds = by.get("bysecond", [start.second])
        if len(hours) * len(minutes) * len(seconds) <= _MAX_TIMES:
            with_seconds = any(seconds)
            times = [
                f"{h:02d}:{m:02d}" + (f":{s:02d}" if with_seconds else "")
                for h in sorted(hours)
                for m in sorted(minutes)
                for s in sorted(seconds)
            ]
            return [f"at {_join(times)}"]
        words = [_numbers("in hour", hours), _numbers("at minute", minutes)]
        return words + ([_numbers("and second", seconds)] if any(seconds) else [])
    words = []
    if "byhour" in by:
        words.append(_numbers("in hour", by["byhour"]))
    if rule.freq == "hourly":
        words.append(_numbers("at minute", by.get("byminute", [start.minute])))
    elif "byminute" in by:
        words.append(_numbers("in minute", by["byminute"]))
    if rule.freq in ("hourly", "minutely"):
        seconds = by.get("bysecond", [start.second])
        if any(seconds):
            words.append(_numbers("at second", seconds))
    elif "bysecond" in by:
        words.append(_numbers("in second", by["bysecond"]))
    return words


def _numbers(label: str, values: list) -> str:
    """``in hour 9`` / ``in hours 9, 10 and 11``."""
    return f"{label}{'s' if len(values) > 1 else ''} {_join([str(v) for v in values])}"


def _as_list(value) -> list[int]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _ordinal_or_last(n: int, plain: bool = False) -> str:
    """``1`` -> ``1st``, ``-1`` -> ``last``, ``-2`` -> ``2nd last`` (``plain``: ``1``)."""
    if n < 0:
        return "last" if n == -1 else f"{_ordinal_or_last(-n, plain)} last"
    if plain:
        return str(n)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _duration(parts) -> str:
    """A DurationParts as ``1 week 2 days 8 h 30 min``."""
    names = (
        ("years", "year"), ("months", "month"), ("weeks", "week"), ("days", "day"),
        ("hours", "h"), ("minutes", "min"), ("seconds", "s"),
    )  # fmt: skip
    words = []
    for field, unit in names:
        amount = getattr(parts, field)
        if amount:
            plural = "s" if amount != 1 and unit not in ("h", "min", "s") else ""
            words.append(f"{amount} {unit}{plural}")
    return " ".join(words)


def _moment(moment, zone) -> str:
    local = moment.astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M")
