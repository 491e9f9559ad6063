"""Admin for jobs (full CRUD through the validation layer) and runs (a read-only log)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django_q import models as q_models

from jeeves_site.admin_tools import CappedCountPaginator
from jeeves_site.json_forms import JSON_FIELD_OVERRIDES
from runner import admin_marks as marks
from runner import manual
from runner.api.permissions import missing
from runner.dashboard import dashboard
from runner.describe import duration_words, schedule_words
from runner.jobs import set_enabled
from runner.models import Incident, Job, Run, RunStatus

admin.site.site_header = admin.site.site_title = "jeeves-runner"
admin.site.index_title = "Console"
# No public site to "view": the header links to the API docs instead (admin/base_site.html).
admin.site.site_url = None

# The admin index is the console's home page: the dashboard above the model list.
_plain_index = admin.site.index
admin.site.index_template = "admin/runner/dashboard.html"


def _index_with_dashboard(request, extra_context=None):
    context = dict(extra_context or {})
    if request.user.has_perm("runner.view_run"):
        context.update(_dashboard_context(timezone.now()))
    return _plain_index(request, context)


def _dashboard_context(now) -> dict:
    board = dashboard(now)
    health = board.health
    return {
        "dashboard": board,
        "uptime": duration_words(None if health.uptime_s is None else health.uptime_s * 1000),
        "oldest_pending": duration_words(
            None if health.oldest_pending_s is None else health.oldest_pending_s * 1000
        ),
        "running": [(run, duration_words(elapsed * 1000)) for run, elapsed in board.running],
        "next_fires": [
            (at, job, marks.moment(at, job.zone_name, now)) for at, job in board.next_fires
        ],
    }


admin.site.index = _index_with_dashboard

# django-q2's own models are the workers' plumbing: its "Scheduled tasks" would invite
# schedules the runner never reads, and its task records duplicate the runs. Hidden
# (django_q's admin module is loaded first: it comes before runner in INSTALLED_APPS).
for _model in (q_models.Schedule, q_models.Success, q_models.Failure, q_models.OrmQ):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


SCHEDULE_HELP = (
    "Cron, 5 fields (minute hour day month weekday) or 6 with seconds first. Examples: "
    "'*/10 * * * * *' every 10 seconds; '*/5 * * * *' every 5 minutes; "
    "'30 9 * * 1-5' at 09:30 on weekdays; '0 3 1 * *' at 03:00 on the 1st; '@daily'. "
    "In the job's time zone."
)
_STRIP_FIELDS = ("id", "job_id", "status", "created_at", "duration_ms")


def _latest_run(field: str, skipped: bool = False) -> Subquery:
    # Served by the runs_job_newest_ran and runs_job_newest_skipped partial indexes: one
    # index probe per listed job. A missed fire records a skipped run, which must not
    # hide how the last run that ran ended, so skips are shown in their own column.
    runs = Run.objects.filter(job=OuterRef("pk"))
    runs = (
        runs.filter(status=RunStatus.SKIPPED) if skipped else runs.exclude(status=RunStatus.SKIPPED)
    )
    return Subquery(runs.order_by("-id").values(field)[:1])


class LastStatusFilter(admin.SimpleListFilter):
    title = "last status"
    parameter_name = "last_status"

    def lookups(self, request, model_admin):
        ran = [(value, label) for value, label in RunStatus.choices if value != RunStatus.SKIPPED]
        return [("never", "never run"), *ran]

    def queryset(self, request, queryset):
        if self.value() == "never":
            return queryset.filter(last_status__isnull=True)
        if self.value():
            return queryset.filter(last_status=self.value())
        return queryset


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FIELD_OVERRIDES
    list_display = (
        "id", "name", "schedule_text", "next_fire", "type", "enabled", "last_status",
        "last_runs", "median_duration", "last_skipped_at",
    )  # fmt: skip
    list_filter = ("type", "enabled", LastStatusFilter)
    search_fields = ("id", "name")
    readonly_fields = ("created_at", "updated_at", "schedule_effective_at")
    actions = ("run_now", "enable", "disable")
    # Alert settings left out of a posted form keep their value (the default on creation),
    # so scripts and older forms that post a job without them still work.
    OPTIONAL_FIELDS = (
        "alert_after_failures", "alert_reminder_hours", "slow_factor", "retries",
        "retry_backoff_s",
    )  # fmt: skip

    fieldsets = (
        (None, {"fields": ("id", "name", "description", "enabled")}),
        (
            "What runs",
            {
                "fields": (
                    "type",
                    "source_type",
                    "script",
                    "interpreter",
                    "args",
                    "env",
                    "thinking",
                )
            },
        ),
        (
            "When",
            {
                "fields": (
                    "schedule",
                    "timezone",
                    "overlap_policy",
                    "missed_fire_policy",
                    "timeout_ms",
                )
            },
        ),
        (
            "Notifications",
            {
                "fields": (
                    "on_failure",
                    "on_success",
                    "output_channel",
                    "webhook_url",
                )
            },
        ),
        (
            "Alerts and retries",
            {
                "fields": (
                    "alert_after_failures",
                    "alert_reminder_hours",
                    "late_grace_s",
                    "slow_factor",
                    "retries",
                    "retry_backoff_s",
                )
            },
        ),
        ("Record", {"fields": ("created_at", "updated_at", "schedule_effective_at")}),
    )

    class Media:
        css = {"all": ("runner/console.css",)}

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is None:
            return fieldsets
        # Fields shown only where they apply: `thinking` is a session setting.
        what = ("type", "source_type", "script", "args", "env")
        if obj.type == "session":
            what = (*what, "thinking")
        fieldsets[1] = ("What runs", {"fields": what})
        fieldsets.insert(-1, ("Last runs", {"fields": ("recent_runs_table",)}))
        return fieldsets

    def save_model(self, request, obj: Job, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        for warning in obj.warnings():
            self.message_user(request, f"{obj.id}: {warning}", messages.WARNING)

    def get_readonly_fields(self, request, obj=None):
        # The id is the primary key: renaming would orphan nothing but surprise everyone.
        if obj is None:
            return self.readonly_fields
        return (*self.readonly_fields, "id", "recent_runs_table")

    @admin.display(description="last 10 runs")
    def recent_runs_table(self, job: Job):
        runs = list(job.runs.order_by("-id")[:10])
        if not runs:
            return "—"
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">#{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:runner_run_change", args=[run.pk]),
                    run.pk,
                    marks.status_badge(run.status),
                    timezone.localtime(run.created_at).strftime("%Y-%m-%d %H:%M:%S"),
                    duration_words(run.duration_ms) or "—",
                )
                for run in runs
            ),
        )
        return format_html("{}<table>{}</table>", marks.run_strip(runs), rows)

    def changelist_view(self, request, extra_context=None):
        request.job_list_now = timezone.now()
        return super().changelist_view(request, extra_context)

    def get_queryset(self, request) -> QuerySet:
        jobs = super().get_queryset(request)
        if hasattr(request, "job_list_now"):
            # One query for every listed job's last runs (a window per job), not one per row.
            recent = Run.objects.order_by("-id").only(*_STRIP_FIELDS)[: marks.STRIP_RUNS]
            jobs = jobs.prefetch_related(Prefetch("runs", queryset=recent, to_attr="recent_runs"))
        return jobs.annotate(
            last_status=_latest_run("status"),
            last_run_at=_latest_run("created_at"),
            last_skipped_at=_latest_run("created_at", skipped=True),
        )

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        # PositiveBigIntegerField's form field says "≥ 0"; the model's rule is ≥ 1: one message.
        if db_field.name == "timeout_ms":
            kwargs["min_value"] = 1
        if db_field.name == "schedule":
            kwargs["help_text"] = SCHEDULE_HELP
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name in self.OPTIONAL_FIELDS and field is not None:
            field.required = False
        return field

    def has_run_permission(self, request) -> bool:
        """Whether the user may start runs: ``runner.run_job``, as the API's trigger needs."""
        return not missing(request.user, "jobs.run")

    @admin.action(description="Run now", permissions=["run"])
    def run_now(self, request, queryset: QuerySet) -> None:
        """Hand a manual run of each selected job to the workers, without waiting for it."""
        runs = manual.request_runs(queryset, timezone.now())
        links = format_html_join(
            ", ",
            '<a href="{}">#{} ({})</a>',
            (
                (reverse("admin:runner_run_change", args=[run.pk]), run.pk, run.job_id)
                for run in runs
            ),
        )
        queued = (
            "Queued run {} for the workers."
            if len(runs) == 1
            else "Queued runs {} for the workers."
        )
        self.message_user(request, format_html(queued, links), messages.SUCCESS)

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request, queryset: QuerySet) -> None:
        """Enable the selected jobs."""
        changed = set_enabled(queryset.values_list("pk", flat=True), enabled=True)
        self.message_user(request, f"Enabled {changed} job(s).", messages.SUCCESS)

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request, queryset: QuerySet) -> None:
        """Disable the selected jobs."""
        changed = set_enabled(queryset.values_list("pk", flat=True), enabled=False)
        self.message_user(request, f"Disabled {changed} job(s).", messages.SUCCESS)

    @admin.display(description="schedule", ordering="schedule")
    def schedule_text(self, job: Job):
        return format_html(
            '<code>{}</code><span class="jr-words">{}</span>',
            job.schedule,
            schedule_words(job.schedule),
        )

    @admin.display(description="next fire")
    def next_fire(self, job: Job):
        if not job.enabled:
            return marks.status_badge("disabled")
        now = timezone.now()
        try:
            at = job.next_fire_after(now)
        except Exception:  # a schedule that does not load shows as such, not as a 500
            return marks.status_badge("error", "schedule does not load")
        return marks.moment(at, job.zone_name, now)

    @admin.display(description="last status", ordering="last_status")
    def last_status(self, job: Job):
        """The last run that ran (a skipped missed fire does not hide it), with its time."""
        if not job.last_status:
            return "—"
        at = timezone.localtime(job.last_run_at).strftime("%Y-%m-%d %H:%M:%S")
        return format_html(
            '{} <small class="jr-when">{}</small>', marks.status_badge(job.last_status), at
        )

    @admin.display(description="last runs")
    def last_runs(self, job: Job):
        return marks.run_strip(getattr(job, "recent_runs", []))

    @admin.display(description="median")
    def median_duration(self, job: Job) -> str:
        return marks.median_duration(getattr(job, "recent_runs", []))

    @admin.display(description="last skip", ordering="last_skipped_at")
    def last_skipped_at(self, job: Job):
        if job.last_skipped_at is None:
            return "—"
        return timezone.localtime(job.last_skipped_at).strftime("%Y-%m-%d %H:%M:%S")


class JobFilter(admin.SimpleListFilter):
    """Filter runs by job, chosen from the list of jobs (``?job=<id>``)."""

    title = "job"
    parameter_name = "job"

    def lookups(self, request, model_admin):
        return list(Job.objects.order_by("id").values_list("id", "id"))

    def queryset(self, request, queryset):
        return queryset.filter(job_id=self.value()) if self.value() else queryset


def _second(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = (
        "id", "job_link", "status_badge", "trigger_text", "scheduled_at", "started_at_s",
        "duration", "exit_code",
    )  # fmt: skip
    list_display_links = ("id",)
    list_filter = ("status", "trigger", JobFilter)
    list_select_related = ("job",)
    ordering = ("-id",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = (
        "job_link", "status_badge", "trigger_text", "neighbours", "scheduled_at", "created_at_s",
        "started_at_s", "finished_at_s", "lag", "duration", "exit_code", "worker", "heartbeat_at",
        "tokens", "result_meta", "error_text", "notes", "output_note", "stdout_text", "stderr_text",
    )  # fmt: skip
    readonly_fields = fields
    change_form_template = "admin/runner/run/change_form.html"

    class Media:
        css = {"all": ("runner/console.css",)}

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        rerun = self.admin_site.admin_view(self.rerun_view)
        return [path("<int:run_id>/rerun/", rerun, name="runner_run_rerun"), *super().get_urls()]

    def rerun_view(self, request, run_id: int):
        """POST: start a manual run of this run's job and open its page (needs runner.run_job)."""
        run = get_object_or_404(Run.objects.select_related("job"), pk=run_id)
        if request.method != "POST" or not request.user.has_perm("runner.run_job"):
            raise PermissionDenied
        [again] = manual.request_runs([run.job], timezone.now())
        self.message_user(request, f"Started run #{again.pk} of {run.job_id}.", messages.SUCCESS)
        return redirect("admin:runner_run_change", again.pk)

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        context["may_rerun"] = obj is not None and request.user.has_perm("runner.run_job")
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    @admin.display(description="job", ordering="job_id")
    def job_link(self, run: Run):
        url = reverse("admin:runner_job_change", args=[run.job_id])
        return format_html('<a href="{}">{}</a>', url, run.job_id)

    @admin.display(description="status", ordering="status")
    def status_badge(self, run: Run):
        return marks.status_badge(run.status)

    @admin.display(description="scheduled for", ordering="scheduled_for")
    def scheduled_at(self, run: Run) -> str:
        return _second(run.scheduled_for)

    @admin.display(description="trigger", ordering="trigger")
    def trigger_text(self, run: Run):
        """The trigger; a retry says which attempt it is and links the run it retries."""
        if run.retry_of_id is None:
            return run.trigger if run.attempt <= 1 else f"{run.trigger} (attempt {run.attempt})"
        url = reverse("admin:runner_run_change", args=[run.retry_of_id])
        return format_html(
            '{} (attempt {}) of <a href="{}">#{}</a>',
            run.trigger,
            run.attempt,
            url,
            run.retry_of_id,
        )

    @admin.display(description="created")
    def created_at_s(self, run: Run) -> str:
        return _second(run.created_at)

    @admin.display(description="started", ordering="started_at")
    def started_at_s(self, run: Run) -> str:
        return _second(run.started_at)

    @admin.display(description="finished")
    def finished_at_s(self, run: Run) -> str:
        return _second(run.finished_at)

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, run: Run) -> str:
        return duration_words(run.duration_ms) or "—"

    @admin.display(description="runs of this job")
    def neighbours(self, run: Run):
        """Links to the previous and the next run of the same job (runs_job_newest index)."""
        siblings = Run.objects.filter(job_id=run.job_id)
        before = siblings.filter(pk__lt=run.pk).order_by("-pk").values_list("pk", flat=True)
        after = siblings.filter(pk__gt=run.pk).order_by("pk").values_list("pk", flat=True)
        links = []
        for label, pk in (("← previous", before.first()), ("next →", after.first())):
            if pk is not None:
                url = reverse("admin:runner_run_change", args=[pk])
                links.append(format_html('<a href="{}">{} (#{})</a>', url, label, pk))
        return format_html_join(" · ", "{}", ((link,) for link in links)) if links else "—"

    @admin.display(description="lag")
    def lag(self, run: Run) -> str:
        return duration_words(run.lag_ms) or "—"

    @admin.display(description="error")
    def error_text(self, run: Run):
        return _pre(run.error)

    @admin.display(description="output")
    def output_note(self, run: Run) -> str:
        size = f"stdout {run.stdout_bytes} bytes, stderr {run.stderr_bytes} bytes"
        if run.output_truncated:
            return f"{size}; the longer output is shown by its last lines only (as configured)."
        return f"{size}; shown in full."

    @admin.display(description="stdout (tail)")
    def stdout_text(self, run: Run):
        return _pre(run.stdout)

    @admin.display(description="stderr (tail)")
    def stderr_text(self, run: Run):
        return _pre(run.stderr)


def _pre(text: str):
    return format_html('<pre style="white-space: pre-wrap">{}</pre>', text) if text else "—"


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Incidents are written by ``runner.incidents`` as runs finish; the admin only shows them."""

    list_display = (
        "job", "kind", "opened_at", "closed_at", "failures", "alerted_at", "reminders", "detail",
    )  # fmt: skip
    list_filter = ("kind", ("closed_at", admin.EmptyFieldListFilter))
    search_fields = ("job__id",)
    list_select_related = ("job",)
    ordering = ("-opened_at", "-id")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
