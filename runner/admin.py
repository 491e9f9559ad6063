"""Admin for jobs (full CRUD through the validation layer) and runs (a read-only log)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from jeeves_site.admin_tools import CappedCountPaginator, TextInputFilter
from jeeves_site.json_forms import JSON_FIELD_OVERRIDES
from runner import manual
from runner.api.permissions import missing
from runner.jobs import set_enabled
from runner.models import Incident, Job, Run, RunStatus


def _latest_run(field: str) -> Subquery:
    # Served by the runs_job_newest index: one index probe per listed job.
    return Subquery(Run.objects.filter(job=OuterRef("pk")).order_by("-id").values(field)[:1])


class LastStatusFilter(admin.SimpleListFilter):
    title = "last status"
    parameter_name = "last_status"

    def lookups(self, request, model_admin):
        return [("never", "never run"), *RunStatus.choices]

    def queryset(self, request, queryset):
        if self.value() == "never":
            return queryset.filter(last_status__isnull=True)
        if self.value():
            return queryset.filter(last_status=self.value())
        return queryset


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FIELD_OVERRIDES
    list_display = ("id", "name", "schedule", "type", "enabled", "last_status", "last_run_at")
    list_filter = ("type", "enabled", LastStatusFilter)
    search_fields = ("id", "name")
    readonly_fields = ("created_at", "updated_at", "schedule_effective_at")
    actions = ("run_now", "enable", "disable")
    # Alert settings left out of a posted form keep their value (the default on creation),
    # so scripts and older forms that post a job without them still work.
    OPTIONAL_FIELDS = ("alert_after_failures", "alert_reminder_hours")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name in self.OPTIONAL_FIELDS and field is not None:
            field.required = False
        return field

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
                    "alert_after_failures",
                    "alert_reminder_hours",
                )
            },
        ),
        ("Record", {"fields": ("created_at", "updated_at", "schedule_effective_at")}),
    )

    def get_queryset(self, request) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(last_status=_latest_run("status"), last_run_at=_latest_run("created_at"))
        )

    def save_model(self, request, obj: Job, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        for warning in obj.warnings():
            self.message_user(request, f"{obj.id}: {warning}", messages.WARNING)

    def get_readonly_fields(self, request, obj=None):
        # The id is the primary key: renaming would orphan nothing but surprise everyone.
        return (*self.readonly_fields, "id") if obj else self.readonly_fields

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
        self.message_user(
            request, format_html("Queued runs {} for the workers.", links), messages.SUCCESS
        )

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

    @admin.display(description="last status", ordering="last_status")
    def last_status(self, job: Job) -> str:
        return job.last_status or "—"

    @admin.display(description="last run", ordering="last_run_at")
    def last_run_at(self, job: Job):
        return job.last_run_at


class JobIdFilter(TextInputFilter):
    title = "job id"
    parameter_name = "job"

    def queryset(self, request, queryset):
        return queryset.filter(job_id=self.value()) if self.value() else queryset


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = (
        "id", "job", "status", "trigger", "scheduled_for", "started_at", "duration_ms", "exit_code",
    )  # fmt: skip
    list_filter = ("status", "trigger", JobIdFilter)
    list_select_related = ("job",)
    ordering = ("-id",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = (
        "job", "status", "trigger", "scheduled_for", "created_at", "started_at", "finished_at",
        "lag", "duration_ms", "exit_code", "worker", "heartbeat_at", "tokens", "result_meta",
        "error_text", "notes", "stdout_text", "stderr_text", "stdout_bytes", "stderr_bytes",
        "output_truncated",
    )  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="lag (ms)")
    def lag(self, run: Run):
        return run.lag_ms

    @admin.display(description="error")
    def error_text(self, run: Run):
        return _pre(run.error)

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

    list_display = ("job", "kind", "opened_at", "closed_at", "failures", "alerted_at", "reminders")
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
