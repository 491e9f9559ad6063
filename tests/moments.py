"""Named instants tests freeze the clock at."""

from datetime import UTC, datetime

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
