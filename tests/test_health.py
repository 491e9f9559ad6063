"""The health summary of /api/status and runner_status."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command

from runner.health import health_summary
from runner.models import Job, SchedulerHeartbeat
from tests.factories import JobFactory, RunFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _finished(status: str, ago: timedelta) -> None:
    RunFactory(status=status, finished_at=NOW - ago)


@time_machine.travel(NOW, tick=False)
def test_it_counts_jobs_running_runs_and_the_last_hours_outcomes():
    JobFactory.create_batch(3)
    RunFactory(status="running")
    _finished("ok", timedelta(minutes=5))
    _finished("ok", timedelta(minutes=59))
    _finished("ok", timedelta(minutes=61))
    _finished("error", timedelta(minutes=1))
    _finished("timeout", timedelta(minutes=2))
    _finished("skipped", timedelta(minutes=3))
    health = health_summary()
    assert (health.total_jobs, health.running) == (3 + 7, 1)
    assert (health.ok_last_hour, health.errors_last_hour) == (2, 2)


def test_an_enabled_job_whose_schedule_cannot_load_is_a_failed_registration():
    JobFactory(id="fine")
    JobFactory(id="broken")
    JobFactory(id="asleep", enabled=False)
    # Written around the validation layer, as an older version might have stored them.
    Job.objects.filter(pk__in=["broken", "asleep"]).update(schedule="61 * * * *")
    JobFactory(id="lost", timezone="Europe/Berlin")
    Job.objects.filter(pk="lost").update(timezone="Mars/Olympus")
    assert sorted(health_summary().failed_registrations) == ["broken", "lost"]


@time_machine.travel(NOW, tick=False)
def test_uptime_is_that_of_the_longest_running_live_scheduler():
    SchedulerHeartbeat.beat("a:1", NOW - timedelta(hours=2), NOW - timedelta(seconds=2))
    SchedulerHeartbeat.beat("b:2", NOW - timedelta(minutes=5), NOW)
    health = health_summary()
    assert (health.uptime_s, health.schedulers, health.status) == (7200.0, 2, "ok")


@time_machine.travel(NOW, tick=False)
def test_a_scheduler_silent_past_the_liveness_timeout_is_not_counted():
    SchedulerHeartbeat.beat("a:1", NOW - timedelta(hours=2), NOW - timedelta(minutes=5))
    health = health_summary()
    assert (health.uptime_s, health.schedulers, health.status) == (None, 0, "degraded")


def test_a_scheduler_that_stopped_cleanly_is_forgotten():
    SchedulerHeartbeat.beat("a:1", NOW, NOW)
    SchedulerHeartbeat.stopped("a:1")
    assert not SchedulerHeartbeat.objects.exists()


@time_machine.travel(NOW, tick=False)
def test_failed_registrations_make_the_status_degraded():
    SchedulerHeartbeat.beat("a:1", NOW, NOW)
    JobFactory(id="broken")
    Job.objects.filter(pk="broken").update(schedule="not cron")
    assert health_summary().status == "degraded"


@time_machine.travel(NOW, tick=False)
def test_runner_status_prints_the_summary_for_a_person():
    JobFactory(id="broken")
    Job.objects.filter(pk="broken").update(schedule="not cron")
    out = io.StringIO()
    call_command("runner_status", stdout=out)
    text = out.getvalue()
    assert "degraded" in text and "no scheduler running" in text
    assert "failed registrations: 1 (broken)" in text
