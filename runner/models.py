"""Jobs and their runs: the ``jobs`` and ``runs`` tables."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone as django_timezone

from runner import schedule, validation
from statestore.values import replace_surrogates

logger = logging.getLogger(__name__)


class JobType(models.TextChoices):
    SCRIPT = "script", "script"
    SESSION = "session", "session"


class SourceType(models.TextChoices):
    PATH = "path", "path"
    INLINE = "inline", "inline"


class OverlapPolicy(models.TextChoices):
    SKIP = "skip", "skip"
    ALLOW = "allow", "allow"


class MissedFirePolicy(models.TextChoices):
    SKIP = "skip", "skip"
    LATEST = "latest", "latest"
    ALL = "all", "all"


class Thinking(models.TextChoices):
    LOW = "low", "low"
    MEDIUM = "medium", "medium"
    HIGH = "high", "high"


class RunStatus(models.TextChoices):
    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    OK = "ok", "ok"
    ERROR = "error", "error"
    TIMEOUT = "timeout", "timeout"
    SKIPPED = "skipped", "skipped"


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", "schedule"
    MANUAL = "manual", "manual"
    RETRY = "retry", "retry"  # a failed run tried again (``runner.retries``)


ACTIVE_RUN_STATUSES = (RunStatus.PENDING, RunStatus.RUNNING)
FINAL_RUN_STATUSES = (RunStatus.OK, RunStatus.ERROR, RunStatus.TIMEOUT, RunStatus.SKIPPED)
# Runs that did not run: a missed fire's skip, and the next run, pending. The console's
# "last status" is of the newest other run (the index runs_job_newest_ran).
NOT_RAN_STATUSES = (RunStatus.SKIPPED, RunStatus.PENDING)


class StartResult(models.TextChoices):
    """What became of a delivery that tried to start a run."""

    STARTED = "started"
    SKIPPED = "skipped"
    GONE = "gone"  # already started, finished or deleted: another delivery won
    # A catch-up run behind its job's running run or an older catch-up run: it stays
    # pending, holds nothing, and is dispatched again when its turn comes (runner.catchup).
    WAITING = "waiting"


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, as the executor reports it to ``Run.finish``."""

    status: str
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    output_truncated: bool = False
    tokens: int | None = None
    result_meta: dict | None = None
    error: str = ""

    def storable(self) -> RunOutcome:
        """This outcome with every NUL character (and lone surrogate) replaced by U+FFFD.

        PostgreSQL's text and jsonb refuse NUL, and a script may print one (or send
        ``\\u0000`` in its JR_RESULT line); SQLite would store it, so both agree on this.
        """
        return replace(
            self,
            stdout=_without_nul(self.stdout),
            stderr=_without_nul(self.stderr),
            error=_without_nul(self.error),
            result_meta=_without_nul(self.result_meta),
        )


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):  # a lone surrogate (a JR_RESULT "\ud800") goes the same way
        return replace_surrogates(value.replace("\x00", "\ufffd"))
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


job_id_validator = RegexValidator(
    r"\A[A-Za-z0-9][A-Za-z0-9._-]*\Z",  # \Z, not $: "$" also matches before a final newline
    "use letters, digits, '.', '_' and '-', starting with a letter or digit",
)


def _in_choices(field: str, choices: type[models.TextChoices]) -> Q:
    return Q(**{f"{field}__in": choices.values})


# What decides when a job fires: changing one of these (or enabling the job) starts
# its schedule afresh, and missed fires are counted from then (``schedule_effective_at``).
TIMING_FIELDS = ("schedule", "timezone", "enabled")


class JobQuerySet(models.QuerySet):
    """Jobs; ``update`` keeps ``schedule_effective_at`` true, as ``Job.save`` does."""

    def update(self, **fields: Any) -> int:
        """As ``QuerySet.update``; a row whose schedule or zone changes, or that goes from
        disabled to enabled, gets ``schedule_effective_at`` = now (rows already so keep theirs)."""
        if "schedule_effective_at" not in fields:
            starts = _starts_afresh(fields)
            if starts is not None:
                fields["schedule_effective_at"] = Case(
                    When(starts, then=Value(django_timezone.now())),
                    default=F("schedule_effective_at"),
                )
        return super().update(**fields)


def _starts_afresh(fields: dict[str, Any]) -> Q | None:
    """The rows whose timing this update changes; None when it changes no row's."""
    changes = []
    for name in ("schedule", "timezone"):
        if name in fields:
            value = fields[name]
            expression = hasattr(value, "resolve_expression")
            changes.append(Q(pk__isnull=False) if expression else ~Q(**{name: value}))
    enabled = fields.get("enabled")
    if enabled is True or hasattr(enabled, "resolve_expression"):
        changes.append(Q(enabled=False))
    if not changes:
        return None
    condition = changes[0]
    for change in changes[1:]:
        condition |= change
    return condition


class Job(models.Model):
    """A cron schedule plus something to run: a script, or a session prompt."""

    id = models.CharField(primary_key=True, max_length=200, validators=[job_id_validator])
    name = models.CharField(max_length=200, validators=[validation.validate_printable_name])
    description = models.TextField(blank=True, default="")
    type = models.CharField(max_length=16, choices=JobType.choices, default=JobType.SCRIPT)
    schedule = models.TextField(
        validators=[validation.validate_schedule],
        help_text="Cron (5 fields, or 6 with seconds first), or the original runner's "
        'recurrence object as JSON, e.g. {"freq": "minutely", "interval": 11, '
        '"timezone": "America/Chicago"}.',
    )
    timezone = models.CharField(
        max_length=64,
        blank=True,
        default="",
        validators=[validation.validate_timezone],
        help_text="IANA zone for the schedule; blank means the server's zone.",
    )
    script = models.TextField(help_text="A script path, inline script text, or a session prompt.")
    source_type = models.CharField(
        max_length=16, choices=SourceType.choices, default=SourceType.PATH
    )
    interpreter = models.CharField(
        max_length=200,
        blank=True,
        default="",
        validators=[validation.validate_interpreter],
        help_text="Runs inline scripts without #! and files with no runners entry (e.g. "
        "node, as the original runner did). Blank: bash for inline scripts, and a file "
        "with no runners entry must be executable.",
    )
    enabled = models.BooleanField(default=True)
    timeout_ms = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(validation.MAX_TIMEOUT_MS)],
        help_text="Blank: no timeout; at most a year.",
    )
    overlap_policy = models.CharField(
        max_length=16, choices=OverlapPolicy.choices, default=OverlapPolicy.SKIP
    )
    missed_fire_policy = models.CharField(
        max_length=16, choices=MissedFirePolicy.choices, default=MissedFirePolicy.SKIP
    )
    thinking = models.CharField(
        max_length=16,
        choices=Thinking.choices,
        default=Thinking.LOW,
        help_text="Session jobs: the agent's thinking level.",
    )
    on_failure = models.CharField(max_length=200, blank=True, default="")
    on_success = models.CharField(max_length=200, blank=True, default="")
    output_channel = models.CharField(max_length=200, blank=True, default="")
    env = models.JSONField(default=dict, blank=True, validators=[validation.validate_env])
    args = models.JSONField(default=list, blank=True, validators=[validation.validate_args])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    schedule_effective_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text=(
            "When the current schedule took effect: set on creation, on a change of "
            "schedule or zone, and on enabling. Missed fires count from here, never "
            "from before. Blank (rows older than this field): the creation time."
        ),
    )

    alert_after_failures = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(validation.MAX_ALERT_AFTER_FAILURES)],
        help_text="Post a failure alert once this many runs in a row have failed (1: at once; "
        "at most 10,000).",
    )
    alert_reminder_hours = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(validation.MAX_REMINDER_HOURS)],
        help_text=(
            "While an incident stays open, repeat its alert with the count at least this "
            "many hours after the last post (0: no reminders; at most a year)."
        ),
    )
    late_grace_s = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(60), MaxValueValidator(validation.MAX_LATE_GRACE_S)],
        help_text=(
            "Seconds past a due fire with no run before a 'late' alert. Blank: one "
            "schedule period plus 1 minute, at least 5 minutes. 60 s to 30 days."
        ),
    )
    slow_factor = models.FloatField(
        default=3.0,
        validators=[validation.validate_slow_factor],
        help_text=(
            "A running run is 'slow' past this many times its job's p95 duration (of "
            "the last 50 ok runs, once there are 10). 0: no slow alerts; else 1 to 1000."
        ),
    )
    retries = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(validation.MAX_RETRIES)],
        help_text="How many times a failed or timed-out run is tried again (0 to 10).",
    )
    retry_backoff_s = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(validation.MAX_RETRY_BACKOFF_S)],
        help_text=(
            "Seconds before the first retry, doubling for each further one, at most "
            "an hour between two attempts (1 s to 1 hour)."
        ),
    )
    webhook_url = models.CharField(
        max_length=2000,
        blank=True,
        default="",
        validators=[validation.validate_webhook_url],
        help_text=(
            "http(s) URL that gets each alert as JSON (see README, Webhook). Blank: "
            "notifications.webhookUrl, if set."
        ),
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        db_table = "jobs"
        ordering = ["id"]
        # Starting a run executes the job's command: a right of its own, apart from
        # editing the job (the admin's Run now and the API's trigger both need it).
        permissions = [("run_job", "Can run a job now")]
        constraints = [
            models.CheckConstraint(condition=_in_choices("type", JobType), name="jobs_type_valid"),
            models.CheckConstraint(
                condition=_in_choices("source_type", SourceType), name="jobs_source_type_valid"
            ),
            models.CheckConstraint(
                condition=_in_choices("overlap_policy", OverlapPolicy),
                name="jobs_overlap_policy_valid",
            ),
            models.CheckConstraint(
                condition=_in_choices("missed_fire_policy", MissedFirePolicy),
                name="jobs_missed_fire_policy_valid",
            ),
            models.CheckConstraint(
                condition=_in_choices("thinking", Thinking), name="jobs_thinking_valid"
            ),
            models.CheckConstraint(
                condition=Q(timeout_ms__isnull=True) | Q(timeout_ms__gte=1),
                name="jobs_timeout_positive",
            ),
            models.CheckConstraint(condition=~Q(schedule=""), name="jobs_schedule_not_empty"),
        ]

    def __str__(self) -> str:
        return self.id

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save; a new job, a changed schedule or zone, or enabling moves
        ``schedule_effective_at`` to now (see ``TIMING_FIELDS``)."""
        if self._timing_changed():
            self.schedule_effective_at = django_timezone.now()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "schedule_effective_at"}
        super().save(*args, **kwargs)
        self._timing_loaded = _timing(self)

    @classmethod
    def from_db(cls, db, field_names, values):
        job = super().from_db(db, field_names, values)
        job._timing_loaded = _timing(job)
        return job

    def _timing_changed(self) -> bool:
        loaded = getattr(self, "_timing_loaded", None)
        if self._state.adding or loaded is None:
            return True
        schedule_, zone, enabled = loaded
        now_schedule, now_zone, now_enabled = _timing(self)
        return (schedule_, zone) != (now_schedule, now_zone) or (now_enabled and not enabled)

    def clean(self) -> None:
        """Cross-field rules: what the script must be for this type and source.

        Also the type of an empty ``env`` or ``args``: field validators skip empty
        values, so ``[]`` as env or ``{}`` as args would otherwise be stored.
        """
        stored = (models.CharField, models.TextField, models.JSONField)
        validation.validate_storable(
            {
                field.name: getattr(self, field.name)
                for field in self._meta.concrete_fields
                if isinstance(field, stored)
            }
        )
        validation.validate_empty_json_types(self.env, self.args)
        validation.validate_script(self.type, self.source_type, self.script)
        self.schedule = validation.normalized_schedule(self.schedule)

    def warnings(self) -> list[str]:
        """What is accepted but will not work yet (a script file that does not exist)."""
        return validation.script_warnings(self.type, self.source_type, self.script)

    @property
    def zone_name(self) -> str:
        """The job's IANA zone, or the server's when it names none."""
        return self.timezone or settings.TIME_ZONE

    def next_fire_after(self, moment: datetime) -> datetime:
        """The first instant after ``moment`` at which this job's schedule fires (UTC)."""
        return schedule.next_fire_after(self.schedule, self.zone_name, moment)


def _timing(job: Job) -> tuple[str, str, bool] | None:
    """The job's timing fields, or None when some were not loaded (``only()``/``defer()``)."""
    if any(name in job.get_deferred_fields() for name in TIMING_FIELDS):
        return None
    return (job.schedule, job.timezone, job.enabled)


class Run(models.Model):
    """One execution of a job: what triggered it, when, and how it ended."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    trigger = models.CharField(
        max_length=16, choices=RunTrigger.choices, default=RunTrigger.SCHEDULE
    )
    scheduled_for = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, default="")
    duration_ms = models.BigIntegerField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    stdout = models.TextField(blank=True, default="")
    stderr = models.TextField(blank=True, default="")
    stdout_bytes = models.BigIntegerField(default=0)
    stderr_bytes = models.BigIntegerField(default=0)
    output_truncated = models.BooleanField(default=False)
    tokens = models.BigIntegerField(null=True, blank=True)
    result_meta = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    notes = models.TextField(
        blank=True,
        default="",
        help_text="What the runner wants a reader to know that is not an error, e.g. a "
        "manual run that started beside a running one.",
    )
    retry_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The failed run this one tries again (trigger retry).",
    )
    attempt = models.PositiveSmallIntegerField(
        default=1, db_default=1, help_text="1 for a first try, 2 for its first retry, ..."
    )
    catch_up = models.BooleanField(
        default=False,
        db_default=False,
        help_text="A run for a fire missed while no scheduler ran (missed-fire policy all), "
        "or a retry of one: under overlap skip it waits for its turn instead of being "
        "skipped (runner.catchup).",
    )
    # Not a column: whether the job had an open incident when ``finish`` recorded this
    # run, read by the same statement (``runner.incidents.record``); None: not read.
    job_had_open_incident: bool | None = None

    class Meta:
        db_table = "runs"
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=_in_choices("status", RunStatus), name="runs_status_valid"
            ),
            models.CheckConstraint(
                condition=_in_choices("trigger", RunTrigger), name="runs_trigger_valid"
            ),
            models.CheckConstraint(
                condition=Q(duration_ms__isnull=True) | Q(duration_ms__gte=0),
                name="runs_duration_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(stdout_bytes__gte=0) & Q(stderr_bytes__gte=0),
                name="runs_output_bytes_not_negative",
            ),
            # Exactly-once: one run per (job, scheduled instant), whichever
            # scheduler process inserts it first.
            models.UniqueConstraint(
                fields=["job", "scheduled_for"],
                condition=Q(trigger="schedule"),
                name="runs_one_per_scheduled_fire",
            ),
            # Exactly-once retries: one retry per failed run, whichever process
            # records it first (``runner.retries``).
            models.UniqueConstraint(fields=["retry_of"], name="runs_one_retry_per_run"),
        ]
        indexes = [
            # Job detail, last-status annotations, API `runs?limit=`.
            models.Index(fields=["job", "-id"], name="runs_job_newest"),
            # The job list's last run that ran, and its last skip, beside each other.
            models.Index(
                fields=["job", "-id"],
                condition=~Q(status__in=NOT_RAN_STATUSES),
                name="runs_job_newest_ran",
            ),
            models.Index(
                fields=["job", "-id"], condition=Q(status="skipped"), name="runs_job_newest_skipped"
            ),
            # Status filter in the admin and the health counts.
            models.Index(fields=["status", "-id"], name="runs_status_newest"),
            # Liveness and re-dispatch scans touch only unfinished runs.
            models.Index(
                fields=["status", "heartbeat_at"],
                condition=Q(status__in=["pending", "running"]),
                name="runs_active",
            ),
            # Retention pruning and "ok/errors in the last hour".
            models.Index(fields=["finished_at"], name="runs_finished_at"),
            # /metrics' runs by job, status and trigger: an index-only scan (runner.metrics).
            models.Index(fields=["job", "status", "trigger"], name="runs_job_status_trigger"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} #{self.pk} ({self.status})"

    @classmethod
    def create_scheduled(cls, job: Job, scheduled_for: datetime) -> Run | None:
        """Record the fire of ``job`` at ``scheduled_for``; None if it is recorded already.

        The unique (job, scheduled_for) constraint makes this the exactly-once
        point: of two schedulers inserting the same fire, one gets None.
        """
        try:
            with transaction.atomic():
                return cls.objects.create(
                    job=job, trigger=RunTrigger.SCHEDULE, scheduled_for=scheduled_for
                )
        except IntegrityError:
            return None

    @classmethod
    def load(cls, run_id: int) -> Run | None:
        """The run with its job, as a worker reads it; None if either is gone.

        One plain statement made once: compiling ``select_related("job")`` cost the
        worker about three times as much CPU as running it (issue 12's profile).
        """
        return cls.load_many([run_id]).get(int(run_id))

    @classmethod
    def load_many(cls, run_ids: list[int]) -> dict[int, Run]:
        """``load`` for several runs in one statement (a task's runs): each run found,
        with its job, by id; a run or job gone is left out."""
        loaded: dict[int, Run] = {}
        ids = [int(run_id) for run_id in run_ids]
        for chunk in range(0, len(ids), _INSERT_CHUNK):
            part = ids[chunk : chunk + _INSERT_CHUNK]
            sql, run_loader, job_loader = _run_with_job_loader(connection.vendor, len(part))
            with connection.cursor() as cursor:
                cursor.execute(sql, part)
                rows = cursor.fetchall()
            width = len(run_loader[1])
            for row in rows:
                run = _from_row(cls, run_loader[2], row[:width])
                run.job = _from_row(Job, job_loader[2], row[width:])
                loaded[run.pk] = run
        return loaded

    @classmethod
    def create_scheduled_many(
        cls, fires: list[tuple[str, datetime]], now: datetime
    ) -> dict[tuple[str, datetime], int]:
        """Record many ``(job id, instant)`` fires in one statement per chunk.

        Returns the new run's id for each fire this call inserted; a fire recorded
        already (by another scheduler: the unique (job, scheduled_for) constraint) is
        left out, as ``create_scheduled`` returns None for it. A job deleted meanwhile
        raises IntegrityError, at the latest when the caller's transaction commits.
        """
        inserted: dict[tuple[str, datetime], int] = {}
        adapt = connection.ops.adapt_datetimefield_value
        created = adapt(now)
        for start in range(0, len(fires), _INSERT_CHUNK):
            chunk = fires[start : start + _INSERT_CHUNK]
            sent = {(job_id, _utc(at)): (job_id, at) for job_id, at in chunk}
            params = [value for job_id, at in chunk for value in (job_id, adapt(at), created)]
            with connection.cursor() as cursor:
                cursor.execute(_insert_scheduled_sql(connection.vendor, len(chunk)), params)
                for run_id, job_id, at in cursor.fetchall():
                    inserted[sent[(job_id, _utc(at))]] = run_id
        return inserted

    @classmethod
    def create_manual(cls, job: Job, now: datetime) -> Run:
        """Record a run of ``job`` asked for by hand at ``now`` (its lag is then the
        time it took to start)."""
        return cls.objects.create(job=job, trigger=RunTrigger.MANUAL, scheduled_for=now)

    def start(self, worker: str, now: datetime) -> StartResult:
        """Move this run from pending to running for ``worker``, if it is still pending.

        Only the delivery whose conditional update succeeds runs the job; a
        re-delivered task gets GONE. A scheduled run (or a retry, ``runner.retries``) of
        a job with overlap policy ``skip`` starts only when no run of its job is
        running and no catch-up run for an earlier instant is still waiting
        (README, "Missed fires"); otherwise a catch-up run stays pending and gets
        WAITING (``runner.catchup`` dispatches it again when its turn comes), and any
        other gets a ``skipped`` run saying which run it gave way to. This holds across
        workers and hosts. A manual run always starts, as in the original
        runner (overlap ``skip`` applies to scheduled fires), and its ``notes`` say so
        when another run of a skip job was going (for a scheduled run they stay empty:
        it starts only when none is).

        One statement when the run can start: on SQLite a write statement holds the
        database's write lock from its start; on PostgreSQL the job row is locked
        first, so the overlap check sees every committed start.
        """
        if connection.vendor == "sqlite":
            changed = self._start_statement(worker, now)
        else:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(_lock_jobs_sql(1), [self.job_id])
                changed = self._start_statement(worker, now)
        if not changed:
            return self._start_or_skip(worker, now)
        # What we wrote is what the row holds: no need to read it back.
        self.status, self.started_at, self.heartbeat_at, self.worker = (
            RunStatus.RUNNING, now, now, worker,
        )  # fmt: skip
        return StartResult.STARTED

    @classmethod
    def start_many(cls, runs: list[Run], worker: str, now: datetime) -> dict[int, StartResult]:
        """``start`` for runs due together, in one statement; what became of each, by id.

        A burst of fires at one instant (100 jobs every second, 200 on the minute)
        would otherwise take the write lock once a run, one after the other, while the
        last of them waits (issue 12). Runs of distinct jobs start in one conditional
        UPDATE with the same conditions as ``start`` (on PostgreSQL after locking their
        jobs' rows, in id order, so two hosts cannot deadlock); a run that did not
        start there, or whose job has another run in the batch, goes through ``start``
        alone, which decides gone, skipped or started as it always does. ``runs`` must be
        distinct runs: the answer has one entry a run (the pool drops a second delivery).
        """
        by_job: dict[str, int] = {}
        for run in runs:
            by_job[run.job_id] = by_job.get(run.job_id, 0) + 1
        together = [run for run in runs if by_job[run.job_id] == 1]
        results: dict[int, StartResult] = {}
        if len(together) > 1:
            notes = cls._start_together(together, worker, now)
            for run in together:
                if run.pk in notes:
                    run.notes = notes[run.pk]
                    run.status, run.started_at, run.heartbeat_at, run.worker = (
                        RunStatus.RUNNING, now, now, worker,
                    )  # fmt: skip
                    results[run.pk] = StartResult.STARTED
        for run in runs:
            if run.pk not in results:
                try:
                    results[run.pk] = run.start(worker, now)
                except Exception:  # its own transaction: not started; the others were
                    logger.exception("run %s could not be started", run.pk)
        return results

    @staticmethod
    def _start_together(runs: list[Run], worker: str, now: datetime) -> dict[int, str]:
        """The batch's one UPDATE; the notes of each run it started, by id."""
        ids = [run.pk for run in runs]
        started: dict[int, str] = {}
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor != "sqlite":
                job_ids = sorted({run.job_id for run in runs})
                cursor.execute(_lock_jobs_sql(len(job_ids)), job_ids)
            for chunk in range(0, len(ids), _INSERT_CHUNK):
                part = ids[chunk : chunk + _INSERT_CHUNK]
                cursor.execute(_start_many_sql(len(part)), [*_adapt_times(now, now), worker, *part])
                started.update(cursor.fetchall())
        return started

    def _start_statement(self, worker: str, now: datetime) -> int:
        with connection.cursor() as cursor:
            cursor.execute(_START_SQL, [*_adapt_times(now, now), worker, self.pk])
            row = cursor.fetchone()
        if row is not None:
            self.notes = row[0]
        return row is not None

    def _start_or_skip(self, worker: str, now: datetime) -> StartResult:
        """The start that did not happen in one statement: gone, waiting, skipped, or (a
        sibling finished meanwhile) started after all; decided under the job's row lock."""
        with transaction.atomic():
            job = Job.objects.select_for_update(no_key=True).filter(pk=self.job_id).first()
            if job is None:
                return StartResult.GONE
            pending = Run.objects.filter(pk=self.pk, status=RunStatus.PENDING)
            # A retry obeys overlap as the fire it retries did; only a manual run does not.
            blocker = self._overlap_blocker(job) if self.trigger != RunTrigger.MANUAL else None
            if blocker is not None and self.catch_up:
                return StartResult.WAITING if pending.exists() else StartResult.GONE
            if blocker is not None:
                changed = pending.update(
                    status=RunStatus.SKIPPED,
                    finished_at=now,
                    worker=worker,
                    error=f"skipped: {blocker} (overlap skip)",
                )
                return StartResult.SKIPPED if changed else StartResult.GONE
            changed = pending.update(
                status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker
            )
        if not changed:
            return StartResult.GONE
        self.status, self.started_at, self.heartbeat_at, self.worker = (
            RunStatus.RUNNING, now, now, worker,
        )  # fmt: skip
        return StartResult.STARTED

    def _overlap_blocker(self, job: Job) -> str | None:
        """Which run this one must give way to under overlap ``skip``: a running run of
        its job, else a catch-up run for an earlier instant still waiting; None if none."""
        if job.overlap_policy != OverlapPolicy.SKIP:
            return None
        running = job.runs.filter(status=RunStatus.RUNNING).exclude(pk=self.pk)
        busy = running.values_list("pk", flat=True).first()
        if busy is not None:
            return f"run #{busy} of this job is still running"
        if self.scheduled_for is None:
            return None
        waiting = job.runs.filter(
            status=RunStatus.PENDING, catch_up=True, scheduled_for__lt=self.scheduled_for
        ).order_by("scheduled_for")
        first = waiting.values_list("pk", "scheduled_for").first()
        if first is None:
            return None
        return (
            f"run #{first[0]} of this job, catching up on its missed fire at "
            f"{first[1].strftime('%Y-%m-%dT%H:%M:%SZ')}, waits to run first"
        )

    def beat(self, now: datetime) -> bool:
        """Record that this run's worker is alive; False once the run is no longer ours."""
        return bool(
            Run.objects.filter(pk=self.pk, status=RunStatus.RUNNING, worker=self.worker).update(
                heartbeat_at=now
            )
        )

    @classmethod
    def beat_many(
        cls, worker: str, run_ids: list[int], now: datetime, tails: dict[int, tuple[str, str]]
    ) -> set[int]:
        """Heartbeat ``run_ids`` of ``worker`` in one statement, and write current output.

        ``tails`` maps some of the runs to their current ``(stdout, stderr)`` tails (the
        live output a run page shows; ``finish`` replaces them with the final record).
        Only runs still ``running`` for ``worker`` change, so a finished run, or one
        taken over, is never overwritten. Returns the ids that changed: a run left out
        is no longer this worker's. ``run_ids`` must hold every key of ``tails``.
        """
        if not run_ids:
            return set()
        params: list[Any] = [*_adapt_times(now)]
        sets = ["heartbeat_at = %s"]
        for column, index in (("stdout", 0), ("stderr", 1)):
            if tails:
                sets.append(f"{column} = CASE id {' '.join(['WHEN %s THEN %s'] * len(tails))} "
                            f"ELSE {column} END")  # fmt: skip
                for run_id, texts in tails.items():
                    params += [run_id, _without_nul(texts[index])]
        params += [worker, *run_ids]
        sql = (
            f"UPDATE runs SET {', '.join(sets)} WHERE worker = %s AND status = '{_RUNNING}' "
            f"AND id IN ({', '.join(['%s'] * len(run_ids))}) RETURNING id"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {row[0] for row in cursor.fetchall()}

    def finish(self, outcome: RunOutcome, now: datetime) -> bool:
        """Record how the run ended; False when it was not running for this worker.

        A run the liveness check already finished (its worker looked dead) keeps
        that verdict rather than being overwritten twice. The same statement reads
        whether the job has an open incident (``job_had_open_incident``, for
        ``runner.incidents.record``): a read of its own cost a run as much again.
        """
        if outcome.status not in FINAL_RUN_STATUSES:
            raise ValueError(f"{outcome.status!r} is not a final run status")
        started = self.started_at or now
        storable = outcome.storable()
        fields = {name: getattr(storable, name) for name in _OUTCOME_FIELDS} | {
            "finished_at": now,
            "heartbeat_at": now,
            "duration_ms": max(0, int((now - started).total_seconds() * 1000)),
        }
        # One precompiled statement: the ORM's update() compiled it anew for every run.
        sql, columns = _finish_sql()
        params = [_db_value(field, fields[name]) for name, field in columns]
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, self.pk, self.worker])
            row = cursor.fetchone()
        if row is None:
            return False
        for name, value in fields.items():
            setattr(self, name, value)
        self.job_had_open_incident = row[0] is not None
        return True

    def abandon(self, reason: str, now: datetime, status: str = RunStatus.ERROR) -> bool:
        """Finish a pending or running run whose worker is gone, saying why."""
        changed = Run.objects.filter(pk=self.pk, status__in=ACTIVE_RUN_STATUSES).update(
            status=status,
            finished_at=now,
            error=reason,
            duration_ms=(
                max(0, int((now - self.started_at).total_seconds() * 1000))
                if self.started_at
                else None
            ),
        )
        return bool(changed)

    @property
    def error_line(self) -> str:
        """The error in one line: its first line, and when that only introduces the
        captured stderr tail ("exit code 2:"), the tail's last line, where scripts and
        tracebacks put what went wrong. Empty when there is no error."""
        lines = [line.strip() for line in self.error.strip().splitlines() if line.strip()]
        if not lines:
            return ""
        if lines[0].endswith(":") and len(lines) > 1:
            return f"{lines[0]} {lines[-1]}"
        return lines[0]

    @property
    def lag_ms(self) -> int | None:
        """Start minus scheduled instant, when both are known."""
        if self.started_at is None or self.scheduled_for is None:
            return None
        return int((self.started_at - self.scheduled_for).total_seconds() * 1000)


_PENDING, _RUNNING = RunStatus.PENDING.value, RunStatus.RUNNING.value
# Run.start's one statement: pending -> running unless a scheduled run of a skip job
# meets a running sibling, or a catch-up sibling for an earlier instant still waiting
# (``Run._overlap_blocker`` says the same in Python). Both lookups use the
# ``runs_job_status_trigger`` index: (job, status) finds the running or pending few.
_RUNNING_SIBLING_OF_A_SKIP_JOB = (
    "FROM runs AS sibling JOIN jobs ON jobs.id = sibling.job_id "
    f"WHERE sibling.job_id = runs.job_id AND sibling.status = '{_RUNNING}' "
    f"AND sibling.id <> runs.id AND jobs.overlap_policy = '{OverlapPolicy.SKIP.value}'"
)
_EARLIER_CATCH_UP_WAITING = (
    "FROM runs AS sibling JOIN jobs ON jobs.id = sibling.job_id "
    f"WHERE sibling.job_id = runs.job_id AND sibling.status = '{_PENDING}' "
    "AND sibling.catch_up AND sibling.scheduled_for < runs.scheduled_for "
    f"AND jobs.overlap_policy = '{OverlapPolicy.SKIP.value}'"
)
_START_SQL = (
    f"UPDATE runs SET status = '{_RUNNING}', started_at = %s, heartbeat_at = %s, worker = %s, "
    f"notes = CASE WHEN trigger = '{RunTrigger.MANUAL.value}' THEN "
    "COALESCE('manual run: started while run #' || "
    # "+ 0": MIN(id) must not walk the job's whole history in id order (SQLite's
    # min/max shortcut); the (job, status) index finds the running few at once.
    f"(SELECT CAST(MIN(sibling.id + 0) AS TEXT) {_RUNNING_SIBLING_OF_A_SKIP_JOB}) || "
    "' was running; overlap skip applies to scheduled fires only', '') ELSE '' END "
    f"WHERE id = %s AND status = '{_PENDING}' AND (trigger = '{RunTrigger.MANUAL.value}' "
    f"OR (NOT EXISTS (SELECT 1 {_RUNNING_SIBLING_OF_A_SKIP_JOB}) "
    f"AND NOT EXISTS (SELECT 1 {_EARLIER_CATCH_UP_WAITING}))) "
    "RETURNING notes"
)


@lru_cache(maxsize=64)
def _start_many_sql(count: int) -> str:
    """``_START_SQL`` for ``count`` runs at once, returning each started run's id."""
    marks = ", ".join(["%s"] * count)
    single = _START_SQL.replace("WHERE id = %s AND", f"WHERE id IN ({marks}) AND")
    return single.replace("RETURNING notes", "RETURNING id, notes")


@lru_cache(maxsize=64)
def _lock_jobs_sql(count: int) -> str:
    marks = ", ".join(["%s"] * count)
    # NO KEY UPDATE: starts of one job still wait for each other, but not for the
    # scheduler's INSERTs of runs, whose foreign-key checks take KEY SHARE on the same
    # rows (at commit: Django defers them) in another order; with FOR UPDATE a batch of
    # starts and a batch of fires could deadlock.
    return f"SELECT id FROM jobs WHERE id IN ({marks}) ORDER BY id FOR NO KEY UPDATE"


@lru_cache(maxsize=1)
def _finish_sql() -> tuple[str, tuple[tuple[str, models.Field | None], ...]]:
    """``Run.finish``'s UPDATE: the outcome's columns and the times, if still ours; and
    each column's name with its field when its values need converting (``_db_value``)."""
    names = (*_OUTCOME_FIELDS, "finished_at", "heartbeat_at", "duration_ms")
    fields = [Run._meta.get_field(name) for name in names]
    columns = ", ".join(f"{field.column} = %s" for field in fields)
    open_incident = (
        f"SELECT 1 FROM {Incident._meta.db_table} AS incident "
        "WHERE incident.job_id = runs.job_id AND incident.closed_at IS NULL LIMIT 1"
    )
    sql = (
        f"UPDATE runs SET {columns} WHERE id = %s AND status = '{_RUNNING}' AND worker = %s "
        f"RETURNING ({open_incident})"
    )
    converted = tuple(
        (name, field if isinstance(field, models.DateTimeField | models.JSONField) else None)
        for name, field in zip(names, fields, strict=True)
    )
    return sql, converted


_OUTCOME_FIELDS = tuple(f.name for f in dataclass_fields(RunOutcome))


def _db_value(field: models.Field | None, value: Any) -> Any:
    """``value`` as the ``runs`` column of ``field`` stores it: datetimes and JSON are
    converted; text, numbers and flags (``RunOutcome``'s types) go as they are, as their
    fields' own preparation would leave them."""
    if value is None or field is None:
        return value
    return field.get_db_prep_save(value, connection)


def _from_row(model: type[models.Model], converters: list, row: tuple) -> Any:
    """A ``model`` instance from its columns as the database gave them (``_loader``)."""
    values = list(row)
    for index, column, field_converters in converters:
        value = values[index]
        for converter in field_converters:
            value = converter(value, column, connection)
        values[index] = value
    return model.from_db(connection.alias, None, values)


@lru_cache(maxsize=8)
def _loader(model: type[models.Model], vendor: str) -> tuple[str, list[str], list]:
    """The ``model``'s table, its columns (qualified by the table), and the converters of
    the columns that have any, made once per database vendor: ``objects.get`` and even
    ``objects.raw`` compile and look them up again for every run (issue 12)."""
    fields = model._meta.concrete_fields
    table = connection.ops.quote_name(model._meta.db_table)
    columns = [f"{table}.{connection.ops.quote_name(field.column)}" for field in fields]
    converters = []
    for index, field in enumerate(fields):
        column = field.cached_col
        found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if found:
            converters.append((index, column, found))
    return table, columns, converters


@lru_cache(maxsize=64)
def _run_with_job_loader(vendor: str, count: int) -> tuple[str, tuple, tuple]:
    """``Run.load_many``'s statement for ``count`` ids (a run and its job a row) and
    each side's loader."""
    run_loader, job_loader = _loader(Run, vendor), _loader(Job, vendor)
    runs, jobs = run_loader[0], job_loader[0]
    ids = "= %s" if count == 1 else f"IN ({', '.join(['%s'] * count)})"
    sql = (
        f"SELECT {', '.join(run_loader[1] + job_loader[1])} FROM {runs} "
        f"JOIN {jobs} ON {jobs}.id = {runs}.job_id WHERE {runs}.id {ids}"
    )
    return sql, run_loader, job_loader


# Three parameters a row: SQLite builds before 3.32 allow 999 per statement.
_INSERT_CHUNK = 300


@lru_cache(maxsize=8)
def _insert_scheduled_sql(vendor: str, rows: int) -> str:
    """One INSERT of ``rows`` scheduled runs; a fire already recorded is passed over."""
    false = "0" if vendor == "sqlite" else "false"
    row = (
        f"(%s, %s, %s, '{_PENDING}', '{RunTrigger.SCHEDULE.value}', '', '', '', 0, 0, "
        f"{false}, '', '')"
    )
    return (
        "INSERT INTO runs (job_id, scheduled_for, created_at, status, trigger, worker, "
        "stdout, stderr, stdout_bytes, stderr_bytes, output_truncated, error, notes) "
        f"VALUES {', '.join([row] * rows)} ON CONFLICT DO NOTHING "
        "RETURNING id, job_id, scheduled_for"
    )


def _utc(moment: datetime | str) -> datetime:
    """An instant as an aware UTC datetime, whichever form the database handed back."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _adapt_times(*moments: datetime) -> list[Any]:
    return [connection.ops.adapt_datetimefield_value(moment) for moment in moments]


class SchedulerHeartbeat(models.Model):
    """A ``runscheduler`` process as it last reported itself: since when it runs, when seen.

    The daemon calls ``beat`` every cycle and ``stopped`` on a clean exit; the
    health summary (``/api/status``, ``runner_status``) reads uptime and liveness
    from here, since the scheduler and the web server are different processes.
    """

    worker = models.CharField(primary_key=True, max_length=200, help_text="host:pid")
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="the server zone it fires jobs without a timezone in (blank: not reported)",
    )

    class Meta:
        db_table = "scheduler_heartbeats"
        ordering = ["started_at"]

    def __str__(self) -> str:
        return self.worker

    @classmethod
    def beat(cls, worker: str, started_at: datetime, now: datetime, time_zone: str = "") -> None:
        """Record that ``worker`` (running since ``started_at``, firing jobs without a
        timezone in ``time_zone``) is alive at ``now``."""
        cls.objects.bulk_create(
            [cls(worker=worker, started_at=started_at, seen_at=now, time_zone=time_zone)],
            update_conflicts=True,
            unique_fields=["worker"],
            update_fields=["started_at", "seen_at", "time_zone"],
        )

    @classmethod
    def zone_leader(cls, since: datetime) -> SchedulerHeartbeat | None:
        """The longest-running scheduler heard since ``since`` that reported its zone: the
        one whose server zone the others must share (ties: the lower ``worker``)."""
        heard = cls.heard_since(since).exclude(time_zone="")
        return heard.order_by("started_at", "worker").first()

    @classmethod
    def stopped(cls, worker: str) -> None:
        """Forget ``worker``: it exited cleanly."""
        cls.objects.filter(pk=worker).delete()

    @classmethod
    def heard_since(cls, moment: datetime) -> models.QuerySet:
        """The schedulers that reported at or after ``moment``."""
        return cls.objects.filter(seen_at__gte=moment)


class IncidentKind(models.TextChoices):
    FAILING = "failing", "failing"  # runs fail (``runner.incidents``)
    LATE = "late", "late"  # no run for longer than the grace (``runner.alerts``)
    SLOW = "slow", "slow"  # a run goes far beyond its usual duration (``runner.alerts``)


class Incident(models.Model):
    """One stretch of trouble of a job, from its first failure to its recovery (issue 16).

    ``runner.incidents`` opens, counts and closes these as runs finish, and posts one
    alert when the incident is raised, optional reminders, and one on recovery.
    At most one open incident per job and kind.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="incidents")
    kind = models.CharField(max_length=16, choices=IncidentKind.choices)
    opened_at = models.DateTimeField(
        help_text="failing: when the first failing run finished; late: when the missed "
        "fire was due; slow: when the run passed its bound."
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveIntegerField(
        default=0, help_text="failing: failed runs; late: fires missed; slow: 1."
    )
    detail = models.TextField(
        blank=True, default="", help_text="What was expected: the fire, the bound."
    )
    first_run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_run_seen = models.BigIntegerField(default=0, help_text="Highest run id counted.")
    alerted_at = models.DateTimeField(null=True, blank=True, help_text="When it was raised.")
    reminded_at = models.DateTimeField(null=True, blank=True)
    reminders = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "incidents"
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "kind"],
                condition=Q(closed_at__isnull=True),
                name="incidents_one_open_per_job_kind",
            ),
            models.CheckConstraint(
                condition=_in_choices("kind", IncidentKind), name="incidents_kind_valid"
            ),
        ]
        indexes = [models.Index(fields=["closed_at"], name="incidents_open")]

    def __str__(self) -> str:
        state = "open" if self.closed_at is None else "closed"
        return f"{self.kind} incident of {self.job_id} ({state}, {self.failures} failures)"
