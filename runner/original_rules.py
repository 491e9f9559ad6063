"""The original runner's meaning, kept for the jobs that come from it.

Jobs arrive in the original's terms through three entrances: ``sync_jobs`` reading a
file in its shape (a bare list), ``import_original_db``, and the root dialect's job
routes (the original's OpenClaw plugin and CLI). Each passes its fields through
``as_original`` before ``upsert_job``, so one rule decides for all three:

- **interpreter**: the original ran inline scripts and every file its ``runners`` did
  not map with node (svc/scheduler/executor.ts ``resolveCommand``), so such a job gets
  ``interpreter: "node"`` unless its fields name one.
- **cron**: croner, the original's cron library, matches either day field unless one
  of them is exactly ``*``, and skips a month without the day of an ``nW``; ours
  follows ISC cron (both must match when either starts with ``*``) and reads ``31W`` in
  April as the weekday nearest the 30th. ``croner_meaning`` writes an expression so
  that it fires here when it fired there (``0 9 */2 * 1`` becomes ``0 9 1-31/2 * 1``,
  ``0 0 31W * *`` becomes ``0 0 31W 1,3,5,7,8,10,12 *``) and refuses, saying why, what
  has no such form.
- **numbers**: a recurrence object's integral floats (``"interval": 11.0``) are
  integers, as zod's ``.int()`` reads them.
- **what the original accepted and ours words differently** (``original_entry`` for a
  job file's entry, ``original_timeout_ms`` for a database row): ``null`` for
  ``enabled``, ``type``, ``overlap_policy``, ``source_type`` means the default
  (sync-jobs.ts ``?? default``), and a timeout of 0 means none (executor.ts
  ``if (timeoutMs)``); a fractional ``timeout_ms`` is rounded up to whole
  milliseconds, so a run is never stopped sooner than there.

Each function returns notes naming what it read differently, for the caller to report.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError

from jeeves_site.echo import echoed
from runner import cron
from runner.recurrence_text import (
    RecurrenceError,
    canonical_text,
    load_object,
    looks_like_recurrence,
)

# What ran the original's inline scripts and unmapped files (its executor.ts).
ORIGINAL_INTERPRETER = "node"
# The fields that decide how a script runs: writing one of them in the original's terms
# gives a job without an interpreter the original's.
_HOW_IT_RUNS = ("script", "source_type")
# Fields the original's sync filled with "?? default" when null (sync-jobs.ts).
_NULL_IS_DEFAULT = ("enabled", "type", "overlap_policy", "source_type")


def as_original(
    fields: Mapping[str, Any], current_interpreter: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """``fields`` (for ``upsert_job``) with the original's meaning kept, and notes.

    ``current_interpreter`` is the interpreter of the job an update changes; None for
    a new job or a whole declaration (a job file's entry, an imported row). An update
    leaves a job's interpreter alone unless it changes the script or its source type
    and the job has none.
    """
    fields = dict(fields)
    if "interpreter" not in fields and (
        current_interpreter is None
        or (not current_interpreter and any(name in fields for name in _HOW_IT_RUNS))
    ):
        fields["interpreter"] = ORIGINAL_INTERPRETER
    notes: list[str] = []
    if "schedule" in fields:
        fields["schedule"] = _integral_numbers_as_integers(fields["schedule"])
    if isinstance(fields.get("schedule"), str):
        fields["schedule"], note = croner_meaning(fields["schedule"])
        notes += [note] if note else []
    return fields, notes


# A day field's every value, written so that it does not start with '*'.
_WHOLE = {"day": "1-31", "weekday": "0-6"}
_DAYS_IN_MONTH = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}  # the others have 31
_NEAREST_WEEKDAY = re.compile(r"^(\d+)w$", re.IGNORECASE)


def croner_meaning(expression: str) -> tuple[str, str]:
    """``expression`` as croner (the original's cron library) read it, written for ours;
    and a note when it had to be rewritten. An expression that is not cron, or that
    ours refuses anyway, is returned as it is (the job's validation says why).

    Raises ValidationError (on ``schedule``) when no expression here fires as croner's did.
    """
    text = expression.strip()
    fields = text.split()
    if text.startswith(("@", "{")) or len(fields) not in (5, 6):
        return expression, ""  # macros name '*' in a day field: both crons agree
    day, weekday = fields[-3], fields[-1]
    day_core = day if day.upper() == "LW" else re.sub("l", "", day, flags=re.IGNORECASE)
    # croner's rule, decided before it reads '?' as '*' (so '?' is never "exactly *").
    either = day_core != "*" and weekday != "*" and not weekday.startswith("+")
    fields = [field.replace("?", "*") for field in fields]
    if either:
        if any(re.search("[lw#]", field, re.IGNORECASE) for field in (day, weekday)):
            _refuse(
                text,
                f"croner fires it on a day matching either {day!r} or {weekday!r}, and here "
                "'L', 'W' and '#' need the other day field to be '*'; make two jobs, one "
                "per day field",
            )
        fields[-3] = _spelled_out(fields[-3], _WHOLE["day"])
        fields[-1] = _spelled_out(fields[-1], _WHOLE["weekday"])
    why = "croner matches either day field when neither is exactly '*'"
    nearest = _NEAREST_WEEKDAY.match(fields[-3])
    if nearest and int(nearest[1]) >= 29:
        fields[-2] = _months_with_day(text, fields, int(nearest[1]))
        why = f"croner skips a month without day {nearest[1]} for {nearest[1]}W"
    written = " ".join(fields)
    if written == " ".join(text.split()):
        return expression, ""
    return written, (
        f"schedule {echoed(text)} is written {echoed(written)}, to fire as under the "
        f"original runner: {why}"
    )


def _spelled_out(field: str, whole: str) -> str:
    """A day field whose items starting with '*' name their values (``*/2`` → ``1-31/2``),
    so that ISC cron's rule, like croner's, matches either day field."""
    return ",".join(whole + item[1:] if item.startswith("*") else item for item in field.split(","))


def _months_with_day(text: str, fields: list[str], day: int) -> str:
    """The month field narrowed to the months that have ``day``."""
    try:
        months_text = cron.parse(" ".join(fields)).croniter_text.split()[-2]
    except cron.CronError:
        return fields[-2]  # refused with its reason by the job's validation
    months = range(1, 13) if months_text == "*" else [int(m) for m in months_text.split(",")]
    if day == 29 and 2 in months:
        _refuse(
            text,
            "croner fires 29W in February only in leap years, which a cron expression here "
            "cannot say; leave February out of the month field or make a separate job",
        )
    kept = [month for month in months if _DAYS_IN_MONTH.get(month, 31) >= day]
    if not kept:
        _refuse(text, f"it never fires under croner, which skips months without day {day}")
    return fields[-2] if len(kept) == len(months) else ",".join(map(str, kept))


def _refuse(text: str, why: str) -> None:
    raise ValidationError(
        {"schedule": f"{echoed(text)} has no equivalent here for the original runner's: {why}"}
    )


def original_entry(entry: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A job file entry in the original's shape, with what it accepted read as ours words
    it: a null default field left out (so it takes its default), timeout 0 as none."""
    entry = {k: v for k, v in entry.items() if not (k in _NULL_IS_DEFAULT and v is None)}
    notes = []
    seconds = entry.get("timeout_seconds")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds == 0:
        entry["timeout_seconds"] = None
        notes.append("timeout_seconds 0 means no timeout, as in the original; stored as none")
    return entry, notes


def original_timeout_ms(value: Any) -> tuple[Any, str]:
    """An original ``timeout_ms`` column as ours, and a note when it is read differently:
    0 is no timeout; a fraction is rounded up to whole milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        if value == 0:
            return None, "timeout_ms 0 means no timeout, as in the original; stored as none"
        if value != int(value):
            whole = math.ceil(value)
            return whole, f"timeout_ms {value} rounded up to {whole} (whole milliseconds)"
        return int(value), ""
    return value, ""


def _integral_numbers_as_integers(schedule: Any) -> Any:
    """A recurrence object (or its JSON text) with ``11.0`` read as ``11``; anything else,
    or one with no such number, as it is."""
    if isinstance(schedule, str) and looks_like_recurrence(schedule):
        try:
            data = load_object(schedule)
        except RecurrenceError:
            return schedule  # refused with its reason by the job's validation
        fixed = _integral(data)  # 11 == 11.0, so compared as text
        return canonical_text(fixed) if json.dumps(fixed) != json.dumps(data) else schedule
    if isinstance(schedule, Mapping):
        return _integral(schedule)
    return schedule


def _integral(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, Mapping):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value
