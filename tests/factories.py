"""factory-boy factories for every model."""

from __future__ import annotations

import factory

from queues.models import Queue, QueueItem
from runner.models import Job, Run
from statestore.models import StateEntry, StateItem


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    id = factory.Sequence(lambda n: f"job-{n}")
    name = factory.LazyAttribute(lambda job: f"Job {job.id}")
    schedule = "*/5 * * * *"
    script = "echo hello"
    source_type = "inline"


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Run

    job = factory.SubFactory(JobFactory)
    trigger = "manual"


class StateEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StateEntry

    namespace = "ns"
    key = factory.Sequence(lambda n: f"key-{n}")
    value = {"cursor": 1}


class StateItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StateItem

    namespace = "ns"
    key = "seen"
    item_key = factory.Sequence(lambda n: f"item-{n}")


class QueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Queue

    id = factory.Sequence(lambda n: f"queue-{n}")
    name = factory.LazyAttribute(lambda queue: queue.id)


class QueueItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = QueueItem

    queue = factory.SubFactory(QueueFactory)
    payload = factory.Sequence(lambda n: {"n": n})
