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
        ('{"freq": "minutely", "interval": 11}', "every 11 minutes"),
        ("not cron", ""),
    ],
)
def test_a_schedule_reads_in_words(expression, words):
    assert schedule_words(expression) == words


BERLIN_WORKDAYS = (
    '{"timezone": "Europe/Berlin", "rules": ['
    '{"effect": "event", "options": {"freq": "minutely", "interval": 5}},'
    '{"effect": "active", "duration": {"hours": 8, "minutes": 30},'
    ' "options": {"freq": "weekly", "byweekday": [0, 1, 2, 3, 4], "byhour": 9, "byminute": 0}},'
    '{"effect": "blackout", "options": {"dtstart": "2026-12-24T00:00", "until": "2026-12-27"}}]}'
)


@pytest.mark.parametrize(
    "text,words",
    [
        (
            '{"freq": "minutely", "interval": 11, "timezone": "America/Chicago"}',
            "every 11 minutes (America/Chicago)",
        ),
        ('{"freq": "daily", "byhour": 7, "byminute": 15}', "every day at 07:15"),
        ('{"freq": "daily", "byhour": 7, "byminute": 15, "bysecond": 30}', "every day at 07:15:30"),
        (
            '{"freq": "weekly", "byweekday": [0, 4], "byhour": 9, "byminute": 0}',
            "every week on Monday and Friday at 09:00",
        ),
        (
            '{"freq": "monthly", "bymonthday": [1, -1], "byhour": [6, 18], "byminute": 0,'
            ' "count": 10}',
            "every month on the 1st and last day at 06:00 and 18:00, 10 times",
        ),
        (
            '{"freq": "yearly", "bymonth": [1, 7], "bymonthday": 1, "byhour": 0, "byminute": 0}',
            "every year in January and July on the 1st day at 00:00",
        ),
        (
            '{"freq": "yearly", "byweekno": [1, -1], "byweekday": 0, "byhour": 8, "byminute": 0}',
            "every year in weeks 1 and last on Monday at 08:00",
        ),
        (
            '{"freq": "yearly", "byyearday": [1, -2], "byhour": 8, "byminute": 0}',
            "every year on the 1st and 2nd last day of the year at 08:00",
        ),
        (
            '{"freq": "monthly", "byweekday": 4, "bysetpos": -1, "byhour": 17, "byminute": 0,'
            ' "dtstart": "2026-01-01T00:00", "until": "2027-06-30T00:00"}',
            "every month on Friday at 17:00 (only the last of each month)"
            " from 2026-01-01 00:00 until 2027-06-30 00:00",
        ),
        (
            '{"freq": "hourly", "byminute": [0, 30], "byhour": [9, 10, 11]}',
            "every hour in hours 9, 10 and 11 at minutes 0 and 30",
        ),
        (
            '{"freq": "secondly", "interval": 30, "bysecond": [0, 30]}',
            "every 30 seconds in seconds 0 and 30",
        ),
        (
            '{"freq": "daily", "byhour": [1, 2, 3, 4], "byminute": [0, 15, 30, 45]}',
            "every day in hours 1, 2, 3 and 4 at minutes 0, 15, 30 and 45",
        ),
        (
            '{"rules": [{"effect": "event", "options": {"dtstart": "2027-01-01T10:00"}}]}',
            "once, at 2027-01-01 10:00",
        ),
        (
            BERLIN_WORKDAYS,
            "every 5 minutes; only within every week on Monday, Tuesday, Wednesday, Thursday and"
            " Friday at 09:00 for 8 h 30 min; except from 2026-12-24 00:00 until 2026-12-27 00:00"
            " (Europe/Berlin)",
        ),
        (
            '{"freq": "weekly", "interval": 2, "byweekday": [6], "wkst": 6, "byhour": 8,'
            ' "byminute": 0}',
            "every 2 weeks on Sunday at 08:00 (weeks starting on Sunday)",
        ),
        ('{"freq": "fortnightly"}', ""),
        ('{"freq": "daily",', ""),
    ],
)
def test_a_recurrence_object_reads_in_our_own_words(text, words):
    assert schedule_words(text) == words


def test_the_times_a_recurrence_leaves_out_are_its_starts_in_the_jobs_zone():
    text = '{"freq": "daily", "dtstart": "2026-03-01T06:45"}'
    assert schedule_words(text, "Europe/Berlin") == "every day at 06:45 from 2026-03-01 06:45"
    # No start: RRStack counts from the epoch, 1970-01-01 00:00 UTC, 01:00 in Berlin.
    assert schedule_words('{"freq": "daily"}', "Europe/Berlin") == "every day at 01:00"


def test_every_by_part_of_the_recurrence_schema_has_words():
    from runner.recurrence_schema import RuleOptions

    described = {"freq", "starts", "ends", "dtstart", "until", "interval", "count"}
    described |= {"bysetpos", "bymonth", "bymonthday", "byyearday", "byweekno", "byweekday"}
    described |= {"byhour", "byminute", "bysecond", "wkst"}
    assert set(RuleOptions.model_fields) == described


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
