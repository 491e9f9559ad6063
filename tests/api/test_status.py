"""GET /api/status: the original runner's health shape, the same as runner_status."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command

from runner.models import SchedulerHeartbeat
from tests.factories import JobFactory, RunFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@time_machine.travel(NOW, tick=False)
def test_status_has_the_original_runners_shape(api):
    SchedulerHeartbeat.beat("host:1", NOW - timedelta(minutes=1), NOW, "Europe/Berlin")
    JobFactory(id="inbox")
    RunFactory(status="ok", finished_at=NOW)
    body = api.get("/status").json()
    assert body == {
        "name": "runner",
        "version": "0.1.0",
        "uptime": 60.0,
        "status": "ok",
        "health": {
            "totalJobs": 2,
            "running": 0,
            "failedRegistrations": 0,
            "okLastHour": 1,
            "errorsLastHour": 0,
            "schedulers": 1,
            "schedulerZones": ["Europe/Berlin"],
            "failedJobs": [],
            "backlog": {
                "pending": 0,
                "oldestPendingAge": None,
                "skippedWaiting": 0,
                "maxPending": 1000,
                "maxAge": 60000,
            },
            "late": 0,
            "lateJobs": [],
        },
    }


@time_machine.travel(NOW, tick=False)
def test_status_reports_the_backlog_and_degrades_past_its_bounds(api):
    SchedulerHeartbeat.beat("host:1", NOW - timedelta(minutes=1), NOW)
    job = JobFactory(id="inbox")
    RunFactory(job=job, trigger="schedule", scheduled_for=NOW - timedelta(seconds=61))
    RunFactory(job=job, trigger="schedule", scheduled_for=NOW + timedelta(seconds=1))
    body = api.get("/status").json()
    assert body["health"]["backlog"]["pending"] == 2
    assert body["health"]["backlog"]["oldestPendingAge"] == 61_000
    assert body["status"] == "degraded"


@time_machine.travel(NOW, tick=False)
def test_runner_status_json_is_the_body_of_api_status(api):
    SchedulerHeartbeat.beat("host:1", NOW - timedelta(minutes=1), NOW)
    RunFactory(status="error", finished_at=NOW - timedelta(minutes=5))
    out = io.StringIO()
    call_command("runner_status", "--json", stdout=out)
    assert json.loads(out.getvalue()) == api.get("/status").json()
