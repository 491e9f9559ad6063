"""The generic webhook: each alert as one JSON ``POST``, with no Django in it.

Body (documented in README, "Webhook")::

    {"event": "incident.raised" | "incident.reminder" | "incident.recovered",
     "kind": "failing" | "late" | "slow",
     "text": "<the Slack text of the alert>",
     "job": {"id": "...", "name": "..."},
     "incident": {"id": 1, "openedAt": "<ISO 8601>", "closedAt": null | "...",
                  "count": 3, "reminders": 0, "detail": "..."},
     "runId": 42 | null}

A 2xx answer is success. ``post_json`` never raises: a refusal, a timeout or a
non-2xx answer is logged (the URL's query string and user info are never logged:
they may carry a secret) and reported as ``False`` or, when trying again may help
(a timeout, a connection error, 429 or 5xx), as ``RETRY``.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import httpx

logger = logging.getLogger("runner.webhook")


class Sent(Enum):
    OK = "ok"
    FAILED = "failed"  # trying again will not help (4xx, a bad URL)
    RETRY = "retry"  # trying again may help (timeout, connection, 429, 5xx)


def is_http_url(url: str) -> bool:
    """Whether ``url`` is an http(s) URL with a host: the only kind a webhook may have."""
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def safe_url(url: str) -> str:
    """``url`` as it may be logged: scheme, host and port. Its user info, query and path go
    (``/…`` marks a path): a Slack-style webhook's path is its secret."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        port = f":{parts.port}" if parts.port else ""
        path = "/…" if parts.path.strip("/") else ""
        return f"{parts.scheme}://{host}{port}{path}"
    except ValueError:
        return "<unparsable URL>"


def post_json(
    url: str,
    body: dict[str, Any],
    timeout_s: float,
    *,
    transport: httpx.BaseTransport | None = None,
) -> Sent:
    """POST ``body`` as JSON to ``url``; never raises (see the module docstring)."""
    shown = safe_url(url)
    if not is_http_url(url):
        logger.warning("webhook not sent: %s is not an http(s) URL", shown)
        return Sent.FAILED
    try:
        with httpx.Client(timeout=timeout_s, transport=transport) as http:
            response = http.post(url, json=body, headers={"User-Agent": "jeeves-runner"})
    except (httpx.TimeoutException, httpx.TransportError, OSError) as exc:
        logger.warning("webhook %s did not answer: %s", shown, type(exc).__name__)
        return Sent.RETRY
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        logger.warning("webhook %s could not be posted: %s", shown, type(exc).__name__)
        return Sent.FAILED
    if 200 <= response.status_code < 300:
        return Sent.OK
    logger.warning("webhook %s answered HTTP %d", shown, response.status_code)
    if response.status_code == 429 or response.status_code >= 500:
        return Sent.RETRY
    return Sent.FAILED
