"""Slow alerts: a running run past k times its job's p95 (issue 16). Raised once while the
run is still going, reminded, recovered when it ends; Slack and the webhook are real
loopback servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner import notify
from runner.models import Incident, Job, Run, RunOutcome
from runner.watch import CHECK_INTERVAL_S, Watch, check_slow, p95, slow_bound
from tests.factories import JobFactory, RunFactory
from tests.fakes.alerting import events, texts
from tests.fakes.clocks import FakeClocks

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("drained_outbox")]

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def history(job: Job, durations_s: list[float]) -> None:
    """Finished ok runs of ``job`` with these durations, oldest first."""
    for i, seconds in enumerate(durations_s):
        at = T0 - timedelta(hours=len(durations_s) - i)
        RunFactory(
            job=job, status="ok", started_at=at, finished_at=at + seconds * SECOND,
            duration_ms=int(seconds * 1000),
        )  # fmt: skip


def running(job: Job, since: datetime) -> Run:
    return RunFactory(job=job, status="running", started_at=since, worker="w:1")


def test_p95_is_the_nearest_rank():
    assert p95([10] * 19 + [1000]) == 10
    assert p95(list(range(1, 101))) == 95
    assert p95([7]) == 7


def test_no_bound_before_ten_ok_runs_and_none_with_the_factor_zero():
    job = JobFactory()
    history(job, [10] * 9)
    assert slow_bound(job.pk, 3.0) is None
    history(job, [10])
    assert slow_bound(job.pk, 3.0) == (30 * SECOND, 10 * SECOND)
    assert slow_bound(job.pk, 0.0) is None


def test_the_bound_uses_the_last_fifty_ok_runs_only():
    job = JobFactory()
    history(job, [1000] * 20 + [10] * 50)  # the old slow runs are out of the window
    RunFactory(job=job, status="error", duration_ms=99_000_000)  # failures do not count
    assert slow_bound(job.pk, 2.0) == (20 * SECOND, 10 * SECOND)


def test_a_slow_run_is_raised_once_reminded_and_recovered_when_it_ends(servers):
    slack, hook = servers
    job = JobFactory(id="report", name="Report", alert_reminder_hours=1)
    history(job, [10] * 12)  # p95 10 s, bound 30 s
    run = running(job, T0)
    clocks = FakeClocks(T0 + 29 * SECOND)
    watch = Watch(monotonic=clocks.monotonic)
    watch.tick(clocks.wall())
    assert texts(slack) == []

    clocks.advance(CHECK_INTERVAL_S)  # 59 s: past 3 x 10 s
    watch.tick(clocks.wall())
    assert texts(slack) == [
        f":snail: *Report* (`report`) is slow: run #{run.pk} has been running for 59 s, "
        "over 3 times its p95 of 10 s (bound 30 s)"
    ]
    for _ in range(10):
        clocks.advance(CHECK_INTERVAL_S)
        watch.tick(clocks.wall())
    assert len(texts(slack)) == 1

    clocks.advance(3600)
    watch.tick(clocks.wall())
    assert texts(slack)[-1] == (
        ":rotating_light: *Report* (`report`) is still slow since 2026-03-02 12:00:30 UTC, "
        "1 slow run"
    )

    ended = clocks.advance(60)
    assert run.finish(RunOutcome(status="ok"), ended)
    notify.run_finished(run)
    sent = texts(slack)
    assert len(sent) == 3
    assert sent[2] == (
        f":white_check_mark: *Report* (`report`) recovered: run #{run.pk} ended (ok) "
        "1 h 6 min after it was found slow"
    )
    incident = Incident.objects.get()
    assert (incident.kind, incident.closed_at, incident.reminders) == ("slow", ended, 1)
    assert events(hook) == [
        ("incident.raised", "slow"),
        ("incident.reminder", "slow"),
        ("incident.recovered", "slow"),
    ]
    # The check after the end finds nothing to say.
    clocks.advance(CHECK_INTERVAL_S)
    watch.tick(clocks.wall())
    assert len(texts(slack)) == 3


def test_a_slow_incident_whose_run_row_is_gone_is_closed_by_the_check(servers):
    slack, _ = servers
    job = JobFactory()
    history(job, [10] * 10)
    run = running(job, T0)
    assert len(check_slow(T0 + 40 * SECOND)) == 1
    Run.objects.filter(pk=run.pk).delete()
    alerts = check_slow(T0 + 50 * SECOND)
    assert [a.event for a in alerts] == ["incident.recovered"]
    assert "ended (deleted)" in alerts[0].text
    notify.send_alerts(alerts)
    assert texts(slack) == [alerts[0].text]
    assert Incident.objects.get().closed_at == T0 + 50 * SECOND


def test_a_fast_job_is_not_slow_within_the_one_second_floor(servers):
    job = JobFactory()
    history(job, [0.01] * 10)  # p95 10 ms; 3 x 10 ms would be 30 ms
    running(job, T0)
    assert check_slow(T0 + 0.5 * SECOND) == []
    assert len(check_slow(T0 + 1.5 * SECOND)) == 1


def test_two_checks_at_once_raise_one_incident(servers):
    job = JobFactory()
    history(job, [10] * 10)
    running(job, T0)
    assert len(check_slow(T0 + 40 * SECOND)) == 1
    assert check_slow(T0 + 40 * SECOND) == []
    assert Incident.objects.count() == 1


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=60))
def test_p95_is_a_value_of_the_list_with_at_least_95_percent_at_or_below_it(durations):
    value = p95(durations)
    assert value in durations
    assert sum(d <= value for d in durations) >= 0.95 * len(durations)
    assert sum(d < value for d in durations) < 0.95 * len(durations)


def test_the_check_reads_every_running_jobs_history_in_one_query(django_assert_num_queries):
    # Under the bound, so nothing is raised: what is left is the reads.
    def jobs_running(count: int, prefix: str) -> None:
        for n in range(count):
            job = JobFactory(id=f"{prefix}-{n}")
            history(job, [10] * 12)
            running(job, T0)

    jobs_running(1, "one")
    with django_assert_num_queries(3):  # running runs, open incidents, the histories
        assert check_slow(T0 + 5 * SECOND) == []
    jobs_running(4, "more")
    with django_assert_num_queries(3):
        assert check_slow(T0 + 5 * SECOND) == []
