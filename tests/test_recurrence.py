"""Recurrence schedules (the original runner's RRStack JSON): exact fires, DST, refusals."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from runner import recurrence, schedule
from runner.recurrence import RecurrenceError, compile_schedule
from runner.recurrence_text import canonical_text


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def fires(value: dict | str, after: str, count: int, zone: str = "UTC") -> list[str]:
    """The next ``count`` fires after ``after``, as ISO text in UTC."""
    text = value if isinstance(value, str) else json.dumps(value)
    moments, moment = [], at(after)
    for _ in range(count):
        moment = schedule.next_fire_after(text, zone, moment)
        moments.append(moment.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return moments


def test_every_eleven_minutes_fires_on_the_epochs_eleven_minute_grid():
    flat = {"freq": "minutely", "interval": 11, "timezone": "America/Chicago"}
    # Open rules count from the epoch: every fire is a multiple of 660 s after it.
    assert fires(flat, "2026-03-08T06:00:00Z", 3) == [
        "2026-03-08T06:08:00Z", "2026-03-08T06:19:00Z", "2026-03-08T06:30:00Z",
    ]  # fmt: skip
    for moment in fires(flat, "2026-03-08T06:00:00Z", 50):
        assert at(moment).timestamp() % 660 == 0


def test_every_eleven_minutes_keeps_its_real_time_cadence_across_spring_forward():
    flat = {"freq": "minutely", "interval": 11, "timezone": "America/Chicago"}
    moments = [at(m) for m in fires(flat, "2026-03-08T07:40:00Z", 4)]  # 01:40 CST
    assert {b - a for a, b in itertools.pairwise(moments)} == {timedelta(minutes=11)}


def test_every_ninety_seven_minutes_in_the_full_form():
    full = {
        "timezone": "Europe/Berlin",
        "rules": [{"effect": "event", "options": {"freq": "minutely", "interval": 97}}],
    }
    moments = fires(full, "2026-01-01T00:00:00Z", 3)
    assert [at(m).timestamp() % (97 * 60) for m in moments] == [0, 0, 0]
    assert at(moments[1]) - at(moments[0]) == timedelta(minutes=97)


def test_a_bare_daily_rule_fires_at_the_epochs_wall_time_in_its_zone():
    # RRStack starts an open rule at the epoch's wall time: 18:00 in Chicago (CST).
    daily = {"freq": "daily", "timezone": "America/Chicago"}
    assert fires(daily, "2026-03-06T12:00:00Z", 4) == [
        "2026-03-07T00:00:00Z",  # Mar 6, 18:00 CST
        "2026-03-08T00:00:00Z",  # Mar 7, 18:00 CST
        "2026-03-08T23:00:00Z",  # Mar 8, 18:00 CDT: the wall time holds across DST
        "2026-03-09T23:00:00Z",
    ]


def test_a_daily_time_in_the_skipped_hour_fires_an_hour_later_that_day_as_rfc_5545():
    rule = {"freq": "daily", "byhour": 2, "byminute": 30, "timezone": "America/Chicago"}
    assert fires(rule, "2026-03-07T00:00:00Z", 3) == [
        "2026-03-07T08:30:00Z",  # Mar 7, 02:30 CST
        "2026-03-08T08:30:00Z",  # Mar 8, 02:30 does not exist: 03:30 CDT
        "2026-03-09T07:30:00Z",  # Mar 9, 02:30 CDT
    ]


def test_a_daily_time_in_the_repeated_hour_fires_once_at_its_first_occurrence():
    rule = {"freq": "daily", "byhour": 1, "byminute": 30, "timezone": "America/Chicago"}
    assert fires(rule, "2026-10-31T12:00:00Z", 2) == [
        "2026-11-01T06:30:00Z",  # 01:30 CDT, not again at 01:30 CST (07:30Z)
        "2026-11-02T07:30:00Z",
    ]


def test_an_hourly_rule_with_minutes_follows_the_wall_clock_through_both_changes():
    rule = {"freq": "hourly", "byminute": [0, 30], "timezone": "America/Chicago"}
    assert fires(rule, "2026-03-08T07:00:00Z", 4) == [
        "2026-03-08T07:30:00Z", "2026-03-08T08:00:00Z", "2026-03-08T08:30:00Z",
        "2026-03-08T09:00:00Z",
    ]  # fmt: skip
    assert fires(rule, "2026-11-01T06:00:00Z", 3) == [
        "2026-11-01T06:30:00Z", "2026-11-01T08:00:00Z", "2026-11-01T08:30:00Z",
    ]  # fmt: skip


def test_weekdays_and_months_as_rrule_numbers_monday_is_zero():
    rule = {"freq": "weekly", "byweekday": [0, 4], "byhour": 9, "byminute": 0, "bysecond": 0,
            "timezone": "UTC"}  # fmt: skip
    assert fires(rule, "2026-11-30T09:00:00Z", 3) == [  # a Monday, at the fire itself
        "2026-12-04T09:00:00Z", "2026-12-07T09:00:00Z", "2026-12-11T09:00:00Z",
    ]  # fmt: skip
    last_day = {"freq": "monthly", "bymonthday": -1, "byhour": 23, "byminute": 0,
                "bysecond": 0, "timezone": "UTC"}  # fmt: skip
    assert fires(last_day, "2027-01-31T23:00:00Z", 2) == [
        "2027-02-28T23:00:00Z", "2027-03-31T23:00:00Z",
    ]  # fmt: skip


def test_a_monthly_rule_from_a_zone_west_of_greenwich_fires_on_the_31st_only():
    # The epoch is Dec 31 in Chicago, so a bare monthly rule means "the 31st".
    monthly = {"freq": "monthly", "timezone": "America/Chicago"}
    assert fires(monthly, "2026-01-01T00:00:00Z", 3) == [
        "2026-02-01T00:00:00Z",  # Jan 31, 18:00 CST
        "2026-03-31T23:00:00Z",  # Mar 31, 18:00 CDT
        "2026-05-31T23:00:00Z",
    ]


def test_a_leap_day_rule_fires_every_four_years():
    leap = {"freq": "yearly", "bymonth": 2, "bymonthday": 29, "byhour": 0, "timezone": "UTC"}
    assert fires(leap, "2026-11-30T00:00:00Z", 2) == [
        "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z",
    ]  # fmt: skip


def test_starts_ends_and_count_bound_a_rule_and_anchor_its_cadence():
    start = int(at("2026-12-01T10:05:00Z").timestamp() * 1000)
    rule = {"freq": "hourly", "interval": 2, "starts": start, "count": 3, "timezone": "UTC"}
    assert fires(rule, "2026-11-30T00:00:00Z", 3) == [
        "2026-12-01T10:05:00Z", "2026-12-01T12:05:00Z", "2026-12-01T14:05:00Z",
    ]  # fmt: skip
    with pytest.raises(RecurrenceError, match="never fires"):
        fires(rule, "2026-12-01T14:05:00Z", 1)
    ends = {key: value for key, value in rule.items() if key != "count"}
    ends["ends"] = start + 4 * 3600 * 1000  # inclusive, as RRULE's until
    assert len(fires(ends, "2026-11-30T00:00:00Z", 3)) == 3
    with pytest.raises(RecurrenceError):
        fires(ends, "2026-12-01T14:05:00Z", 1)


def test_seconds_as_the_time_unit():
    start = int(at("2026-12-01T10:00:00Z").timestamp())
    rule = {"timezone": "UTC", "timeUnit": "s",
            "rules": [{"effect": "event", "options": {"starts": start}}]}  # fmt: skip
    assert fires(rule, "2026-11-30T00:00:00Z", 1) == ["2026-12-01T10:00:00Z"]


def test_dtstart_and_until_as_iso_text_are_read_in_the_schedules_zone():
    rule = {"freq": "daily", "dtstart": "2026-12-01T09:00", "until": "2026-12-02T09:00",
            "timezone": "Europe/Berlin"}  # fmt: skip
    assert fires(rule, "2026-11-30T00:00:00Z", 2) == [
        "2026-12-01T08:00:00Z", "2026-12-02T08:00:00Z",
    ]  # fmt: skip


WORKDAY_EVERY_97 = {
    "timezone": "America/Chicago",
    "rules": [
        {"effect": "active", "duration": {"hours": 8},
         "options": {"freq": "weekly", "byweekday": [0, 1, 2, 3, 4], "byhour": 9,
                     "byminute": 0, "bysecond": 0}},
        {"effect": "event", "options": {"freq": "minutely", "interval": 97}},
    ],
}  # fmt: skip


def test_events_fire_only_inside_active_windows_when_the_first_rule_is_active():
    # Friday 14:00 CST; the window closes at 17:00 and opens Monday 09:00 CDT.
    assert fires(WORKDAY_EVERY_97, "2026-03-06T20:00:00Z", 3) == [
        "2026-03-06T20:50:00Z", "2026-03-06T22:27:00Z", "2026-03-09T15:07:00Z",
    ]  # fmt: skip
    for moment in fires(WORKDAY_EVERY_97, "2026-03-06T20:00:00Z", 40):
        local = at(moment).astimezone(ZoneInfo("America/Chicago"))
        assert local.weekday() < 5 and 9 <= local.hour < 17


def test_a_blackout_suppresses_events_and_the_last_covering_rule_wins():
    rules = {
        "timezone": "UTC",
        "rules": [
            {"effect": "event", "options": {"freq": "hourly", "byminute": 0, "bysecond": 0}},
            {"effect": "blackout", "duration": {"hours": 3},
             "options": {"freq": "daily", "byhour": 0, "byminute": 0, "bysecond": 0}},
            {"effect": "active", "duration": {"hours": 1},
             "options": {"freq": "daily", "byhour": 1, "byminute": 0, "bysecond": 0}},
        ],
    }  # fmt: skip
    assert fires(rules, "2026-12-01T22:30:00Z", 3) == [
        "2026-12-01T23:00:00Z", "2026-12-02T01:00:00Z", "2026-12-02T03:00:00Z",
    ]  # fmt: skip


def test_a_blackout_span_with_ends_lets_events_resume_after_it():
    end = int(at("2026-12-24T00:00:00Z").timestamp() * 1000)
    rules = {
        "timezone": "UTC",
        "rules": [
            {"effect": "event", "options": {"freq": "daily", "byhour": 6}},
            {"effect": "blackout", "options": {"ends": end}},
        ],
    }
    assert fires(rules, "2026-12-01T00:00:00Z", 1) == ["2026-12-24T06:00:00Z"]


def test_a_missing_timezone_means_the_jobs_zone():
    rule = {"freq": "daily", "byhour": 9, "byminute": 0}
    assert fires(rule, "2026-11-30T12:00:00Z", 1, zone="Asia/Tokyo") == ["2026-12-01T00:00:00Z"]
    assert fires(rule, "2026-11-30T12:00:00Z", 1, zone="UTC") == ["2026-12-01T09:00:00Z"]


@pytest.mark.parametrize(
    "value,message",
    [
        ({"freq": "fortnightly"}, "freq: Input should be 'yearly', 'monthly'"),
        ({"freq": "daily", "timezone": "Mars/Olympus"}, "timezone: 'Mars/Olympus' is not a known"),
        ({"freq": "daily", "byhour": 24}, "byhour: Input should be less than or equal to 23"),
        ({"freq": "daily", "byhour": [1, 24]}, "byhour[1]: Input should be less than or equal"),
        ({"freq": "daily", "bymonthday": 0}, "bymonthday: 0 is not allowed"),
        ({"freq": "daily", "interval": 0}, "interval: Input should be greater than 0"),
        ({"freq": "daily", "interval": 1.5}, "interval: Input should be a valid integer"),
        ({"freq": "daily", "byday": "MO"}, "byday: is not an RRStack rule option"),
        ({"freq": "daily", "dtstart": "soon"}, "dtstart: 'soon' is not an ISO-8601 date-time"),
        ({"freq": "daily", "bysetpos": 0}, "bysetpos"),
        ({"timezone": "UTC"}, 'has no rule with "effect": "event", so it never fires'),
        ({"timezone": "UTC", "rules": []}, "never fires"),
        ({"rules": [{"effect": "event"}]}, "rules[0]: a one-time event (no freq) needs starts"),
        ({"rules": [{"effect": "active", "options": {"freq": "daily"}}]},
         "rules[0]: a recurring active rule needs a duration"),
        ({"rules": [{"effect": "event", "duration": {"hours": 1}, "options": {"freq": "daily"}}]},
         "rules[0]: an event rule has no duration"),
        ({"rules": [{"effect": "sometimes", "options": {"freq": "daily"}}]},
         "rules[0].effect: Input should be 'event', 'active' or 'blackout'"),
        ({"rules": [{"effect": "event", "options": {"starts": 0}}]}, "never fires"),
        ({"freq": "daily", "count": 2}, "never fires"),  # two fires, in 1970
        ({"timezone": "UTC", "rules": [
            {"effect": "event", "options": {"freq": "minutely"}},
            {"effect": "blackout", "options": {}},
        ]}, "never fires"),
        ("[1, 2]", "a recurrence schedule must be a JSON object"),
        ('{"freq": ', "is not valid JSON"),
    ],
)  # fmt: skip
def test_a_bad_recurrence_is_refused_saying_where_and_why(value, message):
    text = value if isinstance(value, str) else json.dumps(value)
    if not text.startswith("{"):
        with pytest.raises(RecurrenceError, match="JSON object"):
            canonical_text(text)
        return
    with pytest.raises(RecurrenceError) as caught:
        recurrence.validate(text, now=at("2026-11-30T00:00:00Z"))
    assert message in str(caught.value)


def test_canonical_text_is_compact_and_keeps_key_order():
    assert canonical_text('{ "freq": "daily",\n "timezone": "Europe/Zürich" }') == (
        '{"freq":"daily","timezone":"Europe/Zürich"}'
    )
    assert canonical_text({"b": 1, "a": [1, 2]}) == '{"b":1,"a":[1,2]}'


def test_fires_between_lists_a_recurrence_s_missed_slots():
    flat = json.dumps({"freq": "minutely", "interval": 11, "timezone": "UTC"})
    start, end = at("2026-03-08T06:00:00Z"), at("2026-03-08T07:00:00Z")
    listed = schedule.fires_between(flat, "UTC", start, end, limit=10)
    assert [m.strftime("%H:%M") for m in listed] == ["06:08", "06:19", "06:30", "06:41", "06:52"]


# The rule's start moves forward for speed; it must not change a single fire.
_RULES = st.fixed_dictionaries(
    {"freq": st.sampled_from(["yearly", "monthly", "weekly", "daily", "hourly"]),
     "interval": st.integers(1, 5)},
    optional={
        "byhour": st.integers(0, 23), "byminute": st.sampled_from([0, 15, 45]),
        "byweekday": st.lists(st.integers(0, 6), min_size=1, max_size=3, unique=True),
        "bymonthday": st.sampled_from([1, 15, -1, 31]),
        "bymonth": st.sampled_from([1, 3, 11]),
    },
)  # fmt: skip
_ZONES = st.sampled_from(["UTC", "America/Chicago", "Europe/Berlin", "Asia/Kolkata"])


@settings(max_examples=60, deadline=None)
@given(rule=_RULES, zone=_ZONES, days=st.integers(0, 3 * 365))
@example(  # matches no date: dateutil alone would search to the year 9999
    rule={"freq": "weekly", "interval": 1, "bymonth": 11, "bymonthday": 31, "byhour": 5},
    zone="America/Chicago",
    days=760,
)
def test_moving_the_start_forward_never_changes_a_fire(rule, zone, days):
    try:
        compiled = compile_schedule(json.dumps({**rule, "timezone": zone}), "UTC").events[0]
    except RecurrenceError:  # by-parts dateutil itself refuses as empty
        return
    after = datetime(1971, 1, 1, tzinfo=UTC) + timedelta(days=days, hours=days % 24)
    if compiled.fixed_period:
        return
    fast = [m for _, m in zip(range(5), compiled.starts_after(after), strict=False)]
    # count=None and a huge count differ only in that a count keeps the real start.
    slow_rule = dataclasses.replace(compiled, count=10**9)
    slow = [m for _, m in zip(range(5), slow_rule.starts_after(after), strict=False)]
    assert fast == slow


@pytest.mark.parametrize(
    "rule",
    [
        {"freq": "weekly", "bymonth": 11, "bymonthday": 31, "timezone": "America/Chicago"},
        {"freq": "daily", "bymonth": 2, "bymonthday": 30, "byhour": 5},
        {"freq": "yearly", "byyearday": 366, "bymonth": 1},
    ],
)
def test_by_parts_that_match_no_date_are_refused_as_never_firing(rule):
    # Without the bound, dateutil searches to the year 9999 (the suite's timeout ends that).
    with pytest.raises(RecurrenceError, match="never fires"):
        recurrence.validate(json.dumps(rule), now=at("2026-11-30T00:00:00Z"))


# -- count: fires before the moved start are counted, not walked -------------------


def test_a_large_count_without_starts_is_answered_without_walking_every_fire():
    # 15 million fires every 2 minutes from 1970: walking them took 32 s per question.
    heavy = {"freq": "minutely", "interval": 2, "byhour": list(range(24)),
             "count": 15_000_000, "timezone": "UTC"}  # fmt: skip
    text = json.dumps(heavy)
    began = time.perf_counter()
    recurrence.validate(text, now=at("2026-12-01T12:00:07Z"))
    assert fires(heavy, "2026-12-01T12:00:07Z", 2) == [
        "2026-12-01T12:02:00Z",
        "2026-12-01T12:04:00Z",
    ]
    # The last fire is the 15,000,000th: exactly (count - 1) periods after the epoch.
    last = recurrence.EPOCH + timedelta(minutes=2 * (15_000_000 - 1))
    assert schedule.next_fire_after(text, "UTC", last - timedelta(seconds=1)) == last
    with pytest.raises(RecurrenceError, match="never fires"):
        schedule.next_fire_after(text, "UTC", last)
    assert time.perf_counter() - began < 1.0


def test_a_count_of_a_hundred_million_seconds_is_answered_at_once():
    text = json.dumps({"freq": "secondly", "bysecond": [0, 30], "count": 100_000_000})
    began = time.perf_counter()
    recurrence.validate(text, now=at("2026-12-01T12:00:07Z"))
    last = recurrence.EPOCH + timedelta(seconds=30 * (100_000_000 - 1))  # 2065-01-25
    assert schedule.next_fire_after(text, "UTC", last - timedelta(seconds=1)) == last
    with pytest.raises(RecurrenceError, match="never fires"):
        schedule.next_fire_after(text, "UTC", last)
    assert time.perf_counter() - began < 1.0


def test_bysetpos_with_a_day_or_longer_takes_a_count_small_enough_to_walk():
    rule = {"freq": "monthly", "byweekday": [0, 1, 2, 3, 4], "bysetpos": -1}
    recurrence.validate(json.dumps({**rule, "count": 10_000}), now=at("2026-12-01T00:00:00Z"))
    with pytest.raises(RecurrenceError) as caught:
        recurrence.validate(json.dumps({**rule, "count": 10_001}))
    assert str(caught.value).startswith("rules[0].options.count: at most 10,000 with bysetpos")


_COUNTED = st.fixed_dictionaries(
    {"freq": st.sampled_from(
        ["yearly", "monthly", "weekly", "daily", "hourly", "minutely", "secondly"]),
     "interval": st.sampled_from([1, 2, 3, 5, 7, 25, 61, 1441]),
     "count": st.integers(1, 400)},
    optional={
        "byhour": st.lists(st.integers(0, 23), min_size=1, max_size=4),
        "byminute": st.lists(st.sampled_from([0, 1, 15, 30, 59]), min_size=1, max_size=3),
        "bysecond": st.lists(st.sampled_from([0, 7, 30, 59]), min_size=1, max_size=3),
        "byweekday": st.lists(st.integers(0, 6), min_size=1, max_size=3, unique=True),
        "bymonthday": st.sampled_from([1, 15, -1, 31]),
        "bymonth": st.sampled_from([1, 3, 11]),
        "bysetpos": st.sampled_from([1, -1, 2, [1, -1]]),
        "starts": st.integers(0, 1_800_000_000_000),
    },
)  # fmt: skip


@settings(max_examples=300, deadline=None, derandomize=True)
@given(rule=_COUNTED, zone=_ZONES, pick=st.floats(0, 1), shift=st.integers(-7200, 7200))
@example(  # a minutely rule whose periods straddle midnight at a 7-day cycle
    rule={"freq": "minutely", "interval": 7, "count": 400, "bysecond": [0, 30],
          "byhour": [0, 23], "starts": 1_000_000_123_000},
    zone="Europe/Berlin", pick=0.9, shift=-3600,
)  # fmt: skip
def test_a_counted_rule_fires_exactly_as_dateutil_walking_it_from_its_start(
    rule, zone, pick, shift
):
    if rule["freq"] in ("minutely", "secondly") and rule["interval"] > 7:
        return  # dateutil's own walk (the reference) crawls through such rules' days
    try:
        compiled = compile_schedule(json.dumps({**rule, "timezone": zone}), "UTC").events[0]
    except RecurrenceError:  # by-parts dateutil refuses as empty
        return
    if compiled.fixed_period:
        return  # no rrule
    first, by = compiled._first_and_by
    try:
        walls = list(
            recurrence.BoundedRRule(
                recurrence._FREQ[compiled.freq], last_year=first.year + 9, dtstart=first,
                interval=compiled.interval, wkst=compiled.wkst, count=compiled.count, **by,
            )
        )  # fmt: skip
    except (ValueError, recurrence._PastLastYear):
        return
    reference = sorted(recurrence._instant(wall, compiled.zone) for wall in walls)
    if not reference:
        return
    after = reference[int(pick * (len(reference) - 1))] + timedelta(seconds=shift)
    expected = [moment for moment in reference if moment > after][:4]
    assert list(itertools.islice(compiled.starts_after(after), 4)) == expected
