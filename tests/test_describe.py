"""Schedules, durations and moments in words, as the console shows them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runner.describe import duration_words, relative_words, schedule_words
from tests.moments import NOW


@pytest.mark.parametrize(
    "expression,words",
    [
        ("*/10 * * * * *", "Every 10 seconds"),
        ("30 9 * * 1-5", "At 09:30, Monday through Friday"),
        ("*/5 * * * *", "Every 5 minutes"),
        ("@daily", "at 00:00 every day"),
        ('{"rules": [{"options": {"freq": "weekly"}}]}', "recurrence: 1 rule (weekly)"),
        ("not cron", ""),
    ],
)
def test_a_schedule_reads_in_words(expression, words):
    assert schedule_words(expression) == words


@pytest.mark.parametrize(
    "ms,words",
    [
        (None, ""),
        (12, "12 ms"),
        (1234, "1.2 s"),
        (184_000, "3 min 4 s"),
        (120_000, "2 min"),
        (7_260_000, "2 h 1 min"),
    ],
)
def test_a_duration_reads_in_words(ms, words):
    assert duration_words(ms) == words


@pytest.mark.parametrize(
    "offset,words",
    [
        (timedelta(minutes=4, seconds=10), "in 4 min"),
        (timedelta(seconds=-5), "5 s ago"),
        (timedelta(hours=3), "in 3 h"),
        (timedelta(days=-2), "2 d ago"),
    ],
)
def test_a_moment_reads_relative_to_now(offset, words):
    assert relative_words(NOW + offset, NOW) == words
