"""The original runner's meaning, kept for the jobs that come from it.

Jobs arrive in the original's terms through three entrances: ``sync_jobs`` reading a
file in its shape (a bare list), ``import_original_db``, and the root dialect's job
routes (the original's OpenClaw plugin and CLI). Each passes its fields through
``as_original`` before ``upsert_job``, so one rule decides for all three:

- **interpreter**: the original ran inline scripts and every file its ``runners`` did
  not map with node (svc/scheduler/executor.ts ``resolveCommand``), so such a job gets
  ``interpreter: "node"`` unless its fields name one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# What ran the original's inline scripts and unmapped files (its executor.ts).
ORIGINAL_INTERPRETER = "node"
# The fields that decide how a script runs: writing one of them in the original's terms
# gives a job without an interpreter the original's.
_HOW_IT_RUNS = ("script", "source_type")


def as_original(
    fields: Mapping[str, Any], current_interpreter: str | None = None
) -> dict[str, Any]:
    """``fields`` (for ``upsert_job``) with the original's meaning kept.

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
    return fields
