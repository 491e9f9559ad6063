"""The console's next fires: a cache that never answers what the scheduler would not,
and a bounded search for the soonest fires among thousands of jobs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner import admin_fires, schedule
from tests.moments import NOW

SCHEDULES = ["*/7 * * * *", "30 2 * * *", "*/10 * * * * *", "0 9 * * 1-5", "@hourly"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York"]


@pytest.fixture(autouse=True)
def empty_cache():
    admin_fires.clear()
    yield
    admin_fires.clear()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(SCHEDULES),
            st.sampled_from(ZONES),
            st.integers(min_value=-3 * 86_400, max_value=3 * 86_400),  # seconds from NOW
        ),
        min_size=1,
        max_size=25,
    )
)
def test_a_cached_next_fire_is_always_the_schedulers_own(asks):
    """Whatever order the moments come in (a page, a test's frozen clock going back)."""
    for expression, zone, offset in asks:
        now = NOW + timedelta(seconds=offset)
        expected = schedule.next_fire_after(expression, zone, now)
        assert admin_fires.next_fire(expression, zone, now) == expected


def test_a_schedule_is_read_once_until_its_fire_has_passed(monkeypatch):
    reads = []
    real = schedule.next_fire_after

    def counting(expression, zone, after):
        reads.append(after)
        return real(expression, zone, after)

    monkeypatch.setattr(schedule, "next_fire_after", counting)
    first = admin_fires.next_fire("0 9 * * *", "UTC", NOW)
    admin_fires.next_fire("0 9 * * *", "UTC", first - timedelta(seconds=1))
    assert len(reads) == 1
    admin_fires.next_fire("0 9 * * *", "UTC", first)
    assert len(reads) == 2


def test_the_soonest_fires_group_jobs_sharing_a_schedule_and_leave_out_broken_ones():
    pairs = [
        ("daily-a", "0 9 * * *", "UTC"),
        ("daily-b", "0 9 * * *", "UTC"),
        ("minutely", "* * * * *", "UTC"),
        ("broken", "not cron", "UTC"),
    ]
    found = admin_fires.soonest(pairs, NOW, limit=3, budget_s=10)
    assert [key for _, key in found.fires] == ["minutely", "daily-a", "daily-b"]
    assert (found.computed, found.total, found.partial) == (3, 3, False)


def test_the_search_stops_reading_new_schedules_when_its_budget_is_spent():
    ticks = iter(range(100))
    pairs = [(f"job-{m}", f"{m} 9 * * *", "UTC") for m in range(10)]
    found = admin_fires.soonest(pairs, NOW, limit=5, budget_s=2.5, clock=lambda: next(ticks))
    assert found.partial and 1 <= found.computed < found.total == 10
    again = admin_fires.soonest(pairs, NOW, limit=5, budget_s=2.5, clock=lambda: next(ticks))
    assert again.computed > found.computed  # the cached ones are free, then new ones
