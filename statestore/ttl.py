"""Duration strings as the original runner wrote them: ``90s``, ``60m``, ``24h``, ``30d``.

State TTLs, queue retention and claim leases all use this one format.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError

from jeeves_site.echo import echoed

ACCEPTED_FORMS = "a whole number followed by s, m, h or d (90s, 60m, 24h, 30d)"
_DURATION = re.compile(r"([0-9]+)([smhd])")  # fullmatch: "$" would allow a final "\n"
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Beyond this an expiry would overflow datetime; nobody needs a TTL of 27 centuries.
MAX_SECONDS = 1_000 * 365 * 86400
_MAX_DIGITS = len(str(MAX_SECONDS))


def parse_duration(text: object, field: str = "ttl") -> timedelta:
    """Return the duration ``text`` names; a ValidationError keyed by ``field`` otherwise."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValidationError({field: f"{echoed(text)} is not a duration: use {ACCEPTED_FORMS}"})
    digits = match[1].lstrip("0")
    if len(digits) > _MAX_DIGITS:  # too long for int() to be asked to read, let alone keep
        raise ValidationError({field: f"{echoed(text)} is longer than 1000 years"})
    seconds = int(digits or "0") * _UNIT_SECONDS[match[2]]
    if seconds == 0:
        raise ValidationError({field: f"{echoed(text)} must be longer than zero"})
    if seconds > MAX_SECONDS:
        raise ValidationError({field: f"{echoed(text)} is longer than 1000 years"})
    return timedelta(seconds=seconds)


def expiry(ttl: str | None, now: datetime) -> datetime | None:
    """When a value written at ``now`` with ``ttl`` stops being readable (None: never)."""
    return None if ttl is None else now + parse_duration(ttl)
