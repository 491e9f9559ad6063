"""The original runner's recurrence schedules (RRStack JSON), read and checked.

A schedule that is a JSON object is an RRStack configuration, the format of
karmaniverous/rrstack that jeeves-runner stores as JSON text:

* full form ``{"timezone": "America/Chicago", "rules": [{"effect": "event",
  "options": {"freq": "minutely", "interval": 11}}]}``;
* flat form ``{"freq": "minutely", "interval": 11, "timezone": "America/Chicago"}``,
  which the original repacks as one ``event`` rule (its schedule-utils.ts).

The shapes and limits below are RRStack's own (src/rrstack/RRStack.options.ts):
rule options are strict, weekdays are 0 (Monday) to 6, ``starts``/``ends`` are
epoch timestamps in ``timeUnit`` (ms by default). Two additions of ours:
``dtstart``/``until`` as ISO-8601 text (the schedule's zone when they name none),
and a missing ``timezone`` meaning the job's zone.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from jeeves_site.echo import echoed
from runner.recurrence_text import RecurrenceError, load_object

__all__ = ["RecurrenceError", "Stack", "check_zone", "parse", "parse_moment"]

FREQUENCIES = ("yearly", "monthly", "weekly", "daily", "hourly", "minutely", "secondly")


def _not_zero(value: int) -> int:
    if value == 0:
        raise ValueError("0 is not allowed (count from 1, or from -1 for the last)")
    return value


def _ints(low: int, high: int, nonzero: bool = False) -> Any:
    """One int in [low, high] or a list of them; RRStack refuses 0 for the signed by-fields."""
    atom = Annotated[int, Field(ge=low, le=high)]
    if nonzero:
        atom = Annotated[int, Field(ge=low, le=high), AfterValidator(_not_zero)]
    return atom | list[atom]


class RuleOptions(BaseModel):
    """One rule's recurrence: RRULE parts (RFC 5545) plus RRStack's clamps."""

    model_config = ConfigDict(extra="forbid", strict=True)

    freq: Literal[FREQUENCIES] | None = None
    starts: int | float | None = None
    ends: int | float | None = None
    dtstart: str | None = None
    until: str | None = None
    interval: Annotated[int, Field(gt=0)] | None = None
    wkst: Annotated[int, Field(ge=0, le=6)] | None = None
    count: Annotated[int, Field(gt=0)] | None = None
    bysetpos: int | list[int] | None = None
    bymonth: _ints(1, 12) | None = None
    bymonthday: _ints(-31, 31, nonzero=True) | None = None
    byyearday: _ints(-366, 366, nonzero=True) | None = None
    byweekno: _ints(-53, 53, nonzero=True) | None = None
    byweekday: _ints(0, 6) | None = None
    byhour: _ints(0, 23) | None = None
    byminute: _ints(0, 59) | None = None
    bysecond: _ints(0, 59) | None = None

    @model_validator(mode="after")
    def _one_start_and_end(self) -> RuleOptions:
        if self.starts is not None and self.dtstart is not None:
            raise ValueError("give starts or dtstart, not both")
        if self.ends is not None and self.until is not None:
            raise ValueError("give ends or until, not both")
        return self


class DurationParts(BaseModel):
    """How long an active/blackout occurrence lasts; days and longer follow the calendar."""

    model_config = ConfigDict(extra="forbid", strict=True)

    years: Annotated[int, Field(ge=0)] = 0
    months: Annotated[int, Field(ge=0)] = 0
    weeks: Annotated[int, Field(ge=0)] = 0
    days: Annotated[int, Field(ge=0)] = 0
    hours: Annotated[int, Field(ge=0)] = 0
    minutes: Annotated[int, Field(ge=0)] = 0
    seconds: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _positive(self) -> DurationParts:
        if not any(self.model_dump().values()):
            raise ValueError("a duration must be longer than zero")
        return self


class Rule(BaseModel):
    """``event`` rules fire; ``active``/``blackout`` rules open and close windows."""

    model_config = ConfigDict(extra="forbid", strict=True)

    effect: Literal["event", "active", "blackout"]
    duration: DurationParts | None = None
    options: RuleOptions = Field(default_factory=RuleOptions)
    label: str | None = None

    @model_validator(mode="after")
    def _duration_matches_kind(self) -> Rule:
        recurring = self.options.freq is not None
        starts = self.options.starts is not None or self.options.dtstart is not None
        if self.effect == "event":
            if self.duration is not None:
                raise ValueError("an event rule has no duration")
            if not recurring and not starts:
                raise ValueError("a one-time event (no freq) needs starts (or dtstart)")
        elif recurring and self.duration is None:
            raise ValueError(f"a recurring {self.effect} rule needs a duration")
        elif not recurring and self.duration is not None:
            raise ValueError(f"an {self.effect} span (no freq) takes no duration")
        return self


class Stack(BaseModel):
    """A whole RRStack configuration: a zone and a cascade of rules."""

    model_config = ConfigDict(extra="ignore")

    version: str | None = None
    timezone: str | None = None
    timeUnit: Literal["ms", "s"] = "ms"
    defaultEffect: Literal["active", "blackout", "auto"] = "auto"
    rules: list[Rule] = Field(default_factory=list)


def parse(text: str) -> Stack:
    """The RRStack configuration in ``text``, flat form repacked; RecurrenceError if malformed."""
    data = load_object(text)
    flat = "rules" not in data and "freq" in data
    if flat:
        options = {key: value for key, value in data.items() if key != "timezone"}
        zone = {"timezone": data["timezone"]} if "timezone" in data else {}
        data = {**zone, "rules": [{"effect": "event", "options": options}]}
    try:
        stack = Stack.model_validate(data)
    except ValidationError as exc:
        raise RecurrenceError(_located(exc, flat)) from None
    if stack.timezone is not None:
        check_zone(stack.timezone)
    if not any(rule.effect == "event" for rule in stack.rules):
        raise RecurrenceError('has no rule with "effect": "event", so it never fires')
    for index, rule in enumerate(stack.rules):
        for key in ("dtstart", "until"):
            text_value = getattr(rule.options, key)
            if text_value is not None:
                where = key if flat else f"rules[{index}].options.{key}"
                parse_moment(text_value, where)
    return stack


def check_zone(name: Any) -> None:
    """RecurrenceError unless ``name`` is a known IANA zone."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise RecurrenceError(
            f"timezone: {echoed(name)} is not a known IANA time zone (for example America/Chicago)"
        ) from None


def parse_moment(text: str, where: str, zone: zoneinfo.ZoneInfo | None = None) -> datetime:
    """An ISO-8601 instant; a naive one is read in ``zone`` (UTC when None)."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise RecurrenceError(
            f"{where}: {text!r} is not an ISO-8601 date-time such as 2026-03-08T09:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone or UTC)
    return moment.astimezone(UTC)


_BRANCH_TYPES = ("int_type", "list_type", "int_parsing")


def _located(error: ValidationError, flat: bool) -> str:
    """Each problem as ``where: what``; of a union's branches, only the one that applies."""
    found: dict[str, list[tuple[str, str]]] = {}
    for item in error.errors():
        where = _where(item["loc"], flat)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "is not an RRStack rule option"
        found.setdefault(where, []).append((item["type"], message))
    parts = []
    for where, problems in found.items():
        specific = [msg for kind, msg in problems if kind not in _BRANCH_TYPES]
        if not specific and any(other.startswith(f"{where}[") for other in found):
            continue  # the list branch says more
        messages = dict.fromkeys(specific or [msg for _, msg in problems])
        parts += [f"{where}: {msg}" if where else msg for msg in messages]
    return "; ".join(parts)


def _where(loc: tuple, flat: bool) -> str:
    # Union branches show up in the location as their type's name; they say nothing
    # to the user, who sees the key (and the list index) only.
    named = [part for part in loc if isinstance(part, int) or ("[" not in part and "-" not in part)]
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in named)
    text = text.lstrip(".")
    if flat:
        text = text.removeprefix("rules[0].options").removeprefix("rules[0]").lstrip(".")
    return text
