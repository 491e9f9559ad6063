"""A running run's output tails and heartbeat: one writer per process (runner.execution.live).

While a run is ``running`` its ``stdout``/``stderr`` hold the current bounded tails; the
final record replaces them; a run that is finished, or no longer this worker's, is never
written. Scripts here wait on a file the test creates, so nothing depends on timing.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from runner.execution import live
from runner.execution.executor import execute_run
from runner.execution.output import LiveTails
from runner.models import Run
from tests.factories import JobFactory, RunFactory
from tests.fakes.clocks import FakeClocks
from tests.moments import NOW
from tests.test_sessions import in_thread, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fast_output(monkeypatch):
    """Write tails every 50 ms instead of every second, so the tests are quick."""
    monkeypatch.setattr(live, "LIVE_OUTPUT_EVERY_S", 0.05)


def waiting_script(gate: Path, before: str, after: str = "echo done") -> str:
    return f"{before}\nwhile [ ! -e '{gate}' ]; do sleep 0.02; done\n{after}"


def row(run: Run) -> Run:
    return Run.objects.get(pk=run.pk)


def test_a_running_script_shows_what_it_printed_so_far(tmp_path, fast_output):
    gate = tmp_path / "gate"
    run = RunFactory(job=JobFactory(script=waiting_script(gate, "echo first; echo warn >&2")))
    thread, result = in_thread(lambda: execute_run(run.pk, worker="test:1"))

    wait_until(lambda: row(run).stdout == "first")
    during = row(run)
    gate.touch()
    thread.join(10)

    assert (during.status, during.stderr) == ("running", "warn")
    finished = row(run)
    assert (finished.status, finished.stdout, finished.stderr) == ("ok", "first\ndone", "warn")
    assert result[0].stdout == "first\ndone"


def test_the_live_tails_keep_the_final_records_bound(tmp_path, fast_output, runner_config):
    runner_config(output_tail_lines=2)
    gate = tmp_path / "gate"
    run = RunFactory(job=JobFactory(script=waiting_script(gate, "seq 1 5", "echo 6")))
    thread, _ = in_thread(lambda: execute_run(run.pk, worker="test:1"))

    wait_until(lambda: row(run).stdout == "4\n5")
    gate.touch()
    thread.join(10)

    assert row(run).stdout == "5\n6"


def test_a_script_that_stays_silent_leaves_its_output_empty_while_it_runs(tmp_path, fast_output):
    gate = tmp_path / "gate"
    run = RunFactory(job=JobFactory(script=waiting_script(gate, "true")))
    thread, _ = in_thread(lambda: execute_run(run.pk, worker="test:1"))

    wait_until(lambda: row(run).status == "running")
    assert row(run).stdout == ""
    gate.touch()
    thread.join(10)
    assert row(run).stdout == "done"


def test_a_run_no_longer_ours_is_ended_and_not_written(tmp_path, fast_output, runner_config):
    runner_config(heartbeat_interval_ms=100)
    gate = tmp_path / "gate"  # never created: only the takeover ends the script
    run = RunFactory(job=JobFactory(script=waiting_script(gate, "echo mine")))
    thread, result = in_thread(lambda: execute_run(run.pk, worker="test:1"))
    wait_until(lambda: row(run).stdout == "mine")

    Run.objects.filter(pk=run.pk).update(worker="other:2", stdout="theirs")
    thread.join(10)

    assert not thread.is_alive()
    assert (row(run).worker, row(run).stdout, row(run).status) == ("other:2", "theirs", "running")
    assert result[0].worker == "other:2"


# -- the statement and the writer, driven by hand -------------------------------------


def running_run(worker: str = "w:1", **fields) -> Run:
    return RunFactory(status="running", worker=worker, started_at=NOW, heartbeat_at=NOW, **fields)


def test_one_statement_beats_every_run_and_writes_only_the_given_tails():
    first, second = running_run(stdout="old"), running_run(stdout="kept")
    later = NOW + timedelta(seconds=5)

    changed = Run.beat_many("w:1", [first.pk, second.pk], later, {first.pk: ("new", "err")})

    assert changed == {first.pk, second.pk}
    assert (row(first).stdout, row(first).stderr, row(first).heartbeat_at) == ("new", "err", later)
    assert (row(second).stdout, row(second).heartbeat_at) == ("kept", later)


def test_a_finished_or_taken_over_run_is_never_written():
    finished = RunFactory(status="ok", worker="w:1", stdout="final", finished_at=NOW)
    taken = running_run(worker="w:2", stdout="theirs")
    tails = {finished.pk: ("live", ""), taken.pk: ("live", "")}

    assert Run.beat_many("w:1", [finished.pk, taken.pk], NOW, tails) == set()
    assert (row(finished).stdout, row(finished).status, row(finished).heartbeat_at) == (
        "final",
        "ok",
        None,
    )
    assert row(taken).stdout == "theirs"


def test_output_with_a_nul_is_stored_as_the_final_record_would_be():
    run = running_run()
    Run.beat_many("w:1", [run.pk], NOW, {run.pk: ("a\x00b", "")})
    assert row(run).stdout == "a\ufffdb"


class Output:
    def __init__(self) -> None:
        self.tails = LiveTails(0, "", "")
        self.calls = 0

    def __call__(self) -> LiveTails:
        self.calls += 1
        return self.tails


def test_tails_are_written_once_a_second_and_only_when_they_changed():
    clocks = FakeClocks(timezone.now())
    board = live.LiveRuns(clock=clocks.monotonic)
    run, output, cancel = running_run(), Output(), threading.Event()
    with board.holding(run, cancel):
        board.watch_output(run.pk, output)
        output.tails = LiveTails(3, "hi", "")
        board.tick()
        assert row(run).stdout == ""  # not a second yet

        clocks.advance(1.0)
        board.tick()
        assert row(run).stdout == "hi"

        Run.objects.filter(pk=run.pk).update(stdout="marker")
        clocks.advance(1.0)
        board.tick()
        assert row(run).stdout == "marker"  # unchanged output is not written again

        output.tails = LiveTails(7, "hi\nyo", "")
        clocks.advance(1.0)
        board.tick()
        assert row(run).stdout == "hi\nyo"
    assert not cancel.is_set()


def test_a_run_finished_elsewhere_is_cancelled_by_the_next_beat(runner_config):
    runner_config(heartbeat_interval_ms=1000)
    clocks = FakeClocks(timezone.now())
    board = live.LiveRuns(clock=clocks.monotonic)
    run, cancel = running_run(), threading.Event()
    with board.holding(run, cancel):
        Run.objects.filter(pk=run.pk).update(status="error", error="liveness")
        board.tick()
        assert not cancel.is_set()  # no beat due yet
        clocks.advance(1.0)
        board.tick()
        assert cancel.is_set()
    assert (row(run).status, row(run).error) == ("error", "liveness")
