"""Words for the console: a schedule in words, a duration, a moment relative to now.

Pure functions (no database, no HTML) so the admin, the dashboard and the API can
share them. Cron expressions are described by cron-descriptor (5 fields, or 6 with
seconds first, as runner.cron reads them); a JSON recurrence schedule gets our own
short text, since no library knows that format.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from cron_descriptor import CasingTypeEnum, ExpressionDescriptor, Options

from runner.recurrence_text import looks_like_recurrence, recurrence_words

_NICKNAMES = {
    "@yearly": "once a year, at 00:00 on 1 January",
    "@annually": "once a year, at 00:00 on 1 January",
    "@monthly": "at 00:00 on the first day of every month",
    "@weekly": "at 00:00 every Sunday",
    "@daily": "at 00:00 every day",
    "@midnight": "at 00:00 every day",
    "@hourly": "at the start of every hour",
}


@lru_cache(maxsize=4096)  # a pure function of its text; lists repeat the same schedules
def schedule_words(expression: str, zone_name: str = "UTC") -> str:
    """``"*/10 * * * * *"`` -> ``"every 10 seconds"``; ``""`` when it cannot be described.

    A recurrence object gets our own words (``runner.recurrence_text``), with the
    times it leaves to its start read in ``zone_name`` (the job's zone).
    """
    text = expression.strip()
    if looks_like_recurrence(text):
        return recurrence_words(text, zone_name)
    if text.lower() in _NICKNAMES:
        return _NICKNAMES[text.lower()]
    options = Options()
    options.use_24hour_time_format = True
    options.casing_type = CasingTypeEnum.Sentence
    options.verbose = False
    try:
        return ExpressionDescriptor(text, options).get_description()
    except Exception:  # cron-descriptor raises assorted types; the raw expression still shows
        return ""


def duration_words(ms: int | float | None) -> str:
    """``1234`` -> ``"1.2 s"``, ``184000`` -> ``"3 min 4 s"``, ``None`` -> ``""``."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


def relative_words(moment: datetime, now: datetime) -> str:
    """``"in 4 min"`` or ``"3 h ago"``: the largest whole unit, for a glance."""
    delta = moment - now
    ahead = delta >= timedelta(0)
    seconds = abs(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            amount = f"{int(seconds // size)} {unit}"
            break
    else:
        amount = f"{int(seconds)} s"
    return f"in {amount}" if ahead else f"{amount} ago"
