"""Queue definitions: the rules for ``dedup_config`` and ``retention``, and the one upsert.

The validators run through ``Queue.full_clean()``, which every entrance uses (the
admin form, ``add_queue``, sync files, the API), so a refusal reads the same
everywhere: ``ValidationError.message_dict`` maps each field to what is wrong, and
a message about a part of a field starts with that part (``path: ...``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from jsonpath_ng import JSONPath
from jsonpath_ng import parse as parse_jsonpath

from jeeves_site.echo import echoed
from statestore.ttl import parse_duration

DEDUP_SCOPES = ("pending", "all")
RETENTION_STATUSES = ("completed", "failed")
# Used for a status the queue's retention leaves out; the original kept items 7 days.
DEFAULT_RETENTION = {"completed": "7d", "failed": "30d"}
DEFINITION_FIELDS = ("id", "name", "description", "dedup_config", "retention", "max_attempts")


# De-duplication paths are a plain JSONPath subset: "$" then fields (.name, ['name']),
# indexes ([0]) and wildcards (.*, [*]). jsonpath-ng's extended syntax (filters,
# arithmetic, regex sub()) is refused: a regex with catastrophic backtracking made one
# enqueue take seconds, and a key needs nothing more than a field lookup.
MAX_PATH_LENGTH = 200
MAX_PATH_STEPS = 16
_PLAIN_STEP = re.compile(
    r"\.[A-Za-z_][A-Za-z0-9_-]{0,99}"  # .field
    r"|\.\*"  # .*
    r"|\[(?:[0-9]{1,6}|\*)\]"  # [0], [*]
    r"""|\[(?:'[^'\\\x00-\x1f]{1,100}'|"[^"\\\x00-\x1f]{1,100}")\]"""  # ['field'], ["field"]
)
PLAIN_SUBSET = "$ then .field, ['field'], [index], .* or [*] steps, e.g. $.id or $.items[0].id"


def plain_path_problem(path: str) -> str | None:
    """Why ``path`` is outside the plain JSONPath subset, or None when it is inside."""
    if len(path) > MAX_PATH_LENGTH:
        return f"is {len(path)} characters long; the limit is {MAX_PATH_LENGTH}"
    if not path.startswith("$"):
        return f"must start with $ (use {PLAIN_SUBSET})"
    position, steps = 1, 0
    while position < len(path):
        step = _PLAIN_STEP.match(path, position)
        if step is None:
            return f"has unsupported syntax at character {position + 1} (use {PLAIN_SUBSET})"
        position, steps = step.end(), steps + 1
    if steps > MAX_PATH_STEPS:
        return f"has {steps} steps; the limit is {MAX_PATH_STEPS}"
    return None


@lru_cache(maxsize=256)
def compile_jsonpath(path: str) -> JSONPath:
    """Parse a plain JSONPath once per process; parsing costs far more than evaluating.

    Raises ValueError for a path outside the plain subset (one stored before the
    subset was enforced included), so it is never evaluated.
    """
    problem = plain_path_problem(path)
    if problem:
        raise ValueError(problem)
    return parse_jsonpath(path)


def validate_dedup_config(value: Any) -> None:
    """``{"path": "<JSONPath>", "scope": "pending" | "all"}``; null or {} for none."""
    if value in (None, {}):
        return
    if not isinstance(value, dict):
        raise ValidationError(
            'must be an object like {"path": "$.id", "scope": "pending"}',
            code="invalid_dedup_config",
        )
    errors = [f"{name}: unknown setting" for name in sorted(set(value) - {"path", "scope"})]
    path = value.get("path")
    if not isinstance(path, str) or not path.strip():
        errors.append("path: required, a JSONPath such as $.id")
    else:
        shown = repr(path) if len(path) <= 60 else repr(path[:57] + "...")
        try:
            compile_jsonpath(path)
        except Exception as exc:  # jsonpath-ng raises assorted types for malformed paths
            errors.append(f"path: {shown} is not a valid JSONPath: {exc}")
    scope = value.get("scope", "pending")
    if scope not in DEDUP_SCOPES:
        errors.append(
            f"scope: must be 'pending' (pending and claimed items) or 'all' "
            f"(completed items too), not {echoed(scope)}"
        )
    if errors:
        raise ValidationError(errors, code="invalid_dedup_config")


def validate_retention(value: Any) -> None:
    """``{"completed": "7d", "failed": "30d"}``: durations, or null to keep forever."""
    if not isinstance(value, dict):
        raise ValidationError(
            'must be an object like {"completed": "7d", "failed": "30d"}', code="invalid_retention"
        )
    errors = [
        f"{name}: unknown status (use completed or failed)"
        for name in sorted(set(value) - set(RETENTION_STATUSES))
    ]
    for status in RETENTION_STATUSES:
        if value.get(status) is None:
            continue
        try:
            parse_duration(value[status], status)
        except ValidationError as exc:
            errors.extend(f"{status}: {message}" for message in exc.messages)
    if errors:
        raise ValidationError(errors, code="invalid_retention")


def upsert_queue_definition(data: dict[str, Any]) -> tuple[Any, bool]:
    """Create or update the queue ``data["id"]``; return ``(queue, created)``.

    Fields left out of ``data`` keep their current (or default) values. Raises
    ValidationError naming each bad field; nothing is written then.
    """
    queue, change = sync_queue_definition(data)
    return queue, change == "added"


def sync_queue_definition(data: dict[str, Any]) -> tuple[Any, str]:
    """Like ``upsert_queue_definition``, but say what happened: added, updated or unchanged.

    An unchanged queue is not written (its ``updated_at`` stays), as for jobs.
    """
    from queues.models import Queue

    if not isinstance(data, dict):
        raise ValidationError({"__all__": ["a queue definition must be a JSON object"]})
    unknown = sorted(set(data) - set(DEFINITION_FIELDS))
    if unknown:
        known = ", ".join(DEFINITION_FIELDS)
        raise ValidationError({name: [f"unknown field (known: {known})"] for name in unknown})
    if isinstance(data.get("max_attempts"), bool):
        raise ValidationError({"max_attempts": ["must be an integer of at least 1"]})
    queue_id = data.get("id")
    if not isinstance(queue_id, str) or not queue_id:
        raise ValidationError({"id": ["required, a non-empty string"]})
    # Checked before the id is looked up: a NUL or lone surrogate cannot be sent to
    # every database.
    try:
        Queue._meta.pk.run_validators(queue_id)  # the id's pattern and length
    except ValidationError as exc:
        raise ValidationError({"id": exc.messages}) from None
    try:
        return _upsert(Queue, queue_id, data)
    except IntegrityError:
        # Another process created the same queue between our read and insert.
        return _upsert(Queue, queue_id, data)


def _upsert(model, queue_id: str, data: dict[str, Any]) -> tuple[Any, str]:
    with transaction.atomic():
        queue = model.objects.select_for_update().filter(pk=queue_id).first()
        created = queue is None
        if created:
            queue = model(id=queue_id)
        before = {field: getattr(queue, field) for field in DEFINITION_FIELDS[1:]}
        for field in DEFINITION_FIELDS[1:]:
            if field in data:
                setattr(queue, field, data[field])
        queue.full_clean(validate_unique=False)
        after = {field: getattr(queue, field) for field in DEFINITION_FIELDS[1:]}
        if not created and after == before:
            return queue, "unchanged"
        queue.save(force_insert=created)
    return queue, "added" if created else "updated"
