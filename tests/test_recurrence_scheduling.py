"""Recurrence schedules through the scheduler's exactly-once and missed-fire machinery,
and in ``list_jobs``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from runner.management.commands.list_jobs import _shortened
from runner.models import Job, Run, RunStatus
from runner.scheduler import Scheduler
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

# 2026-03-08T06:08Z lies on the 11-minute grid counted from the epoch.
ON_GRID = datetime(2026, 3, 8, 6, 8, tzinfo=UTC)
ELEVEN = timedelta(minutes=11)
LEAD = timedelta(milliseconds=250)
EVERY_11 = json.dumps({"freq": "minutely", "interval": 11, "timezone": "America/Chicago"})


def make_job(schedule: str = EVERY_11, created: datetime = ON_GRID, **fields) -> Job:
    job = JobFactory(id="digest", schedule=schedule, **fields)
    Job.objects.filter(pk=job.pk).update(
        created_at=created, schedule_effective_at=created, updated_at=created
    )
    return job


def fires() -> list[tuple[datetime, str]]:
    rows = Run.objects.filter(job_id="digest").order_by("scheduled_for")
    return [(run.scheduled_for, run.status) for run in rows]


def test_a_recurrence_job_fires_at_each_occurrence_once_with_two_schedulers(dispatched):
    make_job()
    first, second = Scheduler(dispatched, LEAD), Scheduler(dispatched, LEAD)
    first.start(ON_GRID)
    second.start(ON_GRID)
    for step in (1, 2):
        for scheduler in (first, second):
            scheduler.fire_due(ON_GRID + step * ELEVEN)
    assert fires() == [(ON_GRID + ELEVEN, "pending"), (ON_GRID + 2 * ELEVEN, "pending")]
    assert len(dispatched) == 2


def test_an_outage_of_a_recurrence_job_follows_the_all_policy(dispatched, runner_config):
    runner_config(missed_fire_max=2)
    job = make_job(missed_fire_policy="all", created=ON_GRID - timedelta(days=1))
    Run.objects.create(job=job, scheduled_for=ON_GRID, status=RunStatus.OK)
    Scheduler(dispatched, LEAD).start(ON_GRID + 4 * ELEVEN + timedelta(seconds=5))
    assert fires() == [
        (ON_GRID, "ok"),
        (ON_GRID + 2 * ELEVEN, "skipped"),
        (ON_GRID + 3 * ELEVEN, "pending"),
        (ON_GRID + 4 * ELEVEN, "pending"),
    ]


def test_a_recurrence_job_inside_windows_fires_after_the_weekend(dispatched):
    workdays = {
        "timezone": "America/Chicago",
        "rules": [
            {"effect": "active", "duration": {"hours": 8},
             "options": {"freq": "weekly", "byweekday": [0, 1, 2, 3, 4], "byhour": 9,
                         "byminute": 0, "bysecond": 0}},
            {"effect": "event", "options": {"freq": "hourly", "byminute": 0, "bysecond": 0}},
        ],
    }  # fmt: skip
    friday_evening = datetime(2026, 3, 6, 23, 30, tzinfo=UTC)  # 17:30 CST
    make_job(json.dumps(workdays), created=friday_evening)
    scheduler = Scheduler(dispatched, LEAD)
    scheduler.start(friday_evening)
    monday_nine = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)  # 09:00 CDT
    assert scheduler.next_dispatch_at() == monday_nine - LEAD


@time_machine.travel(ON_GRID, tick=False)
def test_list_jobs_shows_a_recurrence_s_next_fire_in_its_own_zone(settings):
    settings.TIME_ZONE = "UTC"
    make_job()
    out = StringIO()
    call_command("list_jobs", stdout=out)
    row = re.split(r" {2,}", out.getvalue().splitlines()[1])
    # list_jobs cuts a schedule past SCHEDULE_WIDTH characters; the zone stays whole.
    assert row[2] == f"{_shortened(EVERY_11)} (America/Chicago)"
    assert row[3] == "2026-03-08 00:19:00 CST"
