"""Django's own refusals (a Host it does not serve, a path no route has, a crash) in the
API's one shape, ``{"error": "..."}``, for the API's paths; the admin keeps its pages.

Django answers these before any API view runs (``jeeves_site/urls.py`` names them as
``handler400``, ``handler404`` and ``handler500``), so without them a script calling
``/api/jobz`` or through a wrong host name got an HTML page.
"""

from __future__ import annotations

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from jeeves_site.echo import shortened
from runner.api.errors import error_body

# /api/ and the original runner's dialect at the root (runner/api/original/).
API_PREFIXES = ("/api/", "/jobs", "/runs", "/queues", "/state", "/status", "/config")


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIXES)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """400: for a Host header not in DJANGO_ALLOWED_HOSTS, say so (without echoing it)."""
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, DisallowedHost):
        message = (
            "the Host header names a host this server does not answer to; "
            "add it to DJANGO_ALLOWED_HOSTS, or call it as 127.0.0.1 or localhost"
        )
    else:
        message = "bad request"
    return JsonResponse(error_body(message), status=400)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for a path no route has."""
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse(error_body(f"no such API path: {shortened(request.path_info)}"), status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    """500: the error is in the log; the caller gets the one shape."""
    if not _is_api(request):
        return defaults.server_error(request)
    return JsonResponse(error_body("internal error; the runner's log has the details"), status=500)
