"""Fire times: 5- and 6-field cron, per-job zones, and cron's DST convention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import CroniterBadDateError

from runner.models import Job
from runner.schedule import fires_between, is_fixed_time, next_fire_after

NEW_YORK = "America/New_York"
BERLIN = "Europe/Berlin"
# 2026 transitions: New York springs forward on 8 March and falls back on 1 November;
# Berlin on 29 March and 25 October.
NY_SPRING = datetime(2026, 3, 8, tzinfo=UTC)
NY_FALL = datetime(2026, 11, 1, tzinfo=UTC)
BERLIN_SPRING = datetime(2026, 3, 29, tzinfo=UTC)
BERLIN_FALL = datetime(2026, 10, 25, tzinfo=UTC)


def local_fires(expression, zone_name, start, hours):
    fires = fires_between(expression, zone_name, start, start + timedelta(hours=hours), 1000)
    return [fire.astimezone(ZoneInfo(zone_name)).strftime("%d %H:%M:%S%z") for fire in fires]


def test_a_five_field_expression_fires_on_the_minute():
    after = datetime(2026, 1, 1, 10, 2, 30, tzinfo=UTC)
    assert next_fire_after("*/5 * * * *", "UTC", after) == datetime(2026, 1, 1, 10, 5, tzinfo=UTC)


def test_a_six_field_expression_takes_seconds_first():
    after = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)
    assert next_fire_after("*/15 * * * * *", "UTC", after) == datetime(
        2026, 1, 1, 10, 0, 15, tzinfo=UTC
    )


def test_the_next_fire_is_strictly_after_the_moment():
    on_the_dot = datetime(2026, 1, 1, 10, 5, tzinfo=UTC)
    assert next_fire_after("*/5 * * * *", "UTC", on_the_dot) == datetime(
        2026, 1, 1, 10, 10, tzinfo=UTC
    )


def test_a_job_fires_in_its_own_time_zone():
    after = datetime(2026, 1, 15, 0, 0, tzinfo=UTC)
    # 09:00 in Berlin (UTC+1 in winter) is 08:00 UTC; in New York (UTC-5) 14:00 UTC.
    assert next_fire_after("0 9 * * *", BERLIN, after) == datetime(2026, 1, 15, 8, tzinfo=UTC)
    assert next_fire_after("0 9 * * *", NEW_YORK, after) == datetime(2026, 1, 15, 14, tzinfo=UTC)


def test_a_job_without_a_zone_uses_the_servers(settings):
    settings.TIME_ZONE = BERLIN
    job = Job(id="j", schedule="0 9 * * *", timezone="")
    assert job.next_fire_after(datetime(2026, 1, 15, tzinfo=UTC)).hour == 8


def test_an_expression_that_never_fires_raises():
    with pytest.raises(CroniterBadDateError):
        next_fire_after("0 0 30 2 *", "UTC", datetime(2026, 1, 1, tzinfo=UTC))


def test_fixed_and_wildcard_schedules_are_told_apart():
    assert is_fixed_time("30 2 * * *")
    assert is_fixed_time("0 15,45 2 * * *")
    assert is_fixed_time("@daily")
    assert not is_fixed_time("*/30 * * * *")
    assert not is_fixed_time("0 * * * *")
    assert not is_fixed_time("@hourly")


@pytest.mark.parametrize(
    ("expression", "fixed"),
    [
        ("4-12,*/2 3 * * *", True),  # ISC looks at the first character only
        ("*/2 3 * * *", False),  # '*/2' starts with '*': a wildcard
        ("0 */2 * * *", False),
        ("0 3,*/2 * * *", True),
        ("0 30 2 * * *", True),  # six fields: second, minute and hour all count
        ("*/20 30 2 * * *", False),
        ("0 */5 2 * * *", False),
        ("0 30 * * * *", False),
        ("0 0 * * * *", False),
    ],
)
def test_fixed_time_is_decided_by_the_first_character_of_each_time_field(expression, fixed):
    assert is_fixed_time(expression) is fixed


def test_new_york_spring_forward_runs_a_skipped_fixed_time_once_at_the_transition():
    assert local_fires("30 2 * * *", NEW_YORK, NY_SPRING, 24) == ["08 03:00:00-0400"]


def test_new_york_spring_forward_wildcards_skip_the_missing_hour():
    assert local_fires("*/30 * * * *", NEW_YORK, NY_SPRING + _h(5), 3) == [
        "08 00:30:00-0500", "08 01:00:00-0500", "08 01:30:00-0500",
        "08 03:00:00-0400", "08 03:30:00-0400", "08 04:00:00-0400",
    ]  # fmt: skip


def test_new_york_fall_back_runs_a_repeated_fixed_time_once():
    assert local_fires("30 1 * * *", NEW_YORK, NY_FALL, 24) == ["01 01:30:00-0400"]


def test_new_york_fall_back_wildcards_fire_through_both_passes_of_the_hour():
    assert local_fires("*/30 * * * *", NEW_YORK, NY_FALL + _h(4), 3) == [
        "01 00:30:00-0400", "01 01:00:00-0400", "01 01:30:00-0400",
        "01 01:00:00-0500", "01 01:30:00-0500", "01 02:00:00-0500",
    ]  # fmt: skip


def test_berlin_spring_forward_runs_several_skipped_slots_once():
    assert local_fires("0,30 2 * * *", BERLIN, BERLIN_SPRING, 12) == ["29 03:00:00+0200"]


def test_berlin_fall_back_runs_a_repeated_fixed_time_once():
    assert local_fires("30 2 * * *", BERLIN, BERLIN_FALL, 12) == ["25 02:30:00+0200"]


def test_an_every_second_job_fires_every_real_second_across_both_berlin_transitions():
    for day in (BERLIN_SPRING, BERLIN_FALL):
        fires = fires_between("* * * * * *", BERLIN, day, day + _h(3), 20000)
        assert len(fires) == 3 * 3600
        assert len(set(fires)) == len(fires)


def test_a_wildcard_job_repeats_the_fall_back_hour_even_when_its_next_match_is_months_away():
    # Issue 11: the repeated hour was only looked for when the offsets of this fire
    # and the next differed; here the next match (1 April) is in summer time again.
    before = datetime(2026, 10, 31, 12, tzinfo=UTC)
    assert local_fires("*/30 1 1 4-11 *", NEW_YORK, before, 24 * 160) == [
        "01 01:00:00-0400", "01 01:30:00-0400", "01 01:00:00-0500", "01 01:30:00-0500",
        "01 01:00:00-0400", "01 01:30:00-0400",  # 2027-04-01
    ]  # fmt: skip


def test_the_repeated_hour_is_found_from_inside_its_first_pass_too():
    inside_first_pass = datetime(2026, 11, 1, 5, 10, tzinfo=UTC)  # 01:10 EDT
    assert local_fires("*/30 1 1 4-11 *", NEW_YORK, inside_first_pass, 2) == [
        "01 01:30:00-0400", "01 01:00:00-0500", "01 01:30:00-0500",
    ]  # fmt: skip


def test_berlin_last_sunday_of_october_fires_in_both_passes_of_the_repeated_hour():
    # croniter's nearest syntax to Quartz's '1L': 'L0', the last Sunday.
    fires = fires_between(
        "*/15 2 * 10 L0",
        BERLIN,
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2027, 11, 1, tzinfo=UTC),
        100,
    )
    local = [fire.astimezone(ZoneInfo(BERLIN)).strftime("%y-%m-%d %H:%M%z") for fire in fires]
    assert local == [
        "26-10-25 02:00+0200", "26-10-25 02:15+0200", "26-10-25 02:30+0200", "26-10-25 02:45+0200",
        "26-10-25 02:00+0100", "26-10-25 02:15+0100", "26-10-25 02:30+0100", "26-10-25 02:45+0100",
        "27-10-31 02:00+0200", "27-10-31 02:15+0200", "27-10-31 02:30+0200", "27-10-31 02:45+0200",
        "27-10-31 02:00+0100", "27-10-31 02:15+0100", "27-10-31 02:30+0100", "27-10-31 02:45+0100",
    ]  # fmt: skip


def test_lord_howe_repeats_only_the_half_hour_that_comes_again():
    # 5 April 2026, 02:00 +11:00 becomes 01:30 +10:30.
    start = datetime(2026, 4, 4, 12, tzinfo=UTC)
    assert local_fires("*/10 1 5 4 *", "Australia/Lord_Howe", start, 24) == [
        "05 01:00:00+1100", "05 01:10:00+1100", "05 01:20:00+1100", "05 01:30:00+1100",
        "05 01:40:00+1100", "05 01:50:00+1100",
        "05 01:30:00+1030", "05 01:40:00+1030", "05 01:50:00+1030",
    ]  # fmt: skip


def test_samoa_skipping_a_whole_day_runs_a_fixed_time_job_once_at_the_transition():
    # Pacific/Apia went from 29 December 2011 23:59:59 -10:00 to 31 December 00:00 +14:00.
    start = datetime(2011, 12, 29, 20, tzinfo=UTC)
    assert local_fires("30 9 * * *", "Pacific/Apia", start, 40) == [
        "31 00:00:00+1400", "31 09:30:00+1400",
    ]  # fmt: skip
    assert local_fires("0 */6 * * *", "Pacific/Apia", start, 40) == [
        "29 12:00:00-1000", "29 18:00:00-1000", "31 00:00:00+1400", "31 06:00:00+1400",
        "31 12:00:00+1400", "31 18:00:00+1400", "01 00:00:00+1400",
    ]  # fmt: skip


def test_a_fixed_time_job_with_a_step_after_a_range_fires_once_in_the_repeated_hour():
    fires = local_fires("4-12,*/20 1 * * *", NEW_YORK, NY_FALL, 24)
    assert fires == [
        "01 01:00:00-0400", "01 01:04:00-0400", "01 01:05:00-0400", "01 01:06:00-0400",
        "01 01:07:00-0400", "01 01:08:00-0400", "01 01:09:00-0400", "01 01:10:00-0400",
        "01 01:11:00-0400", "01 01:12:00-0400", "01 01:20:00-0400", "01 01:40:00-0400",
    ]  # fmt: skip


def test_a_fixed_time_job_with_a_step_after_a_list_runs_once_when_its_hour_is_skipped():
    assert local_fires("4-12,*/30 2 * * *", NEW_YORK, NY_SPRING, 24) == ["08 03:00:00-0400"]


def test_six_field_jobs_count_the_seconds_field_for_the_dst_rule():
    assert local_fires("0 30 2 * * *", NEW_YORK, NY_SPRING, 24) == ["08 03:00:00-0400"]
    assert local_fires("*/20 30 2 * * *", NEW_YORK, NY_SPRING, 24) == []
    assert local_fires("0 30 1 * * *", NEW_YORK, NY_FALL, 24) == ["01 01:30:00-0400"]
    assert local_fires("*/30 30 1 * * *", NEW_YORK, NY_FALL, 24) == [
        "01 01:30:00-0400", "01 01:30:30-0400", "01 01:30:00-0500", "01 01:30:30-0500",
    ]  # fmt: skip


def test_hourly_is_a_wildcard_and_daily_a_fixed_time_across_dst():
    assert local_fires("@hourly", NEW_YORK, NY_FALL + _h(4), 3) == [
        "01 01:00:00-0400", "01 01:00:00-0500", "01 02:00:00-0500",
    ]  # fmt: skip
    assert local_fires("@daily", "America/Santiago", datetime(2026, 9, 5, 12, tzinfo=UTC), 24) == [
        "06 01:00:00-0300",  # 6 September 2026: midnight is skipped, the job runs at 01:00
    ]


def test_fires_between_keeps_the_newest_when_limited():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    fires = fires_between("0 * * * *", "UTC", start, start + _h(10), 3)
    assert [fire.hour for fire in fires] == [8, 9, 10]


def _h(hours: int) -> timedelta:
    return timedelta(hours=hours)
