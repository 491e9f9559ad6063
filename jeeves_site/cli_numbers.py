"""Numbers as command flags give them: ASCII digits only, a sign allowed.

``int()`` and ``float()`` also read other scripts' digits (fullwidth ones), underscores
(``1_000``) and surrounding whitespace, and ``int()`` refuses more than 4,300 digits,
leading zeros counted, with a ValueError instead of a refusal.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

from jeeves_site.echo import echoed

WHOLE = re.compile(r"[+-]?[0-9]+")
DECIMAL = re.compile(
    r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE
)
# More digits than this is beyond every field's range (a bigint has 19).
MAX_DIGITS = 18


def whole_number(text: str, field: str, noun: str = "whole number") -> int:
    """``text`` as an int; a ValidationError keyed by ``field`` otherwise."""
    if not WHOLE.fullmatch(text):
        raise ValidationError({field: f"{echoed(text)} is not a {noun}"})
    # Leading zeros are left out: int() would count them against its digit limit.
    digits = text.lstrip("+-").lstrip("0") or "0"
    if len(digits) > MAX_DIGITS:
        raise ValidationError({field: f"{echoed(text)} is far too large"})
    return -int(digits) if text.startswith("-") else int(digits)


def decimal_number(text: str, field: str) -> float:
    """``text`` as a float (NaN and infinity read, for the field's own rule to refuse)."""
    if not DECIMAL.fullmatch(text):
        raise ValidationError({field: f"{echoed(text)} is not a number"})
    return float(text)
