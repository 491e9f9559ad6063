"""Incidents (issue 16): read-only, newest first.

``GET /api/incidents?open=true&job_id=...&limit=100`` →
``{"incidents": [{"id", "jobId", "kind", "open", "openedAt", "closedAt",
"failures", "alertedAt", "remindedAt", "reminders", "firstRunId", "lastRunId", "detail"}]}``;
``kind`` is ``failing``, ``late`` or ``slow``; ``failures`` is the count (failed runs,
missed fires, 1 for a slow run). ``kind=`` filters by kind (400 for another).
Authentication as every API route (401 without it); needs ``runner.view_incident`` (403).
"""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema

from runner.api.errors import bad_input
from runner.api.permissions import require
from runner.api.schemas import ErrorOut
from runner.models import Incident, IncidentKind

router = Router(tags=["incidents"])
MAX_INCIDENTS = 1000


class IncidentOut(Schema):
    id: int
    jobId: str
    kind: str
    open: bool
    openedAt: datetime
    closedAt: datetime | None
    failures: int
    alertedAt: datetime | None
    remindedAt: datetime | None
    reminders: int
    firstRunId: int | None
    lastRunId: int | None
    detail: str


class IncidentListOut(Schema):
    incidents: list[IncidentOut]


@router.get(
    "/incidents",
    response={200: IncidentListOut, 400: ErrorOut},
    summary="List incidents",
)
def list_incidents(
    request: HttpRequest,
    open: bool | None = None,
    job_id: str | None = None,
    kind: str | None = None,
    limit: int = 100,
) -> dict:
    """Incidents newest first; ``open`` filters open (true) or closed (false) ones."""
    require(request, "incidents.list")
    if not 1 <= limit <= MAX_INCIDENTS:
        raise bad_input({"limit": [f"must be between 1 and {MAX_INCIDENTS}"]})
    if kind is not None and kind not in IncidentKind.values:
        raise bad_input({"kind": [f"must be one of {', '.join(IncidentKind.values)}"]})
    rows = Incident.objects.all()
    if kind is not None:
        rows = rows.filter(kind=kind)
    if open is not None:
        rows = rows.filter(closed_at__isnull=open)
    if job_id is not None:
        rows = rows.filter(job_id=job_id)
    return {"incidents": [_out(incident) for incident in rows[:limit]]}


def _out(incident: Incident) -> dict:
    return {
        "id": incident.pk,
        "jobId": incident.job_id,
        "kind": incident.kind,
        "open": incident.closed_at is None,
        "openedAt": incident.opened_at,
        "closedAt": incident.closed_at,
        "failures": incident.failures,
        "alertedAt": incident.alerted_at,
        "remindedAt": incident.reminded_at,
        "reminders": incident.reminders,
        "firstRunId": incident.first_run_id,
        "lastRunId": incident.last_run_id,
        "detail": incident.detail,
    }
