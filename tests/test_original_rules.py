"""The original runner's meaning for its jobs: croner's cron, read by ours.

Expected fires are croner 10.0.1's (the original's ``croner ^10.0.1``), printed by
``new Cron(expr, {timezone: "UTC"}).nextRun(d)`` from 2025-12-31T23:59:59Z.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from runner.original_rules import croner_meaning
from runner.schedule import next_fire_after

START = datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)


def fires(expression: str, count: int) -> list[str]:
    moment, found = START, []
    for _ in range(count):
        moment = next_fire_after(expression, "UTC", moment)
        found.append(moment.strftime("%Y-%m-%dT%H:%M"))
    return found


@pytest.mark.parametrize(
    ("croner", "ours", "first_fires"),
    [
        # Neither day field is exactly '*': croner matches either (odd days, or Mondays).
        (
            "0 9 */2 * 1",
            "0 9 1-31/2 * 1",
            ["2026-01-01T09:00", "2026-01-03T09:00", "2026-01-05T09:00", "2026-01-07T09:00",
             "2026-01-09T09:00", "2026-01-11T09:00", "2026-01-12T09:00", "2026-01-13T09:00"],
        ),
        # croner skips a month without a 31st.
        (
            "0 0 31W * *",
            "0 0 31W 1,3,5,7,8,10,12 *",
            ["2026-01-30T00:00", "2026-03-31T00:00", "2026-05-29T00:00", "2026-07-31T00:00",
             "2026-08-31T00:00", "2026-10-30T00:00", "2026-12-31T00:00", "2027-01-29T00:00"],
        ),
    ],
)  # fmt: skip
def test_an_expression_is_written_to_fire_as_croner_fired_it(croner, ours, first_fires):
    written, note = croner_meaning(croner)
    assert written == ours
    assert f"'{croner}' is written '{ours}'" in note
    assert fires(written, len(first_fires)) == first_fires


@pytest.mark.parametrize(
    ("croner", "ours"),
    [
        ("0 0 ? * 1", "0 0 1-31 * 1"),  # croner reads '?' as '*', but not as "exactly *"
        ("0 12 */2 * */3", "0 12 1-31/2 * 0-6/3"),
        ("0 0 30W 1-3 *", "0 0 30W 1,3 *"),
    ],
)
def test_other_forms_croner_read_otherwise_are_written_out(croner, ours):
    assert croner_meaning(croner)[0] == ours


@pytest.mark.parametrize(
    "same",
    ["0 9 * * 1", "0 9 */3 * *", "0 9 1,15 * 1", "0 0 L * *", "0 0 * * 5#2", "0 0 15W * *",
     "@daily", '{"freq": "daily"}', "not cron"],
)  # fmt: skip
def test_what_both_crons_read_alike_is_kept_as_written(same):
    assert croner_meaning(same) == (same, "")


@pytest.mark.parametrize(
    ("croner", "why"),
    [
        ("0 0 31W * */2", "either '31W' or '*/2'"),
        ("0 0 L * 5", "either 'L' or '5'"),
        ("0 0 29W * *", "29W in February only in leap years"),
        ("0 0 30W 2 *", "never fires under croner"),
    ],
)
def test_what_has_no_equivalent_is_refused_saying_why(croner, why):
    with pytest.raises(ValidationError) as caught:
        croner_meaning(croner)
    [message] = caught.value.message_dict["schedule"]
    assert "has no equivalent here for the original runner's" in message and why in message
