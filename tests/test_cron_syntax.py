"""What a schedule may say: ISC cron's day-field rule, the syntax of other crons, refusals."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from hypothesis import given, settings
from hypothesis import strategies as st

from runner import cron, schedule
from runner.cron import CronError, validate_cron
from runner.health import failed_registrations
from runner.models import Job
from runner.schedule import next_fire_after

JAN_2026 = datetime(2026, 1, 1, tzinfo=UTC)


def dates(expression: str, count: int = 4, start: datetime = JAN_2026, zone: str = "UTC") -> list:
    """The first ``count`` fires after ``start``, as weekday and local time."""
    shown, moment = [], start
    while len(shown) < count:
        moment = next_fire_after(expression, zone, moment)
        shown.append(moment.strftime("%a %Y-%m-%d %H:%M"))
    return shown


# --- day of month and day of week: ISC/Vixie cron -------------------------------------------


def test_a_day_field_starting_with_a_star_is_anded_first_tuesday_only():
    assert dates("1 1 */32,1-7 * 2") == [
        "Tue 2026-01-06 01:01", "Tue 2026-02-03 01:01", "Tue 2026-03-03 01:01",
        "Tue 2026-04-07 01:01",
    ]  # fmt: skip


def test_a_day_step_beside_a_weekday_is_anded_odd_dated_mondays():
    assert dates("0 9 */2 * 1") == [
        "Mon 2026-01-05 09:00", "Mon 2026-01-19 09:00", "Mon 2026-02-09 09:00",
        "Mon 2026-02-23 09:00",
    ]  # fmt: skip


def test_two_restricted_day_fields_are_ored():
    assert dates("0 9 1,15 * 1", 5) == [
        "Thu 2026-01-01 09:00", "Mon 2026-01-05 09:00", "Mon 2026-01-12 09:00",
        "Thu 2026-01-15 09:00", "Mon 2026-01-19 09:00",
    ]  # fmt: skip


def test_a_weekday_field_starting_with_a_star_is_anded_with_the_days():
    assert dates("0 9 1-7 * */5") == [  # Sunday or Friday, in the first week
        "Fri 2026-01-02 09:00", "Sun 2026-01-04 09:00", "Sun 2026-02-01 09:00",
        "Fri 2026-02-06 09:00",
    ]  # fmt: skip


def test_a_full_day_range_is_no_star_and_ors_with_the_weekday():
    assert dates("0 9 1-31 * 1", 3) == [
        "Thu 2026-01-01 09:00", "Fri 2026-01-02 09:00", "Sat 2026-01-03 09:00",
    ]  # fmt: skip


# --- the syntax users of other crons bring ------------------------------------------------------


def test_5l_is_the_last_friday_of_the_month():
    expected = [
        "Fri 2026-01-30 00:00", "Fri 2026-02-27 00:00", "Fri 2026-03-27 00:00",
        "Fri 2026-04-24 00:00",
    ]  # fmt: skip
    assert dates("0 0 * * 5L") == expected
    assert dates("0 0 * * L5") == expected  # croniter's own spelling
    assert dates("0 0 * * friL") == expected


def test_l_in_the_day_of_month_is_the_last_day():
    assert dates("0 0 L * *", 3) == [
        "Sat 2026-01-31 00:00",
        "Sat 2026-02-28 00:00",
        "Tue 2026-03-31 00:00",
    ]
    assert dates("0 0 L 2 *", 3, datetime(2027, 3, 1, tzinfo=UTC)) == [
        "Tue 2028-02-29 00:00", "Wed 2029-02-28 00:00", "Thu 2030-02-28 00:00",
    ]  # fmt: skip
    assert dates("0 0 1,L * *", 3) == [
        "Sat 2026-01-31 00:00",
        "Sun 2026-02-01 00:00",
        "Sat 2026-02-28 00:00",
    ]


def test_hash_is_the_nth_weekday_of_the_month():
    assert dates("0 0 * * 5#2") == [
        "Fri 2026-01-09 00:00", "Fri 2026-02-13 00:00", "Fri 2026-03-13 00:00",
        "Fri 2026-04-10 00:00",
    ]  # fmt: skip
    assert dates("0 0 * * mon#5", 2) == ["Mon 2026-03-30 00:00", "Mon 2026-06-29 00:00"]


def test_w_is_the_weekday_nearest_the_day_within_the_month():
    assert dates("0 0 15W * *") == [  # 15 February and 15 March 2026 are Sundays
        "Thu 2026-01-15 00:00", "Mon 2026-02-16 00:00", "Mon 2026-03-16 00:00",
        "Wed 2026-04-15 00:00",
    ]  # fmt: skip
    # 1 August 2026 is a Saturday: the nearest weekday in August is Monday the 3rd.
    assert dates("0 0 1W 8 *", 1) == ["Mon 2026-08-03 00:00"]


def test_names_and_macros_are_accepted():
    assert dates("0 9 * JAN-mar mon-FRI", 2) == ["Thu 2026-01-01 09:00", "Fri 2026-01-02 09:00"]
    assert dates("0 9 * * fri-sun", 3) == [
        "Fri 2026-01-02 09:00",
        "Sat 2026-01-03 09:00",
        "Sun 2026-01-04 09:00",
    ]
    assert dates("0 9 * * 7", 1) == ["Sun 2026-01-04 09:00"]
    assert dates("@weekly", 1) == ["Sun 2026-01-04 00:00"]
    assert dates("@monthly", 1) == ["Sun 2026-02-01 00:00"]
    assert dates("@yearly", 1) == ["Fri 2027-01-01 00:00"]
    assert dates("5/20 * * * *", 3) == [
        "Thu 2026-01-01 00:05",
        "Thu 2026-01-01 00:25",
        "Thu 2026-01-01 00:45",
    ]


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("0 0 * * 5-1", "reverse range, which cron refuses; write '5-6,0-1'"),
        ("50-10 * * * *", "write '50-59,0-10'"),
        ("0 22-2 * * *", "write '22-23,0-2'"),
        ("0 0 * nov-feb *", "write '11-12,1-2'"),
        ("0 0 ? * 1", "Quartz syntax; write '*'"),
        ("0 0 L-2 * *", "use 'L'"),
        ("0 0 LW * *", "use 'L'"),
        ("0 0 1W,15 * *", "'1W' must be the only day-of-month value"),
        ("0 0 1 * 5#2", "needs the day-of-month field to start with '*'"),
        ("0 0 L * 1", "needs the day-of-week field to start with '*'"),
        ("0 0 * * 1,5#2", "make them separate jobs"),
        ("0 0 * * 5#6", "1 to 5"),
        ("*,5 * * * *", "lists '*' with other values; write '*'"),
        ("*/0 * * * *", "step of 0"),
        ("@reboot", "trigger_job"),
        ("@fortnightly", "not a known macro"),
        ("0 0 * * xyz", "not a number or a known name"),
    ],
)
def test_syntax_with_no_agreed_meaning_is_refused_saying_what_to_write(expression, says):
    with pytest.raises(CronError) as caught:
        validate_cron(expression)
    assert says in str(caught.value)


# --- fires are a pure function of (expression, zone, instant) ----------------------------------


@pytest.mark.parametrize("field", range(6))
@pytest.mark.parametrize("token", ["R", "r", "R/5", "H", "H/15", "H(0-29)"])
def test_random_and_hashed_values_are_refused_in_every_field(field, token):
    fields = ["0", "0", "1", "1", "*", "*"]
    fields[field] = token
    with pytest.raises(CronError) as caught:
        validate_cron(" ".join(fields))
    assert "write a fixed value" in str(caught.value)


@pytest.mark.django_db
def test_a_random_schedule_is_refused_by_job_validation():
    job = Job(id="r", name="r", schedule="R * * * *", script="echo", source_type="inline")
    with pytest.raises(ValidationError) as caught:
        job.full_clean()
    assert "drawn again each time" in caught.value.message_dict["schedule"][0]


@pytest.mark.django_db
def test_add_job_refuses_a_random_schedule():
    with pytest.raises(CommandError, match="schedule: 'R \\* \\* \\* \\*' is not a valid cron"):
        call_command(
            "add_job", "--id", "r", "--name", "r", "--schedule", "R * * * *",
            "--script", "echo", "--source-type", "inline",
        )  # fmt: skip
    assert not Job.objects.filter(pk="r").exists()


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    expression=st.sampled_from(
        ["0 * * * *", "*/7 3-5 * * 1-5", "*/20 * * * * *", "0 9 */2 * 1", "30 2 * * 0L", "@hourly"]
    ),
    zone=st.sampled_from(["UTC", "America/New_York", "Australia/Lord_Howe"]),
    seconds=st.integers(0, 20 * 365 * 86400),
)
def test_fires_are_a_pure_function_of_expression_zone_and_instant(expression, zone, seconds):
    moment = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    first = [next_fire_after(expression, zone, moment) for _ in range(3)]
    cron.parse.cache_clear()
    schedule.zone.cache_clear()
    schedule._fall_backs.cache_clear()
    assert next_fire_after(expression, zone, moment) == first[0]
    assert first == [first[0]] * 3


@pytest.mark.django_db
def test_a_stored_random_schedule_is_a_failed_registration_and_never_fires():
    Job.objects.create(
        id="old", name="old", schedule="0 * * * *", script="echo", source_type="inline"
    )
    Job.objects.filter(pk="old").update(schedule="R * * * *")  # stored before the rule
    assert failed_registrations() == ["old"]
    with pytest.raises(ValueError, match="drawn again"):
        Job.objects.get(pk="old").next_fire_after(JAN_2026)


@pytest.mark.parametrize(
    ("expression", "first_fires"),
    [
        # February 2027 ends on Sunday the 28th: the nearest weekday is Friday the 26th.
        ("0 0 31W 2 *", ["2027-02-26", "2028-02-29"]),
        # April 2027 ends on Friday the 30th.
        ("0 0 31W 4 *", ["2027-04-30", "2028-04-28"]),
    ],
)
def test_a_nearest_weekday_past_the_months_end_means_the_weekday_nearest_its_last_day(
    expression, first_fires
):
    iterator = cron.make_iterator(expression, datetime(2026, 12, 1, tzinfo=UTC))
    fires = [iterator.get_next(datetime).date().isoformat() for _ in first_fires]
    assert fires == first_fires


@pytest.mark.parametrize(
    ("expression", "odd"),
    [
        ("\uff11 * * * *", "U+FF11"),  # a fullwidth 1: int() read it as minute 1
        ("*/\u0661\u0660 * * * * *", "U+0661"),  # Arabic-Indic 10
        ("0\u30000 * * *", "U+3000"),  # an ideographic space split it into fields
    ],
)
@pytest.mark.django_db
def test_a_cron_expression_beyond_ascii_is_refused_naming_the_character(expression, odd):
    with pytest.raises(CronError, match=re.escape(odd) + ".*a cron expression is ASCII"):
        validate_cron(expression)
    with pytest.raises(CommandError, match=re.escape(odd)):
        call_command("add_job", "--id", "fw", "--name", "x", "--schedule", expression,
                     "--source-type", "inline", "--script", "echo")  # fmt: skip
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("expression", "shown"),
    [
        ("* * * * *\n5", r"'\n'"),  # split() read six fields: every second of Fridays
        ("0 9\r* * *", r"'\r'"),
        ("0\x0b9 * * *", r"'\x0b'"),  # a vertical tab
        ("0 9 * *\x7f *", r"'\x7f'"),
    ],
)
@pytest.mark.django_db
def test_a_cron_expression_holding_a_control_character_is_refused(expression, shown):
    with pytest.raises(CronError, match=re.escape(shown) + ".*a cron expression is one line"):
        validate_cron(expression)
    with pytest.raises(CommandError, match="a cron expression is one line"):
        call_command("add_job", "--id", "nl", "--name", "x", "--schedule", expression,
                     "--source-type", "inline", "--script", "echo")  # fmt: skip
    assert not Job.objects.exists()


def test_fields_separated_by_tabs_are_still_a_cron_expression():
    validate_cron("0\t9 * *\t*")
