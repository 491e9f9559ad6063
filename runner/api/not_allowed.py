"""A method a route does not take is refused in JSON, as every other API refusal is.

django-ninja answers such a request with a plain ``Method not allowed`` (405), which
clients that read ``{"error": ...}`` (the jr client, the original runner's CLI and
OpenClaw plugin) could not show. Both dialects, the root and ``/api/``, get
``{"error": "..."}`` with the ``Allow`` header kept; the admin's own pages are left
as Django makes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

ADMIN = "/admin/"


class JsonMethodNotAllowedMiddleware:
    """Turn a 405 of an API route into ``{"error": ...}``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 405 or request.path_info.startswith(ADMIN):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        allowed = response.get("Allow", "")
        message = f"method {request.method} is not allowed here" + (
            f"; allowed: {allowed}" if allowed else ""
        )
        refusal = HttpResponse(
            json.dumps({"error": message}, separators=(",", ":")),
            status=405,
            content_type="application/json; charset=utf-8",
        )
        if allowed:
            refusal["Allow"] = allowed
        return refusal
