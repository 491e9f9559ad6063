"""Randomized schedules through the run pool with the stop check at 60 s, so a lost
wake-up shows as a run or a submit that never finishes within the test's timeouts:
executions gated by the test, some starts skipping runs, runs due now or a few ms on."""

from __future__ import annotations

import os
import random
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from runner import pool as pool_module
from runner import worker_state
from runner.models import StartResult
from runner.pool import RunPool

DONE_S = 10  # far more than any schedule here needs; far less than the 60 s stop check


class Executions:
    def __init__(self, rng: random.Random, size: int) -> None:
        self.rng = rng
        self.size = size
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.finished: set[int] = set()
        self.skipped: set[int] = set()
        self.gates: dict[int, threading.Event] = {}
        self.kinds: dict[int, str] = {}

    def start(self, runs) -> dict:
        started = {}
        for run in runs:
            if self.kinds[run.pk] == "skip":
                with self.lock:
                    self.skipped.add(run.pk)
            else:
                started[run.pk] = StartResult.STARTED
        return started

    def execute(self, run, started):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        kind = self.kinds[run.pk]
        if kind == "instant":  # done at once, no steps
            self._finish(run.pk)
            return None
        return self._steps(run.pk, kind)

    def _steps(self, pk: int, kind: str):
        try:
            gate = self.gates[pk]
            yield lambda: gate.wait(DONE_S)
            if kind == "two-steps":
                yield lambda: None
        finally:
            self._finish(pk)

    def _finish(self, pk: int) -> None:
        with self.lock:
            self.running -= 1
            self.finished.add(pk)


def _schedule(seed: int, monkeypatch) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(pool_module, "STOP_CHECK_S", 60.0)
    monkeypatch.setattr(pool_module, "EXECUTORS", rng.randint(1, 3))
    monkeypatch.setattr(pool_module, "HEAD_START", rng.randint(1, 4))
    size = rng.randint(1, 4)
    ex = Executions(rng, size)
    total = rng.randint(5, 30)
    for pk in range(total):
        ex.kinds[pk] = rng.choice(["gated", "gated", "instant", "two-steps", "skip"])
        ex.gates[pk] = threading.Event()
    pool = RunPool(size, ex.execute, lambda pk: None, ex.start).start()
    now = timezone.now()
    try:
        tasks = []
        pks = list(range(total))
        while pks:
            n = rng.randint(1, 4)
            task, pks = pks[:n], pks[n:]
            tasks.append(task)
        submitters = []
        for task in tasks:

            def submit(task=task):
                made = []
                for pk in task:
                    later = rng.random() < 0.3
                    at = now + timedelta(milliseconds=rng.randint(1, 30)) if later else None
                    made.append(SimpleNamespace(pk=pk, scheduled_for=at))
                pool.submit_many(made)

            thread = threading.Thread(target=submit, daemon=True)
            submitters.append(thread)
        releaser_order = list(range(total))
        rng.shuffle(releaser_order)

        def release():
            for pk in releaser_order:
                ex.gates[pk].set()
                if rng.random() < 0.5:
                    threading.Event().wait(0.001)

        for thread in submitters:
            thread.start()
        threading.Thread(target=release, daemon=True).start()
        for thread in submitters:
            thread.join(DONE_S)
            assert not thread.is_alive(), f"seed {seed}: a submit never returned"
        assert pool.wait_idle(DONE_S), (
            f"seed {seed}: runs left: {sorted(set(range(total)) - ex.finished - ex.skipped)}"
        )
        assert ex.finished | ex.skipped == set(range(total))
        assert ex.most <= size, f"seed {seed}: {ex.most} ran at once in {size} slots"
    finally:
        for gate in ex.gates.values():
            gate.set()
        pool.close(5)
        worker_state.STOPPING.clear()


@pytest.mark.parametrize("seed", range(int(os.environ.get("POOL_SCHEDULE_SEEDS", "60"))))
def test_random_schedules_lose_no_wake_up(seed, monkeypatch):
    worker_state.STOPPING.clear()
    _schedule(seed, monkeypatch)
