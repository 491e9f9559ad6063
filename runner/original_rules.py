"""The original runner's meaning, kept for the jobs that come from it.

Jobs arrive in the original's terms through three entrances: ``sync_jobs`` reading a
file in its shape (a bare list), ``import_original_db``, and the root dialect's job
routes (the original's OpenClaw plugin and CLI). Each passes its fields through
``as_original`` before ``upsert_job``, so one rule decides for all three:

- **interpreter**: the original ran inline scripts and every file its ``runners`` did
  not map with node (svc/scheduler/executor.ts ``resolveCommand``), so such a job gets
  ``interpreter: "node"`` unless its fields name one.
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
from collections.abc import Mapping
from typing import Any

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
    return fields, notes


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
