"""Cron expressions as the runner reads them: 5 fields, or 6 with seconds first."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

# How far ahead a schedule may first fire before we call it "never": leap-day
# schedules fire every 4 years, and 8 covers the century rule's gap.
NEVER_FIRES_HORIZON_YEARS = 8


class CronError(ValueError):
    """The expression is malformed or never fires; the message says which."""


def _field_count(expression: str) -> int:
    return len(expression.split())


def has_seconds(expression: str) -> bool:
    """True for a 6-field expression, whose first field is the second."""
    return _field_count(expression) == 6


def make_iterator(expression: str, start: datetime) -> croniter:
    """Return a croniter positioned at ``start`` (an aware datetime)."""
    return croniter(
        expression,
        start,
        second_at_beginning=has_seconds(expression),
        max_years_between_matches=NEVER_FIRES_HORIZON_YEARS,
    )


def validate_cron(expression: str, now: datetime | None = None) -> None:
    """Raise ``CronError`` unless ``expression`` is valid and fires at least once."""
    text = expression.strip()
    if not text:
        raise CronError("is empty; give a cron expression such as '*/5 * * * *'")
    if not text.startswith("@") and _field_count(text) not in (5, 6):
        raise CronError(
            f"'{text}' has {_field_count(text)} fields; use 5 (minute hour day month weekday) "
            "or 6 with seconds first"
        )
    try:
        make_iterator(text, now or datetime.now(UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise CronError(f"'{text}' never fires") from None
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise CronError(f"'{text}' is not a valid cron expression: {exc}") from None
