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


def test_fires_between_keeps_the_newest_when_limited():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    fires = fires_between("0 * * * *", "UTC", start, start + _h(10), 3)
    assert [fire.hour for fire in fires] == [8, 9, 10]


def _h(hours: int) -> timedelta:
    return timedelta(hours=hours)
