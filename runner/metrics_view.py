"""``GET /metrics``: the Prometheus exposition of ``runner.metrics``.

Who may scrape: with ``JEEVES_METRICS_TOKEN`` (or ``JEEVES_METRICS_TOKEN_FILE``)
set, any client sending ``Authorization: Bearer <token>``; unset, only a client
connecting from a loopback address. The address is the socket's peer
(``REMOTE_ADDR``); ``X-Forwarded-For`` and similar headers are never read, so a
proxy on the same host makes every client look local — set a token then.
Refusals: 401 (token set, missing or wrong), 403 (no token set, not loopback),
405 (not GET/HEAD).
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from runner.metrics import RunnerCollector


def registry() -> CollectorRegistry:
    """A fresh registry holding only the runner's collector (no process metrics)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(RunnerCollector())
    return reg


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The exposition text, or 401/403 (see the module docstring)."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    token = getattr(settings, "METRICS_TOKEN", "")
    if token:
        scheme, _, secret = request.headers.get("Authorization", "").strip().partition(" ")
        given = secret.strip().encode()
        if scheme.lower() == "bearer" and hmac.compare_digest(given, token.encode()):
            return None
        response = HttpResponse("metrics token required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if _is_loopback(request.META.get("REMOTE_ADDR", "")):
        return None
    return HttpResponse(
        "metrics are served to loopback only; set JEEVES_METRICS_TOKEN\n",
        status=403,
        content_type="text/plain",
    )


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback
