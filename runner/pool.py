"""The runs one worker process executes: ``maxConcurrency`` slots, and a timer for the rest.

django-q2 hands the worker process one task at a time. The task
(``runner.tasks.run_task``) gives its run to this pool and returns at once, so the
process takes the next task while that run waits for its instant on the pool's timer:
waiting costs an entry in a heap, not a slot. At its instant a run takes one of
``maxConcurrency`` slots until it is finished.

A run executes as steps (``runner.execution.steps``): its database work (start,
finish, announcement) on one of a few long-lived executor threads, each keeping its
database connection, and its waits (for the script's child, for a session) on
waiter threads that hold no connection, made as needed and ended when long idle.
So an executor is busy only for the milliseconds it takes to start or finish a run,
a burst of fires at one instant starts at once, and a host with many running
scripts does not hold as many database connections (issue 12). When every slot is
taken and a run is due, ``submit`` blocks, so further tasks stay in the broker for
other hosts to claim (django-q2's claim semantics are unchanged).

A stop (``worker_state.STOPPING``) hands every run that has not started back to the
queue (see ``runner.tasks.hand_back``); the running ones get the shutdown grace from
the cluster's guard, and the executors stay until each is recorded.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Generator
from datetime import datetime, timedelta
from types import GeneratorType
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from runner import worker_state
from runner.execution.steps import Step
from runner.models import Run, StartResult

logger = logging.getLogger(__name__)

# How often a thread blocked on the pool looks at the stop flag.
STOP_CHECK_S = 0.5
# Executor threads (each with a database connection) per pool, at most: they only
# start and finish runs, so a few keep up with many slots.
EXECUTORS = 8
# A waiter thread idle this long ends.
WAITER_IDLE_S = 60.0
# Threads that spawn a batch's scripts together: the GIL is released around vfork, so
# while one waits for its child's exec, another makes the next spawn (more did not
# help on two cores; bench/README.md, issue 12, round three).
SPAWNERS = 2
# A batch starts its first few runs in a statement of their own, and their spawns
# begin while the rest of the batch is started: the start of a hundred runs takes a
# few milliseconds, in which a helper spawns about as many runs as this.
HEAD_START = 4

_Running = Generator[Step, Any, Any]


class RunPool:
    """Executes submitted runs at their instants, at most ``size`` at a time."""

    def __init__(
        self,
        size: int,
        execute: Callable[[Run, StartResult], _Running | None],
        hand_back: Callable[[int], None],
        start: Callable[[list[Run]], dict[int, StartResult]],
    ) -> None:
        self.size = size
        self._execute = execute
        self._hand_back = hand_back
        self._start = start
        self._lock = threading.Lock()
        # One condition per kind of waiter, so a change wakes only those it concerns:
        # executors wait for work, the timer for an earlier instant, ``submit`` for a
        # free slot, ``wait_idle`` for the pool to empty.
        self._work = threading.Condition(self._lock)
        self._timer_wake = threading.Condition(self._lock)
        self._space = threading.Condition(self._lock)
        self._emptied = threading.Condition(self._lock)
        self._waiting: list[tuple[datetime, int, Run]] = []
        self._due: deque[tuple[int, Run]] = deque()
        # Runs whose step ended: (their steps, the step's value, its exception).
        self._resumed: deque[tuple[int, tuple[_Running, Any, BaseException | None]]] = deque()
        self._running = 0  # slots taken: runs begun and not yet ended
        self._starting = 0  # batches of due runs being started right now
        self._batches: deque[_Batch] = deque()  # started batches still being spawned
        self._batch_done = threading.Condition(self._lock)
        self._order = itertools.count()
        self._threads: list[threading.Thread] = []
        self._waiters = _Waiters(self._resume)
        self._closed = False

    def start(self) -> RunPool:
        """Start the executors and the timer."""
        for number in range(min(self.size, EXECUTORS)):
            self._spawn(self._executor, f"run-executor-{number}")
        self._spawn(self._timer, "run-timer")
        return self

    def submit(self, run: Run) -> bool:
        """Take ``run`` (pending, its job loaded); False if it was handed back instead.

        Returns at once for a run not yet due. A due run with a slot free and none
        ahead of it starts on the caller's thread, without a hand-off to an executor;
        otherwise ``submit`` blocks while every slot is taken (or until a stop, when
        the run is handed back).
        """
        return self.submit_many([run])[0]

    def submit_many(self, runs: list[Run]) -> list[bool]:
        """``submit`` for several runs (a task's): those due now start together, as the
        runs due at one instant do (``Run.start_many``), on the caller's thread while
        slots are free; whether each was taken, in order. A stop while the call waits
        for a slot hands back at once the call's runs still waiting for one."""
        here: list[Run] = []
        due: list[Run] = []
        with self._lock:
            refused = self._closed or worker_state.STOPPING.is_set()
            if not refused:
                for run in runs:
                    worker_state.accept()
                    at = _start_at(run.scheduled_for)
                    if at > timezone.now():
                        heapq.heappush(self._waiting, (at, next(self._order), run))
                        if self._waiting[0][2] is run:
                            self._timer_wake.notify()
                    else:
                        due.append(run)
                if due and not self._due:
                    here = due[: max(self.size - self._running, 0)]
                    due = due[len(here) :]
                if here:
                    self._running += len(here)
                    self._starting += 1
                if due:
                    self._due.extend((next(self._order), run) for run in due)
                    if self._can_start():  # else the next run to end wakes an executor
                        self._work.notify()
        if refused:
            return [self._refuse(run) for run in runs]
        if here:
            self._begin(here)
        if due:
            self._wait_for_space(due)
        return [True] * len(runs)

    def _wait_for_space(self, queued: list[Run]) -> None:
        """Block while every slot is taken; at a stop, hand back those of ``queued``
        still waiting for a slot (they hold none)."""
        with self._lock:
            while self._full() and not worker_state.STOPPING.is_set():
                self._space.wait(STOP_CHECK_S)
            if not self._stopping():
                return
            mine = {id(run) for run in queued}
            back = [run for _n, run in self._due if id(run) in mine]
            self._due = deque(entry for entry in self._due if id(entry[1]) not in mine)
        for run in back:
            self._give_back(run, started=False)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until this pool holds no run; False if ``timeout_s`` passed first."""
        with self._lock:
            return self._emptied.wait_for(lambda: worker_state.accepted() == 0, timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        """Stop taking runs, hand back those not started, and wait for the rest."""
        worker_state.STOPPING.set()
        with self._lock:
            self._closed = True
            for condition in (self._work, self._timer_wake, self._space, self._emptied):
                condition.notify_all()
        for thread in self._threads:
            thread.join(timeout_s)

    # -- threads ---------------------------------------------------------------------

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=self._guarded, args=(target,), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _guarded(self, target: Callable[[], None]) -> None:
        try:
            target()
        finally:
            connection.close()

    def _full(self) -> bool:
        """Due runs wait for a slot (called with the lock held)."""
        return bool(self._due) and self._running + len(self._due) > self.size

    def _executor(self) -> None:
        while True:
            with self._lock:
                while not self._has_work():
                    if self._stopping() and not self._due and self._running == 0:
                        return  # stopping, nothing left to start or to finish
                    self._work.wait(STOP_CHECK_S)
                batch = self._batch_to_help()
                runs, resumed = None, None
                if batch is not None:
                    batch.helpers += 1
                elif self._start_next():
                    runs = self._take_due()
                else:
                    resumed = self._resumed.popleft()[1]
                if self._has_work():
                    self._work.notify()
            if batch is not None:
                self._help(batch)
            elif runs is not None:
                self._begin(runs, looping=True)
            else:
                self._advance(*resumed, looping=True)

    def _has_work(self) -> bool:
        return self._batch_to_help() is not None or self._can_carry_on() or self._can_start()

    def _batch_to_help(self) -> _Batch | None:
        """A batch being spawned that another thread may help with (lock held)."""
        for batch in self._batches:
            if batch.todo and batch.helpers < SPAWNERS - 1:
                return batch
        return None

    def _can_carry_on(self) -> bool:
        """Whether a waited-for run may be carried on (finished) now: not while a batch
        of due runs is being started, whose spawns need the process to themselves."""
        return bool(self._resumed) and not self._starting

    def _can_start(self) -> bool:
        return bool(self._due) and self._running < self.size

    def _start_next(self) -> bool:
        """Whether to start a due run next rather than carry a waited-for one on: first
        come, first served, so a burst of starts does not hold back finishes (a late
        finish would make the job's next fire meet a run still "running")."""
        if not self._can_start():
            return False
        return not self._can_carry_on() or self._due[0][0] < self._resumed[0][0]

    def _take_due(self) -> list[Run]:
        """Every due run a slot is free for, taking their slots (called with the lock
        held): runs due at one instant start together (``Run.start_many``), in two
        statements (``HEAD_START``)."""
        count = min(len(self._due), self.size - self._running)
        self._running += count
        self._starting += 1
        return [self._due.popleft()[1] for _ in range(count)]

    def _begin(self, runs: list[Run], looping: bool = False) -> None:
        """Start ``runs`` in one statement, then carry each to its first wait.
        ``looping``: the caller is an executor, which looks for work again next; else an
        executor is woken for the work the start held back (finishes wait for it)."""
        try:
            self._begin_batch(runs)
        finally:
            with self._lock:
                self._starting -= 1
                if not looping and self._has_work():
                    self._work.notify()

    def _begin_batch(self, runs: list[Run]) -> None:
        if self._stopping():
            for run in runs:
                self._give_back(run)
            return
        runs = self._without_repeats(runs)
        close_old_connections()
        batch = _Batch()
        with self._lock:
            self._batches.append(batch)
        try:
            self._start_into(batch, runs[:HEAD_START])
            if len(runs) > HEAD_START:
                self._start_into(batch, runs[HEAD_START:])  # a helper spawns the head
            self._carry_batch(batch)
        finally:  # whatever ended this thread's part, the helpers' runs are waited for
            with self._lock:
                while batch.carrying:
                    self._batch_done.wait()
                self._batches.remove(batch)
            # The waits go to the waiters once every run of the batch is on its way: woken
            # one by one, they would take turns with the spawns for this process's time.
            self._waiters.submit(batch.waits)

    def _start_into(self, batch: _Batch, runs: list[Run]) -> None:
        """Start ``runs`` in one statement and add those started to ``batch``, waking a
        helper to spawn them; a run not started (overtaken, skipped, gone; or the
        statement failed) gives its slot back."""
        try:
            started = self._start(runs)
        except Exception:
            logger.exception("%d due run(s) could not be started by this worker", len(runs))
            started = {}
        ready = []
        for run in runs:
            if run.pk in started:
                ready.append((run, started[run.pk]))
            else:
                self._end()  # overtaken: skipped before it started (``runner.coalesce``)
        with self._lock:
            batch.todo.extend(ready)
            if len(batch.todo) > 1:
                self._work.notify(SPAWNERS - 1)

    def _help(self, batch: _Batch) -> None:
        """Spawn some of another thread's batch."""
        try:
            close_old_connections()  # a skipped run's or a failed spawn's record needs it
            self._carry_batch(batch)
        finally:
            with self._lock:
                batch.helpers -= 1

    def _carry_batch(self, batch: _Batch) -> None:
        """Carry runs of ``batch`` to their first wait until none is left to take."""
        while True:
            with self._lock:
                if not batch.todo:
                    return
                run, started = batch.todo.popleft()
                batch.carrying += 1
            waits: list[tuple[_Running, Step]] = []
            try:
                self._carry(run, started, waits)
            finally:
                with self._lock:
                    batch.waits.extend(waits)
                    batch.carrying -= 1
                    self._batch_done.notify_all()

    def _without_repeats(self, runs: list[Run]) -> list[Run]:
        """``runs`` with one copy of each: a run delivered twice (a redelivery, the
        liveness check's re-dispatch) that came due in one batch starts once; a
        repeat gives up its slot."""
        seen: set[int] = set()
        kept = []
        for run in runs:
            if run.pk in seen:
                self._end()
            else:
                seen.add(run.pk)
                kept.append(run)
        return kept

    def _carry(self, run: Run, started: StartResult, waits: list[tuple[_Running, Step]]) -> None:
        try:
            steps = self._execute(run, started)
        except Exception:
            logger.exception("run %s could not be executed by this worker", run.pk)
            self._end()
            return
        if not isinstance(steps, GeneratorType):
            self._end()  # done already
            return
        self._advance(steps, None, None, waits)

    def _advance(
        self,
        steps: _Running,
        value: Any,
        error: BaseException | None,
        waits: list[tuple[_Running, Step]] | None = None,
        looping: bool = False,
    ) -> None:
        """Run ``steps`` up to its next wait, which goes to a waiter (or onto ``waits``,
        for the caller to hand over); or to its end. ``looping``: the caller is an
        executor, which looks for work again next (``_end``)."""
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration:
            self._end(wake=not looping)
            return
        except Exception:
            logger.exception("a run could not be executed by this worker")
            self._end(wake=not looping)
            return
        if waits is None:
            self._waiters.submit([(steps, step)])
        else:
            waits.append((steps, step))

    def _resume(self, steps: _Running, value: Any, error: BaseException | None) -> None:
        """A waiter's step ended: an executor carries the run on."""
        with self._lock:
            self._resumed.append((next(self._order), (steps, value, error)))
            self._work.notify()

    def _end(self, wake: bool = True) -> None:
        """A run gave its slot back. ``wake``: an executor is woken for a due run; an
        executor ending a run itself takes the next one (a wake costs a thread switch,
        several a run before, issue 12)."""
        with self._lock:
            self._running -= 1
            if self._stopping():  # the last run to end lets every executor go
                self._work.notify_all()
            elif wake and self._due:  # a due run's slot
                self._work.notify()
            # ``submit`` waits for this, not for every end: a wake that finds every slot
            # still taken is a thread switch for nothing (several a task before, issue 12).
            if self._stopping() or not self._full():
                self._space.notify_all()
        self._release()

    def _timer(self) -> None:
        with self._lock:
            while not self._stopping():
                came_due = False
                while self._waiting and _seconds_until(self._waiting[0][0]) <= 0:
                    self._due.append((next(self._order), heapq.heappop(self._waiting)[2]))
                    came_due = True
                # One executor takes every due run a slot is free for, and wakes helpers
                # to spawn them; a wake a run would wake the others for nothing, at the
                # instant of a burst (issue 12).
                if came_due and self._can_start():
                    self._work.notify()
                wait = _seconds_until(self._waiting[0][0]) if self._waiting else STOP_CHECK_S
                self._timer_wake.wait(min(wait, STOP_CHECK_S))
            waiting, self._waiting = self._waiting, []
        for _at, _n, run in waiting:
            self._give_back(run, started=False)

    def _stopping(self) -> bool:
        return self._closed or worker_state.STOPPING.is_set()

    def _give_back(self, run: Run, started: bool = True) -> None:
        """Hand back a run not begun; ``started``: it had taken a slot."""
        try:
            self._refuse(run)
        finally:
            if started:
                self._end()
            else:
                self._release()

    def _release(self) -> None:
        worker_state.release()
        with self._lock:
            self._emptied.notify_all()

    def _refuse(self, run: Run) -> bool:
        """Put ``run`` back on the queue for another worker (never raises); False."""
        try:
            self._hand_back(run.pk)
        except Exception:
            logger.exception("run %s could not be handed back; liveness will", run.pk)
        return False


class _Batch:
    """Runs started together, being carried to their first wait (spawned) by the thread
    that started them and up to ``SPAWNERS - 1`` helpers."""

    def __init__(self) -> None:
        self.todo: deque[tuple[Run, StartResult]] = deque()
        self.waits: list[tuple[_Running, Step]] = []
        self.carrying = 0  # runs being carried right now
        self.helpers = 0  # threads helping now


class _Waiters:
    """Threads that run the blocking steps of runs, made as needed; they hold no
    database connection (one a session's step opened is closed after the step)."""

    def __init__(self, done: Callable[[_Running, Any, BaseException | None], None]) -> None:
        self._done = done
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._jobs: deque[tuple[_Running, Step]] = deque()
        self._idle = 0
        self._count = itertools.count()

    def submit(self, waits: list[tuple[_Running, Step]]) -> None:
        """Call each ``step`` on a waiter thread, then hand its outcome to ``done``."""
        if not waits:
            return
        with self._lock:
            self._jobs.extend(waits)
            wake = min(self._idle, len(waits))
            if wake:
                self._wake.notify(wake)
            missing = len(self._jobs) - self._idle
        for _ in range(missing):
            name = f"run-waiter-{next(self._count)}"
            threading.Thread(target=self._loop, name=name, daemon=True).start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
                while not self._jobs:
                    if not self._wake.wait(WAITER_IDLE_S) and not self._jobs:
                        self._idle -= 1
                        return
                self._idle -= 1
                steps, step = self._jobs.popleft()
            value, error = None, None
            try:
                value = step()
            except BaseException as exc:  # thrown into the run, where it would have raised
                error = exc
            finally:
                connection.close()
            self._done(steps, value, error)


def _start_at(scheduled_for: datetime | None) -> datetime:
    """When to start a run scheduled for ``scheduled_for``: then, or at most the dispatch
    lead and the allowed clock skew from now."""
    now = timezone.now()
    if scheduled_for is None:
        return now
    limit = timedelta(milliseconds=settings.RUNNER.dispatch_lead_ms) + CLOCK_SKEW_ALLOWANCE
    return min(scheduled_for, now + limit)


def _seconds_until(moment: datetime) -> float:
    return (moment - timezone.now()).total_seconds()


# A worker whose clock runs behind the scheduler's waits at most this much longer
# than the lead; past it, it starts the run by the scheduler's reckoning.
CLOCK_SKEW_ALLOWANCE = timedelta(seconds=1)

_pool: tuple[int, RunPool] | None = None
_pool_lock = threading.Lock()


def current(make: Callable[[], RunPool]) -> RunPool:
    """This process's pool, started by ``make`` on first use (a forked child makes its own)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), make().start())
        return _pool[1]


def close_current(timeout_s: float | None = None) -> None:
    """Close this process's pool, if it has one (see ``RunPool.close``)."""
    with _pool_lock:
        pool = _pool[1] if _pool is not None and _pool[0] == os.getpid() else None
    if pool is not None:
        pool.close(timeout_s)
