"""The kept schedule iterator (``FireIterator``) against the uncached path.

``FireIterator.next_after`` must answer exactly what ``schedule.next_fire_after``
answers, for any expression, zone and sequence of questions: the scheduler's chain
(each question is the previous answer), the same question twice, a jump of the wall
clock either way, a reset. Zones and starts come from test_schedule_reference, so the
chains cross DST gaps, repeated hours and the odd zones' changes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.cron import CronError, validate_cron
from runner.schedule import FireIterator, next_fire_after
from tests.test_schedule_reference import ZONES, expressions, starts

CHAIN = 12
# What the scheduler may do between two questions: go on (most often), ask again,
# step the wall clock, or forget.
MOVES = st.lists(
    st.one_of(
        st.just("next"),
        st.just("next"),
        st.just("next"),
        st.just("again"),
        st.just("reset"),
        st.integers(-7200, 7200).map(lambda seconds: timedelta(seconds=seconds)),
    ),
    min_size=CHAIN,
    max_size=CHAIN,
)


def reference(expression: str, zone_name: str, after: datetime):
    try:
        return next_fire_after(expression, zone_name, after)
    except (ValueError, KeyError) as exc:
        return type(exc)


def cached(fires: FireIterator, after: datetime):
    try:
        return fires.next_after(after)
    except (ValueError, KeyError) as exc:
        return type(exc)


@st.composite
def cases(draw):
    zone_name = draw(st.sampled_from(ZONES))
    start, anchor = draw(starts(zone_name))
    expression = draw(expressions(anchor))
    try:
        validate_cron(expression, start)
    except CronError:
        expression = "*/7 * * * * *"
    return zone_name, start, expression, draw(MOVES)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(cases())
def test_the_kept_iterator_gives_the_fires_of_the_uncached_path(case):
    zone_name, start, expression, moves = case
    fires = FireIterator(expression, zone_name)
    after = start
    for move in moves:
        answer = cached(fires, after)
        assert answer == reference(expression, zone_name, after), (expression, zone_name, after)
        if isinstance(answer, type):
            return
        if move == "next":
            after = answer
        elif move == "reset":
            fires.reset()
        elif isinstance(move, timedelta):
            after = after + move


@pytest.mark.parametrize(
    ("zone_name", "start"),
    [
        ("Europe/Berlin", datetime(2026, 3, 29, 0, 30, tzinfo=UTC)),  # 02:00 -> 03:00
        ("Europe/Berlin", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),  # 03:00 -> 02:00
        ("America/Santiago", datetime(2026, 4, 5, 2, 30, tzinfo=UTC)),  # at midnight
        ("Australia/Lord_Howe", datetime(2026, 4, 4, 14, 30, tzinfo=UTC)),  # 30 minutes
    ],
)
@pytest.mark.parametrize("expression", ["* * * * * *", "*/7 * * * *", "30 2 * * *", "0 * * * *"])
def test_chains_across_dst_changes_give_the_fires_of_the_uncached_path(
    zone_name, start, expression
):
    fires, after = FireIterator(expression, zone_name), start
    count = 2400 if expression == "* * * * * *" else 60  # each start is 30 min before
    for _ in range(count):
        answer = fires.next_after(after)
        assert answer == next_fire_after(expression, zone_name, after)
        after = answer


@pytest.mark.parametrize("expression", ["* * * * * *", "*/7 * * * *", "30 2 * * *", "0 0 * * 1"])
def test_away_from_dst_changes_every_answer_after_the_first_keeps_the_croniter(expression):
    fires, after = FireIterator(expression, "Europe/Berlin"), datetime(2026, 6, 1, tzinfo=UTC)
    for _ in range(20):  # 20 weeks from June: still summer time
        after = fires.next_after(after)
    assert fires.fast == 19


def test_asking_twice_answers_from_the_kept_answer():
    fires = FireIterator("* * * * *", "UTC")
    moment = datetime(2026, 6, 1, tzinfo=UTC)
    first = fires.next_after(moment)
    assert fires.next_after(moment) == first == moment + timedelta(minutes=1)


def test_a_recurrence_schedule_gives_the_uncached_answers():
    expression = '{"freq": "minutely", "interval": 11}'
    fires, after = FireIterator(expression, "Europe/Berlin"), datetime(2026, 6, 1, tzinfo=UTC)
    for _ in range(20):
        answer = fires.next_after(after)
        assert answer == next_fire_after(expression, "Europe/Berlin", after)
        after = answer


def test_a_schedule_that_never_fires_raises_what_the_uncached_path_raises():
    fires, after = FireIterator("0 0 30 2 *", "UTC"), datetime(2026, 6, 1, tzinfo=UTC)
    error = reference("0 0 30 2 *", "UTC", after)
    assert issubclass(error, ValueError)
    assert cached(fires, after) is error
