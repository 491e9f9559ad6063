"""Admin for jobs (full CRUD through the validation layer), the console's home page and
branding; runs are in runner.admin_runs, registered from here."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.views.main import ORDER_VAR
from django.core.exceptions import PermissionDenied
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django_q import models as q_models

from jeeves_site.json_forms import JSON_FIELD_OVERRIDES
from runner import admin_fires, admin_views, manual
from runner import admin_marks as marks
from runner.admin_chart import duration_chart
from runner.admin_runs import RunAdmin  # noqa: F401  (registers the runs' admin)
from runner.api.permissions import Forbidden, missing, require
from runner.dashboard import dashboard
from runner.describe import duration_words, schedule_words
from runner.jobs import set_enabled, shown_zone
from runner.models import NOT_RAN_STATUSES, Incident, Job, Run, RunStatus

admin.site.site_header = admin.site.site_title = "jeeves-runner"
admin.site.index_title = "Console"
# No public site to "view": the header links to the API docs instead (admin/base_site.html).
admin.site.site_url = None
# Lists need the width more than a second copy of the model list: the home page has it,
# and the breadcrumbs lead back there. Without the sidebar the run list fits 1366 px.
admin.site.enable_nav_sidebar = False

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
            None
            if health.backlog.oldest_pending_s is None
            else health.backlog.oldest_pending_s * 1000
        ),
        "running": [(run, duration_words(elapsed * 1000)) for run, elapsed in board.running],
        "next_fires": [
            (at, job, marks.moment(at, job.zone_name, now)) for at, job in board.next_fires
        ],
        "queues": [
            (queue, _age_words(queue["oldest_pending_age_seconds"])) for queue in board.queues
        ],
    }


def _age_words(seconds: float | None) -> str:
    return "" if seconds is None else duration_words(seconds * 1000)


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
    'Or a recurrence object: {"freq": "minutely", "interval": 11}. '
    "In the job's time zone; the next fires are previewed below as you type."
)
# Fields that apply to one job type only (runner.models.JobType): the rest apply to both.
SCRIPT_ONLY = ("interpreter", "args", "env")
SESSION_ONLY = ("thinking",)
# Text boxes sized to what they usually hold, so the job page reads without scrolling far.
TEXT_ROWS = {"description": 2, "schedule": 2, "script": 6, "args": 2, "env": 3}
# The job list shows this much of a schedule's text (a recurrence object can be long).
SCHEDULE_SHOWN = 24
# The duration chart's runs; the table lists the newest of them.
CHART_RUNS = 30
TABLE_RUNS = 10
_STRIP_FIELDS = (
    "id", "job_id", "status", "created_at", "scheduled_for", "started_at", "duration_ms",
)  # fmt: skip


def _latest_run(value, skipped: bool = False) -> Subquery:
    # Served by the runs_job_newest_ran and runs_job_newest_skipped partial indexes: one
    # index probe per listed job. Skipped fires have their own column, and the pending
    # run is the next one, not the last (``NOT_RAN_STATUSES``).
    runs = Run.objects.filter(job=OuterRef("pk"))
    if skipped:
        runs = runs.filter(status=RunStatus.SKIPPED)
    else:
        runs = runs.exclude(status__in=NOT_RAN_STATUSES)
    return Subquery(runs.order_by("-id").annotate(value=value).values("value")[:1])


def _by_last_run(request) -> bool:
    """Whether the job list is filtered by last status or sorted (maybe by it)."""
    return LastStatusFilter.parameter_name in request.GET or ORDER_VAR in request.GET


class LastStatusFilter(admin.SimpleListFilter):
    title = "last status"
    parameter_name = "last_status"

    def lookups(self, request, model_admin):
        ran = [(key, label) for key, label in RunStatus.choices if key not in NOT_RAN_STATUSES]
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
        "last_runs", "median_duration",
    )  # fmt: skip
    list_filter = ("type", "enabled", LastStatusFilter)
    # Each row draws badges and a strip of 20 marks; 50 rows keep a page well within
    # 300 ms at 10,000 jobs on a busy 2-core machine (bench/c1_console_pages.py).
    list_per_page = 50
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

    change_form_template = "admin/runner/job/change_form.html"

    class Media:
        css = {"all": ("runner/console.css",)}
        js = ("runner/job_form.js",)

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is None:
            return fieldsets  # a new job: job_form.js hides what its chosen type does not use
        # Fields shown only where they apply: `thinking` is a session setting; the
        # interpreter, arguments and environment are a script's.
        what = fieldsets[1][1]["fields"]
        other = SCRIPT_ONLY if obj.type == "session" else SESSION_ONLY
        fieldsets[1] = ("What runs", {"fields": tuple(f for f in what if f not in other)})
        # The history first: what an operator opens a job's page to see.
        fieldsets.insert(1, ("Last runs", {"fields": ("duration_chart", "recent_runs_table")}))
        return fieldsets

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("preview/", wrap(admin_views.schedule_preview), name="runner_job_preview"),
            path("<path:object_id>/run/", wrap(self.run_now_view), name="runner_job_run"),
            *super().get_urls(),
        ]

    def run_now_view(self, request, object_id: str):
        """POST: queue a manual run of this job and open its page (``jobs.run``)."""
        job = get_object_or_404(Job, pk=object_id)
        if request.method != "POST":
            raise PermissionDenied
        try:
            require(request, "jobs.run")
        except Forbidden:
            raise PermissionDenied from None
        [run] = manual.request_runs([job], timezone.now())
        self.message_user(
            request, f"Queued run #{run.pk} of {job.pk} for the workers.", messages.SUCCESS
        )
        return redirect("admin:runner_run_change", run.pk)

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        context["may_run"] = obj is not None and self.has_run_permission(request)
        context["preview_url"] = reverse("admin:runner_job_preview")
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    def save_model(self, request, obj: Job, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        for warning in obj.warnings():
            self.message_user(request, f"{obj.id}: {warning}", messages.WARNING)

    def get_readonly_fields(self, request, obj=None):
        # The id is the primary key: renaming would orphan nothing but surprise everyone.
        if obj is None:
            return self.readonly_fields
        return (*self.readonly_fields, "id", "duration_chart", "recent_runs_table")

    @admin.display(description=f"durations, last {CHART_RUNS} runs")
    def duration_chart(self, job: Job):
        return duration_chart(list(job.runs.order_by("-id").only(*_STRIP_FIELDS)[:CHART_RUNS]))

    @admin.display(description=f"last {TABLE_RUNS} runs")
    def recent_runs_table(self, job: Job):
        runs = list(job.runs.order_by("-id").only(*_STRIP_FIELDS)[:TABLE_RUNS])
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
                    timezone.localtime(marks.run_moment(run)).strftime("%Y-%m-%d %H:%M:%S"),
                    duration_words(run.duration_ms) or "—",
                )
                for run in runs
            ),
        )
        return format_html("{}<table>{}</table>", marks.run_strip(runs), rows)

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        # One query for the listed page's last runs (a window per job), not one per row,
        # read as rows: a page of 100 jobs draws 2,000 marks.
        jobs = list(changelist.result_list)
        ids = [job.pk for job in jobs]
        recent = marks.recent_runs_by_job(ids)
        last = {} if _by_last_run(request) else marks.last_runs_by_job(ids)
        for job in jobs:
            job.recent_runs = recent[job.pk]
            if job.pk in last:
                found = last[job.pk]
                job.last_status, job.last_run_at = found.status, found.at
                job.last_skipped_at = found.skipped_at
        return changelist

    def get_queryset(self, request) -> QuerySet:
        jobs = super().get_queryset(request)
        if not _by_last_run(request):
            return jobs  # the listed page's last runs come after paging (above)
        # Sorted or filtered by the last run: a subquery per job in the list query
        # itself, which PostgreSQL and SQLite also compute for the rows an OFFSET skips.
        return jobs.annotate(
            last_status=_latest_run(F("status")),
            last_run_at=_latest_run(marks.RUN_MOMENT),
            last_skipped_at=_latest_run(marks.RUN_MOMENT, skipped=True),
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
        if db_field.name in TEXT_ROWS and field is not None:
            field.widget.attrs["rows"] = TEXT_ROWS[db_field.name]
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
        """The expression (a long recurrence object cut short, whole in its tooltip) and
        its words."""
        shown = job.schedule
        if len(shown) > SCHEDULE_SHOWN:
            shown = shown[: SCHEDULE_SHOWN - 1] + "…"
        return format_html(
            '<span class="jr-schedule"><code title="{}">{}</code>'
            '<span class="jr-words">{}</span></span>',
            job.schedule,
            shown,
            schedule_words(job.schedule, job.zone_name),
        )

    @admin.display(description="next fire")
    def next_fire(self, job: Job):
        if not job.enabled:
            return marks.status_badge("disabled")
        now = timezone.now()
        try:
            at = admin_fires.next_fire(job.schedule, job.zone_name, now)
        except Exception:  # a schedule that does not load shows as such, not as a 500
            return marks.status_badge("error", "schedule does not load")
        return marks.moment(at, shown_zone(job), now)

    @admin.display(description="last status", ordering="last_status")
    def last_status(self, job: Job):
        """The last run that ran (a skipped missed fire does not hide it), with its time,
        and the last skip apart, when there is one."""
        shown = "—"
        if job.last_status:
            at = timezone.localtime(job.last_run_at).strftime("%Y-%m-%d %H:%M:%S")
            shown = format_html(
                '{} <small class="jr-when">{}</small>', marks.status_badge(job.last_status), at
            )
        if job.last_skipped_at is None:
            return shown
        skipped = timezone.localtime(job.last_skipped_at).strftime("%Y-%m-%d %H:%M:%S")
        return format_html('{}<small class="jr-skip">last skip {}</small>', shown, skipped)

    @admin.display(description="last runs")
    def last_runs(self, job: Job):
        return marks.run_strip(getattr(job, "recent_runs", []))

    @admin.display(description="median")
    def median_duration(self, job: Job) -> str:
        return marks.median_duration(getattr(job, "recent_runs", []))


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
