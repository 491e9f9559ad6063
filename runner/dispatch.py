"""Hand runs to django-q2 workers: one task per up to ``RUNS_PER_TASK`` runs, naming
only the runs.

django-q2 delivers, the ``runs`` table decides: a task carries run ids, and the
worker that receives it starts a run only if ``Run.start`` moves it from ``pending``
to ``running``. So a task delivered twice, or dispatched again by the liveness check,
is harmless. A task carries several runs because each task costs a claim, a signed
package, two hand-offs between processes and a result (issue 12); few enough that
several worker hosts still share a burst.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from django.db import DatabaseError, transaction
from django.utils import timezone
from django_q.brokers import Broker, get_broker
from django_q.conf import Conf
from django_q.humanhash import uuid
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from django_q.tasks import async_task

logger = logging.getLogger(__name__)

TASK = "runner.tasks.run_task"  # one run: tasks queued before ``BATCH_TASK`` existed
BATCH_TASK = "runner.tasks.run_tasks"
RUNS_PER_TASK = 8
RESUME_TASK = "runner.tasks.resume_task"

_broker: tuple[int, Broker] | None = None


def broker() -> Broker:
    """This process's broker, made once per process (a forked child makes its own).

    Redis connections must not be shared across a fork, and get_broker() would
    otherwise open a new one for every task.
    """
    global _broker
    if _broker is None or _broker[0] != os.getpid():
        _broker = (os.getpid(), get_broker())
    return _broker[1]


def enqueue_in_transaction() -> bool:
    """True when tasks are rows in our own database (the ORM broker).

    Then a task can be written in the same transaction as its run: both become
    visible at commit, and a batch of fires costs one commit. A Redis task must be
    pushed after the commit, or a worker could look for a run not yet visible.
    """
    return bool(Conf.ORM) and Conf.ORM == "default"


def dispatch(run_ids: Iterable[int]) -> int:
    """Queue the runs, ``RUNS_PER_TASK`` a task; return how many runs were queued.

    Inside an atomic block with the ORM broker the tasks commit with it; with
    Redis they are pushed when the surrounding transaction commits. A broker
    error is logged, not raised: the runs stay ``pending`` and the liveness
    check dispatches them again.
    """
    ids = list(run_ids)
    if not ids:
        return 0
    if transaction.get_connection().in_atomic_block and not enqueue_in_transaction():
        transaction.on_commit(lambda: _enqueue(ids))
        return len(ids)
    return _enqueue(ids)


def dispatch_resume(resumes: Iterable[tuple[int, str]]) -> int:
    """Queue one resume task per ``(run id, dead worker)``; return how many were queued.

    For session runs whose worker is gone (see ``runner.liveness``): the task takes the
    run over from that worker only, so a duplicate delivery does nothing. A broker error
    is logged, not raised: the run stays ``running`` and the liveness check tries again.
    """
    queued = 0
    for run_id, holder in resumes:
        try:
            async_task(
                RESUME_TASK, run_id, holder=holder, task_name=f"resume-{run_id}", broker=broker()
            )
        except Exception:
            logger.exception("could not queue the resume of run %s; it will be tried again", run_id)
            continue
        queued += 1
    return queued


def _enqueue(run_ids: list[int]) -> int:
    batches = [run_ids[at : at + RUNS_PER_TASK] for at in range(0, len(run_ids), RUNS_PER_TASK)]
    if enqueue_in_transaction():
        return _enqueue_rows(batches)
    queued = 0
    for batch in batches:
        try:
            async_task(BATCH_TASK, batch, task_name=_task_name(batch), broker=broker())
        except Exception:
            logger.exception("could not queue runs %s; they will be dispatched again", batch)
            continue
        queued += len(batch)
    return queued


def _enqueue_rows(batches: list[list[int]]) -> int:
    """The ORM broker's enqueue for many tasks at once: one INSERT instead of one a task.

    Each row carries the package ``async_task`` would have signed for it, so the
    cluster's pusher claims and acknowledges it exactly as any other task.
    """
    now = timezone.now()
    key = broker().list_key or Conf.CLUSTER_NAME
    rows = [OrmQ(key=key, payload=_package(batch, now), lock=now) for batch in batches]
    runs = sum(len(batch) for batch in batches)
    try:
        OrmQ.objects.using(Conf.ORM).bulk_create(rows, batch_size=500)
    except DatabaseError:
        if transaction.get_connection().in_atomic_block:
            raise  # the caller's transaction is broken; it records and retries the fires
        logger.exception("could not queue %d runs; they will be dispatched again", runs)
        return 0
    return runs


def _task_name(batch: list[int]) -> str:
    return f"run-{batch[0]}" if len(batch) == 1 else f"runs-{batch[0]}-{batch[-1]}"


def _package(batch: list[int], now) -> str:
    """The signed task ``async_task(BATCH_TASK, batch, task_name=...)`` would enqueue."""
    _name, task_id = uuid()
    task = {
        "id": task_id,
        "name": _task_name(batch),
        "func": BATCH_TASK,
        "args": (batch,),
        "kwargs": {},
        "started": now,
    }
    if Conf.ACK_FAILURES:
        task["ack_failure"] = True
    return SignedPackage.dumps(task)
