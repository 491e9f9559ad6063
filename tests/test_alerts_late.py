"""Late ("did not run") alerts: raised once, reminded, recovered; in /api/status and the
dashboard too (issue 16). Slack and the webhook are real loopback servers."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client

from runner import coalesce, lateness
from runner.daemon import Daemon
from runner.health import health_summary
from runner.models import Incident, Job, Run, StartResult
from runner.watch import CHECK_INTERVAL_S, Watch, check_late
from tests.factories import JobFactory, RunFactory
from tests.fakes import refused_url
from tests.fakes.alerting import events, texts
from tests.fakes.clocks import FakeClocks

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("drained_outbox")]

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def job_since(at: datetime, **fields) -> Job:
    """A job whose schedule took effect at ``at`` (every 5 minutes unless told)."""
    fields.setdefault("schedule", "*/5 * * * *")
    job = JobFactory(**fields)
    Job.objects.filter(pk=job.pk).update(created_at=at, schedule_effective_at=at)
    return Job.objects.get(pk=job.pk)


def started(job: Job, at: datetime, status: str = "ok") -> Run:
    return RunFactory(
        job=job, trigger="schedule", scheduled_for=at, status=status, started_at=at,
        finished_at=at + timedelta(seconds=5) if status != "running" else None,
    )  # fmt: skip


# -- the rule ---------------------------------------------------------------------------


def test_the_default_grace_is_one_period_plus_a_minute_at_least_five_minutes():
    every_5 = job_since(T0, id="five")
    hourly = job_since(T0, id="hourly", schedule="0 * * * *")
    every_min = job_since(T0, id="minutely", schedule="* * * * *")
    # Every 5 min: due 12:05, grace 6 min -> late after 12:11.
    assert [j.job_id for j in lateness.late_jobs(T0 + 11 * MINUTE)] == ["minutely"]
    late = {j.job_id: j for j in lateness.late_jobs(T0 + 11 * MINUTE + timedelta(seconds=1))}
    assert set(late) == {"five", "minutely"}
    assert late["five"].due == T0 + 5 * MINUTE and late["five"].grace == 6 * MINUTE
    # Every minute: the 5-minute floor wins (due 12:01, late after 12:06).
    assert late["minutely"].grace == 5 * MINUTE
    # Hourly: due 13:00, grace 61 min -> late after 14:01.
    assert "hourly" not in {j.job_id for j in lateness.late_jobs(T0 + 121 * MINUTE)}
    assert "hourly" in {j.job_id for j in lateness.late_jobs(T0 + 122 * MINUTE)}
    del every_5, hourly, every_min


def test_a_per_job_grace_overrides_the_default_and_disabled_jobs_are_never_late():
    job_since(T0, id="strict", late_grace_s=60)
    job_since(T0, id="off", enabled=False)
    assert [j.job_id for j in lateness.late_jobs(T0 + 6 * MINUTE + timedelta(seconds=1))] == [
        "strict"
    ]


def test_a_job_that_runs_on_time_is_never_late():
    job = job_since(T0)
    for i in range(1, 13):
        started(job, T0 + 5 * i * MINUTE)
    assert lateness.late_jobs(T0 + 61 * MINUTE) == []


def test_cause_overlap_skips_a_stuck_run_makes_its_fires_skipped_and_the_job_late():
    job = job_since(T0)
    stuck = Run.create_scheduled(job, T0 + 5 * MINUTE)
    assert stuck.start("w:1", T0 + 5 * MINUTE) == StartResult.STARTED
    for i in range(2, 5):
        fire = Run.create_scheduled(job, T0 + 5 * i * MINUTE)
        assert fire.start("w:1", T0 + 5 * i * MINUTE) == StartResult.SKIPPED
    late = lateness.late_jobs(T0 + 17 * MINUTE)
    assert [(j.job_id, j.due, j.last_start) for j in late] == [
        (job.pk, T0 + 10 * MINUTE, T0 + 5 * MINUTE)
    ]


def test_cause_coalesced_fires_pending_runs_skipped_by_the_sweep_do_not_count():
    job = job_since(T0, schedule="* * * * *")
    for i in range(1, 7):
        Run.create_scheduled(job, T0 + i * MINUTE)
    assert coalesce.sweep(T0 + 7 * MINUTE) >= 5  # no worker started them: overtaken
    assert Run.objects.filter(job=job, status="skipped").count() >= 5
    assert [j.job_id for j in lateness.late_jobs(T0 + 7 * MINUTE)] == [job.pk]


# -- end to end: raised once, reminded, recovered ------------------------------------------


def test_scheduler_down_raises_once_reminds_and_recovers(servers):
    slack, hook = servers
    job = job_since(T0, id="backup", name="Backup", alert_reminder_hours=1)
    clocks = FakeClocks(T0 + 10 * MINUTE)
    watch = Watch(monotonic=clocks.monotonic)
    watch.tick(clocks.wall())
    assert texts(slack) == []

    clocks.advance(2 * 60)  # 12:12: the 12:05 fire is past its 6-minute grace
    watch.tick(clocks.wall())
    sent = texts(slack)
    assert sent == [
        ":alarm_clock: *Backup* (`backup`) did not run: late since 2026-03-02 12:05:00 UTC, "
        "2 missed fires (no run started since the fire due then; grace 6 min, last start never)"
    ]
    for _ in range(20):  # checks every 30 s for ten minutes: nothing more
        clocks.advance(CHECK_INTERVAL_S)
        watch.tick(clocks.wall())
    assert len(texts(slack)) == 1

    clocks.advance(3600)  # an hour after the raise: one reminder, with the count
    watch.tick(clocks.wall())
    reminder = texts(slack)[-1]
    assert reminder.startswith(":rotating_light: *Backup* (`backup`) is still late since ")
    assert reminder.endswith("16 missed fires")  # 12:05 to 13:20

    started(job, clocks.advance(60))
    clocks.advance(CHECK_INTERVAL_S)
    watch.tick(clocks.wall())
    sent = texts(slack)
    assert len(sent) == 3
    assert sent[2].startswith(":white_check_mark: *Backup* (`backup`) recovered after 16 missed")
    incident = Incident.objects.get()
    assert (incident.kind, incident.reminders, incident.closed_at is not None) == ("late", 1, True)
    assert events(hook) == [
        ("incident.raised", "late"),
        ("incident.reminder", "late"),
        ("incident.recovered", "late"),
    ]


# The loop calls close_old_connections(): the test's data must be committed.
@pytest.mark.django_db(transaction=True)
def test_the_scheduler_loop_runs_the_check(servers, settings):
    slack, _ = servers
    job_since(T0, id="loop")
    clocks = FakeClocks(T0 + 12 * MINUTE)
    daemon = Daemon(workers=False, clocks=clocks)
    daemon.scheduler._dispatch = lambda ids: len(list(ids))
    daemon.liveness._dispatch = lambda ids: len(list(ids))
    daemon.start()
    daemon.cycle()
    assert len(texts(slack)) == 1
    assert Incident.objects.get().kind == "late"


def test_a_disabled_job_closes_its_late_incident_without_a_post(servers):
    slack, _ = servers
    job = job_since(T0)
    assert len(check_late(T0 + 12 * MINUTE)) == 1
    Job.objects.filter(pk=job.pk).update(enabled=False)
    assert check_late(T0 + 13 * MINUTE) == []
    assert Incident.objects.get().closed_at == T0 + 13 * MINUTE
    assert texts(slack) == []  # check_late only returns alerts; the Watch sends them


def test_two_schedulers_checking_at_once_raise_one_incident(servers):
    job_since(T0)
    first = check_late(T0 + 12 * MINUTE)
    second = check_late(T0 + 12 * MINUTE)
    assert len(first) == 1 and second == []
    assert Incident.objects.count() == 1


# -- seen without Slack, and without the scheduler ------------------------------------------


def test_status_and_dashboard_report_late_jobs_even_when_slack_is_unreachable(settings):
    settings.RUNNER = dataclasses.replace(
        settings.RUNNER,
        notifications=dataclasses.replace(
            settings.RUNNER.notifications, slack_api_url=refused_url(), default_on_failure="C"
        ),
    )
    job_since(T0, id="nightly")
    health = health_summary(T0 + 12 * MINUTE)
    assert health.status == "degraded"
    body = health.as_json()["health"]
    assert body["late"] == 1
    assert body["lateJobs"] == [
        {"id": "nightly", "due": T0 + 5 * MINUTE, "graceSeconds": 360, "lastStart": None}
    ]
    admin = get_user_model().objects.create_superuser("root", "r@example.com", "pw")
    client = Client()
    client.force_login(admin)
    with time_machine.travel(T0 + 12 * MINUTE, tick=False):
        page = client.get("/admin/").content.decode()
        status = client.get("/api/status").json()
    assert 'id="jr-late"' in page and "nightly" in page
    assert status["health"]["late"] == 1 and status["status"] == "degraded"


def test_late_jobs_cost_one_query_whatever_the_number_of_jobs(django_assert_num_queries):
    for i in range(30):
        job_since(T0, id=f"many-{i}")
    with django_assert_num_queries(1):
        assert len(lateness.late_jobs(T0 + 12 * MINUTE)) == 30


def test_one_check_posts_at_most_its_cap_and_counts_the_rest_in_one_warning(
    servers, monkeypatch, caplog
):
    import runner.watch

    slack, _ = servers
    monkeypatch.setattr(runner.watch, "MAX_POSTS_PER_CHECK", 5)
    for i in range(8):
        job_since(T0, id=f"outage-{i}")
    Watch(monotonic=FakeClocks(T0).monotonic).tick(T0 + 12 * MINUTE)
    assert len(texts(slack)) == 5
    assert Incident.objects.filter(kind="late", closed_at=None).count() == 8
    assert "3 more late/slow alerts in this check were recorded but not posted" in caplog.text


# -- the check's cost over time ---------------------------------------------------------


def test_a_carried_fire_cache_answers_the_next_check_without_schedule_arithmetic(monkeypatch):
    for n in range(5):
        job_since(T0, id=f"daily-{n}", schedule=f"{n} 3 * * *")
    computed = []
    real = lateness.schedule.next_fire_after

    def counting(cron, zone, moment):
        computed.append(cron)
        return real(cron, zone, moment)

    monkeypatch.setattr(lateness.schedule, "next_fire_after", counting)
    first = lateness.FireCache()
    assert check_late(T0 + 10 * MINUTE, first) == []
    assert len(computed) == 5

    computed.clear()
    assert check_late(T0 + 11 * MINUTE, first.carried()) == []
    assert computed == []


def test_a_changed_schedule_is_not_answered_from_the_carried_cache():
    job = job_since(T0, schedule="0 3 * * *")
    fires = lateness.FireCache()
    assert check_late(T0 + 10 * MINUTE, fires) == []
    Job.objects.filter(pk=job.pk).update(schedule="*/5 * * * *", schedule_effective_at=T0)

    late = lateness.late_jobs(T0 + 20 * MINUTE, fires.carried())

    assert [(found.job_id, found.due) for found in late] == [(job.pk, T0 + 5 * MINUTE)]


def test_status_polled_again_reuses_the_previous_calls_schedule_arithmetic(monkeypatch):
    for n in range(3):
        job_since(T0, id=f"hourly-{n}", schedule=f"{n} * * * *")
    computed = []
    real = lateness.schedule.next_fire_after
    monkeypatch.setattr(
        lateness.schedule,
        "next_fire_after",
        lambda cron, zone, moment: computed.append(cron) or real(cron, zone, moment),
    )
    with time_machine.travel(T0 + 2 * MINUTE, tick=False):
        health_summary(T0 + 2 * MINUTE)
        computed.clear()
        again = health_summary(T0 + 2 * MINUTE + timedelta(seconds=30))

    assert computed == []
    assert again.late == ()


def test_a_recent_late_answer_is_reused_until_a_job_changes_or_it_is_old():
    job = job_since(T0, id="nightly")
    first = lateness.late_jobs_now(T0 + 12 * MINUTE)
    assert [found.job_id for found in first] == ["nightly"]
    started(job, T0 + 12 * MINUTE)

    # Within READ_REUSE and no job changed: the same answer (the start is seen later).
    assert lateness.late_jobs_now(T0 + 12 * MINUTE + timedelta(seconds=5)) is first
    # A job added: computed again at once.
    job_since(T0, id="second")
    again = lateness.late_jobs_now(T0 + 12 * MINUTE + timedelta(seconds=6))
    assert [found.job_id for found in again] == ["second"]
    # Older than READ_REUSE: computed again.
    started(Job.objects.get(pk="second"), T0 + 12 * MINUTE)
    assert lateness.late_jobs_now(T0 + 13 * MINUTE) == []
