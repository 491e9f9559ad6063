"""Jobs as generators of blocking steps, so one thread need not wait for each job.

A job's execution (``runner.execution.executor.execute_run_steps``) is a generator.
It does its database work (start, finish) where it runs, and yields a *step* (a
callable taking no arguments) where it would otherwise block: waiting for a script's
child process, following a session. Whoever drives the generator calls the step,
maybe on another thread, and sends its result back (or throws its exception in);
the generator's ``return`` value is the job's result.

``drive`` runs the steps inline, on the caller's thread (``execute_run``, used by
``trigger_job`` and the tests). The worker's pool (``runner.pool``) drives them
split: its few database threads run the generator between steps, and threads that
hold no database connection run the steps, so ``maxConcurrency`` running scripts
hold ``maxConcurrency`` cheap waiting threads, not as many connections (issue 12).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

Step = Callable[[], Any]
T = TypeVar("T")
Steps = Generator[Step, Any, T]


def drive(steps: Steps[T]) -> T:
    """Run ``steps`` to its end on this thread, each step inline; return its value."""
    try:
        step = next(steps)
        while True:
            try:
                value = step()
            except BaseException as exc:  # thrown in, where the job would have raised it
                step = steps.throw(exc)
            else:
                step = steps.send(value)
    except StopIteration as stop:
        return stop.value


def blocking(call: Callable[[], T]) -> Steps[T]:
    """A job whose whole work is one blocking call, as steps (``yield from blocking(f)``)."""
    return (yield call)
