"""A frozen worker process (SIGSTOP, a hang holding the interpreter) is replaced.

The sentinel replaced only dead workers, so a frozen one held the host's task queue
and no run started there until it woke (newcomer probe, high). Each worker beats into
a shared value; the sentinel kills one silent for ``livenessTimeoutMs``
(``runner.cluster.WorkerWatchdog``) and spawns another.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from django.utils import timezone

from runner.cluster import WorkerWatchdog
from runner.manual import request_runs
from runner.models import Run
from tests.daemons import scripts_of_this_database, wait_for
from tests.factories import JobFactory
from tests.test_runscheduler import executions, ready, record_script, runs_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def worker(pid: int, beat: float) -> SimpleNamespace:
    return SimpleNamespace(pid=pid, beat=SimpleNamespace(value=beat))


def look_until(
    watchdog: WorkerWatchdog, clock: Clock, until: float, beating: tuple = ()
) -> list[tuple[float, int]]:
    """The watchdog's looks every PARENT_CHECK_S (0.5 s) up to ``until``, the ``beating``
    workers beating between them: who it killed when."""
    killed = []
    while clock.now < until - 1e-9:
        for process in beating:
            process.beat.value = clock.now + 0.1
        clock.now = round(clock.now + 0.5, 3)
        killed += [(clock.now, pid) for pid in watchdog.check()]
    return killed


def test_a_worker_frozen_for_the_bound_is_killed_once_and_a_beating_one_is_left():
    clock = Clock()
    frozen, beating = worker(11, 1000.0), worker(12, 1000.0)
    pusher = SimpleNamespace(pid=13)  # no beat: not a worker
    watchdog = WorkerWatchdog(lambda: [frozen, beating, pusher], 30.0, clock, lambda pid: None)
    # A beat is written every 0.5 s: silent for 30.4 s, a worker may have been frozen for
    # only 29.9 s of it, so it is killed once silent for 30.5 s.
    assert look_until(watchdog, clock, 1030.0) == []
    beating.beat.value = 1030.0
    assert look_until(watchdog, clock, 1031.0) == [(1030.5, 11)]  # once: its pid is gone
    assert look_until(watchdog, clock, 1060.5) == [(1060.5, 12)]


def test_a_pause_of_the_whole_runner_is_not_a_freeze_but_a_worker_still_frozen_after_is():
    """Ctrl-Z on runscheduler, a paused container or VM: the sentinel stops with its
    workers, and woke to find every beat 33 s old; it killed a healthy worker and its
    running scripts (helper probe, medium). Silence counts from its waking."""
    clock = Clock()
    healthy, frozen = worker(11, 1000.0), worker(12, 1000.0)
    watchdog = WorkerWatchdog(lambda: [healthy, frozen], 30.0, clock, lambda pid: None)
    assert look_until(watchdog, clock, 1001.0) == []
    clock.now = 1033.0  # everything was stopped for 32 s
    assert watchdog.check() == []
    # The woken worker beats again; the other stays frozen.
    assert look_until(watchdog, clock, 1070.0, beating=(healthy,)) == [(1063.5, 12)]


def test_a_worker_not_yet_started_is_not_judged():
    watchdog = WorkerWatchdog(lambda: [worker(None, 0.0)], 1.0, Clock(), pytest.fail)
    assert watchdog.check() == []


def worker_pid(run: Run) -> int:
    return int(Run.objects.get(pk=run.pk).worker.split(":")[1])


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_frozen_idle_worker_is_killed_and_replaced_and_runs_go_on(daemons, tmp_path):
    ran = tmp_path / "ran"
    job = JobFactory(id="manual", schedule="0 0 1 1 *", script=record_script(ran))
    scheduler = daemons.start()
    ready(daemons, scheduler)
    [first] = request_runs([job], timezone.now())
    wait_for("the first run", lambda: runs_of("manual", status="ok"), timeout=30)
    frozen = worker_pid(first)
    os.kill(frozen, signal.SIGSTOP)
    try:
        [second] = request_runs([job], timezone.now())
        # livenessTimeoutMs is 2 s in these tests (tests.daemons.TEST_TIMINGS).
        wait_for("a run after the freeze", lambda: runs_of("manual", status="ok")[1:], timeout=20)
        assert worker_pid(second) != frozen
        assert not psutil.pid_exists(frozen) or (
            psutil.Process(frozen).status() == psutil.STATUS_ZOMBIE
        )
        log = Path(scheduler.log_path).read_text()
        assert f"worker {frozen} has not beaten for" in log
        assert "reincarnated worker" in log
        assert executions(ran) == {first.pk: 1, second.pk: 1}
    finally:
        if psutil.pid_exists(frozen):
            os.kill(frozen, signal.SIGCONT)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.parametrize("command", ["runscheduler", "runworkers"])
def test_a_worker_frozen_through_a_stop_has_its_run_finished_by_the_stop(
    daemons, tmp_path, command
):
    """A stop used to leave the frozen worker's run ``running`` until the next start."""
    ran = tmp_path / "ran"
    job = JobFactory(id="long", schedule="0 0 1 1 *", script=record_script(ran, "sleep 60"))
    slow_liveness = {"JEEVES_LIVENESS_TIMEOUT_MS": "60000"}  # the stop's own kill, not the dog
    clock = daemons.start("runscheduler", "--no-workers") if command == "runworkers" else None
    daemon = daemons.start(command, **slow_liveness)
    ready(daemons, clock or daemon)
    # The test's dispatch goes to another queue; the scheduler dispatches it again.
    [run] = request_runs([job], timezone.now())
    wait_for("the run to start", lambda: runs_of("long", status="running"))
    wait_for("its script", scripts_of_this_database)
    if clock is not None:  # only the stopping runworkers may finish the run
        daemons.signal_group(clock, signal.SIGTERM)
        daemons.exit_status(clock, timeout=15)
    frozen = worker_pid(run)
    os.kill(frozen, signal.SIGSTOP)
    daemons.signal_group(daemon, signal.SIGTERM)
    daemons.exit_status(daemon, timeout=30)
    [ended] = runs_of("long")
    assert ended.status == "error", daemons.logs()
    assert ended.error.startswith(
        f"runner stopped: worker {ended.worker} did not stop in time (frozen or hung) and "
        f"was killed (process {frozen} is gone)"
    )
    wait_for("the script to be ended", lambda: not scripts_of_this_database())
    assert executions(ran) == {run.pk: 1}
