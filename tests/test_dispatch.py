"""Dispatch: one broker task per eight runs, naming only the runs."""

from __future__ import annotations

import pytest
from django.db import transaction
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from runner import dispatch
from runner.broker import RunnerORM

pytestmark = pytest.mark.django_db


def test_runs_become_one_orm_task_for_every_eight_that_names_only_its_runs():
    ids = list(range(11, 31))
    assert dispatch.dispatch(ids) == 20
    tasks = [SignedPackage.loads(row.payload) for row in OrmQ.objects.order_by("id")]
    assert [(t["func"], t["args"], t["name"]) for t in tasks] == [
        (dispatch.BATCH_TASK, (ids[0:8],), "runs-11-18"),
        (dispatch.BATCH_TASK, (ids[8:16],), "runs-19-26"),
        (dispatch.BATCH_TASK, (ids[16:20],), "runs-27-30"),
    ]
    assert len({t["id"] for t in tasks}) == 3


def test_a_single_run_is_a_task_named_for_it():
    dispatch.dispatch([11])
    [task] = [SignedPackage.loads(row.payload) for row in OrmQ.objects.all()]
    assert (task["func"], task["args"], task["name"]) == (dispatch.BATCH_TASK, ([11],), "run-11")


def test_tasks_dispatched_in_a_transaction_that_rolls_back_are_gone_with_it():
    with pytest.raises(RuntimeError), transaction.atomic():
        dispatch.dispatch([11])
        raise RuntimeError("the fire's transaction failed")
    assert not OrmQ.objects.exists()


def test_nothing_to_dispatch_queues_nothing():
    assert dispatch.dispatch([]) == 0
    assert not OrmQ.objects.exists()


def test_the_broker_claims_a_batch_in_order_and_a_claimed_task_is_gone(monkeypatch):
    monkeypatch.setattr(Conf, "BULK", 8)
    for run_id in (11, 12, 13):
        dispatch.dispatch([run_id])
    broker = RunnerORM(list_key=dispatch.broker().list_key)
    claimed = broker.dequeue()
    assert [SignedPackage.loads(payload)["args"] for _id, payload in claimed] == [
        ([11],),
        ([12],),
        ([13],),
    ]
    assert broker.dequeue() is None
    assert not OrmQ.objects.exists()


def test_the_broker_claims_at_most_its_bulk(monkeypatch):
    monkeypatch.setattr(Conf, "BULK", 2)
    for run_id in (11, 12, 13):
        dispatch.dispatch([run_id])
    broker = RunnerORM(list_key=dispatch.broker().list_key)
    assert len(broker.dequeue()) == 2
    assert len(broker.dequeue()) == 1


def test_one_task_claimed_at_a_time_by_default():
    """A task carries up to eight runs, so a host takes one a claim (what it holds
    ahead of other hosts stays small)."""
    dispatch.dispatch(list(range(11, 31)))
    broker = RunnerORM(list_key=dispatch.broker().list_key)
    assert [len(broker.dequeue()) for _ in range(3)] == [1, 1, 1]
    assert broker.dequeue() is None
