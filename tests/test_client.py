"""The client's lifecycle, and the client from real child processes set up by env alone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.db import connection

from queues.models import QueueItem
from runner.client import get_runner_client
from runner.execution.executor import execute_run
from statestore.models import StateEntry
from tests.factories import JobFactory, RunFactory
from tests.procs import ROOT, bare_env, script_env

CHILD_TIMEOUT_S = 60


def run_child(env: dict[str, str], queue: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "tests.procs", "client_roundtrip", queue],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_the_client_is_a_context_manager_that_closes_itself():
    with get_runner_client() as jr:
        jr.set_state("ns", "k", 1)
    with pytest.raises(RuntimeError, match="closed"):
        jr.get_state("ns", "k")


@pytest.mark.django_db
def test_a_closed_client_refuses_every_call():
    jr = get_runner_client()
    jr.close()
    with pytest.raises(RuntimeError, match="closed"):
        jr.enqueue("q", {"id": 1})
    assert not QueueItem.objects.exists()


@pytest.mark.django_db
def test_dequeue_from_a_queue_never_enqueued_to_claims_nothing_as_the_originals_client():
    """Not a 404 as over HTTP: a consumer may start before its producer's first enqueue,
    which makes the queue (the original's client also answers [])."""
    with get_runner_client() as jr:
        assert jr.dequeue("not-yet") == []
        assert jr.enqueue("not-yet", {"id": 1}) is not None
        assert [item.payload for item in jr.dequeue("not-yet")] == [{"id": 1}]


@pytest.mark.django_db
def test_closing_inside_a_callers_transaction_leaves_its_connection_open():
    jr = get_runner_client()
    jr.set_state("ns", "k", 1)
    jr.close()
    assert StateEntry.objects.count() == 1


CLIENT_SCRIPT = """#!{python}
import os
from runner.client import get_runner_client

with get_runner_client() as jr:
    jr.set_state("inbox", "cursor", {{"run": os.environ["JR_RUN_ID"]}})
    item_id = jr.enqueue("from-script", {{"job": os.environ["JR_JOB_ID"]}})
    [item] = jr.dequeue("from-script")
    jr.done(item.id)
    print(jr.get_state("inbox", "cursor")["run"], item_id)
"""


@pytest.mark.django_db(transaction=True)
def test_a_script_run_by_the_executor_uses_the_client_with_no_set_up():
    job = JobFactory(id="inbox", script=CLIENT_SCRIPT.format(python=sys.executable))
    run = RunFactory(job=job)
    finished = execute_run(run.pk, worker="test:1")
    assert (finished.status, finished.stderr) == ("ok", "")
    item = QueueItem.objects.get()
    assert finished.stdout == f"{run.pk} {item.pk}"
    assert (item.payload, item.status) == ({"job": "inbox"}, "completed")


@pytest.mark.django_db(transaction=True)
def test_a_process_with_the_runners_script_environment_uses_the_client():
    seen = run_child(script_env(connection.settings_dict, job_id="inbox"), "from-script")
    assert seen["job"] == "inbox"
    assert seen["state"] == StateEntry.objects.get(namespace="child").value
    assert QueueItem.objects.get(pk=seen["item"]).payload == {"from": "child"}


@pytest.mark.django_db(transaction=True)
def test_a_process_given_only_database_url_uses_the_client():
    seen = run_child(bare_env(connection.settings_dict), "from-bare")
    assert QueueItem.objects.get(pk=seen["item"]).queue_id == "from-bare"
