"""Prometheus metrics derived from the database at every scrape (issue 16).

``RunnerCollector`` is a ``prometheus_client`` custom collector: it keeps no
state in the process, so every web process (and every host) serving
``/metrics`` gives the same answer, whichever worker process ran the runs.
Each scrape issues a fixed number of aggregate queries, whatever the number of
jobs:

* ``jeeves_runs_total{job,status}`` (counter): finished runs (ok, error,
  timeout, skipped) per job, counted over the runs table. Pruning old runs
  lowers it; Prometheus's ``rate``/``increase`` read a decrease as a counter
  reset, so rates stay right between prunes. Only non-zero pairs are exposed.
* ``jeeves_runs_by_trigger_total{trigger,status}`` (counter): the same runs by
  what started them (``schedule``, ``manual``, ``retry``), all jobs together;
  ``trigger="retry"`` counts retries (``runner.retries``) and how they ended.
* ``jeeves_run_duration_seconds`` (histogram): ``duration_ms`` of the finished
  runs in the table, all jobs together (one series per bucket, not per job).
* ``jeeves_run_fire_lag_seconds`` (histogram): ``started_at - scheduled_for``
  of the runs the schedule fired (trigger ``schedule``) that have started;
  how late a worker began a fire. A run started early counts as 0.
* ``jeeves_runs_running`` / ``jeeves_runs_pending`` (gauges): unfinished runs.
* ``jeeves_queue_items{queue,status}`` (gauge): pending (the depth), claimed
  and failed items per queue.
* ``jeeves_scheduler_heartbeat_age_seconds`` (gauge): seconds since the most
  recent beat of any scheduler; absent when no scheduler ever beat.
* ``jeeves_incidents_open{kind}`` (gauge): open incidents (``runner.incidents``)
  by kind, ``failing``, ``late`` and ``slow``: the alerts open.
* ``jeeves_schedulers_alive`` (gauge): schedulers heard within the liveness
  timeout, as ``/api/status`` counts them.

Both histograms are cumulative over the runs the table holds, like the
counter; use ``histogram_quantile`` over ``rate(..._bucket[5m])``.

Cost (issue 16, bench M1): the runs table is read in three passes, each one
GROUP BY with a single ``CASE`` per row: runs by (job, status, trigger) from the
covering index ``runs_job_status_trigger`` (an index-only scan), and one pass
per histogram that puts each row in its bucket, the buckets made cumulative in
Python. The per-job series are kept (one per job and status that occurred):
what a Prometheus user alerts on per job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import (
    Case,
    Count,
    F,
    FloatField,
    Func,
    IntegerField,
    Max,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.lookups import GreaterThan, LessThanOrEqual
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from queues.models import ItemStatus, QueueItem
from runner.models import (
    FINAL_RUN_STATUSES,
    Incident,
    IncidentKind,
    Run,
    RunStatus,
    RunTrigger,
    SchedulerHeartbeat,
)

# Upper bounds in seconds; +Inf is added.
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600)
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
QUEUE_STATUSES = (ItemStatus.PENDING, ItemStatus.CLAIMED, ItemStatus.FAILED)
# The parts of a scrape that take no argument, by name (bench/m1_metrics_scrape.py times each).
PARTS = (
    "_runs_total", "_duration_histogram", "_lag_histogram", "_active_runs", "_queue_items",
    "_open_incidents",
)  # fmt: skip


class RunnerCollector(Collector):
    """Collects every metric above from the database; ``now`` is injectable for tests."""

    def __init__(self, now: Callable[[], datetime] = timezone.now) -> None:
        self._now = now

    def collect(self) -> Iterator[Metric]:
        """One pass of aggregate queries (see the module docstring)."""
        moment = self._now()
        yield from _runs_total()
        yield _duration_histogram()
        yield _lag_histogram()
        yield from _active_runs()
        yield _queue_items()
        yield _open_incidents()
        yield from _schedulers(moment)


def _runs_total() -> Iterator[Metric]:
    by_job = CounterMetricFamily(
        "jeeves_runs",
        "Finished runs in the runs table, by job and status.",
        labels=["job", "status"],
    )
    by_trigger = CounterMetricFamily(
        "jeeves_runs_by_trigger",
        "Finished runs in the runs table, by trigger (schedule, manual, retry) and status.",
        labels=["trigger", "status"],
    )
    # The runs_job_status_trigger index covers this: no table row is read.
    rows = (
        Run.objects.filter(status__in=FINAL_RUN_STATUSES)
        .order_by()
        .values_list("job_id", "status", "trigger")
        .annotate(n=Count("*"))
    )
    jobs: dict[tuple[str, str], int] = defaultdict(int)
    triggers: dict[tuple[str, str], int] = defaultdict(int)
    for job_id, status, trigger, n in rows:
        jobs[(job_id, status)] += n
        triggers[(trigger, status)] += n
    for key in sorted(jobs):
        by_job.add_metric(list(key), jobs[key])
    for trigger in RunTrigger.values:
        for status in FINAL_RUN_STATUSES:
            by_trigger.add_metric([trigger, status], triggers.get((trigger, status), 0))
    yield by_job
    yield by_trigger


def _bucketed(
    runs: QuerySet, value, bounds: tuple[float, ...], labels: tuple[float, ...], total
) -> tuple[list, float]:
    """Cumulative ``(le, count)`` buckets (``bounds`` compared with ``value``, ``labels``
    their ``le`` in seconds) and the sum ``total`` over ``runs``, in one
    GROUP BY: each row gets the index of the first bucket it fits (one CASE, evaluated
    until its first match), the counts are then made cumulative here."""
    index = Case(
        *[When(LessThanOrEqual(value, bound), then=Value(i)) for i, bound in enumerate(bounds)],
        default=Value(len(bounds)),
        output_field=IntegerField(),
    )
    rows = runs.order_by().annotate(bucket=index).values("bucket").annotate(n=Count("*"), s=total)
    counts = [0] * (len(bounds) + 1)
    grand = 0.0
    for row in rows:
        counts[row["bucket"]] += row["n"]
        grand += float(row["s"] or 0)
    buckets, running = [], 0
    for i, label in enumerate(labels):
        running += counts[i]
        buckets.append((_le(label), running))
    buckets.append(("+Inf", running + counts[-1]))
    return buckets, grand


def _duration_histogram() -> Metric:
    runs = Run.objects.filter(status__in=FINAL_RUN_STATUSES, duration_ms__isnull=False)
    bounds_ms = tuple(round(bound * 1000) for bound in DURATION_BUCKETS)
    buckets, total_ms = _bucketed(
        runs, F("duration_ms"), bounds_ms, DURATION_BUCKETS, Sum("duration_ms")
    )
    return HistogramMetricFamily(
        "jeeves_run_duration_seconds",
        "Duration of the finished runs in the runs table.",
        buckets=buckets,
        sum_value=total_ms / 1000,
    )


class _LagSeconds(Func):
    """``started_at - scheduled_for`` in seconds (float), computed natively by each database.

    Django's own datetime arithmetic calls a Python function per row on SQLite, which
    made this histogram the slowest part of a scrape; ``julianday`` and ``EXTRACT``
    stay in the database engine.
    """

    output_field = FloatField()

    def __init__(self) -> None:
        super().__init__(F("started_at"), F("scheduled_for"))

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s)) * 86400.0)",
            arg_joiner=") - julianday(",
            **extra,
        )

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler,
            connection,
            template="EXTRACT(EPOCH FROM (%(expressions)s))::double precision",
            arg_joiner=" - ",
            **extra,
        )


def _lag_histogram() -> Metric:
    runs = Run.objects.filter(
        trigger=RunTrigger.SCHEDULE, scheduled_for__isnull=False, started_at__isnull=False
    )
    # Early starts count as no lag: the sum adds only the late ones.
    late = Sum(
        Case(
            When(GreaterThan(_LagSeconds(), 0.0), then=_LagSeconds()),
            default=Value(0.0),
            output_field=FloatField(),
        )
    )
    bounds = tuple(map(float, LAG_BUCKETS))
    buckets, total = _bucketed(runs, _LagSeconds(), bounds, LAG_BUCKETS, late)
    return HistogramMetricFamily(
        "jeeves_run_fire_lag_seconds",
        "How long after its scheduled instant each scheduled run started.",
        buckets=buckets,
        sum_value=total,
    )


def _active_runs() -> Iterator[Metric]:
    counts = dict(
        Run.objects.filter(status__in=(RunStatus.RUNNING, RunStatus.PENDING))
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    )
    yield GaugeMetricFamily(
        "jeeves_runs_running", "Runs a worker is running now.", value=counts.get("running", 0)
    )
    yield GaugeMetricFamily(
        "jeeves_runs_pending", "Runs waiting for a worker.", value=counts.get("pending", 0)
    )


def _queue_items() -> Metric:
    family = GaugeMetricFamily(
        "jeeves_queue_items",
        "Queue items by status: pending (the depth), claimed and failed.",
        labels=["queue", "status"],
    )
    return _add_counts(family, QueueItem.objects.filter(status__in=QUEUE_STATUSES), "queue_id")


def _add_counts(family: Metric, rows: QuerySet, owner: str) -> Metric:
    """Add one sample per (``owner``, status) of ``rows`` to ``family``: their count,
    in one GROUP BY, sorted so a scrape reads the same from run to run."""
    counts = rows.order_by().values_list(owner, "status").annotate(n=Count("id"))
    for key, status, n in sorted(counts):
        family.add_metric([key, status], n)
    return family


def _open_incidents() -> Metric:
    family = GaugeMetricFamily(
        "jeeves_incidents_open", "Open incidents (alerts raised or pending).", labels=["kind"]
    )
    counts = dict(
        Incident.objects.filter(closed_at__isnull=True)
        .order_by()
        .values_list("kind")
        .annotate(n=Count("id"))
    )
    for kind in IncidentKind.values:
        family.add_metric([kind], counts.get(kind, 0))
    return family


def _schedulers(moment: datetime) -> Iterator[Metric]:
    silence = timedelta(milliseconds=settings.RUNNER.liveness_timeout_ms)
    alive = SchedulerHeartbeat.heard_since(moment - silence).count()
    yield GaugeMetricFamily(
        "jeeves_schedulers_alive", "Schedulers heard within the liveness timeout.", value=alive
    )
    last = SchedulerHeartbeat.objects.aggregate(last=Max("seen_at"))["last"]
    age = GaugeMetricFamily(
        "jeeves_scheduler_heartbeat_age_seconds",
        "Seconds since any scheduler last wrote its heartbeat.",
    )
    if last is not None:
        age.add_metric([], max(0.0, (moment - last).total_seconds()))
    yield age


def _le(bound: float) -> str:
    return str(float(bound))
