"""Creates and deletes by id raced from real threads, each on its own connection: the
same answers on SQLite and PostgreSQL. A create that loses is 409 (a command: the job is
there, unchanged), a delete of what another request deleted is 404 (a command: unknown)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections

from queues.models import Queue
from runner import jobs
from runner.api.models import ApiToken
from runner.models import Job
from tests.api.conftest import ApiClient, make_user
from tests.factories import JobFactory, RunFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RACERS = 16
WAIT_S = 30  # ceiling for a racer to reach the meeting point; normally milliseconds
NEW_JOB = {"id": "raced", "name": "Raced", "schedule": "0 * * * *", "script": "echo hi",
           "source_type": "inline"}  # fmt: skip
DIALECTS = {"api": "/api", "root": ""}


def race(calls: list[Callable[[], object]], monkeypatch=None, inside=None) -> list[object]:
    """Run ``calls`` at once, each in its own thread; return what each returned (or raised).

    They meet at a barrier just before they start. With ``inside`` (a module and the name
    of a function each call reaches inside its transaction), on PostgreSQL they meet
    there instead and then go on one at a time, each once the one before has finished:
    every one has read before any writes, the interleaving that let a create that lost
    answer 400. SQLite's writers take turns at BEGIN, so a racer waiting inside would
    hold the others out: there they meet before it.
    """
    barrier = threading.Barrier(len(calls))
    finished = [threading.Event() for _ in calls]
    turn = threading.local()
    meet_inside = inside is not None and connection.vendor == "postgresql"
    if meet_inside:
        module, name = inside
        original = getattr(module, name)

        def meet(*args, **kwargs):
            if getattr(turn, "index", None) is None:  # a retry passes here once more
                turn.index = barrier.wait(WAIT_S)
                if turn.index:
                    assert finished[turn.index - 1].wait(WAIT_S)
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, meet)
    results: list[object] = [None] * len(calls)

    def go(slot: int, call: Callable[[], object]) -> None:
        turn.index = None
        try:
            if not meet_inside:
                barrier.wait(WAIT_S)
            results[slot] = call()
        except Exception as exc:
            results[slot] = exc
        finally:
            if turn.index is not None:
                finished[turn.index].set()
            connections.close_all()

    threads = [threading.Thread(target=go, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2 * WAIT_S)
        assert not thread.is_alive()
    return results


def statuses(responses) -> Counter:
    return Counter(response.status_code for response in responses)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_racing_creates_of_one_job_are_one_201_and_409_for_the_rest(token, monkeypatch, dialect):
    def create():
        return ApiClient(token, prefix=DIALECTS[dialect]).post("/jobs", NEW_JOB)

    responses = race([create] * RACERS, monkeypatch, (jobs, "_require_new_fields"))
    assert statuses(responses) == {201: 1, 409: RACERS - 1}, [r.content for r in responses]
    assert Job.objects.get().name == "Raced"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_racing_deletes_of_one_job_are_one_200_and_404_for_the_rest(token, dialect):
    RunFactory(job=JobFactory(id="raced"))

    def delete():
        return ApiClient(token, prefix=DIALECTS[dialect]).delete("/jobs/raced")

    responses = race([delete] * RACERS)
    assert statuses(responses) == {200: 1, 404: RACERS - 1}, [r.content for r in responses]
    assert not Job.objects.exists()


def command(*words: str) -> Callable[[], object]:
    def run() -> object:
        out = StringIO()
        call_command(*words, stdout=out, stderr=StringIO())
        return out.getvalue().strip()

    return run


def test_racing_add_job_commands_add_the_job_once(monkeypatch):
    add = command("add_job", *[f"--{name.replace('_', '-')}={value}"
                               for name, value in NEW_JOB.items()])  # fmt: skip
    results = race([add] * RACERS, monkeypatch, (jobs, "_require_new_fields"))
    assert Counter(results) == {"job raced: added": 1, "job raced: unchanged": RACERS - 1}


def test_racing_remove_job_commands_remove_the_job_once():
    JobFactory(id="raced")
    results = race([command("remove_job", "raced")] * RACERS)
    assert [r for r in results if not isinstance(r, CommandError)] == [
        "job raced: removed with 0 runs"
    ]
    refusals = {str(r) for r in results if isinstance(r, CommandError)}
    assert refusals == {"unknown job id: raced; nothing removed"}


def test_racing_add_queue_commands_define_the_queue_once():
    results = race([command("add_queue", "--id=raced", "--max-attempts=3")] * RACERS)
    assert Counter(results) == {"Added queue raced": 1, "Updated queue raced": RACERS - 1}
    assert Queue.objects.get().max_attempts == 3


def test_racing_token_creations_and_revocations_of_one_name_succeed_once():
    make_user("owner", superuser=True)
    created = race([command("create_api_token", "raced", "--user=owner")] * RACERS)
    refusals = {str(r) for r in created if isinstance(r, CommandError)}
    assert refusals == {"name: an active API token is already called 'raced'; revoke it first"}
    assert len(created) - sum(isinstance(r, CommandError) for r in created) == 1
    revoked = race([command("revoke_api_token", "raced")] * RACERS)
    assert Counter(map(str, revoked)) == {
        "API token 'raced' revoked": 1,
        "no active API token is called 'raced'": RACERS - 1,
    }
    assert ApiToken.objects.get().revoked
