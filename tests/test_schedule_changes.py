"""What a change of a job means for catch-up: disabled time and an old schedule are not
missed time, whichever entrance made the change (issue 11, items 6 and 7)."""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from runner.api.tokens import create_token
from runner.jobs import JOB_FIELDS, set_enabled, upsert_job
from runner.models import Job, Run, RunStatus
from runner.scheduler import Scheduler
from tests.api.conftest import ApiClient, make_user
from tests.factories import JobFactory
from tests.fakes.clocks import FakeClocks

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 3, 2, tzinfo=UTC)
LEAD = timedelta(milliseconds=250)
_tokens = itertools.count()


def at(hour: int, minute: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute)


# -- the entrances that change a job ------------------------------------------------


def by_save(job_id: str, **fields) -> None:
    job = Job.objects.get(pk=job_id)
    for name, value in fields.items():
        setattr(job, name, value)
    job.save()


def by_queryset_update(job_id: str, **fields) -> None:
    Job.objects.filter(pk=job_id).update(**fields)


def by_upsert(job_id: str, **fields) -> None:
    upsert_job({"id": job_id, **fields})


def by_add_job(job_id: str, **fields) -> None:
    options = [f"--id={job_id}"]
    for name, value in fields.items():
        if name == "enabled":
            options.append("--enabled" if value else "--disabled")
        else:
            options.append(f"--{name.replace('_', '-')}={value}")
    call_command("add_job", *options, stdout=StringIO())


def by_sync_jobs(job_id: str, **fields) -> None:
    # A job file is declarative: it holds the whole job, as it is plus the change.
    job = Job.objects.get(pk=job_id)
    entry = {**{name: getattr(job, name) for name in JOB_FIELDS}, **fields}
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "jobs.json").write_text(json.dumps([entry]))
        call_command("sync_jobs", directory, stdout=StringIO(), stderr=StringIO())


def by_enable_commands(job_id: str, enabled: bool) -> None:
    call_command("enable_job" if enabled else "disable_job", job_id, stdout=StringIO())


def by_set_enabled(job_id: str, enabled: bool) -> None:
    set_enabled([job_id], enabled)


def api() -> ApiClient:
    name = f"changes-{next(_tokens)}"
    return ApiClient(create_token(name, make_user(name, superuser=True))[1])


def by_api_patch(job_id: str, **fields) -> None:
    response = api().patch(f"/jobs/{job_id}", fields)
    assert response.status_code == 200, response.content


def by_api_enable(job_id: str, enabled: bool) -> None:
    action = "enable" if enabled else "disable"
    response = api().post(f"/jobs/{job_id}/{action}")
    assert response.status_code == 200, response.content


def admin_client() -> Client:
    client = Client()
    user = get_user_model().objects.filter(username="admin").first()
    if user is None:
        user = get_user_model().objects.create_superuser("admin", "a@example.com", "pw")
    client.force_login(user)
    return client


def by_admin_form(job_id: str, **fields) -> None:
    job = Job.objects.get(pk=job_id)
    form = {
        "name": job.name, "description": job.description, "type": job.type,
        "source_type": job.source_type, "script": job.script, "args": "[]", "env": "{}",
        "thinking": job.thinking, "schedule": job.schedule, "timezone": job.timezone,
        "overlap_policy": job.overlap_policy, "missed_fire_policy": job.missed_fire_policy,
        "timeout_ms": "", "on_failure": "", "on_success": "", "output_channel": "",
    }  # fmt: skip
    form.update({key: value for key, value in fields.items() if key != "enabled"})
    if fields.get("enabled", job.enabled):
        form["enabled"] = "on"
    url = reverse("admin:runner_job_change", args=[job_id])
    response = admin_client().post(url, form)
    assert response.status_code == 302, response.content


def by_admin_action(job_id: str, enabled: bool) -> None:
    response = admin_client().post(
        reverse("admin:runner_job_changelist"),
        {"action": "enable" if enabled else "disable", "_selected_action": [job_id]},
    )
    assert response.status_code == 302


def toggles_of(entrance: Callable) -> Callable[[str, bool], None]:
    """An entrance that takes fields, used to enable or disable."""
    return lambda job_id, enabled: entrance(job_id, enabled=enabled)


ENABLING = {
    "save": toggles_of(by_save),
    "queryset-update": toggles_of(by_queryset_update),
    "upsert": toggles_of(by_upsert),
    "add_job": toggles_of(by_add_job),
    "sync_jobs": toggles_of(by_sync_jobs),
    "enable_job-command": by_enable_commands,
    "set_enabled": by_set_enabled,
    "api-patch": toggles_of(by_api_patch),
    "api-enable": by_api_enable,
    "admin-form": toggles_of(by_admin_form),
    "admin-action": by_admin_action,
}
RESCHEDULING = {
    "save": by_save,
    "queryset-update": by_queryset_update,
    "upsert": by_upsert,
    "add_job": by_add_job,
    "sync_jobs": by_sync_jobs,
    "api-patch": by_api_patch,
    "admin-form": by_admin_form,
}


def when(moment: datetime, change: Callable, *args, **kwargs) -> None:
    with time_machine.travel(moment, tick=False):
        change(*args, **kwargs)


def restart(moment: datetime) -> list[Run]:
    """A scheduler starting at ``moment``; the runs it recorded."""
    before = set(Run.objects.values_list("pk", flat=True))
    Scheduler(dispatcher=lambda ids: len(list(ids)), lead=LEAD).start(moment)
    return list(Run.objects.exclude(pk__in=before).order_by("scheduled_for"))


def job_fired_until(job_id: str, policy: str, schedule: str, last_fire: datetime) -> Job:
    with time_machine.travel(at(0), tick=False):
        job = JobFactory(id=job_id, schedule=schedule, missed_fire_policy=policy)
    Run.objects.create(job=job, scheduled_for=last_fire, status=RunStatus.OK)
    return job


# -- 6. re-enabling does not replay the disabled period ---------------------------------


@pytest.mark.parametrize("policy", ["all", "latest"])
@pytest.mark.parametrize("entrance", ENABLING.values(), ids=ENABLING.keys())
def test_a_job_disabled_for_three_hours_and_re_enabled_catches_nothing_up(entrance, policy):
    job_fired_until("poll", policy, "*/10 * * * *", last_fire=at(9))
    when(at(9, 5), entrance, "poll", False)
    when(at(12, 5), entrance, "poll", True)
    assert Job.objects.get(pk="poll").schedule_effective_at == at(12, 5)
    assert restart(at(12, 8)) == []


@pytest.mark.parametrize(
    "policy,expected",
    [("all", ["pending", "pending"]), ("latest", ["pending"]), ("skip", ["skipped"])],
)
def test_slots_missed_after_re_enabling_follow_the_policy(policy, expected):
    job_fired_until("poll", policy, "*/10 * * * *", last_fire=at(9))
    when(at(9, 5), by_set_enabled, "poll", False)
    when(at(12, 5), by_set_enabled, "poll", True)
    caught_up = restart(at(12, 25))
    assert [run.status for run in caught_up] == expected
    assert caught_up[-1].scheduled_for == at(12, 20)
    assert caught_up[0].scheduled_for == (at(12, 10) if policy == "all" else at(12, 20))


@pytest.mark.parametrize("entrance", ENABLING.values(), ids=ENABLING.keys())
def test_disabling_or_enabling_an_enabled_job_again_keeps_its_effective_time(entrance):
    job_fired_until("poll", "all", "*/10 * * * *", last_fire=at(9))
    when(at(9, 5), entrance, "poll", True)  # already enabled: no change of timing
    assert Job.objects.get(pk="poll").schedule_effective_at == at(0)
    caught_up = restart(at(9, 35))
    assert [run.scheduled_for for run in caught_up] == [at(9, 10), at(9, 20), at(9, 30)]


# -- 7. a schedule edit does not replay slots of the new schedule ------------------------


@pytest.mark.parametrize("policy", ["skip", "latest", "all"])
@pytest.mark.parametrize("entrance", RESCHEDULING.values(), ids=RESCHEDULING.keys())
def test_a_daily_job_made_hourly_at_ten_runs_nothing_at_a_restart_at_half_past(entrance, policy):
    job_fired_until("report", policy, "0 3 * * *", last_fire=at(3))
    when(at(10), entrance, "report", schedule="0 * * * *")
    assert Job.objects.get(pk="report").schedule_effective_at == at(10)
    assert restart(at(10, 30)) == []


@pytest.mark.parametrize(
    "policy,expected", [("skip", "skipped"), ("latest", "pending"), ("all", "pending")]
)
def test_a_slot_of_the_new_schedule_due_after_the_edit_follows_the_policy(policy, expected):
    job_fired_until("report", policy, "0 3 * * *", last_fire=at(3))
    when(at(9, 45), by_save, "report", schedule="0 * * * *")
    [caught_up] = restart(at(10, 30))
    assert (caught_up.scheduled_for, caught_up.status) == (at(10), expected)


@pytest.mark.parametrize("entrance", RESCHEDULING.values(), ids=RESCHEDULING.keys())
def test_a_change_of_zone_also_starts_the_schedule_afresh(entrance):
    job_fired_until("report", "all", "0 * * * *", last_fire=at(3))
    when(at(10, 1), entrance, "report", timezone="Europe/Berlin")
    assert Job.objects.get(pk="report").schedule_effective_at == at(10, 1)
    assert restart(at(10, 30)) == []


@pytest.mark.parametrize("entrance", RESCHEDULING.values(), ids=RESCHEDULING.keys())
def test_an_edit_of_anything_else_keeps_the_missed_fires(entrance):
    job_fired_until("report", "latest", "0 * * * *", last_fire=at(3))
    when(at(10, 1), entrance, "report", description="now with a description")
    assert Job.objects.get(pk="report").schedule_effective_at == at(0)
    [caught_up] = restart(at(10, 30))
    assert (caught_up.scheduled_for, caught_up.status) == (at(10), "pending")


def test_a_job_created_disabled_counts_from_when_it_was_enabled():
    with time_machine.travel(at(1), tick=False):
        JobFactory(id="later", schedule="0 * * * *", missed_fire_policy="all", enabled=False)
    when(at(9, 30), by_set_enabled, "later", True)
    assert [run.scheduled_for for run in restart(at(11, 5))] == [at(10), at(11)]


def test_a_running_scheduler_and_a_restart_agree_on_a_re_enabled_job():
    clocks = FakeClocks(at(12, 5))
    job_fired_until("poll", "all", "*/10 * * * *", last_fire=at(9))
    when(at(9, 5), by_set_enabled, "poll", False)
    running = Scheduler(dispatcher=lambda ids: 0, lead=LEAD, monotonic=clocks.monotonic)
    running.start(at(12, 4))
    when(at(12, 5), by_set_enabled, "poll", True)
    running.reconcile(at(12, 5))
    assert running.planned() == {"poll": at(12, 10)}
    assert restart(at(12, 6)) == []
