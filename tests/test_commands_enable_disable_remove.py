"""enable_job, disable_job and remove_job: as named; one unknown id changes nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from runner.models import Job, Run
from tests.factories import JobFactory, RunFactory

pytestmark = pytest.mark.django_db


def command(name: str, *job_ids: str) -> str:
    out = StringIO()
    call_command(name, *job_ids, stdout=out, stderr=StringIO())
    return out.getvalue()


def enabled() -> dict[str, bool]:
    return dict(Job.objects.values_list("id", "enabled"))


def test_disable_job_disables_each_job_named():
    JobFactory(id="a")
    JobFactory(id="b")
    assert command("disable_job", "a", "b") == "job a: disabled\njob b: disabled\n"
    assert enabled() == {"a": False, "b": False}


def test_enable_job_enables_a_disabled_job_and_says_which_were_already_on():
    JobFactory(id="off", enabled=False)
    JobFactory(id="on")
    assert command("enable_job", "off", "on") == "job off: enabled\njob on: already enabled\n"
    assert enabled() == {"off": True, "on": True}


@pytest.mark.parametrize("name,start", [("enable_job", False), ("disable_job", True)])
def test_an_unknown_id_among_several_changes_nothing(name, start):
    JobFactory(id="known", enabled=start)
    with pytest.raises(CommandError, match=r"^unknown job id: ghost; nothing changed$"):
        command(name, "known", "ghost")
    assert enabled() == {"known": start}


def test_remove_job_deletes_the_job_with_its_runs_and_leaves_others():
    doomed, kept = JobFactory(id="doomed"), JobFactory(id="kept")
    RunFactory.create_batch(2, job=doomed)
    RunFactory(job=kept)
    assert command("remove_job", "doomed") == "job doomed: removed with 2 runs\n"
    assert list(Job.objects.values_list("id", flat=True)) == ["kept"]
    assert Run.objects.filter(job_id="kept").count() == Run.objects.count() == 1


def test_remove_job_with_an_unknown_id_removes_nothing():
    RunFactory(job=JobFactory(id="known"))
    with pytest.raises(CommandError, match=r"^unknown job ids: x, y; nothing removed$"):
        command("remove_job", "x", "known", "y")
    assert Job.objects.count() == Run.objects.count() == 1


@pytest.mark.parametrize("command", ["disable_job", "enable_job", "remove_job", "trigger_job"])
def test_a_job_id_holding_control_characters_is_shown_not_obeyed(command):
    """The refusal names the id as typed; a terminal must not act on its escapes
    (newcomer probe: ESC[31m and a carriage return came out raw)."""
    out = StringIO()
    with pytest.raises(CommandError) as refused:
        call_command(command, "a\x1b[31mred\rX", stdout=out, stderr=out)
    shown = str(refused.value) + out.getvalue()
    assert "\\x1b[31mred\\x0dX" in shown
    assert "\x1b" not in shown and "\r" not in shown
