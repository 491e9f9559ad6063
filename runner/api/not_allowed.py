"""Methods of the API's routes: HEAD answered as GET, and a method a route does not take
refused in JSON, as every other API refusal is.

The original runner (Fastify) answers HEAD on every GET route: the GET's status and
headers, ``Content-Length`` included, without the body. django-ninja routes only the
methods named, so HEAD was 405; it is run here as the GET (in both dialects), and where
the path has no GET the 405 says so.

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

from runner.api.handlers import API_PREFIXES

ADMIN = "/admin/"


class JsonMethodNotAllowedMiddleware:
    """Answer HEAD of an API route as its GET without the body; turn a 405 of an API route
    into ``{"error": ...}``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        asked = request.method
        if asked == "HEAD" and request.path_info.startswith(API_PREFIXES):
            return _without_body(self._answer(_as_get(request), asked))
        return self._answer(request, asked)

    def _answer(self, request: HttpRequest, asked: str) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 405 or request.path_info.startswith(ADMIN):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        allowed = response.get("Allow", "")
        message = f"method {asked} is not allowed here" + (
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


def _as_get(request: HttpRequest) -> HttpRequest:
    request.method = "GET"
    request.META["REQUEST_METHOD"] = "GET"
    return request


def _without_body(response: HttpResponse) -> HttpResponse:
    """The response with its headers as they are (the GET's length) and no body."""
    if response.streaming:
        response.streaming_content = []
    else:
        length = len(response.content)
        response.content = b""
        response["Content-Length"] = str(length)
    return response
