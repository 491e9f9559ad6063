"""Admin for runs: a read-only log with links, badges, Re-run, and a page that
follows a running run (runner/static/runner/run_live.js)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import mark_safe

from jeeves_site.admin_tools import CappedCountPaginator
from runner import admin_marks as marks
from runner import admin_views, manual
from runner.describe import duration_words
from runner.models import ACTIVE_RUN_STATUSES, Job, Run


class JobFilter(admin.SimpleListFilter):
    """Filter runs by job, chosen from the list of jobs (``?job=<id>``).

    One ``<select>`` of job ids rather than a link per job: with thousands of jobs a
    link each (and a query string built for each) would be most of the page.
    """

    title = "job"
    parameter_name = "job"
    template = "admin/runner/job_filter.html"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        # The rest of the query (other filters, ordering) rides along; the page restarts.
        self.other_params = [
            (name, value)
            for name, values in request.GET.lists()
            if name not in (self.parameter_name, "p")
            for value in values
        ]

    def lookups(self, request, model_admin):
        return list(Job.objects.order_by("id").values_list("id", "id"))

    def choices(self, changelist):
        chosen = self.value() or ""
        # The options are joined here, not looped in the template: 10,000 of them cost
        # 0.4 s as template nodes and a few milliseconds as one string.
        options = "".join(
            f'<option value="{escape(job_id)}"{" selected" if job_id == chosen else ""}>'
            f"{escape(job_id)}</option>"
            for job_id, _ in self.lookup_choices
        )
        yield {
            "parameter_name": self.parameter_name,
            "value": chosen,
            "options": mark_safe(options),  # every job id escaped above
            "other_params": self.other_params,
        }

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
        js = ("runner/select_filter.js",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is None or obj.status not in ACTIVE_RUN_STATUSES:
            return fields
        # A run in progress: its output first, where the page keeps filling it in.
        live = ("output_note", "stdout_text", "stderr_text")
        return [*fields[:2], *live, *(name for name in fields[2:] if name not in live)]

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:run_id>/rerun/", wrap(self.rerun_view), name="runner_run_rerun"),
            path("<int:run_id>/live/", wrap(admin_views.run_live), name="runner_run_live"),
            *super().get_urls(),
        ]

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
        if obj is not None and obj.status in ACTIVE_RUN_STATUSES:
            # The page follows a pending or running run (runner/run_live.js) until it ends.
            context["live_url"] = reverse("admin:runner_run_live", args=[obj.pk])
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
        """The trigger; a catch-up run says so (README, "Missed fires"); a retry says
        which attempt it is and links the run it retries."""
        trigger = f"{run.trigger} (catch-up)" if run.catch_up else run.trigger
        if run.retry_of_id is None:
            return trigger if run.attempt <= 1 else f"{trigger} (attempt {run.attempt})"
        url = reverse("admin:runner_run_change", args=[run.retry_of_id])
        return format_html(
            '{} (attempt {}) of <a href="{}">#{}</a>',
            trigger,
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
    def output_note(self, run: Run):
        if run.status in ACTIVE_RUN_STATUSES:
            note = "running: below are the latest lines so far, refreshed as the run writes them."
            return format_html('<span class="jr-note">{}</span>', note)
        size = f"stdout {run.stdout_bytes} bytes, stderr {run.stderr_bytes} bytes"
        if run.output_truncated:
            note = f"{size}; only the last lines are kept (outputTailLines in the configuration)."
        else:
            note = f"{size}; shown in full."
        return format_html('<span class="jr-note">{}</span>', note)

    @admin.display(description="stdout (tail)")
    def stdout_text(self, run: Run):
        return _output(run, "stdout")

    @admin.display(description="stderr (tail)")
    def stderr_text(self, run: Run):
        return _output(run, "stderr")


def _pre(text: str):
    return format_html('<pre class="jr-output">{}</pre>', text) if text else "—"


def _output(run: Run, stream: str):
    """A stream's tail; while the run is active, an element run_live.js keeps filling."""
    text = getattr(run, stream)
    if not text and run.status not in ACTIVE_RUN_STATUSES:
        return "—"
    return format_html('<pre class="jr-output" id="jr-{}">{}</pre>', stream, text)
