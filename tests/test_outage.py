"""A database that refuses work: the heap keeps one entry per job, the loop backs off,
logs once per outage and once on recovery, and stops at once when told (issue 11, item 9)."""

from __future__ import annotations

import contextlib
import logging
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import OperationalError

from runner import scheduler as scheduler_module
from runner.daemon import Daemon
from runner.models import Job, Run
from runner.scheduler import Scheduler
from tests.factories import JobFactory
from tests.fakes.clocks import FakeClocks

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
SCHEDULES = {
    "every-second": "* * * * * *",
    "every-5s": "*/5 * * * * *",
    "minutely": "* * * * *",
    "hourly": "0 * * * *",
}


class Refusals:
    """The recorder of fires (``Run.create_scheduled_many``, one call per batch), made to
    fail while ``down``."""

    def __init__(self, monkeypatch) -> None:
        self.down = False
        self.calls = 0
        original = Run.create_scheduled_many

        def create_scheduled_many(fires, now):
            self.calls += 1
            if self.down:
                raise OperationalError("database is locked")
            return original(fires, now)

        monkeypatch.setattr(Run, "create_scheduled_many", create_scheduled_many)


@pytest.fixture
def refusals(monkeypatch) -> Refusals:
    return Refusals(monkeypatch)


@pytest.fixture
def clocks() -> FakeClocks:
    return FakeClocks(NOW)


def make_jobs(policy: str = "skip") -> None:
    for job_id, schedule in SCHEDULES.items():
        JobFactory(id=job_id, schedule=schedule, missed_fire_policy=policy)
    Job.objects.update(created_at=NOW, schedule_effective_at=NOW, updated_at=NOW)


def assert_one_entry_per_job(scheduler: Scheduler) -> None:
    assert scheduler.heap_size() == len(SCHEDULES)
    assert set(scheduler.planned()) == set(SCHEDULES)


@pytest.mark.parametrize(
    "pattern",
    ["x", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "x.x.xx..xxx...", "...x"],
    ids=["one-failure", "a-minute-down", "flapping", "late-failure"],
)
def test_refused_batches_never_add_heap_entries(refusals, clocks, pattern):
    """``x``: the database refuses that second's batch; ``.``: it takes it."""
    make_jobs()
    scheduler = Scheduler(dispatcher=lambda ids: 0, monotonic=clocks.monotonic)
    scheduler.start(NOW)
    for second in pattern + "..":
        refusals.down = second == "x"
        now = clocks.advance(1)
        try:
            scheduler.fire_due(now)
        except OperationalError:
            assert set(scheduler.held_back) <= set(SCHEDULES)
        assert_one_entry_per_job(scheduler)
    assert all(at > clocks.wall() for at in scheduler.planned().values())
    assert scheduler.held_back == {}


def test_fires_held_through_a_short_outage_are_all_recorded_on_recovery(refusals, clocks):
    make_jobs()
    scheduler = Scheduler(dispatcher=lambda ids: 0, monotonic=clocks.monotonic)
    scheduler.start(NOW)
    refusals.down = True
    for _ in range(3):
        with pytest.raises(OperationalError):
            scheduler.fire_due(clocks.advance(1))
    refusals.down = False
    scheduler.fire_due(clocks.advance(1))
    every_second = Run.objects.filter(job_id="every-second").order_by("scheduled_for")
    assert [run.scheduled_for for run in every_second] == [
        NOW + timedelta(seconds=s) for s in range(1, 5)
    ]
    assert {run.status for run in every_second} == {"pending"}


def test_fires_held_through_a_long_outage_follow_the_missed_fire_policy(refusals, clocks):
    make_jobs(policy="latest")
    scheduler = Scheduler(dispatcher=lambda ids: 0, monotonic=clocks.monotonic)
    scheduler.start(NOW)
    refusals.down = True
    for _ in range(120):
        with pytest.raises(OperationalError):
            scheduler.fire_due(clocks.advance(1))
    refusals.down = False
    scheduler.fire_due(clocks.advance(1))
    recorded = dict(Run.objects.values_list("job_id", "scheduled_for"))
    assert recorded == {
        "every-second": NOW + timedelta(seconds=121),
        "every-5s": NOW + timedelta(seconds=120),
        "minutely": NOW + timedelta(minutes=2),
    }
    assert_one_entry_per_job(scheduler)


def test_a_reconcile_the_database_refused_is_repeated_in_full(clocks, monkeypatch):
    make_jobs()
    scheduler = Scheduler(dispatcher=lambda ids: 0, monotonic=clocks.monotonic)
    scheduler.start(NOW)
    Job.objects.filter(pk="hourly").update(enabled=False, updated_at=NOW + timedelta(seconds=1))
    real = scheduler_module._signatures

    def refused(jobs):
        raise OperationalError("the database system is shutting down")

    monkeypatch.setattr(scheduler_module, "_signatures", refused)
    with pytest.raises(OperationalError):
        scheduler.reconcile(NOW + timedelta(seconds=1))
    monkeypatch.setattr(scheduler_module, "_signatures", real)
    assert scheduler.reconcile(NOW + timedelta(seconds=2))
    assert "hourly" not in scheduler.planned()


# -- the loop -------------------------------------------------------------------------


@pytest.fixture
def daemon(clocks) -> Daemon:
    make_jobs()
    daemon = Daemon(workers=False, clocks=clocks)
    daemon.scheduler._dispatch = lambda ids: len(list(ids))
    daemon.liveness._database_clock = clocks.wall
    daemon.start()
    return daemon


def test_an_outage_is_logged_once_and_its_end_once_with_what_was_held(
    daemon, clocks, refusals, caplog
):
    caplog.set_level(logging.INFO, logger="runner")
    refusals.down = True
    for _ in range(30):
        clocks.advance(1)
        assert not daemon.attempt(daemon.cycle)
    refusals.down = False
    clocks.advance(1)
    assert daemon.attempt(daemon.cycle)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "database is locked" in errors[0]
    [recovered] = [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()]
    assert recovered.startswith("the database answers again after 30.0 s (30 attempts)")
    assert "2 job(s) had fires due meanwhile (the first at 2026-03-02T09:00:01+00:00)" in recovered
    assert_one_entry_per_job(daemon.scheduler)


def test_the_loop_backs_off_while_the_database_is_down_and_stops_at_once(
    daemon, clocks, refusals, monkeypatch
):
    refusals.down = True
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        clocks.advance(seconds)
        if len(waits) == 9:
            daemon.request_stop()  # SIGTERM arrives during the outage
        return daemon.stopping.is_set()

    monkeypatch.setattr(daemon.stopping, "wait", wait)
    monkeypatch.setattr(daemon, "_start_when_the_database_answers", lambda: None)
    assert daemon._loop(once=False) == 0
    # 0.75 s until the first fire's dispatch, then backoff from 1 s, capped at 10 s
    assert waits == [0.75, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    assert refusals.calls == 8  # one attempt per wait: no busy loop
    assert_one_entry_per_job(daemon.scheduler)


def test_after_an_outage_the_periodic_work_is_done_at_once(daemon, clocks, refusals, runner_config):
    runner_config(reconcile_interval_ms=60_000)
    refusals.down = True
    clocks.advance(1)
    daemon.attempt(daemon.cycle)
    Job.objects.filter(pk="hourly").update(enabled=False, updated_at=NOW + timedelta(seconds=1))
    refusals.down = False
    clocks.advance(1)
    daemon.attempt(daemon.cycle)  # recovery: reconcile is due now, not in a minute
    clocks.advance(0.001)
    daemon.attempt(daemon.cycle)
    assert "hourly" not in daemon.scheduler.planned()


@pytest.mark.django_db  # no commit needed: faster than the module's transactional tests
@pytest.mark.parametrize("seed", range(10))
def test_any_pattern_of_refusals_keeps_one_entry_per_job(refusals, seed):
    """Whatever the database refuses and whenever (10 seeded random patterns of up to 12
    steps of 1-40 s), the heap never grows, and once the database answers again every
    job is planned after now with nothing held back."""
    draw = random.Random(seed)
    steps = [(draw.random() < 0.6, draw.randint(1, 40)) for _ in range(draw.randint(1, 12))]
    make_jobs(policy="all")
    clocks = FakeClocks(NOW)
    scheduler = Scheduler(dispatcher=lambda ids: 0, monotonic=clocks.monotonic)
    scheduler.start(NOW)
    for down, seconds in [*steps, (False, 1)]:
        refusals.down = down
        with contextlib.suppress(OperationalError):
            scheduler.fire_due(clocks.advance(seconds))
        assert_one_entry_per_job(scheduler)
    assert all(at > clocks.wall() for at in scheduler.planned().values())
    assert scheduler.held_back == {}
