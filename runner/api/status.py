"""``GET /api/status``: the runner's health summary."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router

from runner.api.permissions import require
from runner.health import health_summary

router = Router(tags=["status"])


@router.get("/status", summary="Health: version, uptime, jobs, running, failures")
def status(request: HttpRequest) -> dict[str, Any]:
    """The same summary as ``manage.py runner_status``."""
    require(request, "status")
    return health_summary().as_json()
