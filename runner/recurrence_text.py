"""Recurrence schedules as text: recognised and normalised without parsing them.

Kept free of heavy imports, so that code which only stores or dispatches
schedules (every script's ``django.setup()`` loads the validation layer) does not
load pydantic and dateutil; ``runner.recurrence`` does the rest when needed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping


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
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def load_object(text: str) -> dict:
    """The JSON object in ``text``; RecurrenceError when it is not one."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecurrenceError(f"is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RecurrenceError("a recurrence schedule must be a JSON object")
    return data
