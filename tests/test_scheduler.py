"""The scheduler with a controlled clock: due fires, reconcile, missed fires, failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import OperationalError

from runner import notify
from runner.models import Job, Run, RunStatus
from runner.scheduler import Scheduler
from tests.factories import JobFactory
from tests.fakes.clocks import FakeClocks

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
LEAD = timedelta(milliseconds=250)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
DAY_AGO = NOW - timedelta(days=1)


@pytest.fixture
def clocks() -> FakeClocks:
    return FakeClocks(NOW)


@pytest.fixture
def scheduler(dispatched, clocks) -> Scheduler:
    return Scheduler(dispatcher=dispatched, lead=LEAD, monotonic=clocks.monotonic)


def make_job(job_id: str = "tick", schedule: str = "* * * * * *", created=NOW, **fields) -> Job:
    job = JobFactory(id=job_id, schedule=schedule, **fields)
    Job.objects.filter(pk=job.pk).update(
        created_at=created, schedule_effective_at=created, updated_at=created
    )
    return job


def runs(job_id: str = "tick") -> list[Run]:
    return list(Run.objects.filter(job_id=job_id).order_by("scheduled_for"))


def test_a_fire_is_recorded_and_dispatched_a_lead_before_its_instant(scheduler, dispatched):
    make_job()
    scheduler.start(NOW)
    assert not scheduler.fire_due(NOW + SECOND - LEAD - timedelta(milliseconds=1))
    assert scheduler.fire_due(NOW + SECOND - LEAD)
    [run] = runs()
    assert (run.scheduled_for, run.status, run.trigger) == (NOW + SECOND, "pending", "schedule")
    assert dispatched == [run.pk]


def test_the_next_dispatch_is_the_earliest_fire_minus_the_lead(scheduler):
    make_job("often", "*/10 * * * * *")
    make_job("rarely", "0 * * * *")
    scheduler.start(NOW)
    assert scheduler.next_dispatch_at() == NOW + 10 * SECOND - LEAD


def test_each_tick_fires_only_the_jobs_that_are_due(scheduler):
    make_job("every-second")
    make_job("every-minute", "* * * * *")
    make_job("hourly", "0 * * * *")
    scheduler.start(NOW)
    scheduler.fire_due(NOW + SECOND)
    assert [run.job_id for run in Run.objects.all()] == ["every-second"]


def test_a_fire_recorded_by_another_scheduler_is_not_dispatched_again(dispatched):
    make_job()
    first, second = Scheduler(dispatched, LEAD), Scheduler(dispatched, LEAD)
    first.start(NOW)
    second.start(NOW)
    first.fire_due(NOW + SECOND)
    second.fire_due(NOW + SECOND)
    assert len(runs()) == 1 and dispatched == [runs()[0].pk]


def test_a_new_job_is_picked_up_by_reconcile(scheduler):
    scheduler.start(NOW)
    make_job()
    assert scheduler.reconcile(NOW)
    scheduler.fire_due(NOW + SECOND)
    assert [run.scheduled_for for run in runs()] == [NOW + SECOND]


def test_an_edited_schedule_takes_effect_at_reconcile(scheduler):
    job = make_job(schedule="0 12 * * *")
    scheduler.start(NOW)
    job.schedule = "*/5 * * * * *"
    job.save()
    assert scheduler.reconcile(NOW)
    assert scheduler.planned() == {"tick": NOW + 5 * SECOND}


def test_an_edit_that_keeps_the_schedule_keeps_the_planned_fire(scheduler):
    job = make_job(schedule="*/5 * * * * *")
    scheduler.start(NOW)
    job.description = "changed"
    job.save()
    scheduler.reconcile(NOW + 2 * SECOND)
    assert scheduler.planned() == {"tick": NOW + 5 * SECOND}


def test_a_disabled_job_never_fires_again(scheduler):
    job = make_job()
    scheduler.start(NOW)
    scheduler.fire_due(NOW + SECOND)
    job.enabled = False
    job.save()
    scheduler.reconcile(NOW + SECOND)
    assert not scheduler.fire_due(NOW + 10 * SECOND)
    assert len(runs()) == 1 and scheduler.planned() == {}


def test_a_deleted_job_never_fires_again(scheduler):
    job = make_job()
    scheduler.start(NOW)
    job.delete()
    assert scheduler.reconcile(NOW)
    assert not scheduler.fire_due(NOW + 10 * SECOND)
    assert scheduler.planned() == {}


@pytest.mark.django_db(transaction=True)  # the foreign key is checked at commit
def test_a_job_deleted_before_reconcile_saw_it_costs_only_its_own_fire(scheduler):
    make_job("stays")
    gone = make_job("goes")
    scheduler.start(NOW)
    gone.delete()  # the scheduler still plans it: its insert breaks the foreign key
    scheduler.fire_due(NOW + SECOND)
    assert [run.job_id for run in Run.objects.all()] == ["stays"]


def test_a_re_enabled_job_fires_from_now_without_catching_up(scheduler):
    job = make_job(enabled=False, missed_fire_policy="all")
    scheduler.start(NOW)
    job.enabled = True
    job.save()
    scheduler.reconcile(NOW + MINUTE)
    scheduler.fire_due(NOW + MINUTE + SECOND)
    assert [run.scheduled_for for run in runs()] == [NOW + MINUTE + SECOND]


def test_reconcile_costs_one_query_when_nothing_changed(scheduler, django_assert_num_queries):
    make_job()
    scheduler.start(NOW)
    with django_assert_num_queries(1):
        assert not scheduler.reconcile(NOW + SECOND)


def test_an_edit_that_bypassed_updated_at_is_found_by_the_periodic_full_look(scheduler, clocks):
    make_job()
    scheduler.start(NOW)
    Job.objects.filter(pk="tick").update(enabled=False)  # updated_at unchanged
    scheduler.reconcile(NOW + SECOND)
    assert scheduler.planned() == {"tick": NOW + SECOND}
    clocks.advance(120)
    scheduler.reconcile(NOW + 2 * MINUTE)
    assert scheduler.planned() == {}


# -- missed fires ----------------------------------------------------------------


def outage(job: Job, last_fire: datetime) -> None:
    """The job last fired at ``last_fire``; the scheduler was down since."""
    Run.objects.create(job=job, scheduled_for=last_fire, status=RunStatus.OK)


def test_skip_records_one_skipped_run_saying_how_many_fires_were_missed(scheduler, dispatched):
    job = make_job(schedule="* * * * *", created=DAY_AGO)
    outage(job, NOW - 10 * MINUTE)
    scheduler.start(NOW)
    [_, skipped] = runs()
    assert (skipped.scheduled_for, skipped.status) == (NOW, "skipped")
    assert skipped.error == (
        "skipped: missed 10 fires between 2026-03-02T08:51:00Z and 2026-03-02T09:00:00Z "
        "while no scheduler was running (missed-fire policy skip)"
    )
    assert dispatched == []


def test_skip_says_when_the_one_fire_missed_was_due(scheduler, dispatched):
    job = make_job(schedule="* * * * *", created=DAY_AGO)
    outage(job, NOW - MINUTE)
    scheduler.start(NOW + 30 * SECOND)
    [_, skipped] = runs()
    assert skipped.error == (
        "skipped: missed 1 fire at 2026-03-02T09:00:00Z "
        "while no scheduler was running (missed-fire policy skip)"
    )


def test_latest_runs_once_for_the_newest_missed_slot(scheduler, dispatched):
    job = make_job(schedule="* * * * *", missed_fire_policy="latest", created=DAY_AGO)
    outage(job, NOW - 10 * MINUTE)
    scheduler.start(NOW + 30 * SECOND)
    [_, latest] = runs()
    assert (latest.scheduled_for, latest.status) == (NOW, "pending")
    assert dispatched == [latest.pk]


def test_all_runs_each_missed_slot_up_to_the_maximum(scheduler, dispatched, runner_config):
    runner_config(missed_fire_max=3)
    job = make_job(schedule="* * * * *", missed_fire_policy="all", created=DAY_AGO)
    outage(job, NOW - 10 * MINUTE)
    scheduler.start(NOW)
    _, left_out, *caught_up = runs()
    assert [run.scheduled_for for run in caught_up] == [NOW - 2 * MINUTE, NOW - MINUTE, NOW]
    assert all(run.status == "pending" and run.catch_up for run in caught_up)
    # Overlap skip: one at a time, the oldest first (runner.catchup dispatches the rest).
    assert dispatched == [caught_up[0].pk]
    assert (left_out.scheduled_for, left_out.status) == (NOW - 3 * MINUTE, "skipped")
    assert left_out.error.startswith("skipped: 7 fires missed up to this one were not run")
    assert "at most 3 runs" in left_out.error
    assert not left_out.catch_up


def test_all_says_so_when_one_fire_was_left_out(scheduler, dispatched, runner_config):
    runner_config(missed_fire_max=3)
    job = make_job(schedule="* * * * *", missed_fire_policy="all", created=DAY_AGO)
    outage(job, NOW - 4 * MINUTE)
    scheduler.start(NOW)
    _, left_out, *caught_up = runs()
    assert (left_out.scheduled_for, len(caught_up)) == (NOW - 3 * MINUTE, 3)
    assert left_out.error.startswith("skipped: this missed fire was not run: catch-up ")


def test_all_dispatches_every_missed_slot_of_an_overlap_allow_job_at_once(scheduler, dispatched):
    job = make_job(
        schedule="* * * * *", missed_fire_policy="all", overlap_policy="allow", created=DAY_AGO
    )
    outage(job, NOW - 3 * MINUTE)
    scheduler.start(NOW)
    assert dispatched == [run.pk for run in runs() if run.status == "pending"]
    assert len(dispatched) == 3


def test_all_reaches_back_no_further_than_the_window(scheduler, runner_config):
    runner_config(missed_fire_window_ms=5 * 60_000)
    job = make_job(schedule="* * * * *", missed_fire_policy="all", created=DAY_AGO)
    outage(job, NOW - 60 * MINUTE)
    scheduler.start(NOW)
    pending = [run.scheduled_for for run in runs() if run.status == "pending"]
    assert pending == [NOW - 4 * MINUTE + i * MINUTE for i in range(5)]
    [left_out] = [run for run in runs() if run.status == "skipped"]
    assert "55 fires missed" in left_out.error and "reaches back 5m" in left_out.error


def test_a_job_that_never_fired_counts_its_missed_fires_from_its_creation(scheduler):
    make_job(schedule="*/15 * * * *", created=NOW - 50 * MINUTE)
    scheduler.start(NOW)
    [skipped] = runs()
    assert "missed 4 fires" in skipped.error


def test_an_outage_of_an_every_second_job_is_counted_without_walking_it_all(scheduler):
    make_job(created=NOW - timedelta(days=3))
    scheduler.start(NOW)
    [skipped] = runs()
    assert "missed more than 1000 fires" in skipped.error


def test_a_restart_with_nothing_missed_records_nothing(scheduler):
    job = make_job()
    outage(job, NOW)
    scheduler.start(NOW + timedelta(milliseconds=500))
    assert len(runs()) == 1


def test_a_fire_reached_very_late_follows_the_missed_fire_policy(scheduler, dispatched):
    make_job()
    scheduler.start(NOW)
    scheduler.fire_due(NOW + 30 * SECOND)  # the loop was stuck for half a minute
    [skipped] = runs()
    assert (skipped.scheduled_for, skipped.status) == (NOW + 30 * SECOND, "skipped")
    assert "missed 30 fires" in skipped.error
    assert scheduler.planned() == {"tick": NOW + 31 * SECOND}
    # The scheduler was running, only behind: the reason must not say it was down.
    assert "no scheduler was running" not in skipped.error
    assert skipped.error.endswith(
        "while the scheduler was running behind (it reached them more than 10 s late) "
        "(missed-fire policy skip)"
    )


# -- jobs whose schedule cannot be loaded ------------------------------------------


def test_jobs_whose_schedule_cannot_be_loaded_are_collected_and_reported(scheduler, monkeypatch):
    reported = []
    monkeypatch.setattr(notify, "report_failed_registrations", reported.extend, raising=False)
    make_job("fine")
    make_job("never")
    make_job("nowhere")
    Job.objects.filter(pk="never").update(schedule="0 0 30 2 *")
    Job.objects.filter(pk="nowhere").update(timezone="Mars/Olympus")
    scheduler.start(NOW)
    assert set(scheduler.failed) == {"never", "nowhere"}
    assert "never" in scheduler.failed["never"] or "30 2" in scheduler.failed["never"]
    assert sorted(job_id for job_id, _ in reported) == ["never", "nowhere"]
    scheduler.fire_due(NOW + SECOND)
    assert [run.job_id for run in Run.objects.all()] == ["fine"]


def test_a_failed_job_fixed_by_an_edit_is_planned(scheduler):
    make_job()
    Job.objects.filter(pk="tick").update(schedule="0 0 30 2 *")
    scheduler.start(NOW)
    job = Job.objects.get(pk="tick")
    job.schedule = "* * * * * *"
    job.save()
    scheduler.reconcile(NOW)
    assert scheduler.failed == {} and scheduler.planned() == {"tick": NOW + SECOND}


def test_fires_the_database_refused_are_tried_again_next_cycle(scheduler, monkeypatch):
    make_job()
    scheduler.start(NOW)
    original = Run.create_scheduled_many

    def database_down(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(Run, "create_scheduled_many", database_down)
    with pytest.raises(OperationalError):
        scheduler.fire_due(NOW + SECOND)
    monkeypatch.setattr(Run, "create_scheduled_many", original)
    assert scheduler.fire_due(NOW + 2 * SECOND)
    assert [run.scheduled_for for run in runs()] == [NOW + SECOND, NOW + 2 * SECOND]


# -- the kept schedule iterators ---------------------------------------------------


def fires_of(scheduler: Scheduler, job_id: str = "tick"):
    return scheduler._plans[job_id].fires


def test_fires_over_a_minute_are_those_of_the_uncached_path(scheduler, clocks):
    make_job("berlin", "*/7 * * * * *", timezone="Europe/Berlin")
    make_job("tick")
    scheduler.start(NOW)
    for _ in range(60):
        scheduler.fire_due(clocks.advance(1))
    assert [r.scheduled_for for r in runs("berlin")] == [
        NOW + n * SECOND for n in range(1, 61) if n % 60 % 7 == 0
    ]
    assert [r.scheduled_for for r in runs()] == [NOW + n * SECOND for n in range(1, 61)]
    assert fires_of(scheduler).fast >= 58  # the croniter was kept, not rebuilt per fire


def test_an_edited_schedule_or_zone_gets_a_new_iterator(scheduler):
    job = make_job(schedule="*/5 * * * * *")
    scheduler.start(NOW)
    before = fires_of(scheduler)
    job.timezone = "Asia/Kolkata"
    job.save()
    scheduler.reconcile(NOW)
    after_zone = fires_of(scheduler)
    job.schedule = "*/3 * * * * *"
    job.save()
    scheduler.reconcile(NOW)
    assert before is not after_zone and after_zone is not fires_of(scheduler)
    assert (fires_of(scheduler).expression, fires_of(scheduler).zone_name) == (
        "*/3 * * * * *",
        "Asia/Kolkata",
    )
    assert scheduler.planned() == {"tick": NOW + 3 * SECOND}


def test_an_edit_of_the_policy_alone_keeps_the_iterator(scheduler):
    job = make_job(schedule="*/5 * * * * *")
    scheduler.start(NOW)
    before = fires_of(scheduler)
    job.missed_fire_policy = "latest"
    job.save()
    scheduler.reconcile(NOW)
    assert fires_of(scheduler) is before


def test_a_disabled_then_enabled_job_gets_a_new_iterator(scheduler):
    job = make_job(schedule="*/5 * * * * *")
    scheduler.start(NOW)
    before = fires_of(scheduler)
    for enabled in (False, True):
        job.enabled = enabled
        job.save()
        scheduler.reconcile(NOW)
    assert fires_of(scheduler) is not before
    assert scheduler.planned() == {"tick": NOW + 5 * SECOND}


@pytest.mark.parametrize("step", [-timedelta(hours=1), timedelta(hours=1)])
def test_a_wall_clock_step_starts_every_iterator_afresh(scheduler, clocks, step):
    make_job()
    scheduler.start(NOW)
    for _ in range(5):
        scheduler.fire_due(clocks.advance(1))
    assert fires_of(scheduler).fast > 0
    scheduler.fire_due(clocks.step_wall(step))
    assert fires_of(scheduler).fast == 0


def test_time_passing_on_both_clocks_keeps_the_iterators(scheduler, clocks):
    make_job()
    scheduler.start(NOW)
    for _ in range(5):
        scheduler.fire_due(clocks.advance(1))
    assert fires_of(scheduler).fast == 5  # the first fire came from the uncached path


def test_a_start_after_an_outage_names_ten_jobs_and_counts_the_rest(scheduler, caplog):
    """Thousands of jobs missing fires after an outage give a readable log: a line for
    each of the first ten jobs, one for the rest, with the runs counted."""
    for number in range(13):
        outage(
            make_job(f"job-{number:02d}", schedule="* * * * *", created=DAY_AGO), NOW - 3 * MINUTE
        )
    with caplog.at_level("WARNING", logger="runner.scheduler"):
        scheduler.start(NOW)
    lines = [r.getMessage() for r in caplog.records if "missed-fire" in r.getMessage()]
    assert len(lines) == 11
    assert lines[0] == "job job-00: 1 missed-fire run(s) recorded (policy skip)"
    assert lines[-1].startswith("3 more jobs: 3 missed-fire run(s) recorded in all")
    assert Run.objects.filter(status=RunStatus.SKIPPED).count() == 13
