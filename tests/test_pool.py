"""The run pool drives runs as steps: few executors, ``size`` runs waiting at once.

Runs here are stand-ins (a pk, no instant) and their execution is a generator whose
one step waits on an event the test sets, so nothing depends on timing.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from runner import pool as pool_module
from runner import worker_state
from runner.models import StartResult
from runner.pool import RunPool
from tests.test_sessions import wait_until


class Runs:
    """Executions that each wait on their own gate; counts what runs at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.gates: dict[int, threading.Event] = {}
        self.outcomes: dict[int, object] = {}

    def execute(self, run, started):
        gate = self.gates.setdefault(run.pk, threading.Event())
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.outcomes[run.pk] = yield lambda: gate.wait(10) and run.pk
        except RuntimeError as exc:
            self.outcomes[run.pk] = exc
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def runs():
    worker_state.STOPPING.clear()
    made: list[RunPool] = []
    executions = Runs()

    def start(size: int) -> RunPool:
        made.append(RunPool(size, executions.execute, lambda pk: None, start_all).start())
        return made[-1]

    executions.start = start
    yield executions
    for gate in executions.gates.values():
        gate.set()
    for made_pool in made:
        made_pool.close(5)
    worker_state.STOPPING.clear()


def start_all(runs) -> dict:
    """A pool's start that starts every run it is given."""
    return {run.pk: StartResult.STARTED for run in runs}


def run(pk: int) -> SimpleNamespace:
    return SimpleNamespace(pk=pk, scheduled_for=None)


def submit_all_at_once(pool: RunPool, pks: range) -> threading.Thread:
    """``submit_many`` from a thread: it blocks while the runs it could not start wait."""
    thread = threading.Thread(target=lambda: pool.submit_many([run(pk) for pk in pks]), daemon=True)
    thread.start()
    return thread


def submit_all(pool: RunPool, pks: range) -> threading.Thread:
    """Submit from a thread: ``submit`` blocks while every slot is taken."""
    thread = threading.Thread(target=lambda: [pool.submit(run(pk)) for pk in pks], daemon=True)
    thread.start()
    return thread


def test_waiting_runs_hold_slots_but_not_executors(runs, monkeypatch):
    monkeypatch.setattr(pool_module, "EXECUTORS", 2)
    pool = runs.start(size=10)
    submit_all(pool, range(10))

    wait_until(lambda: runs.running == 10)  # ten waits at once on two executors

    for gate in runs.gates.values():
        gate.set()
    assert pool.wait_idle(10)
    assert runs.outcomes == {pk: pk for pk in range(10)}


def test_no_more_than_size_runs_execute_at_once(runs):
    pool = runs.start(size=3)
    submitter = submit_all(pool, range(5))

    wait_until(lambda: runs.running == 3)
    assert submitter.is_alive()  # the fifth run waits for a slot, so submit blocks
    for pk in range(5):
        wait_until(lambda pk=pk: pk in runs.gates)
        runs.gates[pk].set()
    assert pool.wait_idle(10)
    assert runs.most == 3 and len(runs.outcomes) == 5


def test_a_failing_step_is_thrown_into_its_run():
    outcomes = {}

    def broken():
        raise RuntimeError("child vanished")

    def execute(r, started):
        try:
            yield broken
        except RuntimeError as exc:
            outcomes[r.pk] = str(exc)

    worker_state.STOPPING.clear()
    pool = RunPool(2, execute, lambda pk: None, start_all).start()
    try:
        pool.submit(run(7))
        assert pool.wait_idle(10)
    finally:
        pool.close(5)
        worker_state.STOPPING.clear()
    assert outcomes == {7: "child vanished"}


def test_runs_due_together_are_started_in_two_calls_and_only_started_ones_execute():
    """Runs handed over ahead of one instant reach ``start`` together when it comes: a
    head of ``HEAD_START`` runs, then the rest (one statement each, ``Run.start_many``);
    a run left out of an answer (overtaken) is not executed and frees its slot."""
    batches: list[list[int]] = []
    executed: list[tuple[int, StartResult]] = []
    count = pool_module.HEAD_START + 3

    def start(runs):
        batches.append([r.pk for r in runs])
        return {r.pk: StartResult.STARTED for r in runs if r.pk not in (1, count - 1)}

    def execute(r, started):
        executed.append((r.pk, started))
        yield lambda: None

    worker_state.STOPPING.clear()
    pool = RunPool(10, execute, lambda pk: None, start).start()
    instant = timezone.now() + timedelta(seconds=1)
    try:
        for pk in range(count):
            assert pool.submit(SimpleNamespace(pk=pk, scheduled_for=instant))
        assert pool.wait_idle(10)
        assert pool._running == 0  # the runs not started gave their slots back
    finally:
        pool.close(5)
        worker_state.STOPPING.clear()
    head = list(range(pool_module.HEAD_START))
    assert batches == [head, list(range(pool_module.HEAD_START, count))]
    assert sorted(executed) == [
        (pk, StartResult.STARTED) for pk in range(count) if pk not in (1, count - 1)
    ]


def test_the_head_of_a_batch_is_spawned_while_the_rest_is_started():
    """The rest of a burst is started while a helper spawns its head: the second start
    here returns only once a run of the head has been carried by another thread (it
    would wait in vain if the head were spawned after the whole batch had started)."""
    rest_starting, head_carried = threading.Event(), threading.Event()
    calls: list[list[int]] = []

    def start(runs):
        calls.append([r.pk for r in runs])
        if len(calls) == 2:
            rest_starting.set()
            assert head_carried.wait(10), "nothing of the head was spawned meanwhile"
        return {r.pk: StartResult.STARTED for r in runs}

    def execute(r, started):
        if r.pk < pool_module.HEAD_START and rest_starting.wait(10):
            head_carried.set()
        yield lambda: None

    worker_state.STOPPING.clear()
    pool = RunPool(20, execute, lambda pk: None, start).start()
    instant = timezone.now() + timedelta(seconds=1)
    try:
        for pk in range(pool_module.HEAD_START + 6):
            assert pool.submit(SimpleNamespace(pk=pk, scheduled_for=instant))
        assert pool.wait_idle(10)
    finally:
        pool.close(5)
        worker_state.STOPPING.clear()
    assert head_carried.is_set() and len(calls) == 2


def test_a_failed_start_gives_back_its_runs_slots_and_the_rest_still_run():
    """A start statement that fails (a database error) ends that part of the batch
    without executing it; the other part is unaffected and every slot is freed."""
    executed: list[int] = []
    calls = 0

    def start(runs):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database is locked")
        return {r.pk: StartResult.STARTED for r in runs}

    def execute(r, started):
        executed.append(r.pk)
        yield lambda: None

    worker_state.STOPPING.clear()
    pool = RunPool(20, execute, lambda pk: None, start).start()
    instant = timezone.now() + timedelta(seconds=1)
    count = pool_module.HEAD_START + 2
    try:
        for pk in range(count):
            assert pool.submit(SimpleNamespace(pk=pk, scheduled_for=instant))
        assert pool.wait_idle(10)
        assert pool._running == 0
    finally:
        pool.close(5)
        worker_state.STOPPING.clear()
    assert sorted(executed) == list(range(pool_module.HEAD_START, count))


def test_runs_submitted_together_after_their_instant_start_together():
    """A task's runs that are due already (it arrived late) start in one call, as runs
    due at one instant do, on the submitting thread while slots are free."""
    batches: list[list[int]] = []

    def start(runs):
        batches.append([r.pk for r in runs])
        return {r.pk: StartResult.STARTED for r in runs}

    def execute(r, started):
        yield lambda: None

    worker_state.STOPPING.clear()
    pool = RunPool(10, execute, lambda pk: None, start).start()
    try:
        assert pool.submit_many([run(pk) for pk in range(3)]) == [True] * 3
        assert batches == [[0, 1, 2]]  # started before submit_many returned
        assert pool.wait_idle(10)
    finally:
        pool.close(5)
        worker_state.STOPPING.clear()


def test_runs_submitted_together_beyond_the_free_slots_wait_for_one(runs):
    """More due runs than free slots: those that fit start at once, ``submit_many``
    blocks until the rest has a slot, and every run executes."""
    pool = runs.start(2)
    thread = submit_all_at_once(pool, range(3))
    wait_until(lambda: runs.running == 2)
    assert thread.is_alive()  # the third waits for a slot, and so does its task
    runs.gates[0].set()
    thread.join(10)
    assert not thread.is_alive()
    for pk in (1, 2):
        wait_until(lambda pk=pk: pk in runs.gates)
        runs.gates[pk].set()
    assert pool.wait_idle(10)
    assert sorted(runs.outcomes) == [0, 1, 2] and runs.most == 2


def test_a_stop_hands_back_at_once_a_tasks_runs_waiting_for_a_slot(runs):
    """A task's due runs that found every slot taken wait in the pool; when the worker
    is told to stop they go back to the queue at once, not when a slot frees (the
    running run may outlast the stop's grace), and none of them executes (probe 3)."""
    handed: list[int] = []
    three_back = threading.Event()

    def hand_back(pk):
        handed.append(pk)
        if len(handed) == 3:
            three_back.set()

    pool = RunPool(1, runs.execute, hand_back, start_all).start()
    try:
        pool.submit(run(0))
        wait_until(lambda: runs.running == 1)
        thread = submit_all_at_once(pool, range(1, 4))
        wait_until(lambda: len(pool._due) == 3)
        worker_state.STOPPING.set()
        thread.join(10)
        assert not thread.is_alive()
        assert three_back.wait(10), f"handed back so far: {handed}"
        assert sorted(handed) == [1, 2, 3] and runs.running == 1
    finally:
        for gate in runs.gates.values():
            gate.set()
        pool.close(5)
        worker_state.STOPPING.clear()
    assert sorted(runs.outcomes) == [0]


def test_a_stop_in_the_middle_of_a_submission_loses_no_run(monkeypatch, runs):
    """The stop flag rises while a task's runs are being taken (a signal between two
    runs) and handing back fails (the broker is down): every run taken is still
    accounted for, so the worker's count of runs it holds drops to 0 (probe 3)."""

    def hand_back(pk):
        raise RuntimeError("broker down")

    real_accept = worker_state.accept

    def accept_then_stop():
        real_accept()
        worker_state.STOPPING.set()

    pool = RunPool(2, runs.execute, hand_back, start_all).start()
    monkeypatch.setattr(worker_state, "accept", accept_then_stop)
    try:
        assert pool.submit_many([run(1), run(2)]) == [True, True]
        assert pool.wait_idle(10), "a run is counted as held for ever"
        assert pool._running == 0 and not runs.gates  # handed back, not executed
    finally:
        pool.close(5)
        worker_state.STOPPING.clear()


def test_a_due_run_with_a_slot_free_starts_on_the_submitting_thread():
    """A run due now (a manual run, a late fire) starts without a hand-off to an
    executor thread: ``submit`` returns once it is on its way."""
    threads: list[str] = []

    def execute(r, started):
        threads.append(threading.current_thread().name)
        yield lambda: None

    worker_state.STOPPING.clear()
    pool = RunPool(4, execute, lambda pk: None, start_all).start()
    try:
        assert pool.submit(run(1))
        assert threads == [threading.current_thread().name]
        assert pool.wait_idle(10)
    finally:
        pool.close(5)
        worker_state.STOPPING.clear()


class CountingCondition(threading.Condition):
    """A condition that counts the threads its ``notify`` calls asked to wake, the
    threads waiting on it now, and the waits begun."""

    wakes = 0
    waiting = 0
    begun = 0

    def notify(self, n: int = 1) -> None:
        self.wakes += n
        super().notify(n)

    def wait(self, timeout=None):
        self.waiting += 1
        self.begun += 1
        try:
            return super().wait(timeout)
        finally:
            self.waiting -= 1


def test_executors_are_woken_only_for_work_they_can_do(monkeypatch):
    """A run that must wait for a slot wakes no executor, and the executor that ends a
    run starts the one waiting for its slot itself: an executor is woken only when a
    run's wait ended. Each wake is a thread switch, several a run before (issue 12)."""
    monkeypatch.setattr(pool_module, "STOP_CHECK_S", 60)  # no executor wakes on its own
    ended_on: list[str] = []
    started_on: list[str] = []
    gate = threading.Event()

    def execute(r, started):
        started_on.append(threading.current_thread().name)
        yield (lambda: gate.wait(10)) if r.pk == 1 else (lambda: None)
        ended_on.append(threading.current_thread().name)

    worker_state.STOPPING.clear()
    pool = RunPool(1, execute, lambda pk: None, start_all)
    pool._work = CountingCondition(pool._lock)
    pool.start()
    try:
        submitter = submit_all(pool, range(1, 3))
        wait_until(lambda: len(pool._due) == 1)  # run 2 waits for run 1's slot
        assert pool._work.wakes == 0
        gate.set()
        submitter.join(10)
        assert pool.wait_idle(10)
        assert started_on[1] == ended_on[0] and started_on[1].startswith("run-executor")
        assert pool._work.wakes == 2  # run 1's wait ended, then run 2's
    finally:
        pool.close(5)
        worker_state.STOPPING.clear()


def test_a_submit_waiting_for_slots_is_woken_once_they_are_free(runs, monkeypatch):
    """A task's runs beyond the free slots make ``submit_many`` wait. Runs that end while
    the rest of the task's runs still fill every slot do not wake it; the end that leaves
    a slot free does, once, and it returns. Each wake is a thread switch (issue 12)."""
    monkeypatch.setattr(pool_module, "STOP_CHECK_S", 60)  # no wait ends on its own
    pool = runs.start(2)
    pool._space = CountingCondition(pool._lock)
    for pk in range(1, 7):
        runs.gates[pk] = threading.Event()
    submitter = submit_all_at_once(pool, range(1, 7))
    wait_until(lambda: pool._space.waiting == 1)
    for pk in range(1, 4):  # each end lets a waiting run take the slot: still full
        runs.gates[pk].set()
        wait_until(lambda pk=pk: _started(pool, pk + 2) and runs.running == 2)
    assert pool._space.wakes == 0 and submitter.is_alive()
    runs.gates[4].set()  # run 6, the last waiting, takes its slot: no run waits any more
    submitter.join(10)
    assert not submitter.is_alive()
    assert pool._space.wakes == 1 and pool._space.begun == 1
    runs.gates[5].set()
    runs.gates[6].set()
    assert pool.wait_idle(10)
    assert sorted(runs.outcomes) == [1, 2, 3, 4, 5, 6] and runs.most == 2


def test_an_executor_that_started_a_batch_carries_on_a_held_back_run_itself(monkeypatch):
    """A run whose wait ends while a batch is being started is held back until the start
    is over; the executor that started the batch then carries it on itself, waking no
    other executor for it (a wake is a thread switch, issue 12)."""
    monkeypatch.setattr(pool_module, "STOP_CHECK_S", 60)  # no executor wakes on its own
    starting, go_on = threading.Event(), threading.Event()
    gates = {1: threading.Event(), 2: threading.Event()}
    carried_on: list[int] = []

    def start(runs):
        if any(r.pk == 2 for r in runs):
            starting.set()
            go_on.wait(10)
        return start_all(runs)

    def execute(r, started):
        yield lambda: gates[r.pk].wait(10)
        carried_on.append(r.pk)

    worker_state.STOPPING.clear()
    pool = RunPool(2, execute, lambda pk: None, start)
    pool._work = CountingCondition(pool._lock)
    pool.start()
    try:
        assert pool.submit(run(1))  # started on this thread; it waits on its gate
        later = SimpleNamespace(pk=2, scheduled_for=timezone.now() + timedelta(seconds=0.2))
        assert pool.submit(later)  # the timer makes it due and wakes an executor
        assert starting.wait(10)
        gates[1].set()  # run 1's wait ends while run 2 is being started
        wait_until(lambda: len(pool._resumed) == 1)
        wakes = pool._work.wakes  # the timer's and run 1's resume
        go_on.set()
        wait_until(lambda: carried_on == [1])
        gates[2].set()
        assert pool.wait_idle(10)
        assert pool._work.wakes == wakes + 1  # run 2's own wait's end
        assert carried_on == [1, 2]
    finally:
        go_on.set()
        for gate in gates.values():
            gate.set()
        pool.close(5)
        worker_state.STOPPING.clear()


def test_runs_coming_due_together_wake_one_executor(monkeypatch):
    """At the instant of a burst the timer wakes one executor, which starts every due run
    a slot is free for, not one executor a run (the others woke for nothing)."""
    monkeypatch.setattr(pool_module, "STOP_CHECK_S", 60)  # no executor wakes on its own
    monkeypatch.setattr(pool_module, "SPAWNERS", 1)  # no helper is woken to spawn
    started: list[int] = []

    def execute(r, started_as):
        started.append(r.pk)
        return
        yield

    worker_state.STOPPING.clear()
    pool = RunPool(10, execute, lambda pk: None, start_all)
    pool._work = CountingCondition(pool._lock)
    pool.start()
    try:
        wait_until(lambda: pool._work.waiting == pool_module.EXECUTORS)
        at = timezone.now() + timedelta(seconds=0.2)
        assert pool.submit_many([SimpleNamespace(pk=pk, scheduled_for=at) for pk in range(5)])
        assert pool.wait_idle(10)
        assert sorted(started) == [0, 1, 2, 3, 4]
        assert pool._work.wakes == 1
    finally:
        pool.close(5)
        worker_state.STOPPING.clear()


def _started(pool: RunPool, pk: int) -> bool:
    with pool._lock:
        return all(run.pk != pk for _n, run in pool._due)


def test_a_stop_ends_every_executor_once_the_last_run_ends(monkeypatch):
    """A stop while a run is running: when it ends, every executor ends at once, not
    when its wait times out (the worker's shutdown waits for them; probe finding)."""
    monkeypatch.setattr(pool_module, "STOP_CHECK_S", 60)  # no executor wakes on its own
    monkeypatch.setattr(pool_module, "EXECUTORS", 3)
    gate = threading.Event()

    def execute(r, started):
        yield lambda: gate.wait(10)

    worker_state.STOPPING.clear()
    pool = RunPool(3, execute, lambda pk: None, start_all)
    pool._work = CountingCondition(pool._lock)
    pool.start()
    closer = threading.Thread(target=pool.close, daemon=True)
    try:
        wait_until(lambda: pool._work.waiting == 3)
        assert pool.submit(run(1))
        closer.start()
        # each executor woke for the stop, found the run still running, and waits again
        wait_until(lambda: pool._work.begun >= 6 and pool._work.waiting == 3)
        gate.set()
        closer.join(5)
        assert not closer.is_alive()
        assert not [thread.name for thread in pool._threads if thread.is_alive()]
    finally:
        gate.set()
        with pool._lock:
            pool._work.notify_all()
        closer.join(5)
        worker_state.STOPPING.clear()


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_of_one_run_due_in_one_batch_execute_it_once():
    """A run delivered twice to one worker (a broker redelivery, the liveness check's
    re-dispatch, ``dispatch`` called again) whose copies come due in the same batch is
    executed once: the second copy gives up its slot, as a second delivery starting
    alone gets GONE (probe finding)."""
    from runner import tasks
    from runner.models import Run
    from tests.factories import JobFactory

    instant = timezone.now() + timedelta(seconds=1)
    made = Run.create_scheduled(JobFactory(overlap_policy="allow"), instant)
    batches: list[list[int]] = []
    executed: list[tuple[int, StartResult]] = []

    def start(runs):
        batches.append([r.pk for r in runs])
        return tasks._start(runs)

    def execute(r, started):
        executed.append((r.pk, started))
        yield lambda: None

    worker_state.STOPPING.clear()
    pool = RunPool(4, execute, lambda pk: None, start).start()
    try:
        for _delivery in range(2):
            assert pool.submit(Run.load(made.pk))  # both wait for the same instant
        assert pool.wait_idle(10)
    finally:
        pool.close(5)
        worker_state.STOPPING.clear()
    assert batches == [[made.pk]]
    assert executed == [(made.pk, StartResult.STARTED)]


def test_a_batch_is_spawned_by_two_threads():
    """While the thread that started a batch waits for one child's exec, an idle
    executor spawns the next run of the batch (``SPAWNERS``): the first run's carry
    here only ends once another thread has carried a run of the same batch."""
    threads: dict[int, str] = {}
    other_thread_carried = threading.Event()

    def execute(r, started):
        threads[r.pk] = threading.current_thread().name
        if r.pk == 0:
            other_thread_carried.wait(10)
        elif threads[r.pk] != threads.get(0):
            other_thread_carried.set()
        yield lambda: None

    worker_state.STOPPING.clear()
    pool = RunPool(10, execute, lambda pk: None, start_all).start()
    instant = timezone.now() + timedelta(seconds=1)
    try:
        for pk in range(6):
            assert pool.submit(SimpleNamespace(pk=pk, scheduled_for=instant))
        assert pool.wait_idle(10)
    finally:
        pool.close(5)
        worker_state.STOPPING.clear()
    assert other_thread_carried.is_set()
    assert sorted(threads) == list(range(6)) and len(set(threads.values())) == 2
