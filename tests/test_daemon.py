"""The daemon loop with a controlled clock: fires first, maintenance only in the gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.utils import timezone

from runner import daemon as daemon_module
from runner.daemon import Daemon
from runner.health import health_summary
from runner.models import Job, Run, SchedulerHeartbeat
from tests.factories import JobFactory
from tests.fakes.clocks import FakeClocks

# The loop calls close_old_connections(), which closes a connection inside a test's
# transaction: these tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def maintenance(monkeypatch) -> list[tuple[datetime, float]]:
    calls: list[tuple[datetime, float]] = []

    def run_maintenance(now: datetime, budget_s: float):
        calls.append((now, budget_s))
        return SimpleNamespace(more=len(calls) == 1, total=1)

    monkeypatch.setattr(daemon_module, "run_maintenance", run_maintenance)
    return calls


@pytest.fixture
def clocks() -> FakeClocks:
    return FakeClocks(NOW)


def started_daemon(clocks: FakeClocks) -> Daemon:
    daemon = Daemon(workers=False, clocks=clocks)
    daemon.scheduler._dispatch = lambda run_ids: len(list(run_ids))
    daemon.liveness._database_clock = clocks.wall
    daemon.start()
    return daemon


def every_second_job() -> Job:
    job = JobFactory(id="tick", schedule="* * * * * *")
    Job.objects.filter(pk=job.pk).update(created_at=NOW, schedule_effective_at=NOW)
    return job


def test_a_cycle_records_the_fires_due(maintenance, clocks):
    every_second_job()
    daemon = started_daemon(clocks)
    clocks.advance(1)
    assert daemon.cycle()
    assert Run.objects.filter(job_id="tick").count() == 1


def test_maintenance_gets_only_the_time_before_the_next_dispatch(maintenance, clocks):
    every_second_job()
    daemon = started_daemon(clocks)
    clocks.advance(0.4)
    daemon.cycle()
    [(_, budget)] = maintenance
    # next dispatch at 0.75 s (1 s minus the 250 ms lead), less a 50 ms margin
    assert budget == pytest.approx(0.3)


def test_maintenance_waits_when_a_fire_is_about_to_be_dispatched(maintenance, clocks):
    every_second_job()
    daemon = started_daemon(clocks)
    clocks.advance(0.72)
    daemon.cycle()
    assert maintenance == []


def test_maintenance_with_work_left_continues_on_the_next_cycle(maintenance, clocks):
    daemon = started_daemon(clocks)
    daemon.cycle()
    clocks.advance(1)
    daemon.cycle()
    clocks.advance(1)
    daemon.cycle()
    assert [budget for _, budget in maintenance] == [0.5, 0.5]


def test_the_loop_sleeps_until_the_next_dispatch(clocks):
    every_second_job()
    daemon = started_daemon(clocks)
    clocks.advance(0.5)
    daemon.cycle()
    assert daemon.sleep_for() == pytest.approx(0.25)


def test_runscheduler_once_plans_records_and_exits():
    job = JobFactory(id="tick", schedule="* * * * *")
    hour_ago = timezone.now() - timedelta(hours=1)
    Job.objects.filter(pk=job.pk).update(created_at=hour_ago, schedule_effective_at=hour_ago)
    call_command("runscheduler", "--once")
    [skipped] = Run.objects.filter(job_id="tick")
    assert skipped.status == "skipped" and "missed-fire policy skip" in skipped.error


def test_start_up_waits_for_a_database_that_does_not_answer_yet(monkeypatch, clocks):
    daemon = Daemon(workers=False, clocks=clocks)
    attempts: list[datetime] = []

    def start() -> None:
        attempts.append(clocks.wall())
        if len(attempts) < 3:
            raise OperationalError("connection refused")

    waits: list[float] = []
    monkeypatch.setattr(daemon, "start", start)
    monkeypatch.setattr(daemon.stopping, "wait", lambda delay: waits.append(delay) or False)
    daemon._start_when_the_database_answers()
    assert len(attempts) == 3 and waits == [1.0, 2.0]


def test_a_running_scheduler_reports_its_uptime_through_the_health_summary(maintenance, clocks):
    daemon = started_daemon(clocks)
    daemon.cycle()
    beat = SchedulerHeartbeat.objects.get(pk=daemon.identity)
    assert (beat.started_at, beat.seen_at) == (NOW, NOW)
    assert health_summary(now=NOW + timedelta(seconds=20)).uptime_s == 20


def test_the_heartbeat_is_written_once_per_interval_not_every_cycle(
    maintenance, runner_config, clocks
):
    runner_config(heartbeat_interval_ms=5000)
    daemon = started_daemon(clocks)
    daemon.cycle()
    clocks.advance(2)
    daemon.cycle()
    assert SchedulerHeartbeat.objects.get(pk=daemon.identity).seen_at == NOW
    clocks.advance(3)
    daemon.cycle()
    assert SchedulerHeartbeat.objects.get(pk=daemon.identity).seen_at == NOW + timedelta(seconds=5)


def test_a_scheduler_that_stops_cleanly_is_no_longer_counted_alive():
    call_command("runscheduler", "--once")
    assert not SchedulerHeartbeat.objects.exists()
    assert health_summary().uptime_s is None


def test_a_changed_config_file_applies_at_the_next_reconcile(
    maintenance, settings, tmp_path, clocks
):
    import dataclasses
    import json

    from jeeves_site import config_live

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"runRetentionDays": 9}))
    settings.RUNNER = dataclasses.replace(settings.RUNNER, config_file=str(path))
    config_live.refresh_runner_config(force=True)
    daemon = started_daemon(clocks)
    path.write_text(json.dumps({"runRetentionDays": 11, "reconcileIntervalMs": 2000}))

    daemon.cycle()
    assert settings.RUNNER.run_retention_days == 9  # not yet: the reconcile is not due
    clocks.advance(1)
    daemon.cycle()
    assert (settings.RUNNER.run_retention_days, settings.RUNNER.reconcile_interval_ms) == (11, 2000)


def test_a_scheduler_whose_server_zone_differs_from_the_first_ones_stands_by(
    maintenance, clocks, settings, caplog
):
    """Jobs without a timezone fire in the server's zone: two schedulers on one database
    that disagree on it fire them at different instants, twice (a probe, 2026-12-01).
    The one that came second fires nothing, says why once, and resumes when the other
    is gone; the one that came first fires on."""
    settings.TIME_ZONE = "UTC"
    job = JobFactory(id="even", schedule="*/2 * * * *")
    Job.objects.filter(pk=job.pk).update(created_at=NOW, schedule_effective_at=NOW)
    first = NOW - timedelta(hours=1)
    SchedulerHeartbeat.beat("other-host:7", first, NOW, "Asia/Kathmandu")
    daemon = started_daemon(clocks)
    clocks.advance(120)
    SchedulerHeartbeat.beat("other-host:7", first, clocks.wall(), "Asia/Kathmandu")
    daemon._next_beat = clocks.monotonic()
    assert not daemon.cycle()
    assert not Run.objects.filter(job_id="even").exists()
    # The fire it does not make is not waited for: no busy loop while standing by.
    for due in ("_next_reconcile", "_next_check", "_next_maintenance", "_next_sweep"):
        setattr(daemon, due, clocks.monotonic() + 60)
    daemon._next_beat = clocks.monotonic() + 60
    assert daemon.scheduler.next_dispatch_at() <= clocks.wall()
    assert daemon.sleep_for() == daemon_module.MAX_SLEEP_S
    assert caplog.text.count("standing by, firing nothing") == 1
    assert "other-host:7" in caplog.text and "Asia/Kathmandu" in caplog.text
    # The other scheduler falls silent past the liveness bound: this one fires.
    clocks.advance(settings.RUNNER.liveness_timeout_ms / 1000 + 1)
    daemon._next_beat = clocks.monotonic()
    daemon.cycle()
    assert Run.objects.filter(job_id="even").exists()


def test_the_first_scheduler_fires_on_beside_one_in_another_zone(maintenance, clocks, settings):
    settings.TIME_ZONE = "UTC"
    every_second_job()
    daemon = started_daemon(clocks)
    daemon.cycle()
    SchedulerHeartbeat.beat("later-host:9", NOW + timedelta(seconds=1), NOW, "Asia/Kathmandu")
    clocks.advance(1)
    daemon._next_beat = clocks.monotonic()
    assert daemon.cycle()
    assert daemon.zone_conflict is None
    assert Run.objects.filter(job_id="tick").exists()


def test_status_is_degraded_while_live_schedulers_disagree_on_the_zone():
    from runner.health import describe

    SchedulerHeartbeat.beat("a:1", NOW - timedelta(hours=1), NOW, "UTC")
    SchedulerHeartbeat.beat("b:2", NOW, NOW, "Asia/Kathmandu")
    health = health_summary(now=NOW)
    assert (health.status, health.zones) == ("degraded", ("UTC", "Asia/Kathmandu"))
    assert health.as_json()["health"]["schedulerZones"] == ["UTC", "Asia/Kathmandu"]
    assert "scheduler zones differ: UTC, Asia/Kathmandu; all but the first stand by" in (
        describe(health)
    )
    SchedulerHeartbeat.stopped("b:2")
    assert health_summary(now=NOW).zones == ("UTC",)
