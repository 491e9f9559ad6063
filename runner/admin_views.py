"""The console's small JSON views inside the admin: a schedule's next fires while it
is edited, and a run's live record while it runs.

Both answer staff only (the admin site's ``admin_view`` sends others to log in) and
check the operation's permissions through ``runner.api.permissions``, as the API does.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone

from runner import schedule, validation
from runner.api.permissions import missing
from runner.describe import duration_words, relative_words, schedule_words
from runner.models import FINAL_RUN_STATUSES, Run

PREVIEW_FIRES = 5
# Longer than any schedule a person types (a recurrence object with many rules is a few
# hundred characters); the cap keeps a pasted novel from costing the server a parse.
MAX_PREVIEW_SCHEDULE = 4000


def _allowed(request: HttpRequest, operation: str) -> None:
    if missing(request.user, operation):
        raise PermissionDenied


def _refusal(field: str, message: str) -> JsonResponse:
    return JsonResponse({"field": field, "error": message}, status=400)


def next_fires(expression: str, zone_name: str, now: datetime, count: int) -> list[datetime]:
    """The first ``count`` fires after ``now`` (UTC), by the scheduler's own schedule code."""
    fires: list[datetime] = []
    moment = now
    for _ in range(count):
        moment = schedule.next_fire_after(expression, zone_name, moment)
        fires.append(moment)
    return fires


def schedule_preview(request: HttpRequest) -> JsonResponse:
    """GET ``?schedule=…&timezone=…``: the next 5 fires, or 400 naming the field at fault.

    200: ``{"zone": "Europe/Berlin", "words": "...", "fires": [{"at": ISO-8601 UTC,
    "local": "2026-11-30 09:30:00 CET", "relative": "in 4 min"}, ...]}``. 400:
    ``{"field": "schedule"|"timezone", "error": "..."}`` for an empty or too long
    schedule, a cron or recurrence object the job form would refuse, or an unknown
    zone. Needs ``jobs.detail`` (runner.view_job).
    """
    _allowed(request, "jobs.detail")
    expression = request.GET.get("schedule", "").strip()
    zone_name = request.GET.get("timezone", "").strip()
    if not expression:
        return _refusal("schedule", "is empty")
    if len(expression) > MAX_PREVIEW_SCHEDULE:
        return _refusal("schedule", f"is longer than {MAX_PREVIEW_SCHEDULE} characters")
    try:
        validation.validate_timezone(zone_name)
    except ValidationError as exc:
        return _refusal("timezone", exc.messages[0])
    try:
        validation.validate_schedule(expression)
    except ValidationError as exc:
        return _refusal("schedule", exc.messages[0])
    zone_name = zone_name or timezone.get_default_timezone_name()
    now = timezone.now()
    try:
        shown_in = schedule.zone_name_of(expression, zone_name)
        fires = next_fires(expression, zone_name, now, PREVIEW_FIRES)
    except ValueError as exc:  # accepted, but no next fire (a recurrence that has ended)
        return _refusal("schedule", str(exc) or "has no next fire")
    local = ZoneInfo(shown_in)
    return JsonResponse(
        {
            "zone": shown_in,
            "words": schedule_words(expression, zone_name),
            "fires": [
                {
                    "at": at.isoformat(),
                    "local": at.astimezone(local).strftime("%Y-%m-%d %H:%M:%S %Z"),
                    "relative": relative_words(at, now),
                }
                for at in fires
            ],
        }
    )


def run_live(request: HttpRequest, run_id: int) -> JsonResponse:
    """GET: a run as its page shows it, for the page to refresh itself while it runs.

    ``{"id", "status", "final": bool, "stdout", "stderr", "elapsed": "3.2 s", "error"}``;
    while the run is ``running`` its stdout/stderr are the tails the executor keeps
    writing. Needs ``runs.detail`` (runner.view_run).
    """
    _allowed(request, "runs.detail")
    run = get_object_or_404(Run, pk=run_id)
    started = run.started_at or run.created_at
    if run.duration_ms is not None:
        elapsed = duration_words(run.duration_ms)
    else:
        elapsed = duration_words((timezone.now() - started).total_seconds() * 1000)
    return JsonResponse(
        {
            "id": run.pk,
            "status": run.status,
            "final": run.status in FINAL_RUN_STATUSES,
            "stdout": run.stdout,
            "stderr": run.stderr,
            "elapsed": elapsed,
            "error": run.error,
        }
    )
