"""runscheduler end to end: real daemon processes, real workers, real scripts, real signals."""

from __future__ import annotations

import itertools
import os
import re
import signal
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import psutil
import pytest
import redis
from django.utils import timezone
from django_q.models import OrmQ

from runner.manual import request_runs
from runner.models import Job, Run
from tests.daemons import Daemons, scripts_of_this_database, wait_for
from tests.factories import JobFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SECOND = timedelta(seconds=1)


def record_script(ran: Path, then: str = "") -> str:
    """A script that notes each execution (run id and when its first line ran)."""
    return f'echo "$JR_RUN_ID $EPOCHREALTIME" >> {ran}\n{then}'


def executions(ran: Path) -> Counter:
    """How many times each run id's script started."""
    lines = ran.read_text().split("\n") if ran.exists() else []
    return Counter(int(line.split()[0]) for line in lines if line)


def first_lines(ran: Path) -> dict[int, float]:
    lines = ran.read_text().split("\n") if ran.exists() else []
    return {int(run_id): float(at) for run_id, at in (line.split() for line in lines if line)}


def runs_of(job_id: str, **filters) -> list[Run]:
    return list(Run.objects.filter(job_id=job_id, **filters).order_by("scheduled_for"))


def ready(daemons: Daemons, process, count: int = 1) -> None:
    """Wait until ``process`` has planned its jobs ``count`` times (started ``count`` times)."""
    wait_for(
        "the scheduler to plan its jobs",
        lambda: Path(process.log_path).read_text().count("jobs planned") >= count,
        timeout=30,
    )


def runner_processes_in_group(daemon) -> bool:
    """Whether every ``manage.py`` process below ``daemon`` is in its process group."""
    try:
        below = psutil.Process(daemon.pid).children(recursive=True)
        return all(
            os.getpgid(process.pid) == daemon.pid
            for process in below
            if "manage.py" in " ".join(process.cmdline())
        )
    except (psutil.Error, ProcessLookupError):
        return False


def slot_in(seconds: float) -> tuple[str, datetime]:
    """A 6-field schedule that fires once a minute, about ``seconds`` from now."""
    at = (timezone.now() + timedelta(seconds=seconds)).replace(microsecond=0)
    return f"{at.second} * * * * *", at


def test_an_every_second_job_runs_on_time(daemons, tmp_path):
    ran = tmp_path / "ran"
    JobFactory(id="tick", schedule="* * * * * *", script=record_script(ran))
    daemons.start()
    ok = wait_for("three runs", lambda: len(runs_of("tick", status="ok")) >= 3 and runs_of("tick"))
    ok = [run for run in ok if run.status == "ok"][:3]
    assert [run.scheduled_for - ok[0].scheduled_for for run in ok] == [i * SECOND for i in range(3)]
    started = first_lines(ran)
    for run in ok:
        assert run.started_at >= run.scheduled_for
        # Generous: the machine is shared. Typical lags are tens of milliseconds.
        assert 0 <= started[run.pk] - run.scheduled_for.timestamp() < 1.0
    assert max(executions(ran).values()) == 1


def test_edits_and_disabling_take_effect_without_a_restart(daemons, tmp_path):
    JobFactory(id="witness", schedule="* * * * * *", script="true")
    edited = JobFactory(id="edited", schedule="0 0 1 1 *", script="true")
    doomed = JobFactory(id="doomed", schedule="* * * * * *", script="true")
    ready(daemons, daemons.start())

    edited.schedule = "* * * * * *"
    edited.save()
    changed_at = timezone.now()
    [first] = wait_for("a run of the edited job", lambda: runs_of("edited", status="ok")[:1])
    assert first.scheduled_for - changed_at < 2 * SECOND

    doomed.delete()
    edited.enabled = False
    edited.save()
    disabled_at = timezone.now()
    wait_for(
        "the witness to keep running",
        lambda: Run.objects.filter(
            job_id="witness", status="ok", scheduled_for__gt=disabled_at + 3 * SECOND
        ).exists(),
    )
    late = Run.objects.filter(job_id="edited", scheduled_for__gt=disabled_at + 1.5 * SECOND)
    assert not late.exists()
    assert not Run.objects.filter(job_id="doomed").exists()


def test_overlap_skip_holds_across_two_worker_processes(daemons, tmp_path):
    JobFactory(id="slow", schedule="* * * * * *", script="sleep 2.2", overlap_policy="skip")
    daemons.start("runscheduler", "--no-workers")
    daemons.start("runworkers", JEEVES_MAX_CONCURRENCY="1")
    daemons.start("runworkers", JEEVES_MAX_CONCURRENCY="1")
    wait_for(
        "a finished run and skips",
        lambda: (
            runs_of("slow", status="ok")
            and len(runs_of("slow", error__contains="is still running")) >= 2
        ),
        timeout=30,
    )
    started = [run for run in runs_of("slow") if run.started_at is not None]
    for earlier, later in itertools.pairwise(started):
        assert earlier.finished_at is None or earlier.finished_at <= later.started_at
    skips = runs_of("slow", error__contains="is still running")
    workers = {run.pk: run.worker for run in started}
    # A skip decided by one worker process while the other ran the job.
    assert any(
        skip.worker != workers.get(int(skip.error.split("#")[1].split()[0])) for skip in skips
    )
    for process in daemons.processes:
        daemons.signal_group(process, signal.SIGTERM)
    assert [daemons.exit_status(p, timeout=15) for p in daemons.processes] == [0, 0, 0]


def test_fires_beyond_the_concurrency_limit_wait_for_a_slot(daemons):
    ready(daemons, daemons.start(JEEVES_MAX_CONCURRENCY="2"))
    schedule, at = slot_in(2.5)
    for n in range(4):
        JobFactory(id=f"busy-{n}", schedule=schedule, script="sleep 1")
    wait_for(
        "all four runs",
        lambda: Run.objects.filter(job__id__startswith="busy-", status="ok").count() == 4,
        timeout=20,
    )
    runs = list(Run.objects.filter(job__id__startswith="busy-").order_by("started_at"))
    assert {run.scheduled_for for run in runs} == {at}
    for run in runs:
        running_with = [
            other
            for other in runs
            if other.started_at <= run.started_at < other.finished_at and other.pk != run.pk
        ]
        assert len(running_with) <= 1
    assert runs[2].started_at >= min(runs[0].finished_at, runs[1].finished_at)


def test_two_schedulers_on_one_database_run_each_fire_once(daemons, tmp_path):
    ran = tmp_path / "ran"
    for n in range(5):
        JobFactory(
            id=f"every-{n}",
            schedule="* * * * * *",
            script=record_script(ran),
            overlap_policy="allow",
        )
    first, second = daemons.start(), daemons.start()
    ready(daemons, first)
    ready(daemons, second)
    began = timezone.now()
    trees = [daemon_pids(first), daemon_pids(second)]
    wait_for(
        "20 seconds of fires",
        lambda: Run.objects.filter(status="ok", scheduled_for__gte=began + 20 * SECOND).exists(),
        timeout=45,
    )
    for process in (first, second):
        daemons.signal_group(process, signal.SIGTERM)
    assert [daemons.exit_status(p, timeout=20) for p in (first, second)] == [0, 0]
    window = (began + SECOND, began + 19 * SECOND)
    whole = began.replace(microsecond=0)
    expected = [
        whole + k * SECOND for k in range(21) if window[0] <= whole + k * SECOND <= window[1]
    ]
    for n in range(5):
        fires = runs_of(f"every-{n}", scheduled_for__range=window)
        assert [run.scheduled_for for run in fires] == expected, f"every-{n}"
        assert {run.status for run in fires} == {"ok"}
    counts = executions(ran)
    assert counts and max(counts.values()) == 1
    workers = {int(run.worker.split(":")[1]) for run in Run.objects.filter(status="ok")}
    assert all(workers & tree for tree in trees), "both daemons' workers took deliveries"


def daemon_pids(process) -> set[int]:
    """The pids of a daemon and every process below it."""
    wait_for("its workers", lambda: len(psutil.Process(process.pid).children(recursive=True)) > 2)
    return {p.pid for p in psutil.Process(process.pid).children(recursive=True)}


def test_killing_the_scheduler_mid_run_then_restarting_finishes_the_run_once(daemons, tmp_path):
    ran = tmp_path / "ran"
    ready(daemons, daemons.start())
    schedule, _ = slot_in(2.5)
    JobFactory(id="long", schedule=schedule, script=record_script(ran, "sleep 30"))
    [run] = wait_for("the run to start", lambda: runs_of("long", status="running"))
    os.kill(daemons.processes[0].pid, signal.SIGKILL)  # the main process only

    # Its workers notice, give the run the shutdown grace, then end it and say so.
    [ended] = wait_for("the orphaned run to end", lambda: runs_of("long", status="error"))
    assert ended.error.startswith(f"runner stopped: runner process {daemons.processes[0].pid} died")
    ready(daemons, daemons.start())
    wait_for("a cycle of the restarted scheduler", lambda: "jobs planned" in daemons.logs())
    assert executions(ran) == {run.pk: 1}
    assert [r.pk for r in runs_of("long")] == [run.pk]
    wait_for("the script to be gone", lambda: not scripts_of_this_database())


def test_a_run_left_by_a_killed_process_group_is_finished_by_the_restart(daemons, tmp_path):
    ran = tmp_path / "ran"
    first = daemons.start()
    ready(daemons, first)
    schedule, _ = slot_in(2.5)
    JobFactory(id="long", schedule=schedule, script=record_script(ran, "sleep 30"))
    [run] = wait_for("the run to start", lambda: runs_of("long", status="running"))
    wait_for("its script", scripts_of_this_database)
    # A worker steps out of the group while it spawns (runner.execution.process);
    # this test is about a kill that reaches every runner process.
    wait_for("the workers back in the group", lambda: runner_processes_in_group(first))
    daemons.signal_group(first, signal.SIGKILL)  # scheduler, sentinel and workers at once
    daemons.exit_status(first, timeout=10)
    assert scripts_of_this_database(), "the script leads its own session and survives"

    ready(daemons, daemons.start())
    [ended] = wait_for("the restart to finish the run", lambda: runs_of("long", status="error"))
    assert "died (process" in ended.error and "leftover processes" in ended.error
    wait_for("the leftover script to be ended", lambda: not scripts_of_this_database())
    assert executions(ran) == {run.pk: 1}


@pytest.mark.parametrize(
    ("number", "whole_group"), [(signal.SIGTERM, True), (signal.SIGINT, False)]
)
def test_a_stop_signal_lets_short_runs_finish_ends_long_ones_and_exits_0(
    daemons, number, whole_group
):
    ready(daemons, scheduler := daemons.start())
    schedule, _ = slot_in(2.5)
    JobFactory(id="short", schedule=schedule, script="sleep 0.5; echo done")
    JobFactory(id="long", schedule=schedule, script="sleep 30")
    wait_for("both to run", lambda: Run.objects.filter(status="running").count() == 2)
    if whole_group:
        daemons.signal_group(scheduler, number)
    else:
        os.kill(scheduler.pid, number)
    assert daemons.exit_status(scheduler, timeout=15) == 0, daemons.logs()
    [short], [long] = runs_of("short"), runs_of("long")
    assert (short.status, short.stdout) == ("ok", "done")
    assert long.status == "error"
    assert long.error == (
        "runner stopped: the run was still going when the shutdown grace of 1500 ms ran out"
    )
    assert not scripts_of_this_database()
    log = Path(scheduler.log_path).read_text()
    # The short run may end before the stop looks; the long one is always waited for.
    assert re.search(rf"waiting up to 1\.5 s for [12] running runs?: .*#{long.pk} \(long\)", log)
    assert f"run {long.pk} of long ended: error" in log


def test_missed_fire_policies_after_an_outage(daemons):
    last = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=10)
    for policy in ("skip", "latest", "all"):
        job = JobFactory(id=policy, schedule="* * * * *", missed_fire_policy=policy)
        long_ago = last - timedelta(days=1)
        Job.objects.filter(pk=job.pk).update(created_at=long_ago, schedule_effective_at=long_ago)
        Run.objects.create(job=job, scheduled_for=last, status="ok")
    once = daemons.start("runscheduler", "--once", JEEVES_MISSED_FIRE_MAX="5")
    assert daemons.exit_status(once, timeout=30) == 0, daemons.logs()
    [skipped] = runs_of("skip", status="skipped")
    newest = skipped.scheduled_for
    missed = int((newest - last).total_seconds() // 60)  # 10, or 11 if a minute turned
    assert f"missed {missed} fires" in skipped.error
    assert [run.scheduled_for for run in runs_of("latest", status="pending")] == [newest]
    assert [run.scheduled_for for run in runs_of("all", status="pending")] == [
        newest - timedelta(minutes=m) for m in range(4, -1, -1)
    ]
    [left_out] = runs_of("all", status="skipped")
    assert f"{missed - 5} fires missed up to this one were not run" in left_out.error


def test_a_worker_cluster_that_dies_is_started_again(daemons, tmp_path):
    ran = tmp_path / "ran"
    JobFactory(id="tick", schedule="* * * * * *", script=record_script(ran))
    scheduler = daemons.start()
    ready(daemons, scheduler)
    [sentinel] = psutil.Process(scheduler.pid).children()
    sentinel.kill()
    killed_at = timezone.now()
    wait_for(
        "runs after the restart",
        lambda: runs_of("tick", status="ok", scheduled_for__gt=killed_at + 2 * SECOND),
        timeout=30,
    )
    assert "the worker cluster died; starting it again" in daemons.logs()
    assert max(executions(ran).values()) == 1


def test_a_worker_killed_while_idle_is_replaced_and_runs_go_on(daemons, tmp_path):
    """``kill -9`` of the worker process alone while it waits for a task (the OOM
    killer's pick): it dies holding the task queue's lock, and the worker spawned in its
    place must not wait on that lock for ever (newcomer probe: no run started again)."""
    ran = tmp_path / "ran"
    job = JobFactory(id="manual", schedule="0 0 1 1 *", script=record_script(ran))
    ready(daemons, daemons.start())
    [first] = request_runs([job], timezone.now())
    wait_for("the first run", lambda: runs_of("manual", status="ok"), timeout=30)
    # Its task returned when the run was handed to the pool: the worker's main thread
    # has been waiting for the next task since, holding the queue's reader lock.
    os.kill(int(Run.objects.get(pk=first.pk).worker.split(":")[1]), signal.SIGKILL)
    wait_for("a new worker", lambda: "reincarnated worker" in daemons.logs(), timeout=30)
    [second] = request_runs([job], timezone.now())
    wait_for("a run after the kill", lambda: Run.objects.get(pk=second.pk).status == "ok")
    assert executions(ran) == {first.pk: 1, second.pk: 1}


def test_the_redis_broker_delivers_runs(daemons, tmp_path):
    ran = tmp_path / "ran"
    JobFactory(id="tick", schedule="* * * * * *", script=record_script(ran))
    try:
        daemons.start(JEEVES_BROKER="redis", JEEVES_REDIS_URL="redis://127.0.0.1:6379/0")
        wait_for("two runs over Redis", lambda: len(runs_of("tick", status="ok")) >= 2)
        assert max(executions(ran).values()) == 1
        assert not OrmQ.objects.exists(), "no task went through the database"
    finally:
        redis.Redis.from_url("redis://127.0.0.1:6379/0").delete(f"django_q:{daemons.queue_name}:q")


def test_a_lost_redis_delivery_is_dispatched_again_and_runs_once(daemons, tmp_path):
    ran = tmp_path / "ran"
    redis_env = {"JEEVES_BROKER": "redis", "JEEVES_REDIS_URL": "redis://127.0.0.1:6379/0"}
    queue = f"django_q:{daemons.queue_name}:q"
    client = redis.Redis.from_url(redis_env["JEEVES_REDIS_URL"])
    try:
        ready(daemons, daemons.start("runscheduler", "--no-workers", **redis_env))
        schedule, _ = slot_in(2.5)
        JobFactory(id="once", schedule=schedule, script=record_script(ran))
        wait_for("the run to be queued", lambda: runs_of("once") and client.llen(queue))
        [run] = runs_of("once")
        client.delete(queue)  # the delivery is lost
        daemons.start("runworkers", **redis_env)
        wait_for("the run to be dispatched again and run", lambda: runs_of("once", status="ok"))
        assert executions(ran) == {run.pk: 1}
        assert "dispatching again 1 run(s)" in daemons.logs()
    finally:
        client.delete(queue)


def test_a_catch_up_runs_each_missed_slot_in_turn_promptly_and_goes_on_after_a_restart(
    daemons,
):
    day_ago = timezone.now() - timedelta(days=1)
    job = JobFactory(id="catch", schedule="* * * * *", missed_fire_policy="all", script="sleep 0.4")
    Job.objects.filter(pk=job.pk).update(created_at=day_ago, schedule_effective_at=day_ago)
    last = timezone.now().replace(second=0, microsecond=0) - 6 * 60 * SECOND
    Run.objects.create(job=job, trigger="schedule", scheduled_for=last, status="ok")
    first = daemons.start()
    wait_for("two catch-up runs", lambda: len(runs_of("catch", catch_up=True, status="ok")) >= 2)
    daemons.signal_group(first, signal.SIGTERM)
    assert daemons.exit_status(first, timeout=15) == 0
    daemons.start()

    def all_ok() -> list[Run]:
        done = runs_of("catch", catch_up=True)
        return done if done and all(run.status == "ok" for run in done) else []

    caught_up = wait_for("every catch-up run", all_ok, timeout=60)
    assert len(caught_up) >= 6 and caught_up[0].scheduled_for == last + 60 * SECOND
    by_start = sorted(caught_up, key=lambda run: run.started_at)
    assert by_start == caught_up  # oldest first
    gaps = [b.started_at - a.finished_at for a, b in itertools.pairwise(caught_up)]
    assert all(gap >= timedelta(0) for gap in gaps)  # never two at once
    assert sorted(gaps)[-2] < SECOND  # promptly: all but the gap across the restart
