"""Checks for what scripts pass in: names and JSON values.

Both back-ends must store exactly what a script wrote, so anything one of them
would refuse or alter is refused here, before a row is touched.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError


def check_name(value: object, field: str, max_length: int) -> str:
    """A non-empty string of at most ``max_length`` characters without NUL."""
    if not isinstance(value, str) or not value:
        raise ValidationError({field: f"must be a non-empty string, not {value!r}"})
    if len(value) > max_length:
        raise ValidationError({field: f"must be at most {max_length} characters"})
    if "\x00" in value:
        raise ValidationError({field: "must not contain NUL characters"})
    return value


def check_json(value: Any, field: str) -> str:
    """Return ``value`` as JSON text, refusing what JSON (or PostgreSQL's jsonb) cannot hold."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError({field: f"is not JSON-serialisable: {exc}"}) from None
    # jsonb has no NUL; SQLite would keep it, so refuse on both for one behaviour.
    if "\\u0000" in text:
        raise ValidationError({field: "must not contain NUL characters (\\u0000)"})
    return text


def check_count(value: object, field: str, minimum: int, maximum: int | None = None) -> int:
    """An integer (not a bool) within ``minimum``..``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({field: f"must be an integer, not {value!r}"})
    if value < minimum:
        raise ValidationError({field: f"must be at least {minimum}, not {value}"})
    if maximum is not None and value > maximum:
        raise ValidationError({field: f"must be at most {maximum}, not {value}"})
    return value
