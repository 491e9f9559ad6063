"""list_jobs: a table of enabled, id, schedule (zone), next fire, last status, name."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command

from runner.models import Job
from tests.daemons import Daemons
from tests.factories import JobFactory, RunFactory

pytestmark = pytest.mark.django_db

MONDAY_NOON = datetime(2025, 6, 2, 12, 0, 0, tzinfo=UTC)


def list_jobs() -> list[str]:
    out = StringIO()
    call_command("list_jobs", stdout=out)
    return out.getvalue().splitlines()


@time_machine.travel(MONDAY_NOON, tick=False)
def test_each_job_shows_its_schedule_zone_next_fire_in_that_zone_and_last_status(settings):
    settings.TIME_ZONE = "UTC"
    berlin = JobFactory(
        id="berlin", name="Morning", schedule="30 9 * * *", timezone="Europe/Berlin"
    )
    RunFactory(job=berlin, status="error")
    JobFactory(id="often", name="Often", schedule="*/5 * * * * *")
    lines = list_jobs()
    assert [re.split(r" {2,}", line) for line in lines] == [
        ["ENABLED", "ID", "SCHEDULE", "NEXT FIRE", "LAST STATUS", "NAME"],
        ["yes", "berlin", "30 9 * * * (Europe/Berlin)", "2025-06-03 09:30:00 CEST", "error",
         "Morning"],
        ["yes", "often", "*/5 * * * * * (UTC)", "2025-06-02 12:00:05 UTC", "-", "Often"],
    ]  # fmt: skip
    starts = {line.index(text) for line, text in zip(lines, ("NEXT", "2025", "2025"), strict=True)}
    assert len(starts) == 1, "the next fire column is aligned"


def test_a_disabled_job_has_no_next_fire():
    JobFactory(id="off", enabled=False)
    assert list_jobs()[1].split()[:2] == ["no", "off"]
    assert " - " in list_jobs()[1]


def test_an_empty_installation_says_so():
    assert list_jobs() == ["No jobs."]


def test_the_list_takes_one_query_however_many_jobs_and_runs(django_assert_num_queries):
    for job in JobFactory.create_batch(40):
        RunFactory.create_batch(2, job=job)
    with django_assert_num_queries(1):
        assert len(list_jobs()) == 41


def test_a_long_schedule_is_cut_so_each_row_stays_one_terminal_line():
    long_schedule = "0 0 * * " + ",".join(["1"] * 300)
    JobFactory(id="wide", name="Wide", schedule=long_schedule)
    row = next(line for line in list_jobs() if "wide" in line)
    assert "…" in row
    assert len(row) < 200


def test_last_status_is_of_the_newest_run_that_started_not_the_pending_next_one():
    """An every-second job always has its next run pending (dispatched ahead)."""
    job = JobFactory(id="tick", schedule="* * * * * *")
    RunFactory(job=job, status="ok")
    RunFactory(job=job, status="pending")
    assert re.split(r" {2,}", list_jobs()[1])[4] == "ok"


@pytest.mark.django_db(transaction=True)
def test_a_reader_that_goes_away_ends_the_list_quietly(tmp_path):
    """``manage.py list_jobs | head`` printed a BrokenPipeError traceback (helper probe)."""
    Job.objects.bulk_create(JobFactory.build(id=f"job-{n:04d}") for n in range(3000))
    env = Daemons(tmp_path).env
    lister = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "list_jobs"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert lister.stdout.readline().split()[:2] == [b"ENABLED", b"ID"]
    lister.stdout.close()  # as head does after its lines
    assert lister.wait(timeout=60) == 1
    assert lister.stderr.read() == b""
