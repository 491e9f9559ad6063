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
GROUP BY: runs by (job, status, trigger) from the covering index
``runs_job_status_trigger`` (an index-only scan), and one pass per histogram
that computes each row's value once and puts it in its bucket with one CASE,
the buckets made cumulative in Python. These are plain SQL: the ORM would
compute the fire lag again for every bound tried, and convert 40,000 groups
row by row. The per-job series are kept (one per job and status that
occurred): what a Prometheus user alerts on per job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, QuerySet
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
    triggers: dict[tuple[str, str], int] = defaultdict(int)
    # The runs_job_status_trigger index covers this, in its order: no table row is read,
    # nothing sorted. A plain cursor: 40,000 groups through the ORM cost more than the
    # query. Rows of one (job, status) are adjacent, one per trigger.
    last, count = None, 0
    with connection.cursor() as cursor:
        cursor.execute(_runs_by_job_sql())
        for job_id, status, trigger, n in cursor.fetchall():
            triggers[(trigger, status)] += n
            if (job_id, status) != last:
                if last is not None:
                    by_job.add_metric(list(last), count)
                last, count = (job_id, status), 0
            count += n
    if last is not None:
        by_job.add_metric(list(last), count)
    for trigger in RunTrigger.values:
        for status in FINAL_RUN_STATUSES:
            by_trigger.add_metric([trigger, status], triggers.get((trigger, status), 0))
    yield by_job
    yield by_trigger


_FINAL = ", ".join(f"'{status.value}'" for status in FINAL_RUN_STATUSES)
# SQLite plans without statistics (nothing here runs ANALYZE): it would pick the status
# index and sort, or read 100,000 rows through an index instead of scanning. PostgreSQL
# has its own statistics (autovacuum).
_RUNS_BY_JOB_FROM = {"sqlite": "runs INDEXED BY runs_job_status_trigger", "postgresql": "runs"}
_SCAN_FROM = {"sqlite": "runs NOT INDEXED", "postgresql": "runs"}


def _runs_by_job_sql() -> str:
    return (
        f"SELECT job_id, status, trigger, COUNT(*) FROM {_RUNS_BY_JOB_FROM[connection.vendor]} "
        f"WHERE status IN ({_FINAL}) GROUP BY job_id, status, trigger "
        "ORDER BY job_id, status, trigger"
    )


# Each histogram's value, computed once per row in an inner query that neither
# database may merge into the outer one (SQLite does not flatten a subquery with a
# LIMIT under an aggregate; PostgreSQL does not pull up one with an OFFSET): merged,
# the bucket CASE would compute it again for every bound it tries.
_KEEP_INNER = {"sqlite": "LIMIT -1 OFFSET 0", "postgresql": "OFFSET 0"}
_LAG_SECONDS = {
    "sqlite": "(julianday(started_at) - julianday(scheduled_for)) * 86400.0",
    "postgresql": "EXTRACT(EPOCH FROM (started_at - scheduled_for))::double precision",
}


def _histogram(value: str, where: str, bounds: tuple[float, ...]) -> tuple[list[int], float]:
    """Counts per bucket (not yet cumulative; the last is past every bound) and the sum
    of the positive values of ``value`` over the runs matching ``where``: one GROUP BY,
    one CASE per row."""
    cases = " ".join(f"WHEN v <= {float(bound)!r} THEN {i}" for i, bound in enumerate(bounds))
    sql = (
        f"SELECT CASE {cases} ELSE {len(bounds)} END, COUNT(*), "
        "SUM(CASE WHEN v > 0 THEN v ELSE 0 END) "
        f"FROM (SELECT {value} AS v FROM {_SCAN_FROM[connection.vendor]} WHERE {where} "
        f"{_KEEP_INNER[connection.vendor]}) "
        "AS x GROUP BY 1"
    )
    counts, total = [0] * (len(bounds) + 1), 0.0
    with connection.cursor() as cursor:
        cursor.execute(sql)
        for bucket, n, part in cursor.fetchall():
            counts[bucket] += n
            total += float(part or 0)
    return counts, total


def _cumulative(counts: list[int], labels: tuple[float, ...]) -> list[tuple[str, int]]:
    buckets, running = [], 0
    for label, n in zip(labels, counts, strict=False):
        running += n
        buckets.append((_le(label), running))
    buckets.append(("+Inf", running + counts[-1]))
    return buckets


def _duration_histogram() -> Metric:
    bounds_ms = tuple(float(round(bound * 1000)) for bound in DURATION_BUCKETS)
    where = f"status IN ({_FINAL}) AND duration_ms IS NOT NULL"
    counts, total_ms = _histogram("duration_ms", where, bounds_ms)
    return HistogramMetricFamily(
        "jeeves_run_duration_seconds",
        "Duration of the finished runs in the runs table.",
        buckets=_cumulative(counts, DURATION_BUCKETS),
        sum_value=total_ms / 1000,
    )


def _lag_histogram() -> Metric:
    # Early starts count as no lag: in the first bucket, and 0 in the sum.
    where = (
        f"trigger = '{RunTrigger.SCHEDULE.value}' AND scheduled_for IS NOT NULL "
        "AND started_at IS NOT NULL"
    )
    counts, total = _histogram(_LAG_SECONDS[connection.vendor], where, LAG_BUCKETS)
    return HistogramMetricFamily(
        "jeeves_run_fire_lag_seconds",
        "How long after its scheduled instant each scheduled run started.",
        buckets=_cumulative(counts, LAG_BUCKETS),
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
