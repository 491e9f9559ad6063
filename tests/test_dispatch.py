"""Dispatch: one broker task per run, naming only the run."""

from __future__ import annotations

import pytest
from django.db import transaction
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from runner import dispatch
from runner.broker import RunnerORM

pytestmark = pytest.mark.django_db


def test_a_batch_of_runs_becomes_one_orm_task_each_that_names_only_its_run():
    assert dispatch.dispatch([11, 12, 13]) == 3
    tasks = [SignedPackage.loads(row.payload) for row in OrmQ.objects.order_by("id")]
    assert [(t["func"], t["args"], t["name"]) for t in tasks] == [
        (dispatch.TASK, (run_id,), f"run-{run_id}") for run_id in (11, 12, 13)
    ]
    assert len({t["id"] for t in tasks}) == 3


def test_tasks_dispatched_in_a_transaction_that_rolls_back_are_gone_with_it():
    with pytest.raises(RuntimeError), transaction.atomic():
        dispatch.dispatch([11])
        raise RuntimeError("the fire's transaction failed")
    assert not OrmQ.objects.exists()


def test_nothing_to_dispatch_queues_nothing():
    assert dispatch.dispatch([]) == 0
    assert not OrmQ.objects.exists()


def test_the_broker_claims_a_batch_in_order_and_a_claimed_task_is_gone():
    dispatch.dispatch([11, 12, 13])
    broker = RunnerORM(list_key=dispatch.broker().list_key)
    claimed = broker.dequeue()
    assert [SignedPackage.loads(payload)["args"] for _id, payload in claimed] == [
        (11,),
        (12,),
        (13,),
    ]
    assert broker.dequeue() is None
    assert not OrmQ.objects.exists()


def test_the_broker_claims_at_most_its_bulk(monkeypatch):
    monkeypatch.setattr(Conf, "BULK", 2)
    dispatch.dispatch([11, 12, 13])
    broker = RunnerORM(list_key=dispatch.broker().list_key)
    assert len(broker.dequeue()) == 2
    assert len(broker.dequeue()) == 1
